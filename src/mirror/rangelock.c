/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The range lock (rangelock.h).
 *
 * Each bucket keeps its holds in one list, in arrival order, under its own mutex.  A hold in a
 * bucket may go on when no hold before it in that list overlaps it.  Lists are short (the
 * requests in flight on that bucket's units), so a scan beats a tree.
 *
 * Why no cycle: a hold enters its buckets in ascending bucket order and, in each, waits only for
 * holds ahead of it there.  A hold ahead of it in bucket b entered b earlier, so it is done with
 * every bucket below b; it waits, if at all, in b (for a hold further ahead) or in a higher
 * bucket.  Every chain of waits climbs in (bucket, position) and ends.
 */
#include "config.h"

#include <glib.h>

#include "mirror/rangelock.h"

struct bucket {
	GMutex lock; /* protects the list and waiters */
	GCond cond;  /* a hold left the list and someone waits */
	struct rangelock_entry *head, *tail;
	unsigned int waiters;
} __attribute__((aligned(64)));

struct rangelock {
	struct bucket buckets[RANGELOCK_BUCKETS];
};

struct rangelock *rangelock_new(void)
{
	struct rangelock *rl = g_new0(struct rangelock, 1);
	unsigned int i;

	for (i = 0; i < RANGELOCK_BUCKETS; i++) {
		g_mutex_init(&rl->buckets[i].lock);
		g_cond_init(&rl->buckets[i].cond);
	}
	return rl;
}

void rangelock_free(struct rangelock *rl)
{
	unsigned int i;

	if (rl == NULL)
		return;
	for (i = 0; i < RANGELOCK_BUCKETS; i++) {
		g_assert(rl->buckets[i].head == NULL);
		g_cond_clear(&rl->buckets[i].cond);
		g_mutex_clear(&rl->buckets[i].lock);
	}
	g_free(rl);
}

unsigned int rangelock_count(struct rangelock *rl)
{
	unsigned int i, n = 0;
	struct rangelock_entry *e;

	/* A hold is counted in its first bucket: the one where it has entries[0]. */
	for (i = 0; i < RANGELOCK_BUCKETS; i++) {
		g_mutex_lock(&rl->buckets[i].lock);
		for (e = rl->buckets[i].head; e != NULL; e = e->next)
			n += e == &e->hold->entries[0];
		g_mutex_unlock(&rl->buckets[i].lock);
	}
	return n;
}

/*
 * Fill h with its range and its buckets in ascending order: the buckets of its units, every one
 * when it covers as many units as there are buckets.
 */
static void hold_init(struct rangelock_hold *h, uint64_t offset, uint64_t len)
{
	uint64_t first = offset >> RANGELOCK_UNIT_SHIFT;
	uint64_t last = (offset + MAX(len, 1) - 1) >> RANGELOCK_UNIT_SHIFT;
	unsigned int n, i, lo, wrapped;

	h->start = offset;
	h->end = offset + MAX(len, 1);
	n = last - first + 1 >= RANGELOCK_BUCKETS ? RANGELOCK_BUCKETS
						  : (unsigned int)(last - first + 1);
	h->count = n;
	h->entries = n <= RANGELOCK_INLINE ? h->inline_entries : g_new(struct rangelock_entry, n);
	/* The buckets first % B .. last % B may wrap around: the wrapped ones come first. */
	lo = (unsigned int)(first % RANGELOCK_BUCKETS);
	wrapped = lo + n > RANGELOCK_BUCKETS ? lo + n - RANGELOCK_BUCKETS : 0;
	for (i = 0; i < n; i++)
		h->entries[i].bucket = i < wrapped ? i : lo + (i - wrapped);
	for (i = 0; i < n; i++) {
		h->entries[i].hold = h;
		h->entries[i].prev = h->entries[i].next = NULL;
	}
}

static void hold_clear(struct rangelock_hold *h)
{
	if (h->entries != h->inline_entries)
		g_free(h->entries);
	h->entries = NULL;
	h->count = 0;
}

static bool overlap(const struct rangelock_hold *a, const struct rangelock_hold *b)
{
	return a->start < b->end && b->start < a->end;
}

/* Whether a hold ahead of e in its bucket overlaps it.  Under the bucket's lock. */
static bool blocked(const struct rangelock_entry *e)
{
	const struct rangelock_entry *p;

	for (p = e->prev; p != NULL; p = p->prev)
		if (overlap(p->hold, e->hold))
			return true;
	return false;
}

static void append(struct bucket *b, struct rangelock_entry *e)
{
	e->prev = b->tail;
	e->next = NULL;
	if (b->tail != NULL)
		b->tail->next = e;
	else
		b->head = e;
	b->tail = e;
}

/* Take e out of its bucket and wake whoever waits there.  Under the bucket's lock. */
static void unlink_entry(struct bucket *b, struct rangelock_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		b->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		b->tail = e->prev;
	e->prev = e->next = NULL;
	if (b->waiters > 0)
		g_cond_broadcast(&b->cond);
}

static void leave(struct rangelock *rl, struct rangelock_hold *h, unsigned int entered)
{
	unsigned int i;

	for (i = 0; i < entered; i++) {
		struct bucket *b = &rl->buckets[h->entries[i].bucket];

		g_mutex_lock(&b->lock);
		unlink_entry(b, &h->entries[i]);
		g_mutex_unlock(&b->lock);
	}
}

/*
 * Enter every bucket of h in ascending order; in each, wait while a hold ahead overlaps it, or,
 * when it may not wait, leave all it entered and return false.
 */
static bool enter(struct rangelock *rl, struct rangelock_hold *h, uint64_t offset, uint64_t len,
		  bool may_wait)
{
	unsigned int i;

	hold_init(h, offset, len);
	for (i = 0; i < h->count; i++) {
		struct rangelock_entry *e = &h->entries[i];
		struct bucket *b = &rl->buckets[e->bucket];
		bool busy;

		g_mutex_lock(&b->lock);
		append(b, e);
		busy = blocked(e);
		if (busy && may_wait) {
			b->waiters++;
			do
				g_cond_wait(&b->cond, &b->lock);
			while (blocked(e));
			b->waiters--;
			busy = false;
		} else if (busy) {
			unlink_entry(b, e);
		}
		g_mutex_unlock(&b->lock);
		if (busy) {
			leave(rl, h, i);
			hold_clear(h);
			return false;
		}
	}
	return true;
}

void rangelock_acquire(struct rangelock *rl, struct rangelock_hold *h, uint64_t offset,
		       uint64_t len)
{
	enter(rl, h, offset, len, true);
}

bool rangelock_try_acquire(struct rangelock *rl, struct rangelock_hold *h, uint64_t offset,
			   uint64_t len)
{
	return enter(rl, h, offset, len, false);
}

void rangelock_release(struct rangelock *rl, struct rangelock_hold *h)
{
	leave(rl, h, h->count);
	hold_clear(h);
}
