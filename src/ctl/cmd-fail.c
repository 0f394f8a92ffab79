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
static const char *refusal_reason(int err)
{
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
	g_autoptr(GError) error = NULL;
	g_autofree char *shown_file = NULL;
	g_autofree char *shown_leg = NULL;
	g_autofree char *shown_name = NULL;
	g_autofree char *command = NULL;
	g_autofree char *quoted = NULL;
	g_autofree char *context = NULL;
	g_autofree char *explanation = NULL;
	const struct ctl_leg_status *leg;
	struct ctl_status *st;
	const char *file;
	int status = CTL_EXIT_FAILED, r;

	if (!ctl_parse_options(cmd, NULL, &argc, &argv, 2, 2))
		return CTL_EXIT_USAGE;
	file = argv[1];
	shown_file = ctl_printable(file);
	shown_leg = ctl_printable(argv[2]);
	context = g_strdup_printf("fail %s %s", shown_file, shown_leg);

	st = ctl_status_read(file, &error);
	if (st == NULL) {
		ctl_message("%s: %s", context, error->message);
		return CTL_EXIT_FAILED;
	}
	leg = ctl_status_find_leg(st, argv[2]);
	if (leg == NULL) {
		g_autofree char *name = ctl_printable(st->name);
		g_autofree char *choices = ctl_status_leg_choices(st);

		ctl_message("%s: mirror '%s' has no leg '%s'; its legs are: %s", context, name,
			    shown_leg, choices);
		goto out;
	}

	command = g_strdup_printf("fail %u", leg->index);
	quoted = g_strdup_printf("'%s'", command);
	if (!ctl_check_live(st, context, quoted))
		goto out;
	r = ctl_send(file, command, &explanation);
	if (r < 0) {
		ctl_report_refusal(context, command, -r, explanation, refusal_reason(-r));
		goto out;
	}
	/* On stderr, as mdadm reports "set /dev/sdb faulty in /dev/md0". */
	shown_name = ctl_printable(leg->name);
	ctl_message("leg '%s' (index %u) of %s is now failed", shown_name, leg->index, shown_file);
	status = CTL_EXIT_OK;
out:
	ctl_status_free(st);
	return status;
}

const struct ctl_command ctl_cmd_fail = {
    .name = "fail",
    .parameters = "FILE LEG",
    .summary = "Mark a leg failed: the mirror no longer reads or writes it",
    .description = "LEG is the leg's name in the config file, or its index (0 for the first).\n"
		   "Only root may fail a leg; the daemon refuses to fail the last in-sync leg.\n"
		   "Exit status: 0 the leg is failed, 1 it is not, 64 usage error.",
    .run = run_fail,
};
