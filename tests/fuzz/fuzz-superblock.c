/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: the superblock codec (src/mirror/superblock.c).  The input, padded with
 * zeroes or cut to SB_SIZE bytes, is decoded twice: as it is (the magic, checksum and version
 * checks), and with its checksum made right, so that the fuzzer reaches the field checks
 * without having to find a crc32c.  A superblock that decodes must survive encode + decode
 * unchanged, and encoding that again must give the same bytes; one that does not decode must
 * say why in one clean line (examine prints it).  The data size and offset the input holds also
 * go through the default region size and the bitmap space that create computes from them.
 */
#include <stdint.h>

#include "fuzz-util.h"
#include "mirror/superblock.h"

#define OFF_CRC (SB_SIZE - 4)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_glib_fatal();
	return 0;
}

static bool superblock_equal(const struct superblock *a, const struct superblock *b)
{
	unsigned int i;

	for (i = 0; i < SB_MAX_LEGS; i++)
		if (memcmp(a->roles[i].uuid, b->roles[i].uuid, 16) != 0 ||
		    a->roles[i].role != b->roles[i].role ||
		    strcmp(a->roles[i].name, b->roles[i].name) != 0 ||
		    strcmp(a->roles[i].path, b->roles[i].path) != 0)
			return false;
	return a->version == b->version && memcmp(a->array_uuid, b->array_uuid, 16) == 0 &&
	       memcmp(a->leg_uuid, b->leg_uuid, 16) == 0 && a->leg_index == b->leg_index &&
	       a->num_legs == b->num_legs && a->data_offset == b->data_offset &&
	       a->data_size == b->data_size && a->region_size == b->region_size &&
	       a->events == b->events && a->events_cleared == b->events_cleared &&
	       a->flags == b->flags && a->recovery_offset == b->recovery_offset &&
	       a->bitmap_offset == b->bitmap_offset && a->bitmap_bytes == b->bitmap_bytes &&
	       a->ctime == b->ctime && a->utime == b->utime && strcmp(a->name, b->name) == 0;
}

static void check_decode(const uint8_t *buf)
{
	struct superblock sb, again;
	uint8_t *encoded, *reencoded;
	enum sb_error err;
	char *why = NULL;

	err = superblock_decode(buf, &sb, &why);
	if (err != SB_ERROR_NONE) {
		fuzz_assert(err == SB_ERROR_MAGIC || err == SB_ERROR_VERSION ||
			    err == SB_ERROR_CRC || err == SB_ERROR_FIELD);
		fuzz_check_message("the reason a superblock is refused", why);
		g_free(why);
		return;
	}
	fuzz_assert(why == NULL);
	fuzz_assert(sb.name[SB_NAME_MAX] == '\0');
	/* Heap buffers of exactly SB_SIZE, so that ASan sees a write or read past them. */
	encoded = g_malloc(SB_SIZE);
	reencoded = g_malloc(SB_SIZE);
	/* A superblock that decodes is one the codec may write. */
	fuzz_assert(superblock_encode(&sb, encoded) == 0);
	err = superblock_decode(encoded, &again, &why);
	if (err != SB_ERROR_NONE) {
		fprintf(stderr, "fuzz: a decoded superblock, encoded, does not decode: %s\n", why);
		abort();
	}
	fuzz_assert(superblock_equal(&sb, &again));
	fuzz_assert(superblock_encode(&again, reencoded) == 0);
	fuzz_assert(memcmp(encoded, reencoded, SB_SIZE) == 0);
	g_free(encoded);
	g_free(reencoded);
}

/* The sizes create uses, for any data size and offset: a power of two, a whole number of pages. */
static void check_sizes(uint64_t data_size, uint64_t data_offset)
{
	uint64_t region_size = superblock_default_region_size(data_size, data_offset);
	uint64_t space = superblock_bitmap_space(data_size, region_size);

	fuzz_assert(region_size >= (512u << 10) && region_size <= (64u << 20));
	fuzz_assert((region_size & (region_size - 1)) == 0);
	fuzz_assert(space % 4096 == 0);
	fuzz_assert(superblock_bitmap_space(data_size, 0) == UINT64_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = g_malloc0(SB_SIZE);
	uint64_t data_size, data_offset;
	uint32_t crc;

	memcpy(buf, data, MIN(size, (size_t)SB_SIZE));
	/* The data size and offset fields, as they are. */
	memcpy(&data_offset, buf + 56, 8);
	memcpy(&data_size, buf + 64, 8);
	check_sizes(data_size, data_offset);
	check_decode(buf);
	crc = crc32c(0, buf, OFF_CRC);
	buf[OFF_CRC] = (uint8_t)crc;
	buf[OFF_CRC + 1] = (uint8_t)(crc >> 8);
	buf[OFF_CRC + 2] = (uint8_t)(crc >> 16);
	buf[OFF_CRC + 3] = (uint8_t)(crc >> 24);
	check_decode(buf);
	g_free(buf);
	return 0;
}
