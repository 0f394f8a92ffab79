/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl scan [LEG...]: print a config for each mirror whose legs are found, from their
 * superblocks, like mdadm --examine --scan.  Without LEG every block device of the machine is
 * read.  The superblocks know the array's name, UUID and slots but not the mountpoint, the
 * legs' names or write-mostly: the output says so in comments.
 *
 * The slots are the newest superblock's (the highest events): a leg found in one of them
 * becomes its [leg NAME] group, in slot order; a slot whose leg is not found becomes a comment,
 * and so does a leg that the newest superblock no longer lists (a removed one).
 */
#include "config.h"

#include <blkid.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "config/config.h"
#include "ctl.h"
#include "dmio.h"
#include "mirror/superblock.h"

#define SYS_BLOCK "/sys/class/block"
/* More legs than a command line of paths holds. */
#define MAX_SCAN_LEGS 65536

/* One leg found: where, and what its superblock says. */
struct found_leg {
	char *path;
	struct superblock sb;
};

/* The legs found of one array, in the order they were found. */
struct found_array {
	uint8_t uuid[16];
	GPtrArray *legs; /* struct found_leg, not owned */
};

/*
 * The name of slot in the config scan prints: the one its superblocks recorded (the group name it
 * had in the config), or legN by slot when none was recorded (a superblock from before the leg
 * table) or it cannot be a group name.
 */
static char *slot_leg_name(const struct superblock *sb, unsigned int slot)
{
	const char *name = sb->roles[slot].name;
	unsigned int i;

	/* The name the superblocks recorded, when a config can carry it and no other slot has it.
	 */
	if (*name == '\0' || config_leg_name_problem(name) != NULL)
		return g_strdup_printf("leg%u", slot);
	for (i = 0; i < sb->num_legs && i < SB_MAX_LEGS; i++)
		if (i != slot && sb->roles[i].role != SB_ROLE_EMPTY &&
		    strcmp(sb->roles[i].name, name) == 0)
			return g_strdup_printf("leg%u", slot);
	return g_strdup(name);
}

/*
 * Read the superblock of path.  Returns 1 and fills *sb for a fusemirror leg, 0 when path is
 * none (*why says why: free it), or -1 when it holds a damaged superblock (*why says how).
 */
static int read_superblock(const char *path, struct superblock *sb, char **why)
{
	struct dmio_dev *dev = NULL;
	int r;

	*why = NULL;
	r = dmio_dev_open(path, DMIO_DEV_RDONLY, &dev);
	if (r < 0) {
		*why =
		    g_strdup_printf("%s%s", g_strerror(-r),
				    r == -EINVAL ? " (not a regular file or a block device)" : "");
		return 0;
	}
	if (dmio_dev_sectors(dev) << DMIO_SECTOR_SHIFT < SB_SIZE) {
		dmio_dev_close(dev);
		*why = g_strdup("not a fusemirror leg: it is smaller than a superblock");
		return 0;
	}
	r = ctl_superblock_probe(dev, sb, why);
	dmio_dev_close(dev);
	if (r < 0) {
		*why = g_strdup_printf("cannot read the superblock: %s", g_strerror(-r));
		return 0;
	}
	if (r == CTL_SB_NONE) {
		*why = g_strdup("not a fusemirror leg (no superblock)");
		return 0;
	}
	if (r == CTL_SB_DAMAGED) {
		char *damaged = ctl_superblock_damaged(*why);

		g_free(*why);
		*why = damaged;
		return -1;
	}
	return 1;
}

/*
 * Every block device the kernel has, as /dev paths (libblkid's names for the device numbers of
 * /sys/class/block).  libblkid's own device list would not do: its cache keeps only the devices
 * with a signature it knows, and it does not know ours.
 */
static GPtrArray *block_devices(void)
{
	GPtrArray *paths = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GDir) dir = g_dir_open(SYS_BLOCK, 0, NULL);
	const char *name;

	while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
		g_autofree char *dev_file = g_build_filename(SYS_BLOCK, name, "dev", NULL);
		g_autofree char *size_file = g_build_filename(SYS_BLOCK, name, "size", NULL);
		g_autofree char *dev = NULL, *size = NULL;
		unsigned int major_no, minor_no;
		char *devname;

		/* Empty: a loop device with nothing attached, a drive without a medium. */
		if (!g_file_get_contents(size_file, &size, NULL, NULL) ||
		    g_ascii_strtoull(size, NULL, 10) == 0)
			continue;
		if (!g_file_get_contents(dev_file, &dev, NULL, NULL) ||
		    sscanf(dev, "%u:%u", &major_no, &minor_no) != 2)
			continue;
		devname = blkid_devno_to_devname(makedev(major_no, minor_no));
		if (devname == NULL)
			continue;
		g_ptr_array_add(paths, g_strdup(devname));
		free(devname);
	}
	g_ptr_array_sort(paths, (GCompareFunc)g_strcmp0);
	return paths;
}

static struct found_array *array_of(GPtrArray *arrays, const uint8_t uuid[16])
{
	struct found_array *array;

	for (unsigned int i = 0; i < arrays->len; i++) {
		array = g_ptr_array_index(arrays, i);
		if (memcmp(array->uuid, uuid, 16) == 0)
			return array;
	}
	array = g_new0(struct found_array, 1);
	memcpy(array->uuid, uuid, 16);
	array->legs = g_ptr_array_new();
	g_ptr_array_add(arrays, array);
	return array;
}

static void found_array_free(gpointer data)
{
	struct found_array *array = data;

	g_ptr_array_unref(array->legs);
	g_free(array);
}

static void found_leg_free(gpointer data)
{
	struct found_leg *leg = data;

	g_free(leg->path);
	g_free(leg);
}

/* A comment line: its text printable and on one line whatever it holds. */
static void append_comment(GString *out, const char *format, ...) G_GNUC_PRINTF(2, 3);

static void append_comment(GString *out, const char *format, ...)
{
	g_autofree char *text = NULL, *shown = NULL;
	va_list ap;

	va_start(ap, format);
	text = g_strdup_vprintf(format, ap);
	va_end(ap);
	shown = ctl_printable(text);
	g_string_append_printf(out, "# %s\n", shown);
}

/* The leg found in slot of newest's roles, the first one found when several paths lead to it. */
static const struct found_leg *leg_in_slot(const struct found_array *array,
					   const struct superblock *newest, unsigned int slot)
{
	for (unsigned int i = 0; i < array->legs->len; i++) {
		const struct found_leg *leg = g_ptr_array_index(array->legs, i);

		if (memcmp(leg->sb.leg_uuid, newest->roles[slot].uuid, 16) == 0)
			return leg;
	}
	return NULL;
}

/* Whether leg holds a slot of newest. */
static bool is_member(const struct found_leg *leg, const struct superblock *newest)
{
	for (unsigned int slot = 0; slot < newest->num_legs && slot < SB_MAX_LEGS; slot++)
		if (newest->roles[slot].role != SB_ROLE_EMPTY &&
		    memcmp(leg->sb.leg_uuid, newest->roles[slot].uuid, 16) == 0)
			return true;
	return false;
}

/* The config of one array, from the superblocks of its legs found. */
static void append_array(GString *out, const struct found_array *array)
{
	const struct found_leg *newest = g_ptr_array_index(array->legs, 0);
	const struct superblock *sb;
	bool disagree = false;
	char uuid[37];

	for (unsigned int i = 1; i < array->legs->len; i++) {
		const struct found_leg *leg = g_ptr_array_index(array->legs, i);

		if (leg->sb.events > newest->sb.events)
			newest = leg;
	}
	/* Among the members: a leg left out is said to be so anyway. */
	for (unsigned int i = 0; i < array->legs->len; i++) {
		const struct found_leg *leg = g_ptr_array_index(array->legs, i);

		disagree = disagree ||
			   (is_member(leg, &newest->sb) && leg->sb.events != newest->sb.events);
	}
	sb = &newest->sb;
	uuid_format(array->uuid, uuid);
	append_comment(out, "fusemirror array '%s', uuid %s: %u slots, events %" G_GUINT64_FORMAT,
		       sb->name, uuid, sb->num_legs, (guint64)sb->events);
	g_string_append(out, "[mirror]\n");
	if (sb->name[0] != '\0') {
		g_autofree char *name = config_escape_value(sb->name);

		g_string_append_printf(out, "name = %s\n", name);
	}
	append_comment(out, "mountpoint = ... (the superblocks do not record it: set it here or "
			    "give fusemirrord a MOUNTPOINT)");
	append_comment(out, "The superblocks record no write-mostly: check it.");

	for (unsigned int slot = 0; slot < sb->num_legs && slot < SB_MAX_LEGS; slot++) {
		const struct found_leg *leg = leg_in_slot(array, sb, slot);
		const char *role = sb_role_name((enum sb_role)sb->roles[slot].role);
		g_autofree char *name = slot_leg_name(sb, slot);

		g_string_append_c(out, '\n');
		if (sb->roles[slot].role == SB_ROLE_EMPTY) {
			append_comment(out, "slot %u: empty (a removed leg)", slot);
			continue;
		}
		if (leg == NULL) {
			uuid_format(sb->roles[slot].uuid, uuid);
			append_comment(out, "[leg %s]: slot %u, leg uuid %s, %s: not found", name,
				       slot, uuid, role);
			continue;
		}
		if (disagree && leg->sb.events == sb->events)
			append_comment(out, "events %" G_GUINT64_FORMAT ": the newest",
				       (guint64)leg->sb.events);
		else if (disagree)
			append_comment(out,
				       "events %" G_GUINT64_FORMAT
				       ", older than the newest (%" G_GUINT64_FORMAT
				       "): it will be resynced",
				       (guint64)leg->sb.events, (guint64)sb->events);
		if (sb->roles[slot].role != SB_ROLE_IN_SYNC)
			append_comment(out, "%s in the newest superblock", role);
		{
			/* Printed: an NBD URI redacted, with a word to put its secrets back. */
			g_autofree char *shown = dmio_path_display(leg->path);
			g_autofree char *path = config_escape_value(shown);

			if (strcmp(shown, leg->path) != 0)
				append_comment(out, "its URI's secrets are shown as ***: put them "
						    "back");
			g_string_append_printf(out, "[leg %s]\npath = %s\n", name, path);
		}
		/* The same leg seen twice: a loop device over a leg file, a symlink. */
		for (unsigned int i = 0; i < array->legs->len; i++) {
			const struct found_leg *other = g_ptr_array_index(array->legs, i);

			if (other != leg && memcmp(other->sb.leg_uuid, leg->sb.leg_uuid, 16) == 0) {
				g_autofree char *at = dmio_path_display(other->path);

				append_comment(out, "the same leg is also at %s", at);
			}
		}
	}
	for (unsigned int i = 0; i < array->legs->len; i++) {
		const struct found_leg *leg = g_ptr_array_index(array->legs, i);

		if (!is_member(leg, sb)) {
			g_autofree char *at = dmio_path_display(leg->path);

			uuid_format(leg->sb.leg_uuid, uuid);
			g_string_append_c(out, '\n');
			append_comment(out,
				       "%s: leg uuid %s, slot %u at events %" G_GUINT64_FORMAT
				       ", is no member in the newest superblock: left out",
				       at, uuid, leg->sb.leg_index, (guint64)leg->sb.events);
		}
	}
}

static int run_scan(const struct ctl_command *cmd, int argc, char **argv)
{
	g_autoptr(GPtrArray) paths = NULL;
	g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func(found_leg_free);
	g_autoptr(GPtrArray) arrays = g_ptr_array_new_with_free_func(found_array_free);
	g_autoptr(GString) out = g_string_new(NULL);
	bool given, failed = false;
	int r;

	if (!ctl_parse_options(cmd, NULL, &argc, &argv, 0, MAX_SCAN_LEGS))
		return CTL_EXIT_USAGE;
	given = argc > 1;
	if (given) {
		paths = g_ptr_array_new_with_free_func(g_free);
		for (int i = 1; i < argc; i++)
			g_ptr_array_add(paths, g_strdup(argv[i]));
	} else {
		paths = block_devices();
	}

	r = dmio_get(1);
	if (r < 0) {
		ctl_message("scan: cannot start libdmio: %s", g_strerror(-r));
		return CTL_EXIT_FAILED;
	}
	for (unsigned int i = 0; i < paths->len; i++) {
		const char *path = g_ptr_array_index(paths, i);
		struct found_leg *leg = g_new0(struct found_leg, 1);
		g_autofree char *why = NULL;
		int is_leg = read_superblock(path, &leg->sb, &why);

		if (is_leg <= 0) {
			/* Not ours: said for the legs named, and for damaged superblocks. */
			if (given || is_leg < 0) {
				g_autofree char *shown = ctl_printable(path);

				ctl_message("scan %s: %s", shown, why);
				failed = given;
			}
			g_free(leg);
			continue;
		}
		leg->path = g_strdup(path);
		g_ptr_array_add(found, leg);
		g_ptr_array_add(array_of(arrays, leg->sb.array_uuid)->legs, leg);
	}
	dmio_put(1);

	for (unsigned int i = 0; i < arrays->len; i++) {
		g_autoptr(GError) error = NULL;
		gsize start = out->len;
		struct mirror_config *config;

		if (i > 0)
			g_string_append_c(out, '\n');
		append_array(out, g_ptr_array_index(arrays, i));
		/* What scan prints must be a config that fusemirrord reads. */
		config = config_parse(out->str + start, out->len - start, "scan", &error);
		if (config == NULL) {
			ctl_message("scan: the config of array %u is not valid: %s", i,
				    error->message);
			failed = true;
		}
		config_free(config);
	}
	if (out->len > 0 && !ctl_write_stdout(out))
		return CTL_EXIT_FAILED;
	if (arrays->len == 0) {
		ctl_message("scan: no fusemirror leg found%s",
			    given ? "" : " on the block devices (file legs must be named)");
		return CTL_EXIT_FAILED;
	}
	return failed ? CTL_EXIT_FAILED : CTL_EXIT_OK;
}

const struct ctl_command ctl_cmd_scan = {
    .name = "scan",
    .parameters = "[LEG...]",
    .summary = "Print a config for each mirror whose legs' superblocks are found",
    .description = "LEG is the path of a leg (a file, a block device or an NBD URI); without\n"
		   "one, every block device is read (NBD exports must be named).  Legs are opened "
		   "read-only.  The output is a\n"
		   "fusemirror.conf(5) per array, legs in slot order, named leg0, leg1, ...\n"
		   "Exit status: 0 configs printed, 1 a LEG named is not a fusemirror leg or\n"
		   "no leg was found, 2 usage error.",
    .run = run_scan,
};
