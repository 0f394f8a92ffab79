/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl create [--assume-clean] [--force] [--region-size SIZE] CONFIG: write a fresh
 * superblock and an empty write-intent bitmap onto every leg of a mirror with metadata = internal,
 * as mdadm --create does.  Every leg is checked before any is written: one that already carries a
 * fusemirror superblock or another signature that libblkid recognises (a file system, a partition
 * table, RAID or LVM metadata) is refused unless --force, so that a wrong path in the config does
 * not destroy data.  Without --assume-clean only leg 0 is in sync: fusemirrord copies it onto the
 * others at its next start, while it already serves the mirror.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "config/runtime.h"
#include "ctl.h"
#include "dmio.h"
#include "mirror/superblock.h"

/* A leg holds its metadata and at least this much data. */
#define MIN_DATA_BYTES (1u << 20)
/* The data area is whole pages, so that a leg of any logical block size can hold it. */
#define DATA_ALIGN 4096u
/* What the region-size key of fusemirror.conf(5) accepts, and so --region-size too. */
#define REGION_SIZE_MIN 4096u
#define REGION_SIZE_MAX (1ull << 30)

struct create_leg {
	const struct leg_config *config;
	char *shown_name; /* name and path with control characters escaped, for messages */
	char *shown_path;
	struct dmio_dev *dev; /* held exclusively (DMIO_DEV_EXCLUSIVE) while create runs */
	uint64_t bytes;
	char *signature; /* what --force overwrites ("holds an ext4 file system"), or NULL */
	struct superblock sb;
};

struct create {
	const char *file; /* the config file, as given */
	char *shown_file;
	struct mirror_config *config;
	bool force;
	bool assume_clean;
	uint64_t region_size; /* from --region-size; 0 when not given */
	unsigned int num_legs;
	struct create_leg *legs;
};

static bool region_size_valid(uint64_t size)
{
	return size >= REGION_SIZE_MIN && size <= REGION_SIZE_MAX && (size & (size - 1)) == 0;
}

static bool bitmap_fits(uint64_t data_size, uint64_t region_size)
{
	return superblock_bitmap_space(data_size, region_size) <= SB_DATA_OFFSET - SB_BITMAP_OFFSET;
}

/* ---- Opening and checking the legs --------------------------------------------------------- */

/* Whether an earlier leg than leg is open on the same file: check_distinct() then says so. */
static bool earlier_leg_is_same(struct create *c, struct create_leg *leg)
{
	struct stat st, other;

	/* A URI is stat'ed as a relative path: it must not match a local file. */
	if (dmio_path_is_uri(leg->config->path) || stat(leg->config->path, &st) < 0)
		return false;
	for (struct create_leg *l = c->legs; l < leg; l++) {
		if (l->dev == NULL || dmio_path_is_uri(l->config->path) ||
		    stat(l->config->path, &other) < 0)
			continue;
		if (S_ISBLK(st.st_mode) ? S_ISBLK(other.st_mode) && st.st_rdev == other.st_rdev
					: st.st_dev == other.st_dev && st.st_ino == other.st_ino)
			return true;
	}
	return false;
}

static bool open_leg(struct create *c, struct create_leg *leg)
{
	const char *path = leg->config->path;
	int r;

	/*
	 * Exclusively, as mdadm: a block device that is mounted or claimed by md, dm, a running
	 * fusemirrord or another program gives EBUSY, and so does a leg file that a fusemirrord
	 * holds; overwriting it would corrupt a live mirror or file system, so not even --force
	 * allows it.  Holding it until the end keeps others from claiming it meanwhile.
	 */
	r = dmio_dev_open(path, DMIO_DEV_EXCLUSIVE, &leg->dev);
	if (r == -EBUSY && earlier_leg_is_same(c, leg))
		r = dmio_dev_open(path, 0, &leg->dev);
	if (r == -EBUSY) {
		g_autofree char *why = runtime_describe_holder(path);

		ctl_message("create %s: leg '%s' (%s) %s", c->shown_file, leg->shown_name,
			    leg->shown_path, why);
		return false;
	}
	if (r < 0) {
		ctl_message("create %s: leg '%s' (%s): cannot open it: %s%s", c->shown_file,
			    leg->shown_name, leg->shown_path, g_strerror(-r),
			    r == -EINVAL ? " (not a regular file or a block device)" : "");
		return false;
	}
	leg->bytes = dmio_dev_sectors(leg->dev) << DMIO_SECTOR_SHIFT;

	if (leg->bytes < SB_DATA_OFFSET + MIN_DATA_BYTES) {
		g_autofree char *human = ctl_format_size(leg->bytes);

		ctl_message("create %s: leg '%s' (%s) is %" G_GUINT64_FORMAT
			    " bytes (%s), smaller than the %u MiB a leg needs (%u MiB of metadata, "
			    "then at least %u MiB of data)",
			    c->shown_file, leg->shown_name, leg->shown_path, (guint64)leg->bytes,
			    human, (SB_DATA_OFFSET + MIN_DATA_BYTES) >> 20, SB_DATA_OFFSET >> 20,
			    MIN_DATA_BYTES >> 20);
		return false;
	}
	return true;
}

/*
 * Two paths in the config that reach one file or device (a symlink, /dev/disk/by-id/...): the
 * config only rejects equal paths.  Writing both would leave a mirror of one copy.
 */
static bool check_distinct(struct create *c)
{
	g_autofree struct stat *st = g_new0(struct stat, c->num_legs);

	for (unsigned int i = 0; i < c->num_legs; i++) {
		/* An NBD export is no local file: the config refused a URI given twice. */
		if (dmio_path_is_uri(c->legs[i].config->path))
			continue;
		if (stat(c->legs[i].config->path, &st[i]) < 0) {
			int err = errno;

			ctl_message("create %s: leg '%s' (%s): %s", c->shown_file,
				    c->legs[i].shown_name, c->legs[i].shown_path, g_strerror(err));
			return false;
		}
		for (unsigned int j = 0; j < i; j++) {
			bool same =
			    dmio_path_is_uri(c->legs[j].config->path) ? false
			    : S_ISBLK(st[i].st_mode)
				? S_ISBLK(st[j].st_mode) && st[i].st_rdev == st[j].st_rdev
				: st[i].st_dev == st[j].st_dev && st[i].st_ino == st[j].st_ino;

			if (same) {
				ctl_message(
				    "create %s: legs '%s' (%s) and '%s' (%s) are the same %s",
				    c->shown_file, c->legs[j].shown_name, c->legs[j].shown_path,
				    c->legs[i].shown_name, c->legs[i].shown_path,
				    S_ISBLK(st[i].st_mode) ? "device" : "file");
				return false;
			}
		}
	}
	return true;
}

/*
 * A fusemirror superblock on leg: sets *what to "already belongs to ..." when there is one (even
 * a damaged one: the magic is enough to say that the leg was a member).  Returns false after a
 * message when the leg cannot be read.
 */
static bool find_superblock(struct create *c, struct create_leg *leg, char **what)
{
	g_autofree char *why = NULL;
	struct superblock sb;
	int r;

	r = ctl_superblock_probe(leg->dev, &sb, &why);
	if (r < 0) {
		ctl_message("create %s: leg '%s' (%s): cannot read its first %u bytes: %s",
			    c->shown_file, leg->shown_name, leg->shown_path, SB_SIZE,
			    g_strerror(-r));
		return false;
	}
	if (r == CTL_SB_VALID)
		*what = ctl_superblock_owner(&sb);
	else if (r == CTL_SB_DAMAGED)
		*what = ctl_superblock_damaged(why);
	return true;
}

/*
 * Another signature on leg, as libblkid (wipefs, mkfs) recognises them: sets *what to "holds
 * ..." when there is one.  Returns false after a message when the leg cannot be probed.
 */
static bool find_blkid_signature(struct create *c, struct create_leg *leg, char **what)
{
	g_autoptr(GError) error = NULL;

	if (!ctl_blkid_signature(leg->config->path, what, &error)) {
		ctl_message("create %s: leg '%s' (%s): %s", c->shown_file, leg->shown_name,
			    leg->shown_path, error->message);
		return false;
	}
	return true;
}

/*
 * Whether leg may be overwritten: nothing recognisable on it, or --force (leg->signature then
 * says what it holds).  Returns false after a message when it may not, or cannot be checked.
 */
static bool check_signatures(struct create *c, struct create_leg *leg)
{
	if (!find_superblock(c, leg, &leg->signature))
		return false;
	/* A fusemirror leg's superblock hides nothing that libblkid would name. */
	if (leg->signature == NULL && !find_blkid_signature(c, leg, &leg->signature))
		return false;
	if (leg->signature != NULL && !c->force) {
		ctl_message("create %s: leg '%s' (%s) %s: use --force to overwrite it",
			    c->shown_file, leg->shown_name, leg->shown_path, leg->signature);
		return false;
	}
	return true;
}

/* ---- The superblocks ----------------------------------------------------------------------- */

/* The smallest region size whose bitmap fits before the data offset, or 0 when none does. */
static uint64_t smallest_fitting_region(uint64_t data_size)
{
	for (uint64_t size = REGION_SIZE_MIN; size <= REGION_SIZE_MAX; size <<= 1)
		if (bitmap_fits(data_size, size))
			return size;
	return 0;
}

/* The region size: --region-size, else the config's, else the default for the data size. */
static bool choose_region_size(struct create *c, uint64_t data_size, uint64_t *out)
{
	uint64_t size = c->region_size;
	const char *from = "--region-size";

	if (size == 0 && c->config->region_size != 0) {
		size = c->config->region_size;
		from = "region-size in the config";
	}
	if (size == 0) {
		size = superblock_default_region_size(data_size, SB_DATA_OFFSET);
		from = "the default region size";
	}
	if (!region_size_valid(size)) {
		ctl_message("create %s: %s %" G_GUINT64_FORMAT
			    " is not a power of two from 4 KiB to 1 GiB",
			    c->shown_file, from, (guint64)size);
		return false;
	}
	if (!bitmap_fits(data_size, size)) {
		g_autofree char *human = ctl_format_size(size);
		g_autofree char *data = ctl_format_size(data_size);
		uint64_t fits = smallest_fitting_region(data_size);
		g_autofree char *fits_human = ctl_format_size(fits);

		ctl_message("create %s: %s (%s) needs a bitmap of %" G_GUINT64_FORMAT
			    " bytes for %s of data, more than the %u bytes between the superblock "
			    "and the data: use a region size of at least %s",
			    c->shown_file, from, human,
			    (guint64)superblock_bitmap_space(data_size, size), data,
			    SB_DATA_OFFSET - SB_BITMAP_OFFSET, fits_human);
		return false;
	}
	*out = size;
	return true;
}

static void fill_superblocks(struct create *c, uint64_t data_size, uint64_t region_size)
{
	uint64_t regions = (data_size + region_size - 1) / region_size;
	uint64_t now = (uint64_t)(g_get_real_time() / G_USEC_PER_SEC);
	struct superblock sb;

	memset(&sb, 0, sizeof(sb));
	sb.version = SB_VERSION;
	uuid_generate_random_v4(sb.array_uuid);
	sb.num_legs = c->num_legs;
	sb.data_offset = SB_DATA_OFFSET;
	sb.data_size = data_size;
	sb.region_size = region_size;
	/* events_cleared = events: every leg may catch up from the bitmap from the start. */
	sb.events = 1;
	sb.events_cleared = 1;
	sb.flags = SB_FLAG_CLEAN;
	sb.bitmap_offset = SB_BITMAP_OFFSET;
	sb.bitmap_bytes = (regions + 7) / 8;
	sb.ctime = now;
	sb.utime = now;
	g_strlcpy(sb.name, c->config->name, sizeof(sb.name));
	for (unsigned int i = 0; i < c->num_legs; i++) {
		uuid_generate_random_v4(sb.roles[i].uuid);
		/* The legs' contents differ until fusemirrord has copied leg 0 onto the others. */
		sb.roles[i].role = i == 0 || c->assume_clean ? SB_ROLE_IN_SYNC : SB_ROLE_RESYNCING;
		/* Recorded, so that a slot left out of a config is still shown by name. */
		if (superblock_leg_text_ok(c->config->legs[i].name, SB_LEG_NAME_MAX))
			strcpy(sb.roles[i].name, c->config->legs[i].name);
		/* Redacted, as the daemon records it: every leg carries every path. */
		g_autofree char *shown = dmio_path_display(c->config->legs[i].path);

		if (superblock_leg_text_ok(shown, SB_LEG_PATH_MAX))
			strcpy(sb.roles[i].path, shown);
	}
	for (unsigned int i = 0; i < c->num_legs; i++) {
		struct superblock *leg = &c->legs[i].sb;

		*leg = sb;
		memcpy(leg->leg_uuid, sb.roles[i].uuid, sizeof(leg->leg_uuid));
		leg->leg_index = i;
		leg->recovery_offset = sb.roles[i].role == SB_ROLE_IN_SYNC ? SB_RECOVERY_DONE : 0;
	}
}

/* Report each leg whose bit is set in bits, with its errno, after "what". */
static void report_failed_legs(struct create *c, const char *what, unsigned long bits,
			       const int *errors)
{
	for (unsigned int i = 0; i < c->num_legs; i++)
		if (bits & (1ul << i))
			ctl_message("create %s: leg '%s' (%s): cannot %s: %s", c->shown_file,
				    c->legs[i].shown_name, c->legs[i].shown_path, what,
				    g_strerror(errors[i] != 0 ? errors[i] : EIO));
}

/* One request over every leg: write-zeroes of the bitmap area, or a flush. */
static bool all_legs(struct create *c, enum dmio_op op, const char *what)
{
	struct dmio_region where[SB_MAX_LEGS];
	int errors[SB_MAX_LEGS] = {0};
	struct dmio_request req = {
	    .op = op,
	    .region_errors = errors,
	};
	unsigned long bits = 0;
	int r;

	for (unsigned int i = 0; i < c->num_legs; i++) {
		where[i].dev = c->legs[i].dev;
		where[i].sector = SB_BITMAP_OFFSET >> DMIO_SECTOR_SHIFT;
		where[i].count = (SB_DATA_OFFSET - SB_BITMAP_OFFSET) >> DMIO_SECTOR_SHIFT;
	}
	r = dmio(&req, c->num_legs, where, &bits);
	if (r == -EIO && bits != 0) {
		report_failed_legs(c, what, bits, errors);
		return false;
	}
	if (r < 0) {
		ctl_message("create %s: cannot %s: %s", c->shown_file, what, g_strerror(-r));
		return false;
	}
	return true;
}

/*
 * Zero every bitmap and make that durable before the superblocks that describe the bitmaps are
 * written: a create interrupted half way leaves no valid superblock over a stale bitmap.
 */
static bool write_legs(struct create *c)
{
	unsigned int i;
	int r = 0;

	if (!all_legs(c, DMIO_WRITE_ZEROES, "zero its bitmap area") ||
	    !all_legs(c, DMIO_FLUSH, "flush it"))
		return false;
	for (i = 0; i < c->num_legs; i++) {
		r = superblock_write(c->legs[i].dev, &c->legs[i].sb);
		if (r < 0)
			break;
	}
	if (r < 0) {
		ctl_message("create %s: leg '%s' (%s): cannot write its superblock: %s%s",
			    c->shown_file, c->legs[i].shown_name, c->legs[i].shown_path,
			    g_strerror(-r),
			    i > 0 ? "; the legs before it carry the new superblock: run create "
				    "--force again once the leg works"
				  : "");
		return false;
	}
	/* superblock_write() writes with FUA; this covers devices that ignore it. */
	return all_legs(c, DMIO_FLUSH, "flush it");
}

/* ---- The report ---------------------------------------------------------------------------- */

static void append_report(GString *out, const struct create *c)
{
	const struct superblock *sb = &c->legs[0].sb;
	g_autofree char *name = ctl_printable(sb->name);
	g_autofree char *data = ctl_format_size(sb->data_size);
	g_autofree char *offset = ctl_format_size(sb->data_offset);
	g_autofree char *region = ctl_format_size(sb->region_size);
	uint64_t regions = (sb->data_size + sb->region_size - 1) / sb->region_size;
	size_t name_width = strlen("Leg");
	GString *resyncing = g_string_new(NULL);
	char uuid[37];

	uuid_format(sb->array_uuid, uuid);
	g_string_append_printf(out, "Created mirror '%s' on %u legs from %s:\n", name, c->num_legs,
			       c->shown_file);
	g_string_append_printf(out, "%14s : %s\n", "Array UUID", uuid);
	g_string_append_printf(out, "%14s : %s\n", "Name", name);
	g_string_append_printf(out, "%14s : %" G_GUINT64_FORMAT " (%s)\n", "Size",
			       (guint64)sb->data_size, data);
	g_string_append_printf(out, "%14s : %" G_GUINT64_FORMAT " (%s)\n", "Data offset",
			       (guint64)sb->data_offset, offset);
	g_string_append_printf(out,
			       "%14s : %" G_GUINT64_FORMAT " (%s), %" G_GUINT64_FORMAT " regions\n",
			       "Region size", (guint64)sb->region_size, region, (guint64)regions);
	g_string_append_printf(out, "%14s : %" G_GUINT64_FORMAT "\n", "Events",
			       (guint64)sb->events);
	g_string_append_c(out, '\n');

	for (unsigned int i = 0; i < c->num_legs; i++)
		name_width = MAX(name_width, strlen(c->legs[i].shown_name));
	g_string_append_printf(out, "  %4s  %-*s  %-9s  %-36s  %s\n", "Slot", (int)name_width,
			       "Leg", "Role", "Leg UUID", "Path");
	for (unsigned int i = 0; i < c->num_legs; i++) {
		const struct create_leg *leg = &c->legs[i];
		const char *role = sb_role_name(sb->roles[i].role);

		uuid_format(leg->sb.leg_uuid, uuid);
		g_string_append_printf(out, "  %4u  %-*s  %-9s  %-36s  %s\n", i, (int)name_width,
				       leg->shown_name, role, uuid, leg->shown_path);
		if (sb->roles[i].role == SB_ROLE_RESYNCING)
			g_string_append_printf(resyncing, "%s'%s'", resyncing->len > 0 ? ", " : "",
					       leg->shown_name);
	}
	if (resyncing->len > 0)
		g_string_append_printf(
		    out,
		    "\nfusemirrord copies leg '%s' onto %s %s when it next starts, "
		    "serving the mirror meanwhile.\n",
		    c->legs[0].shown_name, c->num_legs > 2 ? "legs" : "leg", resyncing->str);
	g_string_free(resyncing, TRUE);
}

/* ---- The command --------------------------------------------------------------------------- */

static void create_free(struct create *c)
{
	for (unsigned int i = 0; i < c->num_legs; i++) {
		struct create_leg *leg = &c->legs[i];

		dmio_dev_close(leg->dev);
		g_free(leg->shown_name);
		g_free(leg->shown_path);
		g_free(leg->signature);
	}
	g_free(c->legs);
	g_free(c->shown_file);
	if (c->config != NULL)
		config_free(c->config);
}

static int create(struct create *c)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) out = NULL;
	uint64_t smallest = UINT64_MAX, data_size, region_size;
	bool ok = true;

	c->config = config_load(c->file, &error);
	if (c->config == NULL) {
		/* The message names the file, and the line when there is one. */
		ctl_message("create: %s", error->message);
		return CTL_EXIT_FAILED;
	}
	if (c->config->metadata != METADATA_INTERNAL) {
		ctl_message("create %s: mirror '%s' has metadata = %s: only a mirror with metadata "
			    "= internal keeps superblocks on its legs",
			    c->shown_file, c->config->name,
			    config_metadata_name(c->config->metadata));
		return CTL_EXIT_FAILED;
	}
	if (c->config->num_legs > SB_MAX_LEGS) {
		ctl_message("create %s: %u legs, more than the %u of a superblock's table",
			    c->shown_file, c->config->num_legs, SB_MAX_LEGS);
		return CTL_EXIT_FAILED;
	}

	c->num_legs = c->config->num_legs;
	c->legs = g_new0(struct create_leg, c->num_legs);
	for (unsigned int i = 0; i < c->num_legs; i++) {
		c->legs[i].config = &c->config->legs[i];
		c->legs[i].shown_name = ctl_printable(c->config->legs[i].name);
		c->legs[i].shown_path = ctl_printable(c->config->legs[i].path);
	}

	/* Check everything before writing anything; report every leg that is refused. */
	for (unsigned int i = 0; i < c->num_legs; i++) {
		if (!open_leg(c, &c->legs[i])) {
			ok = false;
			continue;
		}
		smallest = MIN(smallest, c->legs[i].bytes);
	}
	if (!ok || !check_distinct(c))
		return CTL_EXIT_FAILED;
	data_size = (smallest - SB_DATA_OFFSET) / DATA_ALIGN * DATA_ALIGN;
	if (!choose_region_size(c, data_size, &region_size))
		return CTL_EXIT_FAILED;
	for (unsigned int i = 0; i < c->num_legs; i++)
		if (!check_signatures(c, &c->legs[i]))
			ok = false;
	if (!ok)
		return CTL_EXIT_FAILED;

	/* Only now that nothing stops the writes: what --force is about to destroy. */
	for (unsigned int i = 0; i < c->num_legs; i++)
		if (c->legs[i].signature != NULL)
			ctl_message("warning: leg '%s' (%s) %s: overwriting it (--force)",
				    c->legs[i].shown_name, c->legs[i].shown_path,
				    c->legs[i].signature);
	fill_superblocks(c, data_size, region_size);
	if (!write_legs(c))
		return CTL_EXIT_FAILED;

	out = g_string_new(NULL);
	append_report(out, c);
	return ctl_write_stdout(out) ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}

static int run_create(const struct ctl_command *cmd, int argc, char **argv)
{
	gboolean assume_clean = FALSE, force = FALSE;
	g_autofree char *region_size = NULL;
	const GOptionEntry entries[] = {
	    {"assume-clean", 0, 0, G_OPTION_ARG_NONE, &assume_clean,
	     "Mark every leg in sync: skip the initial copy of leg 0 onto the others", NULL},
	    {"force", 0, 0, G_OPTION_ARG_NONE, &force,
	     "Overwrite legs that hold a fusemirror superblock or another signature", NULL},
	    {"region-size", 0, 0, G_OPTION_ARG_STRING, &region_size,
	     "Bytes of data per bitmap bit: a power of two from 4K to 1G", "SIZE"},
	    G_OPTION_ENTRY_NULL,
	};
	struct create c = {0};
	int status;

	if (!ctl_parse_options(cmd, entries, &argc, &argv, 1, 1))
		return CTL_EXIT_USAGE;
	if (region_size != NULL &&
	    (!config_parse_size(region_size, &c.region_size) || !region_size_valid(c.region_size)))
		return ctl_usage_error(cmd,
				       "--region-size %s: not a power of two from 4K to 1G "
				       "(e.g. 512K, 4M)",
				       region_size);

	c.file = argv[1];
	c.shown_file = ctl_printable(argv[1]);
	c.force = force;
	c.assume_clean = assume_clean;

	/* One client for every request, freed (threads and all) by the matching dmio_put(). */
	status = dmio_get(1);
	if (status < 0) {
		ctl_message("create %s: cannot start libdmio: %s", c.shown_file,
			    g_strerror(-status));
		g_free(c.shown_file);
		return CTL_EXIT_FAILED;
	}
	status = create(&c);
	create_free(&c);
	dmio_put(1);
	return status;
}

const struct ctl_command ctl_cmd_create = {
    .name = "create",
    .parameters = "CONFIG",
    .summary = "Write new superblocks onto the legs of a mirror (metadata = internal)",
    .description =
	"CONFIG is the mirror's fusemirror.conf(5).  Every leg is checked before any is\n"
	"written: one that holds a fusemirror superblock, a file system, a partition table\n"
	"or other metadata is refused unless --force.  Without --assume-clean, fusemirrord\n"
	"copies leg 0 onto the others when it next starts.\n"
	"Exit status: 0 created, 1 refused or failed (no leg is written when refused),\n"
	"2 usage error.",
    .run = run_create,
};
