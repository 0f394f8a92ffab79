/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl fail FILE LEG: mark a leg failed, as mdadm --fail does, by writing "fail I" to
 * trusted.fusemirror.ctl.  The daemon only knows indexes; names are resolved here through
 * user.fusemirror.leg.I.name, so that the operator can use the names of the config file.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>

#include "ctl.h"

/* "a (0), b (1)": what LEG may be, for the message about one that is not there. */
static char *leg_choices(const struct ctl_status *st)
{
	GString *text = g_string_new(NULL);

	for (unsigned int i = 0; i < st->nlegs; i++) {
		g_autofree char *name = ctl_printable(st->legs[i].name);

		g_string_append_printf(text, "%s%s (%u)", i > 0 ? ", " : "", name,
				       st->legs[i].index);
	}
	return g_string_free(text, FALSE);
}

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
	const struct ctl_leg_status *leg;
	struct ctl_status *st;
	const char *file, *reason;
	int status = CTL_EXIT_FAILED;

	if (!ctl_parse_options(cmd, NULL, &argc, &argv, 2, 2))
		return CTL_EXIT_USAGE;
	file = argv[1];
	shown_file = ctl_printable(file);
	shown_leg = ctl_printable(argv[2]);

	st = ctl_status_read(file, &error);
	if (st == NULL) {
		ctl_message("fail %s %s: %s", shown_file, shown_leg, error->message);
		return CTL_EXIT_FAILED;
	}
	leg = ctl_status_find_leg(st, argv[2]);
	if (leg == NULL) {
		g_autofree char *name = ctl_printable(st->name);
		g_autofree char *choices = leg_choices(st);

		ctl_message("fail %s %s: mirror '%s' has no leg '%s'; its legs are: %s", shown_file,
			    shown_leg, name, shown_leg, choices);
		goto out;
	}

	command = g_strdup_printf("fail %u", leg->index);
	/* On a plain file, root's setxattr would just store the command and report success. */
	if (!st->live) {
		ctl_message(
		    "fail %s %s: not sending '%s': the file is not on a FUSE file system, so "
		    "no fusemirrord serves it (its %s* attributes are a copy)",
		    shown_file, shown_leg, command, CTL_XATTR_PREFIX);
		goto out;
	}
	if (setxattr(file, CTL_XATTR_CTL, command, strlen(command), 0) < 0) {
		int err = errno;

		reason = refusal_reason(err);
		if (reason != NULL)
			ctl_message("fail %s %s: the daemon refused: %s%s", shown_file, shown_leg,
				    g_strerror(err), reason);
		else
			ctl_message("fail %s %s: cannot send '%s' through %s: %s", shown_file,
				    shown_leg, command, CTL_XATTR_CTL, g_strerror(err));
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
