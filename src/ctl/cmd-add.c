/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl add [--force] FILE PATH: hot add a leg to a running mirror, as mdadm --add does,
 * by writing "add PATH" to trusted.fusemirror.ctl.  The daemon opens PATH itself, from its own
 * working directory, so PATH goes as an absolute path; an NBD URI goes as given (newleg.c).  What
 * the daemon would overwrite is checked here first, as create checks its legs: a file system, a
 * partition table or the superblock of another fusemirror array is refused unless --force.  The
 * superblock of this very array is welcome: that is a re-add, which the daemon resyncs from its
 * write-intent bitmap.
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

struct add {
	const char *file;
	char *path;	  /* PATH made absolute, symbolic links resolved (an NBD URI as given) */
	char *shown_path; /* path, printable (an NBD URI redacted) */
	char *context;	  /* "add FILE PATH", printable, to start every message */
	bool force;
	bool no_save; /* --no-save: the daemon leaves its config file as it is */
	const char *direct; /* --direct=auto|true|false as given (checked), or NULL */
	struct ctl_status *st;
};

/* Why the daemon may say no, after the errno's own text (fusemirrorctl(8) lists them). */
static const char *refusal_reason(int err)
{
	switch (err) {
	case EEXIST:
		return " (it is a leg of this mirror already, or holds the superblock of another "
		       "array: --force overwrites that)";
	case ENOSPC:
		return " (it is too small for the mirror's data and metadata)";
	case EMLINK:
		return " (the mirror has no free leg slot: remove a leg first)";
	case EINVAL:
		return " (it does not accept this command)";
	case EPERM:
		return " (only root may control a mirror)";
	case ENOENT:
	case EACCES:
	case EROFS:
	case EBUSY:
		return " (fusemirrord cannot open it)";
	default:
		return NULL;
	}
}

/*
 * What the leg holds that adding it would overwrite: sets *what to "holds ..." or "already
 * belongs to ..." (NULL when nothing, or a superblock of this array: a re-add).  Sets *former to
 * the superblock's leg index when it is this array's, else to -1.  Returns false after a message
 * when the leg cannot be read.
 */
static bool find_signature(struct add *a, char **what, int *former)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *why = NULL;
	struct dmio_dev *dev;
	struct superblock sb;
	int r;

	*what = NULL;
	*former = -1;
	r = dmio_dev_open(a->path, DMIO_DEV_RDONLY, &dev);
	if (r < 0) {
		ctl_message("%s: cannot open it: %s", a->context, g_strerror(-r));
		return false;
	}
	/* A leg shorter than a superblock holds none; libblkid still looks at it. */
	if ((dmio_dev_sectors(dev) << DMIO_SECTOR_SHIFT) < SB_SIZE)
		r = CTL_SB_NONE;
	else
		r = ctl_superblock_probe(dev, &sb, &why);
	dmio_dev_close(dev);
	if (r < 0) {
		ctl_message("%s: cannot read its first %u bytes: %s", a->context, SB_SIZE,
			    g_strerror(-r));
		return false;
	}
	if (r == CTL_SB_VALID) {
		char uuid[37];

		uuid_format(sb.array_uuid, uuid);
		if (a->st->uuid != NULL && g_ascii_strcasecmp(uuid, a->st->uuid) == 0) {
			*former = (int)sb.leg_index;
			return true;
		}
		*what = ctl_superblock_owner(&sb);
		if (a->st->uuid == NULL) {
			/* Without the mirror's UUID, a former member cannot be told apart. */
			char *longer = g_strdup_printf("%s, and the mirror reports no %suuid to "
						       "compare it with",
						       *what, CTL_XATTR_PREFIX);

			g_free(*what);
			*what = longer;
		}
		return true;
	}
	if (r == CTL_SB_DAMAGED) {
		*what = ctl_superblock_damaged(why);
		return true;
	}
	/* A fusemirror leg's superblock hides nothing that libblkid would name. */
	if (!ctl_blkid_signature(a->path, what, &error)) {
		ctl_message("%s: %s", a->context, error->message);
		return false;
	}
	return true;
}

/*
 * The leg that the daemon added: the one with the path sent, preferring one that is not
 * removed (a removed leg may keep the path that it had).  NULL when the status has none.
 */
static const struct ctl_leg_status *find_added_leg(const struct ctl_status *st, const char *path)
{
	const struct ctl_leg_status *found = NULL;
	/* The status shows an NBD URI redacted. */
	g_autofree char *shown = dmio_path_display(path);

	for (unsigned int i = 0; i < st->nlegs; i++) {
		if (strcmp(st->legs[i].path, shown) != 0)
			continue;
		if (found == NULL || strcmp(found->state, "removed") == 0)
			found = &st->legs[i];
	}
	return found;
}

/* "the regions the bitmap recorded" or "in full": how a leg catches up, from leg.I.resync. */
static const char *catch_up_words(const char *role)
{
	if (role == NULL)
		return NULL;
	if (strcmp(role, "bitmap") == 0)
		return "the regions it missed, from the write-intent bitmap";
	if (strcmp(role, "full") == 0)
		return "in full";
	return NULL;
}

/*
 * The line that says what the daemon did, once it has: which slot, and what the resync copies
 * (or copied, when it is over already).  former: the slot its superblock named (a re-add), or -1.
 * Returns false when the leg failed already.
 */
static bool report_added(struct add *a, int former)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *shown_file = ctl_printable(a->file);
	const char *shown_path = a->shown_path;
	const char *verb = "added";
	const struct ctl_leg_status *leg;
	struct ctl_status *st = ctl_status_read(a->file, &error);

	leg = st != NULL ? find_added_leg(st, a->path) : NULL;
	/* Back in the slot its superblock names: a re-add (else the daemon took it as new). */
	if (former >= 0 && (leg == NULL || leg->index == (unsigned int)former))
		verb = "re-added";
	if (leg == NULL) {
		ctl_message("%s %s to %s; its leg index is not in the status (%s)", shown_path,
			    verb, shown_file,
			    error != NULL ? error->message : "no leg has its path");
	} else if (strcmp(leg->state, "in_sync") == 0 && st->has_resync && st->resync_done > 0) {
		/* Copied already: the resync of a small leg may be over before we look. */
		g_autofree char *copied = ctl_format_size(st->resync_done);

		ctl_message("leg %s as index %u of %s: %s, in sync: the resync copied %s "
			    "(%" G_GUINT64_FORMAT " bytes%s)",
			    verb, leg->index, shown_file, shown_path, copied,
			    (guint64)st->resync_done,
			    st->resync_done >= st->size ? ", in full" : ", the regions it missed");
	} else if (strcmp(leg->state, "in_sync") == 0) {
		ctl_message("leg %s as index %u of %s: %s, in sync (nothing to copy)", verb,
			    leg->index, shown_file, shown_path);
	} else if (strcmp(leg->state, "failed") == 0) {
		/* Its resync failed it before we looked: a write error, a full disk. */
		ctl_message("leg %s as index %u of %s: %s, but it has failed already (the "
			    "daemon's log says why)",
			    verb, leg->index, shown_file, shown_path);
		ctl_status_free(st);
		return false;
	} else {
		g_autofree char *state = ctl_printable(leg->state);
		const char *how = catch_up_words(leg->resync);
		g_autofree char *what = NULL;

		if (how != NULL && st->has_resync) {
			g_autofree char *total = ctl_format_size(st->resync_total);
			g_autofree char *done = ctl_format_size(st->resync_done);

			what = g_strdup_printf(": %s to copy, %s (%s done)", total, how, done);
		}
		ctl_message("leg %s as index %u of %s: %s, %s, resync started%s ('fusemirrorctl "
			    "wait %s' follows it)",
			    verb, leg->index, shown_file, shown_path, state,
			    what != NULL ? what : "", shown_file);
	}
	ctl_status_free(st);
	return true;
}

static int add(struct add *a, const char *path)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *signature = NULL;
	g_autofree char *command = NULL;
	g_autofree char *quoted = NULL;
	g_autofree char *explanation = NULL;
	int former, r;

	a->st = ctl_status_read(a->file, &error);
	if (a->st == NULL) {
		ctl_message("%s: %s", a->context, error->message);
		return CTL_EXIT_FAILED;
	}
	if (!ctl_new_leg_path(a->file, path, a->context, &a->path, &a->shown_path) ||
	    !ctl_new_leg_unheld(a->file, a->path, a->shown_path, a->context) || !find_signature(a, &signature, &former))
		return CTL_EXIT_FAILED;
	if (signature != NULL && !a->force) {
		ctl_message("%s: %s %s: use --force to overwrite it", a->context, a->shown_path,
			    signature);
		return CTL_EXIT_FAILED;
	}

	command = g_strdup_printf("add %s%s%s%s%s%s", a->force ? "--force " : "",
				  a->no_save ? "--no-save " : "", a->direct ? "--direct=" : "",
				  a->direct ? a->direct : "", a->direct ? " " : "", a->path);
	quoted = g_strdup_printf("'%s'", command);
	if (!ctl_check_live(a->st, a->context, quoted))
		return CTL_EXIT_FAILED;
	/* Only now that nothing else stops it: what --force is about to destroy. */
	if (signature != NULL)
		ctl_message("warning: %s %s: overwriting it (--force)", a->shown_path, signature);

	r = ctl_send(a->file, command, &explanation);
	if (r < 0) {
		/* One line: which slot the refused leg was (a re-add), then the daemon's reason. */
		g_autofree char *context =
		    former >= 0
			? g_strdup_printf("%s (a re-add: its superblock names leg index %d)",
					  a->context, former)
			: g_strdup(a->context);

		ctl_report_refusal(context, command, -r, explanation, refusal_reason(-r));
		return CTL_EXIT_FAILED;
	}
	return report_added(a, former) ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}

static int run_add(const struct ctl_command *cmd, int argc, char **argv)
{
	gboolean force = FALSE, no_save = FALSE;
	g_autofree char *direct = NULL;
	enum leg_direct mode;
	const GOptionEntry entries[] = {
	    {"force", 0, 0, G_OPTION_ARG_NONE, &force,
	     "Add a leg that holds a file system, another signature or another array's "
	     "superblock",
	     NULL},
	    {"no-save", 0, 0, G_OPTION_ARG_NONE, &no_save,
	     "Leave the daemon's config file as it is (it gains the leg's group otherwise)", NULL},
	    {"direct", 0, 0, G_OPTION_ARG_STRING, &direct,
	     "O_DIRECT for the new leg, as direct = in fusemirror.conf(5) (default auto)",
	     "auto|true|false"},
	    G_OPTION_ENTRY_NULL,
	};
	g_autofree char *shown_file = NULL;
	g_autofree char *shown_arg = NULL;
	struct add a = {0};
	int status;

	if (!ctl_parse_options(cmd, entries, &argc, &argv, 2, 2))
		return CTL_EXIT_USAGE;
	if (direct != NULL && !config_parse_direct(direct, &mode)) {
		g_autofree char *shown = ctl_printable(direct);

		return ctl_usage_error(cmd, "--direct takes auto, true or false, not '%s'", shown);
	}
	a.file = argv[1];
	a.force = force;
	a.no_save = no_save;
	a.direct = direct != NULL ? config_direct_name(mode) : NULL;
	shown_file = ctl_printable(argv[1]);
	shown_arg = ctl_printable(argv[2]);
	a.context = g_strdup_printf("add %s %s", shown_file, shown_arg);

	/* One client for the superblock read, freed (threads and all) by dmio_put(). */
	status = dmio_get(1);
	if (status < 0) {
		ctl_message("%s: cannot start libdmio: %s", a.context, g_strerror(-status));
		g_free(a.context);
		return CTL_EXIT_FAILED;
	}
	status = add(&a, argv[2]);
	dmio_put(1);
	ctl_status_free(a.st);
	free(a.path);
	g_free(a.shown_path);
	g_free(a.context);
	return status;
}

const struct ctl_command ctl_cmd_add = {
    .name = "add",
    .parameters = "FILE PATH",
    .summary = "Add a leg to a running mirror, or re-add a former one, and resync it",
    .description =
	"PATH is a file or block device, opened by its absolute path, or an NBD URI.  One that\n"
	"holds a file system, a partition table or another array's superblock is refused\n"
	"unless --force; a former leg of this mirror is re-added, resynced from the bitmap.\n"
	"Exit status: 0 added, 1 refused or failed, 2 usage error.",
    .run = run_add,
};
