/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl replace [--no-save] [--wait] FILE LEG PATH: replace a leg of a running mirror by
 * a new one, as mdadm --replace does, by writing "replace I PATH" to trusted.fusemirror.ctl.
 * The daemon adds PATH and returns; in the background it copies onto it while LEG keeps
 * serving, and removes LEG once PATH is in sync.  LEG is resolved to an index as fail does it,
 * PATH checked and made absolute as add does it (a signature on it is refused: there is no
 * --force).  With --wait, user.fusemirror.replace.leg is polled until the replace has ended,
 * and the exit status says whether LEG went.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/config.h"
#include "config/runtime.h"
#include "ctl.h"
#include "dmio.h"
#include "mirror/superblock.h"

#define POLL_US (200 * 1000) /* --wait: between two looks at the status */

struct replace {
	const char *file;
	char *path;	  /* PATH made absolute, symbolic links resolved (an NBD URI as given) */
	char *listed;	  /* path as the status lists it: an NBD URI redacted */
	char *shown_path; /* path, printable (an NBD URI redacted) */
	char *context;	  /* "replace FILE LEG PATH", printable, to start every message */
	bool no_save;
	const char *direct; /* --direct=auto|true|false as given (checked), or NULL */
	bool wait;
	struct ctl_status *st;
	unsigned int leg; /* LEG's index */
	char *shown_leg;  /* LEG's name, printable */
};

/* Why the daemon may say no, after the errno's own text (fusemirrorctl(8) lists them). */
static const char *refusal_reason(int err)
{
	switch (err) {
	case EBUSY:
		return " (a replace runs already, or fusemirrord cannot open PATH)";
	case EINVAL:
		return " (the leg is not in sync, or the daemon does not accept this command)";
	case EEXIST:
		return " (PATH is a leg of this mirror already, or holds another array's "
		       "superblock)";
	case ENOSPC:
		return " (PATH is too small for the mirror's data and metadata)";
	case EMLINK:
		return " (the mirror has no free leg slot: remove a leg first)";
	case EPERM:
		return " (only root may control a mirror)";
	case ENOENT:
	case EACCES:
	case EROFS:
		return " (fusemirrord cannot open PATH)";
	default:
		return NULL;
	}
}

/*
 * What PATH holds that the new leg's superblock and data would overwrite: another array's or a
 * damaged superblock, or a signature libblkid knows.  A superblock of this very array is
 * welcome (the daemon re-adds a former member).  Returns false after a message.
 */
static bool check_signature(struct replace *rp)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *why = NULL;
	g_autofree char *what = NULL;
	struct dmio_dev *dev;
	struct superblock sb;
	int r;

	r = dmio_dev_open(rp->path, DMIO_DEV_RDONLY, &dev);
	if (r < 0) {
		ctl_message("%s: cannot open it: %s", rp->context, g_strerror(-r));
		return false;
	}
	r = (dmio_dev_sectors(dev) << DMIO_SECTOR_SHIFT) < SB_SIZE
		? CTL_SB_NONE
		: ctl_superblock_probe(dev, &sb, &why);
	dmio_dev_close(dev);
	if (r < 0) {
		ctl_message("%s: cannot read its first %u bytes: %s", rp->context, SB_SIZE,
			    g_strerror(-r));
		return false;
	}
	if (r == CTL_SB_VALID) {
		char uuid[37];

		uuid_format(sb.array_uuid, uuid);
		if (rp->st->uuid == NULL || g_ascii_strcasecmp(uuid, rp->st->uuid) != 0)
			what = ctl_superblock_owner(&sb);
	} else if (r == CTL_SB_DAMAGED) {
		what = ctl_superblock_damaged(why);
	} else if (!ctl_blkid_signature(rp->path, &what, &error)) {
		ctl_message("%s: %s", rp->context, error->message);
		return false;
	}
	if (what != NULL) {
		ctl_message("%s: %s %s: replace does not overwrite it (wipe it first, or 'add "
			    "--force' it and remove the old leg)",
			    rp->context, rp->shown_path, what);
		return false;
	}
	return true;
}

/* The new leg: the one with the path sent that is not removed; -1 when there is none. */
static int find_new_leg(const struct ctl_status *st, const char *path)
{
	for (unsigned int i = 0; i < st->nlegs; i++)
		if (strcmp(st->legs[i].path, path) == 0 &&
		    strcmp(st->legs[i].state, "removed") != 0)
			return (int)i;
	return -1;
}

/* The line once the daemon has started the replace: the new leg and what its resync copies. */
static void report_started(struct replace *rp, const struct ctl_status *st, int by)
{
	g_autofree char *shown_file = ctl_printable(rp->file);
	g_autofree char *copy = NULL;

	if (st->has_resync && ctl_status_resyncing(st)) {
		g_autofree char *total = ctl_format_size(st->resync_total);

		copy = g_strdup_printf(", %s to copy", total);
	}
	ctl_message("replacing leg %u (%s) of %s by %s as leg %d: resync started%s; leg %u serves "
		    "until it is done%s",
		    rp->leg, rp->shown_leg, shown_file, rp->shown_path, by, copy ? copy : "",
		    rp->leg, rp->wait ? "" : " ('fusemirrorctl status' shows the replace)");
}

/*
 * --wait: poll until the status shows no replace, then judge by the slots: the new leg in sync
 * in LEG's slot (or LEG removed and the new leg in sync in its own).
 */
static int wait_for_end(struct replace *rp, int by)
{
	g_autofree char *shown_file = ctl_printable(rp->file);
	struct ctl_status *st = NULL;
	const struct ctl_leg_status *old, *new_leg;
	bool replaced;

	for (;;) {
		g_autoptr(GError) error = NULL;

		ctl_status_free(st);
		st = ctl_status_read(rp->file, &error);
		if (st == NULL) {
			ctl_message("%s: while waiting for the replace: %s", rp->context,
				    error->message);
			return CTL_EXIT_FAILED;
		}
		if (!st->has_replace || st->replace_leg < 0)
			break;
		g_usleep(POLL_US);
	}
	old = rp->leg < st->nlegs ? &st->legs[rp->leg] : NULL;
	/* The new leg takes LEG's slot once it is in sync (a daemon that does not move it
	 * leaves LEG removed and the new leg in its own). */
	if (old != NULL && strcmp(old->path, rp->listed) == 0) {
		new_leg = old;
		by = (int)rp->leg;
		replaced = strcmp(new_leg->state, "in_sync") == 0;
	} else {
		new_leg = by >= 0 && (unsigned int)by < st->nlegs ? &st->legs[by] : NULL;
		replaced = (old == NULL || strcmp(old->state, "removed") == 0) && new_leg != NULL &&
			   strcmp(new_leg->state, "in_sync") == 0 &&
			   strcmp(new_leg->path, rp->listed) == 0;
	}
	if (replaced) {
		ctl_message("leg %u (%s) of %s replaced by %s (leg %d, in sync)", rp->leg,
			    rp->shown_leg, shown_file, rp->shown_path, by);
	} else {
		g_autofree char *state = old != NULL ? ctl_printable(old->state) : g_strdup("?");
		g_autofree char *by_state =
		    new_leg != NULL ? ctl_printable(new_leg->state) : g_strdup("gone");

		ctl_message("%s: the replace ended without replacing leg %u, which is %s (the new "
			    "leg is %s; the daemon's ReplaceAborted event says why)",
			    rp->context, rp->leg, state, by_state);
	}
	ctl_status_free(st);
	return replaced ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}

static int replace(struct replace *rp, const char *leg_arg, const char *path)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *command = NULL;
	g_autofree char *quoted = NULL;
	g_autofree char *explanation = NULL;
	const struct ctl_leg_status *leg;
	struct ctl_status *after;
	int by;

	rp->st = ctl_status_read(rp->file, &error);
	if (rp->st == NULL) {
		ctl_message("%s: %s", rp->context, error->message);
		return CTL_EXIT_FAILED;
	}
	leg = ctl_status_find_leg(rp->st, leg_arg);
	if (leg == NULL) {
		g_autofree char *name = ctl_printable(rp->st->name);
		g_autofree char *shown = ctl_printable(leg_arg);
		g_autofree char *choices = ctl_status_leg_choices(rp->st);

		ctl_message("%s: mirror '%s' has no leg '%s'; its legs are: %s", rp->context, name,
			    shown, choices);
		return CTL_EXIT_FAILED;
	}
	rp->leg = leg->index;
	rp->shown_leg = ctl_printable(leg->name);
	if (!ctl_new_leg_path(rp->file, path, rp->context, &rp->path, &rp->shown_path) ||
	    !ctl_new_leg_unheld(rp->file, rp->path, rp->shown_path, rp->context) || !check_signature(rp))
		return CTL_EXIT_FAILED;
	rp->listed = dmio_path_display(rp->path);

	command = g_strdup_printf("replace %s%s%s%s%u %s", rp->no_save ? "--no-save " : "",
				  rp->direct ? "--direct=" : "", rp->direct ? rp->direct : "",
				  rp->direct ? " " : "", rp->leg, rp->path);
	quoted = g_strdup_printf("'%s'", command);
	if (!ctl_check_live(rp->st, rp->context, quoted))
		return CTL_EXIT_FAILED;
	by = ctl_send(rp->file, command, &explanation);
	if (by < 0) {
		ctl_report_refusal(rp->context, command, -by, explanation, refusal_reason(-by));
		return CTL_EXIT_FAILED;
	}

	g_clear_error(&error);
	after = ctl_status_read(rp->file, &error);
	if (after == NULL) {
		ctl_message("%s: the replace started, but the status cannot be read: %s",
			    rp->context, error->message);
		return CTL_EXIT_FAILED;
	}
	/* The replace may be over already (a small leg): the new leg is then found by its path. */
	by = after->has_replace && after->replace_leg == (int)rp->leg
		 ? after->replace_by
		 : find_new_leg(after, rp->listed);
	report_started(rp, after, by);
	ctl_status_free(after);
	return rp->wait ? wait_for_end(rp, by) : CTL_EXIT_OK;
}

static int run_replace(const struct ctl_command *cmd, int argc, char **argv)
{
	gboolean no_save = FALSE, wait = FALSE;
	g_autofree char *direct = NULL;
	enum leg_direct mode;
	const GOptionEntry entries[] = {
	    {"no-save", 0, 0, G_OPTION_ARG_NONE, &no_save,
	     "Leave the daemon's config file as it is (it follows the legs otherwise)", NULL},
	    {"wait", 0, 0, G_OPTION_ARG_NONE, &wait,
	     "Return once the replace has ended; exit 0 only if LEG was replaced", NULL},
	    {"direct", 0, 0, G_OPTION_ARG_STRING, &direct,
	     "O_DIRECT for the new leg, as direct = in fusemirror.conf(5) (default auto)",
	     "auto|true|false"},
	    G_OPTION_ENTRY_NULL,
	};
	g_autofree char *shown_file = NULL;
	g_autofree char *shown_leg = NULL;
	g_autofree char *shown_path = NULL;
	struct replace rp = {0};
	int status;

	if (!ctl_parse_options(cmd, entries, &argc, &argv, 3, 3))
		return CTL_EXIT_USAGE;
	if (direct != NULL && !config_parse_direct(direct, &mode)) {
		g_autofree char *shown = ctl_printable(direct);

		return ctl_usage_error(cmd, "--direct takes auto, true or false, not '%s'", shown);
	}
	rp.file = argv[1];
	rp.no_save = no_save;
	rp.direct = direct != NULL ? config_direct_name(mode) : NULL;
	rp.wait = wait;
	shown_file = ctl_printable(argv[1]);
	shown_leg = ctl_printable(argv[2]);
	shown_path = ctl_printable(argv[3]);
	rp.context = g_strdup_printf("replace %s %s %s", shown_file, shown_leg, shown_path);

	/* One client for the superblock read, freed (threads and all) by dmio_put(). */
	status = dmio_get(1);
	if (status < 0) {
		ctl_message("%s: cannot start libdmio: %s", rp.context, g_strerror(-status));
		g_free(rp.context);
		return CTL_EXIT_FAILED;
	}
	status = replace(&rp, argv[2], argv[3]);
	dmio_put(1);
	ctl_status_free(rp.st);
	free(rp.path);
	g_free(rp.listed);
	g_free(rp.shown_path);
	g_free(rp.shown_leg);
	g_free(rp.context);
	return status;
}

const struct ctl_command ctl_cmd_replace = {
    .name = "replace",
    .parameters = "FILE LEG PATH",
    .summary = "Replace a leg by a new one: the old leg serves until the new one is in sync",
    .description =
	"LEG is the leg's name or index, and must be in sync; PATH a file, block device or NBD\n"
	"URI that holds no signature.  The daemon adds PATH, copies onto it in the background "
	"while LEG\n"
	"serves, then removes LEG: the mirror never has fewer in-sync legs than before.\n"
	"Exit status: 0 started (with --wait: LEG replaced), 1 refused or failed (with --wait:\n"
	"also the replace aborted), 2 usage error.",
    .run = run_replace,
};
