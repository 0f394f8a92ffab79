/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A range lock: holds on byte ranges of the mirror, taken in arrival order, where a hold waits
 * only for the earlier holds that overlap it.  Two writes to the same sectors therefore reach
 * every leg in the same order (md's wait_for_serialization, qemu's serialising requests), and
 * writes that do not overlap never wait on each other.
 *
 * There is no global lock: the mirror is cut into units of RANGELOCK_UNIT bytes hashed onto
 * RANGELOCK_BUCKETS buckets, each with its own mutex and its own list of holds in arrival order.
 * A hold enters every bucket its range touches, in ascending bucket order (so two holds never
 * wait on each other in a cycle), and in each waits until no earlier hold of that bucket overlaps
 * it.  Waiting is first come, first served: a stream of small holds cannot starve a large one.
 *
 * No allocation for a range of up to RANGELOCK_INLINE units (every write of up to 1 MiB): the
 * caller owns the struct rangelock_hold, typically inside its request.
 */
#ifndef FUSEMIRROR_RANGELOCK_H
#define FUSEMIRROR_RANGELOCK_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RANGELOCK_UNIT_SHIFT 20u /* 1 MiB units */
#define RANGELOCK_BUCKETS    64u
#define RANGELOCK_INLINE     2u /* buckets a hold carries without allocating */

struct rangelock;
struct rangelock_hold;

/* A hold's place in one bucket's list. */
struct rangelock_entry {
	struct rangelock_entry *prev, *next;
	struct rangelock_hold *hold;
	unsigned int bucket;
};

struct rangelock_hold {
	uint64_t start, end; /* [start, end), bytes */
	unsigned int count;  /* buckets entered */
	struct rangelock_entry *entries;
	struct rangelock_entry inline_entries[RANGELOCK_INLINE];
};

struct rangelock *rangelock_new(void);
/* Free a lock that no one holds.  NULL is ignored. */
void rangelock_free(struct rangelock *rl);

/*
 * Hold [offset, offset + len) (len 0 counts as 1 byte): blocks until every hold taken earlier
 * that overlaps it is released.  The hold stays valid until rangelock_release().
 */
void rangelock_acquire(struct rangelock *rl, struct rangelock_hold *h, uint64_t offset,
		       uint64_t len);

/* Like rangelock_acquire(), but never waits: false (nothing held) when it would. */
bool rangelock_try_acquire(struct rangelock *rl, struct rangelock_hold *h, uint64_t offset,
			   uint64_t len);

/* Give the range back; the holds that waited for it go on. */
void rangelock_release(struct rangelock *rl, struct rangelock_hold *h);

/* Holds in the lock now, taken or waiting (for tests: it takes every bucket's lock). */
unsigned int rangelock_count(struct rangelock *rl);

#ifdef __cplusplus
}
#endif

#endif /* FUSEMIRROR_RANGELOCK_H */
