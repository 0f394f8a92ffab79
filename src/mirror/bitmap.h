/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The write-intent bitmap (md's, dm-log's): one bit per region of the data area, set and made
 * durable on every in-sync leg before the first write to a clean region, cleared lazily once the
 * region has been idle and the legs flushed.  After a crash, only the regions whose bits are set
 * can differ between legs.
 *
 * Writers: bitmap_start_write() before issuing, bitmap_end_write() once the legs answered.  The
 * fast path (region already dirty) takes no lock.  A writer counts itself in the region before it
 * looks at the bit, and the clearer clears the bit before it looks for writers: with sequentially
 * consistent atomics one of them always sees the other, so a region is never written with its
 * bit clear on disk.
 */
#ifndef FUSEMIRROR_BITMAP_H
#define FUSEMIRROR_BITMAP_H

#include <glib.h>
#include "mirror/atomics.h"
#include <stdbool.h>
#include <stdint.h>

#include "dmio.h"

#ifdef __cplusplus
extern "C" {
#endif

struct bitmap;

/*
 * Write the bitmap blocks in [first, first + count) (4 KiB blocks of the bitmap area, from
 * bits) to every leg that must have them.  Returns 0 when at least the in-sync legs have it,
 * or -errno.
 */
typedef int (*bitmap_persist_fn)(void *opaque, const void *bits, uint64_t first_block,
				 uint64_t count);

/* A bitmap of regions of region_size bytes over data_size bytes, all clear. */
struct bitmap *bitmap_new(uint64_t data_size, uint64_t region_size, bitmap_persist_fn persist,
			  void *opaque);
void bitmap_free(struct bitmap *b);

/* Load the on-disk bits (bitmap_bytes of them, as read from a leg). */
void bitmap_load(struct bitmap *b, const void *bits, size_t bytes);

uint64_t bitmap_regions(const struct bitmap *b);
uint64_t bitmap_region_size(const struct bitmap *b);
/* Bytes of the bitmap area in use, rounded up to 4 KiB (what is written to disk). */
uint64_t bitmap_disk_bytes(const struct bitmap *b);
bool bitmap_test(const struct bitmap *b, uint64_t region);
uint64_t bitmap_count(const struct bitmap *b);
/* The first set bit at or after region, or bitmap_regions() when none. */
uint64_t bitmap_next_set(const struct bitmap *b, uint64_t region);

/*
 * Before writing [offset, offset + len): make sure the bits of every region it touches are set
 * and durable.  Returns 0, or -errno when the bitmap cannot be persisted (the write must not be
 * issued).  Always pair with bitmap_end_write(), even on error.
 */
int bitmap_start_write(struct bitmap *b, uint64_t offset, uint64_t len);
void bitmap_end_write(struct bitmap *b, uint64_t offset, uint64_t len);

/* Set every bit (and persist), e.g. when a leg fails and regions must be remembered. */
int bitmap_set_all(struct bitmap *b);

/*
 * Lazy clearing: clear the bits of regions with no write in flight and none since `since`
 * (a g_get_monotonic_time() taken before the caller flushed every leg), and persist them.
 * Returns the number of bits cleared, or -errno.
 */
long bitmap_clear_idle(struct bitmap *b, gint64 since);

/* Clear one region's bit (after resync copied it) without persisting; 0 or -errno. */
void bitmap_clear_region(struct bitmap *b, uint64_t region);

/* Persist the whole bitmap as it is in memory. */
int bitmap_flush(struct bitmap *b);

#ifdef __cplusplus
}
#endif

#endif /* FUSEMIRROR_BITMAP_H */
