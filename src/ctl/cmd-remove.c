/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl remove [--force] FILE LEG: take a failed leg out of a running mirror, as mdadm
 * --remove does, by writing "remove I" to trusted.fusemirror.ctl; the daemon closes it and frees
 * its slot.  With --force ("remove --force I") a leg in any state is failed first.  LEG is
 * resolved to an index as fail does it.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "ctl.h"

/* Why the daemon may say no, after the errno's own text; the leg's state tells EBUSY apart. */
static const char *refusal_reason(int err, const struct ctl_leg_status *leg, bool force)
{
	switch (err) {
	case EBUSY:
		if (!force &&
		    (strcmp(leg->state, "in_sync") == 0 || strcmp(leg->state, "resyncing") == 0))
			return " (the leg is in use: fail it first, or use --force)";
		return " (it is the last in-sync leg)";
	case EALREADY:
		return " (the leg is removed already)";
	case EINVAL:
		return " (it does not accept this command or leg index)";
	case EPERM:
		return " (only root may control a mirror)";
	default:
		return NULL;
	}
}

static int run_remove(const struct ctl_command *cmd, int argc, char **argv)
{
	gboolean force = FALSE, no_save = FALSE;
	const GOptionEntry entries[] = {
	    {"force", 0, 0, G_OPTION_ARG_NONE, &force,
	     "Remove a leg in any state: fail it first when it is in use", NULL},
	    {"no-save", 0, 0, G_OPTION_ARG_NONE, &no_save,
	     "Leave the daemon's config file as it is (it drops the leg's group otherwise)", NULL},
	    G_OPTION_ENTRY_NULL,
	};
	g_autofree char *shown_file = NULL;
	g_autofree char *name = NULL;
	unsigned int index;

	if (!ctl_parse_options(cmd, entries, &argc, &argv, 2, 2))
		return CTL_EXIT_USAGE;
	g_autofree char *options =
	    g_strconcat(force ? "--force " : "", no_save ? "--no-save " : "", NULL);

	if (ctl_leg_command("remove", argv[1], argv[2], options, refusal_reason, &name, &index) !=
	    CTL_EXIT_OK)
		return CTL_EXIT_FAILED;
	shown_file = ctl_printable(argv[1]);
	ctl_message("leg '%s' (index %u) removed from %s", name, index, shown_file);
	return CTL_EXIT_OK;
}

const struct ctl_command ctl_cmd_remove = {
    .name = "remove",
    .parameters = "FILE LEG",
    .summary = "Remove a failed leg from a running mirror (any leg with --force)",
    .description = "LEG is the leg's name in the config file, or its index (0 for the first).\n"
		   "The daemon refuses a leg that is in sync or resyncing unless --force, and\n"
		   "never removes the last in-sync leg.\n"
		   "Exit status: 0 removed, 1 refused or failed, 2 usage error.",
    .run = run_remove,
};
