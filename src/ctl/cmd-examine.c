/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl examine [--json] LEG: the superblock of one leg and a summary of its write-intent
 * bitmap, like mdadm --examine.  It reads the leg itself, read-only, so it needs no daemon and
 * works on a leg that fusemirrord refuses to assemble: that is when an operator needs it most.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dmio.h"
#include "mirror/superblock.h"

struct examine {
	const char *path;
	char *shown_path;
	struct dmio_dev *dev;
	uint64_t bytes; /* the leg's size */
	struct superblock sb;
	uint64_t regions;
	/* Set bits among the first regions bits of the bitmap; -1 when it cannot be read. */
	int64_t dirty;
	char *bitmap_error; /* why it cannot, or NULL */
	char *problem;	    /* a superblock shown although it is not valid: why; else NULL */
};

static uint64_t region_count(const struct superblock *sb)
{
	/* superblock_decode() rejects a zero region size; this is not the place to divide by it. */
	if (sb->region_size == 0)
		return 0;
	return (sb->data_size + sb->region_size - 1) / sb->region_size;
}

/* Count the dirty regions: the set bits of the bitmap, reading it with libdmio. */
static void count_dirty(struct examine *e)
{
	const struct superblock *sb = &e->sb;
	uint64_t bytes = (e->regions + 7) / 8;
	uint64_t sectors = (bytes + DMIO_SECTOR_SIZE - 1) >> DMIO_SECTOR_SHIFT;
	struct dmio_region where = {
	    .dev = e->dev,
	    .sector = sb->bitmap_offset >> DMIO_SECTOR_SHIFT,
	    .count = sectors,
	};
	unsigned char *bits;
	int r;

	e->dirty = 0;
	if (bytes == 0)
		return;
	e->dirty = -1;
	if (sb->bitmap_offset % DMIO_SECTOR_SIZE != 0 ||
	    sb->bitmap_offset + (sectors << DMIO_SECTOR_SHIFT) > sb->data_offset) {
		e->bitmap_error = g_strdup("the bitmap does not fit before the data offset");
		return;
	}
	if (sb->bitmap_offset + (sectors << DMIO_SECTOR_SHIFT) > e->bytes) {
		e->bitmap_error = g_strdup("the leg ends before its bitmap does");
		return;
	}
	/* aligned_alloc() wants a multiple of the alignment. */
	bits = aligned_alloc(DMIO_PAGE_SIZE, (size_t)(bytes + DMIO_PAGE_SIZE - 1) / DMIO_PAGE_SIZE *
						 DMIO_PAGE_SIZE);
	if (bits == NULL) {
		e->bitmap_error = g_strdup(g_strerror(ENOMEM));
		return;
	}
	r = dmio_sync_vm(1, &where, DMIO_READ, bits, NULL);
	if (r < 0) {
		e->bitmap_error = g_strdup_printf("cannot read it: %s", g_strerror(-r));
		free(bits);
		return;
	}
	e->dirty = 0;
	for (uint64_t i = 0; i < bytes; i++) {
		unsigned int byte = bits[i];

		/* Bits past the last region are not regions, whatever they hold. */
		if (i == bytes - 1 && e->regions % 8 != 0)
			byte &= (1u << (e->regions % 8)) - 1;
		e->dirty += __builtin_popcount(byte);
	}
	free(bits);
}

/*
 * Read and decode the superblock.  Returns false after a message naming the leg, or true when
 * there is a superblock to show (e->problem says why when it is not valid).
 */
static bool read_leg(struct examine *e)
{
	g_autofree char *why = NULL;
	g_autofree char *shown_why = NULL;
	const char *what;
	enum sb_error error;
	void *buf;
	int r;

	r = dmio_dev_open(e->path, DMIO_DEV_RDONLY, &e->dev);
	if (r < 0) {
		ctl_message("examine %s: %s%s", e->shown_path, g_strerror(-r),
			    r == -EINVAL ? " (not a regular file or a block device)" : "");
		return false;
	}
	e->bytes = dmio_dev_sectors(e->dev) << DMIO_SECTOR_SHIFT;
	if (e->bytes < SB_SIZE) {
		ctl_message("examine %s: not a fusemirror leg: it is smaller than a superblock (%u "
			    "bytes)",
			    e->shown_path, SB_SIZE);
		return false;
	}

	buf = aligned_alloc(DMIO_PAGE_SIZE, SB_SIZE);
	if (buf == NULL) {
		ctl_message("examine %s: %s", e->shown_path, g_strerror(ENOMEM));
		return false;
	}
	r = superblock_read_raw(e->dev, buf);
	if (r < 0) {
		ctl_message("examine %s: cannot read the superblock: %s", e->shown_path,
			    g_strerror(-r));
		free(buf);
		return false;
	}
	error = superblock_decode(buf, &e->sb, &why);
	free(buf);
	if (error == SB_ERROR_NONE) {
		e->regions = region_count(&e->sb);
		count_dirty(e);
		return true;
	}

	shown_why = ctl_printable(why != NULL ? why : "unknown problem");
	switch (error) {
	case SB_ERROR_MAGIC:
		/* The codec's explanation starts with "not a fusemirror leg" already. */
		what = g_str_has_prefix(shown_why, "not a fusemirror leg") ? NULL
									   : "not a fusemirror leg";
		break;
	case SB_ERROR_VERSION:
		what = "a superblock this version cannot read";
		break;
	case SB_ERROR_FIELD:
		/*
		 * The checksum matched, so the fields are what was written: show them, as they
		 * tell what went wrong, but not the bitmap that they may place anywhere.
		 */
		e->regions = region_count(&e->sb);
		e->dirty = -1;
		e->problem = g_strdup_printf("corrupt superblock: %s", shown_why);
		return true;
	default:
		what = "corrupt superblock";
		break;
	}
	if (what != NULL)
		ctl_message("examine %s: %s: %s", e->shown_path, what, shown_why);
	else
		ctl_message("examine %s: %s", e->shown_path, shown_why);
	return false;
}

/* "2026-11-20 23:05:01 +0100", in local time like mdadm's. */
static char *format_time(uint64_t seconds)
{
	g_autoptr(GDateTime) t = NULL;

	if (seconds <= (uint64_t)G_MAXINT64)
		t = g_date_time_new_from_unix_local((gint64)seconds);
	if (t == NULL)
		return g_strdup_printf("%" G_GUINT64_FORMAT " (out of range)", (guint64)seconds);
	return g_date_time_format(t, "%Y-%m-%d %H:%M:%S %z");
}

static const char *state_name(const struct superblock *sb)
{
	return sb->flags & SB_FLAG_CLEAN ? "clean" : "dirty";
}

static void append_size(GString *out, const char *label, uint64_t bytes)
{
	g_autofree char *human = ctl_format_size(bytes);

	g_string_append_printf(out, "%15s : %" G_GUINT64_FORMAT " (%s)\n", label, (guint64)bytes,
			       human);
}

static void append_number(GString *out, const char *label, uint64_t value)
{
	g_string_append_printf(out, "%15s : %" G_GUINT64_FORMAT "\n", label, (guint64)value);
}

static void append_text(GString *out, const struct examine *e)
{
	const struct superblock *sb = &e->sb;
	g_autofree char *name = ctl_printable(sb->name);
	g_autofree char *created = format_time(sb->ctime);
	g_autofree char *updated = format_time(sb->utime);
	char uuid[37];

	g_string_append_printf(out, "%s:\n", e->shown_path);
	g_string_append_printf(out, "%15s : 0x%016" G_GINT64_MODIFIER "x\n", "Magic",
			       (guint64)SB_MAGIC);
	g_string_append_printf(out, "%15s : %u\n", "Version", sb->version);
	uuid_format(sb->array_uuid, uuid);
	g_string_append_printf(out, "%15s : %s\n", "Array UUID", uuid);
	g_string_append_printf(out, "%15s : %s\n", "Name", name);
	uuid_format(sb->leg_uuid, uuid);
	g_string_append_printf(out, "%15s : %s\n", "Leg UUID", uuid);
	g_string_append_printf(out, "%15s : %u\n", "Leg index", sb->leg_index);
	g_string_append_printf(out, "%15s : %u\n", "Legs", sb->num_legs);
	append_size(out, "Device size", e->bytes);
	append_size(out, "Data offset", sb->data_offset);
	append_size(out, "Data size", sb->data_size);
	append_size(out, "Region size", sb->region_size);
	append_number(out, "Events", sb->events);
	append_number(out, "Events cleared", sb->events_cleared);
	g_string_append_printf(out, "%15s : %s\n", "State", state_name(sb));
	if (sb->recovery_offset == SB_RECOVERY_DONE)
		g_string_append_printf(out, "%15s : done\n", "Recovery offset");
	else
		append_size(out, "Recovery offset", sb->recovery_offset);
	g_string_append_printf(out,
			       "%15s : %" G_GUINT64_FORMAT " bytes at offset %" G_GUINT64_FORMAT
			       ", %" G_GUINT64_FORMAT " regions, ",
			       "Bitmap", (guint64)sb->bitmap_bytes, (guint64)sb->bitmap_offset,
			       (guint64)e->regions);
	if (e->dirty >= 0)
		g_string_append_printf(out, "%" G_GINT64_FORMAT " dirty\n", (gint64)e->dirty);
	else
		g_string_append(out, "dirty unknown\n");
	g_string_append_printf(out, "%15s : %s\n", "Created", created);
	g_string_append_printf(out, "%15s : %s\n", "Updated", updated);
	g_string_append_c(out, '\n');

	g_string_append_printf(out, "  %4s  %-36s  %-9s  %-12s  %s\n", "Slot", "Leg UUID", "Role",
			       "Name", "Last path");
	for (unsigned int i = 0; i < sb->num_legs && i < SB_MAX_LEGS; i++) {
		const struct sb_leg_role *r = &sb->roles[i];
		g_autofree char *leg_name = ctl_printable(*r->name != '\0' ? r->name : "-");
		g_autofree char *leg_path = ctl_printable(*r->path != '\0' ? r->path : "-");

		uuid_format(r->uuid, uuid);
		g_string_append_printf(out, "  %4u  %-36s  %-9s  %-12s  %s%s\n", i, uuid,
				       sb_role_name((enum sb_role)r->role), leg_name, leg_path,
				       i == sb->leg_index ? "  <- this leg" : "");
	}
}

static void append_json(GString *out, const struct examine *e)
{
	const struct superblock *sb = &e->sb;
	char uuid[37];

	g_string_append(out, "{\"file\":");
	{
		g_autofree char *shown = dmio_path_display(e->path); /* redacted */

		ctl_json_append_string(out, shown);
	}
	g_string_append_printf(out, ",\"magic\":\"0x%016" G_GINT64_MODIFIER "x\",\"version\":%u",
			       (guint64)SB_MAGIC, sb->version);
	uuid_format(sb->array_uuid, uuid);
	g_string_append_printf(out, ",\"uuid\":\"%s\",\"name\":", uuid);
	ctl_json_append_string(out, sb->name);
	uuid_format(sb->leg_uuid, uuid);
	g_string_append_printf(out, ",\"leg_uuid\":\"%s\",\"leg_index\":%u,\"legs\":%u", uuid,
			       sb->leg_index, sb->num_legs);
	g_string_append_printf(
	    out,
	    ",\"device_size\":%" G_GUINT64_FORMAT ",\"data_offset\":%" G_GUINT64_FORMAT
	    ",\"data_size\":%" G_GUINT64_FORMAT ",\"region_size\":%" G_GUINT64_FORMAT,
	    (guint64)e->bytes, (guint64)sb->data_offset, (guint64)sb->data_size,
	    (guint64)sb->region_size);
	g_string_append_printf(
	    out,
	    ",\"events\":%" G_GUINT64_FORMAT ",\"events_cleared\":%" G_GUINT64_FORMAT
	    ",\"state\":\"%s\",\"flags\":%u",
	    (guint64)sb->events, (guint64)sb->events_cleared, state_name(sb), sb->flags);
	if (sb->recovery_offset == SB_RECOVERY_DONE)
		g_string_append(out, ",\"recovery_offset\":null");
	else
		g_string_append_printf(out, ",\"recovery_offset\":%" G_GUINT64_FORMAT,
				       (guint64)sb->recovery_offset);
	g_string_append_printf(
	    out,
	    ",\"bitmap_offset\":%" G_GUINT64_FORMAT ",\"bitmap_bytes\":%" G_GUINT64_FORMAT
	    ",\"regions\":%" G_GUINT64_FORMAT,
	    (guint64)sb->bitmap_offset, (guint64)sb->bitmap_bytes, (guint64)e->regions);
	if (e->dirty >= 0)
		g_string_append_printf(out, ",\"dirty_regions\":%" G_GINT64_FORMAT,
				       (gint64)e->dirty);
	else
		g_string_append(out, ",\"dirty_regions\":null");
	g_string_append_printf(
	    out, ",\"ctime\":%" G_GUINT64_FORMAT ",\"utime\":%" G_GUINT64_FORMAT ",\"roles\":[",
	    (guint64)sb->ctime, (guint64)sb->utime);
	for (unsigned int i = 0; i < sb->num_legs && i < SB_MAX_LEGS; i++) {
		const struct sb_leg_role *r = &sb->roles[i];

		uuid_format(r->uuid, uuid);
		g_string_append_printf(out, "%s{\"slot\":%u,\"uuid\":\"%s\",\"role\":\"%s\"",
				       i > 0 ? "," : "", i, uuid,
				       sb_role_name((enum sb_role)r->role));
		/* null: not recorded (an older superblock, or the table was full). */
		g_string_append(out, ",\"name\":");
		if (*r->name != '\0')
			ctl_json_append_string(out, r->name);
		else
			g_string_append(out, "null");
		g_string_append(out, ",\"path\":");
		if (*r->path != '\0') {
			g_autofree char *shown = dmio_path_display(r->path);

			ctl_json_append_string(out, shown);
		} else
			g_string_append(out, "null");
		g_string_append_c(out, '}');
	}
	g_string_append(out, "]}\n");
}

static int examine(struct examine *e, bool json)
{
	g_autoptr(GString) out = NULL;

	if (!read_leg(e))
		return CTL_EXIT_FAILED;

	out = g_string_new(NULL);
	if (json)
		append_json(out, e);
	else
		append_text(out, e);
	if (!ctl_write_stdout(out))
		return CTL_EXIT_FAILED;

	/* After the report, which still says what the superblock holds. */
	if (e->problem != NULL) {
		ctl_message("examine %s: %s", e->shown_path, e->problem);
		return CTL_EXIT_FAILED;
	}
	if (e->bitmap_error != NULL) {
		ctl_message("examine %s: cannot count the dirty regions: %s", e->shown_path,
			    e->bitmap_error);
		return CTL_EXIT_FAILED;
	}
	if (e->bytes < e->sb.data_offset + e->sb.data_size)
		ctl_message("warning: examine %s: the leg is %" G_GUINT64_FORMAT
			    " bytes, but its data area ends at %" G_GUINT64_FORMAT
			    ": truncated? fusemirrord will refuse it",
			    e->shown_path, (guint64)e->bytes,
			    (guint64)(e->sb.data_offset + e->sb.data_size));
	return CTL_EXIT_OK;
}

static int run_examine(const struct ctl_command *cmd, int argc, char **argv)
{
	gboolean json = FALSE;
	const GOptionEntry entries[] = {
	    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL},
	    G_OPTION_ENTRY_NULL,
	};
	struct examine e = {0};
	int status;

	if (!ctl_parse_options(cmd, entries, &argc, &argv, 1, 1))
		return CTL_EXIT_USAGE;
	e.path = argv[1];
	e.shown_path = ctl_printable(argv[1]);

	/* One client for the reads, freed (threads and all) by the matching dmio_put(). */
	status = dmio_get(1);
	if (status < 0) {
		ctl_message("examine %s: cannot start libdmio: %s", e.shown_path,
			    g_strerror(-status));
		g_free(e.shown_path);
		return CTL_EXIT_FAILED;
	}
	status = examine(&e, json);
	dmio_dev_close(e.dev);
	dmio_put(1);
	g_free(e.bitmap_error);
	g_free(e.problem);
	g_free(e.shown_path);
	return status;
}

const struct ctl_command ctl_cmd_examine = {
    .name = "examine",
    .parameters = "LEG",
    .summary = "Show the superblock and bitmap summary of a leg (no daemon needed)",
    .description = "LEG is the path of a leg: a file, a block device or an NBD URI.  It is\n"
		   "opened read-only.\n"
		   "Exit status: 0 the superblock is shown, 1 no such file, not a fusemirror\n"
		   "leg, or a corrupt superblock, 2 usage error.",
    .run = run_examine,
};
