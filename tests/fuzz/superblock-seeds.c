/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Writes the seed corpus of fuzz-superblock into DIR: superblocks made by the encoder itself, so
 * that they follow the format as it is today and the tree holds no binary files.  Each seed is
 * one shape a leg can have on disk (tests/fuzz/README.md).
 *
 *	superblock-seeds DIR
 */
#include <errno.h>
#include <stdint.h>

#include "fuzz-util.h"
#include "mirror/superblock.h"

static void base(struct superblock *sb, unsigned int num_legs, uint64_t data_size)
{
	unsigned int i;

	memset(sb, 0, sizeof(*sb));
	sb->version = SB_VERSION;
	memset(sb->array_uuid, 0xa5, 16);
	sb->num_legs = num_legs;
	sb->data_offset = SB_DATA_OFFSET;
	sb->data_size = data_size;
	sb->region_size = superblock_default_region_size(data_size, SB_DATA_OFFSET);
	sb->bitmap_offset = SB_BITMAP_OFFSET;
	sb->bitmap_bytes = (data_size / sb->region_size + 7) / 8;
	sb->events = 42;
	sb->events_cleared = 40;
	sb->flags = SB_FLAG_CLEAN;
	sb->recovery_offset = SB_RECOVERY_DONE;
	sb->ctime = 1700000000;
	sb->utime = 1700000100;
	g_strlcpy(sb->name, "mirror0", sizeof(sb->name));
	for (i = 0; i < num_legs; i++) {
		memset(sb->roles[i].uuid, (int)(0x10 + i), 16);
		sb->roles[i].role = SB_ROLE_IN_SYNC;
	}
	memcpy(sb->leg_uuid, sb->roles[0].uuid, 16);
}

static void write_seed(const char *dir, const char *name, const struct superblock *sb)
{
	uint8_t buf[SB_SIZE];
	struct superblock check;
	g_autofree char *path = g_build_filename(dir, name, NULL);
	g_autoptr(GError) error = NULL;
	char *why = NULL;

	if (superblock_encode(sb, buf) != 0) {
		fprintf(stderr, "superblock-seeds: seed %s does not encode\n", name);
		exit(1);
	}
	/* A seed that does not decode would only teach the fuzzer the error paths. */
	if (superblock_decode(buf, &check, &why) != SB_ERROR_NONE) {
		fprintf(stderr, "superblock-seeds: seed %s does not decode: %s\n", name, why);
		exit(1);
	}
	if (!g_file_set_contents(path, (const char *)buf, SB_SIZE, &error)) {
		fprintf(stderr, "superblock-seeds: %s\n", error->message);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	struct superblock sb;
	const char *dir;

	if (argc != 2) {
		fprintf(stderr, "usage: superblock-seeds DIR\n");
		return 2;
	}
	dir = argv[1];
	if (g_mkdir_with_parents(dir, 0755) != 0) {
		fprintf(stderr, "superblock-seeds: cannot create %s: %s\n", dir, g_strerror(errno));
		return 1;
	}

	/* Two legs in sync, shut down cleanly: what create --assume-clean writes. */
	base(&sb, 2, 256ull << 20);
	write_seed(dir, "two-legs-clean", &sb);

	/* Three legs, seen from the last: one failed, this one resyncing halfway, not clean. */
	base(&sb, 3, 1ull << 30);
	sb.leg_index = 2;
	memcpy(sb.leg_uuid, sb.roles[2].uuid, 16);
	sb.roles[1].role = SB_ROLE_FAILED;
	sb.roles[2].role = SB_ROLE_RESYNCING;
	sb.recovery_offset = 512ull << 20;
	sb.flags = 0;
	/* The slots' recorded names and last paths (the leg table after the roles). */
	g_strlcpy(sb.roles[0].name, "a", sizeof(sb.roles[0].name));
	g_strlcpy(sb.roles[0].path, "/dev/disk/by-id/ata-DISK_A", sizeof(sb.roles[0].path));
	g_strlcpy(sb.roles[1].name, "b", sizeof(sb.roles[1].name));
	g_strlcpy(sb.roles[2].name, "remote", sizeof(sb.roles[2].name));
	g_strlcpy(sb.roles[2].path, "/srv/legs/r\xc3\xa9mote.img", sizeof(sb.roles[2].path));
	write_seed(dir, "three-legs-resyncing", &sb);

	/* A removed middle leg (an empty slot) and a spare; a UTF-8 name of 64 bytes. */
	base(&sb, 4, 64ull << 20);
	memset(sb.roles[1].uuid, 0, 16);
	sb.roles[1].role = SB_ROLE_EMPTY;
	sb.roles[3].role = SB_ROLE_SPARE;
	/* 17 bytes of UTF-8 and 47 of ASCII: the longest name. */
	g_strlcpy(sb.name,
		  "miroir-\xc3\xa9t\xc3\xa9-\xe2\x82\xac-"
		  "0123456789012345678901234567890123456789abcdefg",
		  sizeof(sb.name));
	write_seed(dir, "empty-slot-and-spare", &sb);

	/* Every slot used, the smallest region size, a bigger data offset. */
	base(&sb, SB_MAX_LEGS, 16ull << 20);
	sb.leg_index = SB_MAX_LEGS - 1;
	memcpy(sb.leg_uuid, sb.roles[SB_MAX_LEGS - 1].uuid, 16);
	sb.region_size = 4096;
	sb.bitmap_bytes = (16ull << 20) / 4096 / 8;
	sb.data_offset = 2ull << 20;
	write_seed(dir, "sixty-four-legs", &sb);

	/* The largest counters and sizes the format allows. */
	base(&sb, 2, 1ull << 50);
	sb.region_size = 64ull << 20;
	sb.bitmap_bytes = ((1ull << 50) / (64ull << 20) + 7) / 8;
	sb.data_offset = 4ull << 20; /* for its 2 MiB of bitmap */
	sb.events = UINT64_MAX - 1;
	sb.events_cleared = UINT64_MAX - 2;
	sb.ctime = UINT64_MAX;
	sb.utime = UINT64_MAX;
	write_seed(dir, "huge", &sb);
	return 0;
}
