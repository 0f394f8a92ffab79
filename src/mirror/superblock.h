/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The on-disk format of a leg (metadata = internal), documented in doc/format.md:
 *
 *   offset 0                 superblock, 4 KiB, little-endian, crc32c-checked
 *   offset 4 KiB             write-intent bitmap, one bit per region, up to the data offset
 *   offset data_offset       the mirror's data (1 MiB by default)
 *
 * The codec only converts between bytes and struct superblock; reading and writing go through
 * libdmio (superblock_read_raw / superblock_write).
 */
#ifndef FUSEMIRROR_SUPERBLOCK_H
#define FUSEMIRROR_SUPERBLOCK_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "dmio.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SB_MAGIC	 0x314d52494d4d5346ull /* "FSMMIRM1" read as little-endian bytes */
#define SB_VERSION	 1u
#define SB_SIZE		 4096u	    /* bytes at offset 0 of every leg */
#define SB_BITMAP_OFFSET 4096u	    /* the bitmap follows the superblock */
#define SB_DATA_OFFSET	 (1u << 20) /* default: data starts at 1 MiB */
#define SB_NAME_MAX	 64u	    /* bytes of the array name, NUL-padded */
#define SB_MAX_LEGS	 64u
#define SB_RECOVERY_DONE UINT64_MAX /* recovery_offset of a leg that is fully in sync */
#define SB_LEG_NAME_MAX	 64u	    /* bytes of a leg's recorded name (its config group's) */
#define SB_LEG_PATH_MAX	 255u	    /* bytes of a leg's recorded last path */
/*
 * An events counter above this cannot start and stop a mirror (and record a few failures)
 * without passing 2^64 - 1: assembly refuses it (doc/format.md).
 */
#define SB_EVENTS_LIMIT (UINT64_MAX - 65536)

/* Array state flags. */
#define SB_FLAG_CLEAN (1u << 0) /* shut down cleanly: no write was in flight, bitmap is exact */

/* A leg's role in the array, as the superblock that records it saw it. */
enum sb_role {
	SB_ROLE_EMPTY = 0,     /* no leg in this slot */
	SB_ROLE_IN_SYNC = 1,   /* holds every acknowledged write */
	SB_ROLE_FAILED = 2,    /* failed: missed writes since; never read until resynced */
	SB_ROLE_RESYNCING = 3, /* being rebuilt; in sync below its recovery_offset */
	SB_ROLE_SPARE = 4,     /* a member that holds no data yet */
};

struct sb_leg_role {
	uint8_t uuid[16];
	uint32_t role; /* enum sb_role */
	/*
	 * What the slot's leg was called and where it was last seen, "" when unknown (older
	 * superblocks, an empty slot, or dropped because the table did not fit: doc/format.md).
	 * UTF-8 without control characters; encode writes as unknown a text that is not.
	 */
	char name[SB_LEG_NAME_MAX + 1];
	char path[SB_LEG_PATH_MAX + 1];
};

struct superblock {
	uint32_t version;
	uint8_t array_uuid[16];
	uint8_t leg_uuid[16];
	uint32_t leg_index; /* this leg's slot in roles[] */
	uint32_t num_legs;  /* slots in use in roles[] */
	uint64_t data_offset;
	uint64_t data_size;   /* bytes of mirror data on every leg */
	uint64_t region_size; /* bytes covered by one bitmap bit (a power of two >= 4 KiB) */
	uint64_t events;      /* bumped on every change of state, on every live leg */
	uint64_t
	    events_cleared; /* events when bits were last cleared: older legs need a full sync */
	uint32_t flags;	    /* SB_FLAG_* */
	uint64_t recovery_offset; /* this leg is in sync below it; SB_RECOVERY_DONE when whole */
	uint64_t bitmap_offset;
	uint64_t bitmap_bytes;	    /* bytes of bitmap in use: ceil(regions / 8) */
	uint64_t ctime;		    /* seconds since the epoch: creation */
	uint64_t utime;		    /* last update */
	char name[SB_NAME_MAX + 1]; /* NUL-terminated */
	struct sb_leg_role roles[SB_MAX_LEGS];
};

enum sb_error {
	SB_ERROR_NONE = 0,
	SB_ERROR_MAGIC,	  /* not a fusemirror leg (no superblock) */
	SB_ERROR_VERSION, /* a format version this build does not know */
	SB_ERROR_CRC,	  /* checksum mismatch: torn or corrupt */
	SB_ERROR_FIELD,	  /* a field out of range (sizes, offsets, index, roles, name) */
};

/*
 * Encode sb into SB_SIZE bytes (computing the checksum).  Returns 0, or -EINVAL (logged as
 * critical: a bug of the caller) when two non-empty slots of sb's roles hold one leg UUID, a
 * superblock that would brick the mirror: buf is then left zeroed, to be written nowhere.
 */
int superblock_encode(const struct superblock *sb, void *buf);

/* Whether text may be recorded as a leg's name (max SB_LEG_NAME_MAX) or path (SB_LEG_PATH_MAX):
 * it fits, is UTF-8 and has no control character. */
bool superblock_leg_text_ok(const char *text, size_t max);

/*
 * Decode SB_SIZE bytes.  Returns SB_ERROR_NONE and fills sb, or the first problem found;
 * *why (when not NULL) gets a one-line explanation (g_free it).
 */
enum sb_error superblock_decode(const void *buf, struct superblock *sb, char **why);

/* crc32c (Castagnoli), as used by the superblock; crc is 0 for a fresh checksum. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* Bytes the bitmap needs for data_size at region_size, rounded up to 4 KiB. */
uint64_t superblock_bitmap_space(uint64_t data_size, uint64_t region_size);

/*
 * The default region size for a data area: the smallest power of two from 512 KiB to 64 MiB
 * whose bitmap fits between the superblock and the data offset.
 */
uint64_t superblock_default_region_size(uint64_t data_size, uint64_t data_offset);

/* Read / write a leg's superblock with libdmio (synchronous).  0 or -errno. */
int superblock_read_raw(struct dmio_dev *dev, void *buf);
int superblock_write(struct dmio_dev *dev, const struct superblock *sb);

/* Names for examine and messages. */
const char *sb_role_name(enum sb_role role);
/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into out (37 bytes). */
void uuid_format(const uint8_t uuid[16], char out[37]);
/* A new random (version 4) UUID. */
void uuid_generate_random_v4(uint8_t uuid[16]);

#ifdef __cplusplus
}
#endif

#endif /* FUSEMIRROR_SUPERBLOCK_H */
