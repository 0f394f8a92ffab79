/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The bounce-page pool: page-aligned pages kept ready so that I/O to O_DIRECT devices with an
 * unaligned caller buffer never waits on allocation (the kernel's dm-io mempool, reserved by
 * dm_io_get()).  When the reserve is lent out, pages are allocated on demand and freed when
 * they come back.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "dmio-internal.h"

static void *page_alloc(void)
{
	void *page;

	if (posix_memalign(&page, DMIO_PAGE_SIZE, DMIO_PAGE_SIZE) != 0)
		return NULL;
	return page;
}

void dmio_pool_init(struct dmio_pool *pool)
{
	g_mutex_init(&pool->lock);
	pool->free_pages = NULL;
	pool->free_count = 0;
	pool->reserved = 0;
	pool->lent = 0;
}

int dmio_pool_resize(struct dmio_pool *pool, unsigned int num_pages)
{
	void **pages;
	int r = 0;

	g_mutex_lock(&pool->lock);
	while (pool->free_count > num_pages)
		free(pool->free_pages[--pool->free_count]);
	/* Room for every reserved page to be free at once. */
	pages = g_try_renew(void *, pool->free_pages, num_pages > 0 ? num_pages : 1);
	if (pages == NULL) {
		r = -ENOMEM;
		goto out;
	}
	pool->free_pages = pages;
	/* Pages lent out beyond the new size are freed when they come back. */
	while (pool->free_count + pool->lent < num_pages) {
		void *page = page_alloc();

		if (page == NULL) {
			r = -ENOMEM;
			break;
		}
		pool->free_pages[pool->free_count++] = page;
	}
	pool->reserved = num_pages;
out:
	g_mutex_unlock(&pool->lock);
	return r;
}

int dmio_pool_take(struct dmio_pool *pool, unsigned int count, void **pages)
{
	unsigned int i = 0;

	g_mutex_lock(&pool->lock);
	while (i < count && pool->free_count > 0) {
		pages[i++] = pool->free_pages[--pool->free_count];
		pool->lent++;
	}
	g_mutex_unlock(&pool->lock);
	for (; i < count; i++) {
		pages[i] = page_alloc();
		if (pages[i] == NULL) {
			dmio_pool_give(pool, i, pages);
			return -ENOMEM;
		}
	}
	return 0;
}

void dmio_pool_give(struct dmio_pool *pool, unsigned int count, void **pages)
{
	unsigned int i;

	g_mutex_lock(&pool->lock);
	for (i = 0; i < count; i++) {
		/* A page counts as lent only if it came from the reserve; extras are freed. */
		if (pool->lent > 0)
			pool->lent--;
		if (pool->free_count + pool->lent < pool->reserved)
			pool->free_pages[pool->free_count++] = pages[i];
		else
			free(pages[i]);
	}
	g_mutex_unlock(&pool->lock);
}

void dmio_pool_destroy(struct dmio_pool *pool)
{
	while (pool->free_count > 0)
		free(pool->free_pages[--pool->free_count]);
	g_free(pool->free_pages);
	pool->free_pages = NULL;
	g_mutex_clear(&pool->lock);
}
