/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What a leg already holds: a fusemirror superblock (read through libdmio), or another signature
 * that libblkid recognises, as wipefs and mkfs do.  create refuses to overwrite either, add to
 * take a leg that holds one, unless --force; both name what they found.
 *
 * libblkid reads files and devices only.  An NBD export is probed through a stand-in: a sparse
 * memfd of the export's size holding its first and last PROBE_SPAN bytes, read through libdmio.
 * Every signature libblkid knows sits there (file systems and partition tables near the start,
 * GPT's backup and md 0.90/1.0 superblocks near the end); 2 MiB read over the network at most.
 */
#include "config.h"

#include <blkid.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ctl.h"
#include "dmio.h"
#include "mirror/superblock.h"

/* "an ext4", "a btrfs": the article that goes before a signature type. */
static const char *article(const char *type)
{
	return type[0] != '\0' && strchr("aeiouxAEIOUX", type[0]) != NULL ? "an" : "a";
}

int ctl_superblock_probe(struct dmio_dev *dev, struct superblock *sb, char **why)
{
	enum sb_error e;
	void *buf;
	int r;

	*why = NULL;
	/* Page-aligned: a leg may be opened with O_DIRECT by a later version. */
	buf = aligned_alloc(DMIO_PAGE_SIZE, SB_SIZE);
	if (buf == NULL)
		return -ENOMEM;
	r = superblock_read_raw(dev, buf);
	if (r < 0) {
		free(buf);
		return r;
	}
	e = superblock_decode(buf, sb, why);
	free(buf);
	if (e == SB_ERROR_NONE) {
		g_clear_pointer(why, g_free);
		return CTL_SB_VALID;
	}
	if (e == SB_ERROR_MAGIC) {
		g_clear_pointer(why, g_free);
		return CTL_SB_NONE;
	}
	/* The magic is there: the leg was a member, whatever else is wrong. */
	if (*why == NULL)
		*why = g_strdup("corrupt");
	return CTL_SB_DAMAGED;
}

char *ctl_superblock_owner(const struct superblock *sb)
{
	g_autofree char *name = ctl_printable(sb->name);
	char uuid[37];

	uuid_format(sb->array_uuid, uuid);
	return g_strdup_printf("already belongs to fusemirror array '%s' (uuid %s, leg index %u of "
			       "%u)",
			       name, uuid, sb->leg_index, sb->num_legs);
}

char *ctl_superblock_damaged(const char *why)
{
	g_autofree char *shown_why = ctl_printable(why);

	return g_strdup_printf("holds a damaged fusemirror superblock (%s)", shown_why);
}

/* What libblkid's USAGE and TYPE say a leg holds, as "holds ...". */
static char *describe_signature(const char *usage, const char *type)
{
	g_autofree char *shown = ctl_printable(type);

	if (usage == NULL)
		return g_strdup_printf("holds %s %s signature", article(shown), shown);
	if (strcmp(usage, "filesystem") == 0)
		return g_strdup_printf("holds %s %s file system", article(shown), shown);
	if (strcmp(usage, "raid") == 0)
		return g_strdup_printf("holds %s metadata (a RAID or volume manager member)",
				       shown);
	if (strcmp(usage, "crypto") == 0)
		return g_strdup_printf("holds %s %s encrypted volume", article(shown), shown);
	return g_strdup_printf("holds %s %s signature", article(shown), shown);
}

#define PROBE_SPAN (1024u * 1024u)

/* Copy bytes [offset, offset + len) of dev into fd at the same offset.  Returns 0 or -errno. */
static int copy_span(struct dmio_dev *dev, int fd, uint64_t offset, size_t len, void *buf)
{
	struct dmio_region where = {
	    .dev = dev, .sector = offset >> DMIO_SECTOR_SHIFT, .count = len >> DMIO_SECTOR_SHIFT};
	int region_error = 0;
	struct dmio_request req = {
	    .op = DMIO_READ,
	    .mem = {.type = DMIO_MEM_VM, .ptr.vma = buf},
	    .region_errors = &region_error,
	};
	int r = dmio(&req, 1, &where, NULL);

	if (r == -EIO && region_error != 0)
		return region_error < 0 ? region_error : -region_error;
	if (r < 0)
		return r;
	return pwrite(fd, buf, len, (off_t)offset) == (ssize_t)len ? 0 : -errno;
}

/*
 * A descriptor of a sparse memfd standing in for the export path (see the top), or -1 with
 * error set.
 */
static int export_stand_in(const char *path, GError **error)
{
	struct dmio_dev *dev = NULL;
	void *buf = NULL;
	uint64_t size, head, tail;
	int fd = -1, r;

	r = dmio_dev_open(path, DMIO_DEV_RDONLY, &dev);
	if (r == 0) {
		size = dmio_dev_sectors(dev) << DMIO_SECTOR_SHIFT;
		head = MIN(size, PROBE_SPAN);
		tail = MAX(head, size >= PROBE_SPAN ? size - PROBE_SPAN : 0);
		fd = memfd_create("fusemirrorctl-probe", MFD_CLOEXEC);
		r = fd < 0 ? -errno : 0;
	}
	if (r == 0 && ftruncate(fd, (off_t)size) < 0)
		r = -errno;
	if (r == 0 && posix_memalign(&buf, 4096, PROBE_SPAN) != 0)
		r = -ENOMEM;
	if (r == 0 && head > 0)
		r = copy_span(dev, fd, 0, head, buf);
	if (r == 0 && tail < size)
		r = copy_span(dev, fd, tail, size - tail, buf);
	free(buf);
	dmio_dev_close(dev);
	if (r < 0) {
		g_set_error(error, CTL_ERROR, CTL_ERROR_ACCESS,
			    "cannot read the export to look for signatures: %s", g_strerror(-r));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

bool ctl_blkid_signature(const char *path, char **what, GError **error)
{
	const char *type = NULL, *usage = NULL;
	blkid_probe probe;
	int fd = -1, r;

	*what = NULL;
	errno = 0;
	if (dmio_path_is_uri(path)) {
		fd = export_stand_in(path, error);
		if (fd < 0)
			return false;
		probe = blkid_new_probe();
		if (probe != NULL && blkid_probe_set_device(probe, fd, 0, 0) != 0) {
			blkid_free_probe(probe);
			probe = NULL;
		}
	} else {
		probe = blkid_new_probe_from_filename(path);
	}
	if (probe == NULL) {
		int err = errno != 0 ? errno : EIO;

		g_set_error(error, CTL_ERROR, CTL_ERROR_ACCESS,
			    "cannot look for signatures on it with libblkid: %s", g_strerror(err));
		if (fd >= 0)
			close(fd);
		return false;
	}
	blkid_probe_enable_superblocks(probe, 1);
	blkid_probe_set_superblocks_flags(probe, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
	blkid_probe_enable_partitions(probe, 1);
	r = blkid_do_safeprobe(probe);
	if (r == -2) {
		*what = g_strdup("holds several signatures that contradict each other (libblkid "
				 "finds them ambiguous)");
	} else if (r < 0) {
		g_set_error(error, CTL_ERROR, CTL_ERROR_ACCESS,
			    "libblkid cannot probe it for signatures");
		blkid_free_probe(probe);
		if (fd >= 0)
			close(fd);
		return false;
	} else if (r == 0) {
		if (blkid_probe_lookup_value(probe, "TYPE", &type, NULL) == 0) {
			if (blkid_probe_lookup_value(probe, "USAGE", &usage, NULL) != 0)
				usage = NULL;
			*what = describe_signature(usage, type);
		} else if (blkid_probe_lookup_value(probe, "PTTYPE", &type, NULL) == 0) {
			g_autofree char *shown = ctl_printable(type);

			*what =
			    g_strdup_printf("holds %s %s partition table", article(shown), shown);
		}
	}
	blkid_free_probe(probe);
	if (fd >= 0)
		close(fd);
	return true;
}
