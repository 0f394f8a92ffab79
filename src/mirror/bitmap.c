/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The write-intent bitmap (bitmap.h).
 *
 * In memory the bits are 64-bit atomic words; on disk bit i is bit (i % 8) of byte i / 8.  The
 * invariant, at every instant: a bit set in memory is set on disk.  A bit is set in memory only
 * after the disk image carrying it was persisted (under persist_lock), so a writer that finds it
 * set on the lock-free fast path may go ahead; clearing in memory first is always safe.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mirror/bitmap.h"

#define BLOCK 4096u

struct bitmap {
	uint64_t regions;
	uint64_t region_size;
	unsigned int region_shift;
	uint64_t words;
	atomic_ullong *bits;
	atomic_uint *inflight;	  /* writes in flight per region */
	atomic_llong *last_write; /* g_get_monotonic_time() of each region's last finished write */
	GMutex persist_lock;
	uint8_t *disk; /* the on-disk image, built under persist_lock */
	uint64_t disk_bytes;
	bitmap_persist_fn persist;
	void *opaque;
};

struct bitmap *bitmap_new(uint64_t data_size, uint64_t region_size, bitmap_persist_fn persist,
			  void *opaque)
{
	struct bitmap *b = g_new0(struct bitmap, 1);

	b->region_size = region_size;
	b->region_shift = (unsigned int)g_bit_nth_lsf(region_size, -1);
	b->regions = (data_size + region_size - 1) >> b->region_shift;
	b->words = (b->regions + 63) / 64;
	b->bits = g_new0(atomic_ullong, MAX(b->words, 1));
	b->inflight = g_new0(atomic_uint, MAX(b->regions, 1));
	b->last_write = g_new0(atomic_llong, MAX(b->regions, 1));
	b->disk_bytes = ((b->regions + 7) / 8 + BLOCK - 1) / BLOCK * BLOCK;
	b->disk = aligned_alloc(BLOCK, MAX(b->disk_bytes, BLOCK));
	memset(b->disk, 0, MAX(b->disk_bytes, BLOCK));
	b->persist = persist;
	b->opaque = opaque;
	g_mutex_init(&b->persist_lock);
	return b;
}

void bitmap_free(struct bitmap *b)
{
	if (b == NULL)
		return;
	g_mutex_clear(&b->persist_lock);
	g_free(b->bits);
	g_free(b->inflight);
	g_free(b->last_write);
	free(b->disk);
	g_free(b);
}

void bitmap_load(struct bitmap *b, const void *bits, size_t bytes)
{
	const uint8_t *p = bits;
	uint64_t i;

	for (i = 0; i < b->regions && i / 8 < bytes; i++)
		if (p[i / 8] & (1u << (i % 8)))
			atomic_fetch_or(&b->bits[i / 64], 1ull << (i % 64));
}

uint64_t bitmap_regions(const struct bitmap *b)
{
	return b->regions;
}

uint64_t bitmap_region_size(const struct bitmap *b)
{
	return b->region_size;
}

uint64_t bitmap_disk_bytes(const struct bitmap *b)
{
	return b->disk_bytes;
}

bool bitmap_test(const struct bitmap *b, uint64_t region)
{
	return (atomic_load(&b->bits[region / 64]) >> (region % 64)) & 1;
}

uint64_t bitmap_count(const struct bitmap *b)
{
	uint64_t i, n = 0;

	for (i = 0; i < b->words; i++)
		n += (uint64_t)__builtin_popcountll(atomic_load(&b->bits[i]));
	return n;
}

uint64_t bitmap_next_set(const struct bitmap *b, uint64_t region)
{
	while (region < b->regions) {
		uint64_t word = atomic_load(&b->bits[region / 64]) >> (region % 64);

		if (word != 0)
			return MIN(region + (uint64_t)__builtin_ctzll(word), b->regions);
		region = (region / 64 + 1) * 64;
	}
	return b->regions;
}

/*
 * Copy blocks [first, last] of the in-memory bits into the disk image (under persist_lock): one
 * little-endian 64-bit word per 8 bytes, so that bit i lands in byte i / 8, bit i % 8.
 */
static void build_blocks(struct bitmap *b, uint64_t first, uint64_t last)
{
	uint64_t w = first * BLOCK / 8, end = MIN((last + 1) * BLOCK, b->disk_bytes) / 8;

	for (; w < end; w++) {
		uint64_t word = GUINT64_TO_LE(w < b->words ? atomic_load(&b->bits[w]) : 0);

		memcpy(b->disk + w * 8, &word, 8);
	}
}

static int write_blocks(struct bitmap *b, uint64_t first, uint64_t last)
{
	return b->persist(b->opaque, b->disk + first * BLOCK, first, last - first + 1);
}

static int persist_blocks(struct bitmap *b, uint64_t first, uint64_t last)
{
	build_blocks(b, first, last);
	return write_blocks(b, first, last);
}

static void disk_set(struct bitmap *b, uint64_t region)
{
	b->disk[region / 8] |= (uint8_t)(1u << (region % 8));
}

static uint64_t block_of(uint64_t region)
{
	return region / 8 / BLOCK;
}

static void region_range(const struct bitmap *b, uint64_t offset, uint64_t len, uint64_t *first,
			 uint64_t *last)
{
	*first = offset >> b->region_shift;
	*last = (offset + MAX(len, 1) - 1) >> b->region_shift;
	if (*last >= b->regions)
		*last = b->regions - 1;
}

int bitmap_start_write(struct bitmap *b, uint64_t offset, uint64_t len)
{
	uint64_t first, last, r, lo = UINT64_MAX, hi = 0;
	bool all_set = true;
	int err = 0;

	region_range(b, offset, len, &first, &last);
	for (r = first; r <= last; r++)
		atomic_fetch_add(&b->inflight[r], 1);
	for (r = first; r <= last && all_set; r++)
		all_set = bitmap_test(b, r);
	if (all_set)
		return 0;

	/*
	 * A clean region: make its bit durable, then set it in memory, so that a concurrent writer
	 * of the same region cannot take the fast path before the bit is on disk.
	 */
	g_mutex_lock(&b->persist_lock);
	for (r = first; r <= last; r++) {
		if (bitmap_test(b, r))
			continue;
		if (lo == UINT64_MAX)
			lo = block_of(r);
		hi = block_of(r);
	}
	if (lo != UINT64_MAX) {
		build_blocks(b, lo, hi);
		for (r = first; r <= last; r++)
			disk_set(b, r);
		err = write_blocks(b, lo, hi);
		/* On failure memory keeps only what was durable before: the older writers' bits. */
		if (err == 0)
			for (r = first; r <= last; r++)
				atomic_fetch_or(&b->bits[r / 64], 1ull << (r % 64));
	}
	g_mutex_unlock(&b->persist_lock);
	return err;
}

void bitmap_end_write(struct bitmap *b, uint64_t offset, uint64_t len)
{
	gint64 now = g_get_monotonic_time();
	uint64_t first, last, r;

	region_range(b, offset, len, &first, &last);
	for (r = first; r <= last; r++) {
		long long prev = atomic_load(&b->last_write[r]);

		/* Never back: a write that overtook this one may have stored a later time. */
		while (prev < now && !atomic_compare_exchange_weak(&b->last_write[r], &prev, now))
			;
		atomic_fetch_sub(&b->inflight[r], 1);
	}
}

int bitmap_set_all(struct bitmap *b)
{
	uint64_t i;
	int err;

	if (b->regions == 0)
		return 0;
	g_mutex_lock(&b->persist_lock);
	for (i = 0; i < b->regions; i++)
		disk_set(b, i);
	err = write_blocks(b, 0, block_of(b->regions - 1));
	if (err == 0)
		for (i = 0; i < b->regions; i++)
			atomic_fetch_or(&b->bits[i / 64], 1ull << (i % 64));
	g_mutex_unlock(&b->persist_lock);
	return err;
}

long bitmap_clear_idle(struct bitmap *b, gint64 since)
{
	uint64_t r, lo = UINT64_MAX, hi = 0;
	long cleared = 0;
	int err = 0;

	g_mutex_lock(&b->persist_lock);
	for (r = bitmap_next_set(b, 0); r < b->regions; r = bitmap_next_set(b, r + 1)) {
		if (atomic_load(&b->inflight[r]) != 0 || atomic_load(&b->last_write[r]) >= since)
			continue;
		atomic_fetch_and(&b->bits[r / 64], ~(1ull << (r % 64)));
		/* A writer may have counted itself in after our look, seeing the bit still set. */
		if (atomic_load(&b->inflight[r]) != 0 || atomic_load(&b->last_write[r]) >= since) {
			atomic_fetch_or(&b->bits[r / 64], 1ull << (r % 64));
			continue;
		}
		cleared++;
		lo = MIN(lo, block_of(r));
		hi = MAX(hi, block_of(r));
	}
	if (lo != UINT64_MAX)
		err = persist_blocks(b, lo, hi);
	g_mutex_unlock(&b->persist_lock);
	return err < 0 ? err : cleared;
}

void bitmap_clear_region(struct bitmap *b, uint64_t region)
{
	if (region < b->regions)
		atomic_fetch_and(&b->bits[region / 64], ~(1ull << (region % 64)));
}

int bitmap_flush(struct bitmap *b)
{
	int err = 0;

	g_mutex_lock(&b->persist_lock);
	if (b->disk_bytes > 0)
		err = persist_blocks(b, 0, b->disk_bytes / BLOCK - 1);
	g_mutex_unlock(&b->persist_lock);
	return err;
}
