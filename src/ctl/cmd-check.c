/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl check FILE and fusemirrorctl repair [--source LEG] FILE: start a comparison of
 * the in-sync legs (md's sync_action check and repair).  The command returns at once; wait
 * follows the pass, status shows its results (mismatch_cnt, mismatches).
 */
#include "config.h"

#include <errno.h>

#include "ctl.h"

/* Why the daemon may say no, after the errno's own text (fusemirrorctl(8) lists them). */
static const char *refusal_reason(int err)
{
	switch (err) {
	case EALREADY:
		return " (a check or repair is running already: 'fusemirrorctl wait' follows it)";
	case EBUSY:
		return " (a resync is running, or fewer than two legs are in sync)";
	case EINVAL:
		return " (it does not accept this command, or the source is not an in-sync leg)";
	case EPERM:
		return " (only root may control a mirror)";
	default:
		return NULL;
	}
}

static int start(const char *verb, const char *file, const char *source)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *shown_file = ctl_printable(file);
	g_autofree char *context = g_strdup_printf("%s %s", verb, shown_file);
	g_autofree char *command = NULL;
	g_autofree char *quoted = NULL;
	g_autofree char *explanation = NULL;
	struct ctl_status *st;
	int r;

	st = ctl_status_read(file, &error);
	if (st == NULL) {
		ctl_message("%s: %s", context, error->message);
		return CTL_EXIT_FAILED;
	}
	if (source != NULL) {
		const struct ctl_leg_status *leg = ctl_status_find_leg(st, source);

		if (leg == NULL) {
			g_autofree char *shown = ctl_printable(source);
			g_autofree char *choices = ctl_status_leg_choices(st);

			ctl_message("%s: --source: no leg '%s' (the legs are %s)", context, shown,
				    choices);
			ctl_status_free(st);
			return CTL_EXIT_FAILED;
		}
		command = g_strdup_printf("%s --source %u", verb, leg->index);
	} else {
		command = g_strdup(verb);
	}
	quoted = g_strdup_printf("'%s'", command);
	if (!ctl_check_live(st, context, quoted)) {
		ctl_status_free(st);
		return CTL_EXIT_FAILED;
	}
	ctl_status_free(st);
	r = ctl_send(file, command, &explanation);
	if (r < 0) {
		ctl_report_refusal(context, command, -r, explanation, refusal_reason(-r));
		return CTL_EXIT_FAILED;
	}
	ctl_message("%s of %s started ('fusemirrorctl wait %s' follows it, 'fusemirrorctl status "
		    "%s' shows what it found)",
		    verb, shown_file, shown_file, shown_file);
	return CTL_EXIT_OK;
}

static int run_check(const struct ctl_command *cmd, int argc, char **argv)
{
	if (!ctl_parse_options(cmd, NULL, &argc, &argv, 1, 1))
		return CTL_EXIT_USAGE;
	return start("check", argv[1], NULL);
}

static int run_repair(const struct ctl_command *cmd, int argc, char **argv)
{
	g_autofree char *source = NULL;
	const GOptionEntry entries[] = {
	    {"source", 0, 0, G_OPTION_ARG_STRING, &source,
	     "Rewrite every differing block from this leg (a name or an index)", "LEG"},
	    G_OPTION_ENTRY_NULL,
	};

	if (!ctl_parse_options(cmd, entries, &argc, &argv, 1, 1))
		return CTL_EXIT_USAGE;
	return start("repair", argv[1], source);
}

const struct ctl_command ctl_cmd_check = {
    .name = "check",
    .parameters = "FILE",
    .summary = "Compare the in-sync legs and report the ranges that differ; change nothing",
    .description = "The check runs in the background; 'fusemirrorctl wait FILE' follows it and\n"
		   "'fusemirrorctl status FILE' shows mismatch_cnt and the ranges found.\n"
		   "Exit status: 0 started, 1 refused or failed, 2 usage error.",
    .run = run_check,
};

const struct ctl_command ctl_cmd_repair = {
    .name = "repair",
    .parameters = "FILE",
    .summary = "Compare the in-sync legs and rewrite every block that differs",
    .description = "Each differing 4 KiB block is rewritten from --source LEG, else from the\n"
		   "majority of three or more legs, else from the authoritative leg (the first\n"
		   "in-sync one, write-mostly last).  It runs in the background like check.\n"
		   "Exit status: 0 started, 1 refused or failed, 2 usage error.",
    .run = run_repair,
};
