/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl resync [--full] FILE: start the background resync of the legs that need it
 * ("resync"), or re-copy every region from an in-sync leg onto the others ("resync --full", a
 * repair after a doubt about the legs' contents).  The command returns at once; wait follows the
 * copy.
 */
#include "config.h"

#include <errno.h>

#include "ctl.h"

/* Why the daemon may say no, after the errno's own text (fusemirrorctl(8) lists them). */
static const char *refusal_reason(int err)
{
	switch (err) {
	case EALREADY:
		return " (a resync is running already: 'fusemirrorctl wait' follows it)";
	case EBUSY:
		return " (fewer than two usable legs: nothing to copy from, or onto)";
	case EINVAL:
		return " (it does not accept this command)";
	case EPERM:
		return " (only root may control a mirror)";
	default:
		return NULL;
	}
}

static int run_resync(const struct ctl_command *cmd, int argc, char **argv)
{
	gboolean full = FALSE;
	const GOptionEntry entries[] = {
	    {"full", 0, 0, G_OPTION_ARG_NONE, &full,
	     "Re-copy every region from an in-sync leg onto the others, not only those that "
	     "need it",
	     NULL},
	    G_OPTION_ENTRY_NULL,
	};
	g_autoptr(GError) error = NULL;
	g_autofree char *shown_file = NULL;
	g_autofree char *context = NULL;
	g_autofree char *quoted = NULL;
	g_autofree char *explanation = NULL;
	struct ctl_status *st, *after;
	const char *command;
	int r;

	if (!ctl_parse_options(cmd, entries, &argc, &argv, 1, 1))
		return CTL_EXIT_USAGE;
	shown_file = ctl_printable(argv[1]);
	context = g_strdup_printf("resync %s", shown_file);
	command = full ? "resync --full" : "resync";

	st = ctl_status_read(argv[1], &error);
	if (st == NULL) {
		ctl_message("%s: %s", context, error->message);
		return CTL_EXIT_FAILED;
	}
	quoted = g_strdup_printf("'%s'", command);
	if (!ctl_check_live(st, context, quoted)) {
		ctl_status_free(st);
		return CTL_EXIT_FAILED;
	}
	ctl_status_free(st);
	r = ctl_send(argv[1], command, &explanation);
	if (r < 0) {
		ctl_report_refusal(context, command, -r, explanation, refusal_reason(-r));
		return CTL_EXIT_FAILED;
	}

	/* What the daemon started: a resync of nothing may be over before this reads it. */
	after = ctl_status_read(argv[1], NULL);
	if (after != NULL && ctl_status_resyncing(after) && after->has_resync) {
		g_autofree char *total = ctl_format_size(after->resync_total);

		ctl_message("resync of %s started: %s to copy ('fusemirrorctl wait %s' follows it)",
			    shown_file, total, shown_file);
	} else if (after != NULL && ctl_status_resyncing(after)) {
		ctl_message("resync of %s started ('fusemirrorctl wait %s' follows it)", shown_file,
			    shown_file);
	} else {
		ctl_message("no resync of %s is running: no leg needed one, or it is done already",
			    shown_file);
	}
	ctl_status_free(after);
	return CTL_EXIT_OK;
}

const struct ctl_command ctl_cmd_resync = {
    .name = "resync",
    .parameters = "FILE",
    .summary = "Start the resync of the legs that need it (of every region with --full)",
    .description = "The resync runs in the background; 'fusemirrorctl wait FILE' follows it.\n"
		   "Exit status: 0 started (or nothing to do), 1 refused or failed, 2 usage "
		   "error.",
    .run = run_resync,
};
