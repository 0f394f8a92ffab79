/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl fail FILE LEG: mark a leg failed, as mdadm --fail does, by writing "fail I" to
 * trusted.fusemirror.ctl.  The daemon only knows indexes; names are resolved here through
 * user.fusemirror.leg.I.name, so that the operator can use the names of the config file.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>

#include "ctl.h"

/* Why the daemon may say no, after the errno's own text (fusemirrorctl(8) lists them). */
static const char *refusal_reason(int err, const struct ctl_leg_status *leg, bool force)
{
	(void)leg;
	(void)force;
	switch (err) {
	case EBUSY:
		return " (it is the last in-sync leg)";
	case EALREADY:
		return " (the leg is not in sync: it has failed already)";
	case EINVAL:
		return " (it does not accept this command or leg index)";
	case EPERM:
		return " (only root may control a mirror)";
	default:
		return NULL;
	}
}

static int run_fail(const struct ctl_command *cmd, int argc, char **argv)
{
	g_autofree char *shown_file = NULL;
	g_autofree char *name = NULL;
	unsigned int index;

	if (!ctl_parse_options(cmd, NULL, &argc, &argv, 2, 2))
		return CTL_EXIT_USAGE;
	if (ctl_leg_command("fail", argv[1], argv[2], "", refusal_reason, &name, &index) !=
	    CTL_EXIT_OK)
		return CTL_EXIT_FAILED;
	/* On stderr, as mdadm reports "set /dev/sdb faulty in /dev/md0". */
	shown_file = ctl_printable(argv[1]);
	ctl_message("leg '%s' (index %u) of %s is now failed", name, index, shown_file);
	return CTL_EXIT_OK;
}

const struct ctl_command ctl_cmd_fail = {
    .name = "fail",
    .parameters = "FILE LEG",
    .summary = "Mark a leg failed: the mirror no longer reads or writes it",
    .description = "LEG is the leg's name in the config file, or its index (0 for the first).\n"
		   "Only root may fail a leg; the daemon refuses to fail the last in-sync leg.\n"
		   "Exit status: 0 the leg is failed, 1 it is not, 2 usage error.",
    .run = run_fail,
};
