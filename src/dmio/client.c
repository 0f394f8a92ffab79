/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Clients: an engine plus a bounce-page pool, and the default client behind the seed's
 * dmio_get() / dmio_put().
 */
#include "config.h"

#include <errno.h>

#include "dmio-internal.h"

#define DEFAULT_THREADS 16

static __thread bool in_engine_thread;

bool dmio_in_engine_thread(void)
{
	return in_engine_thread;
}

void dmio_set_engine_thread(void)
{
	in_engine_thread = true;
}

static const struct dmio_engine_ops *engine_by_id(enum dmio_engine engine)
{
	switch (engine) {
	case DMIO_ENGINE_THREADS:
		return &dmio_engine_threads;
	case DMIO_ENGINE_IO_URING:
#ifdef HAVE_LIBURING
		return &dmio_engine_io_uring;
#else
		return NULL;
#endif
	}
	return NULL;
}

int dmio_client_create(const struct dmio_client_opts *opts, struct dmio_client **out)
{
	struct dmio_client_opts o = { .engine = DMIO_ENGINE_THREADS };
	struct dmio_client *client;
	int r;

	if (out == NULL)
		return -EINVAL;
	*out = NULL;
	if (opts != NULL)
		o = *opts;
	if (o.engine != DMIO_ENGINE_THREADS && o.engine != DMIO_ENGINE_IO_URING)
		return -EINVAL;
	if (o.threads == 0)
		o.threads = DEFAULT_THREADS;
	if (o.threads > 1024)
		return -EINVAL;

	client = g_new0(struct dmio_client, 1);
	client->engine = engine_by_id(o.engine);
	if (client->engine == NULL) {
		g_free(client);
		return -ENOTSUP;
	}
	g_mutex_init(&client->lock);
	g_cond_init(&client->idle);
	dmio_pool_init(&client->pool);
	atomic_init(&client->bounces, 0);
	dmio_client_pipes_init(client);
	r = dmio_pool_resize(&client->pool, o.reserved_pages);
	if (r == 0)
		r = client->engine->create(&o, &client->engine_priv);
	if (r < 0) {
		dmio_client_pipes_destroy(client);
		dmio_pool_destroy(&client->pool);
		g_cond_clear(&client->idle);
		g_mutex_clear(&client->lock);
		g_free(client);
		return r;
	}
	*out = client;
	return 0;
}

int dmio_client_resize(struct dmio_client *client, unsigned int num_pages)
{
	if (client == NULL)
		return -EINVAL;
	return dmio_pool_resize(&client->pool, num_pages);
}

static void client_free(struct dmio_client *client)
{
	client->engine->destroy(client->engine_priv);
	dmio_client_pipes_destroy(client);
	dmio_pool_destroy(&client->pool);
	g_cond_clear(&client->idle);
	g_mutex_clear(&client->lock);
	g_free(client);
}

static gpointer client_free_thread(gpointer data)
{
	client_free(data);
	return NULL;
}

void dmio_client_lent_begin(struct dmio_client *client)
{
	g_mutex_lock(&client->lock);
	client->lent++;
	g_mutex_unlock(&client->lock);
}

void dmio_client_lent_end(struct dmio_client *client)
{
	bool last;

	g_mutex_lock(&client->lock);
	last = --client->lent == 0 && client->orphaned;
	g_mutex_unlock(&client->lock);
	/*
	 * The destroy that was put off: from a thread of its own, as this may be one of the
	 * engine's threads, which the engine's destroy waits for.
	 */
	if (last)
		g_thread_unref(g_thread_new("dmio-free", client_free_thread, client));
}

void dmio_client_destroy(struct dmio_client *client)
{
	unsigned int lent;
	bool orphan;

	if (client == NULL)
		return;
	g_mutex_lock(&client->lock);
	atomic_store(&client->destroying, true);
	/* A call that ended before it saw destroying does not wake us: look again every ms. */
	while (atomic_load(&client->inflight) > 0)
		g_cond_wait_until(&client->idle, &client->lock,
				  g_get_monotonic_time() + G_TIME_SPAN_MILLISECOND);
	/* Abandoned jobs that may never return still use the engine: the last one frees it. */
	lent = client->lent;
	orphan = lent > 0;
	client->orphaned = orphan;
	g_mutex_unlock(&client->lock);
	if (orphan) {
		g_message("dmio: %u calls still wait for a device that was given up on; the client "
			  "is freed when they return",
			  lent);
		return;
	}
	client_free(client);
}

const char *dmio_client_engine_name(const struct dmio_client *client)
{
	return client->engine->name;
}

uint64_t dmio_client_bounces(const struct dmio_client *client)
{
	return atomic_load(&((struct dmio_client *)client)->bounces);
}

void dmio_client_call_begin(struct dmio_client *client)
{
	atomic_fetch_add(&client->inflight, 1);
}

/*
 * The data path pays one atomic per call; the lock and the wake-up (a system call) only once
 * dmio_client_destroy() waits.  Without destroying set, the client is not touched after the
 * decrement: the destroyer may free it as soon as it sees the count reach zero.
 */
void dmio_client_call_end(struct dmio_client *client)
{
	if (!atomic_load(&client->destroying)) {
		atomic_fetch_sub(&client->inflight, 1);
		return;
	}
	g_mutex_lock(&client->lock);
	if (atomic_fetch_sub(&client->inflight, 1) == 1)
		g_cond_broadcast(&client->idle);
	g_mutex_unlock(&client->lock);
}

/* ---- The default client: the seed's API has no client argument ---------------------------- */

static GMutex default_lock;
static struct dmio_client *default_client;
static unsigned int default_pages; /* pages reserved by outstanding dmio_get() calls */
static unsigned int default_users; /* dmio_get() calls not yet matched by dmio_put() */

struct dmio_client *dmio_default_client(void)
{
	struct dmio_client *client;

	g_mutex_lock(&default_lock);
	if (default_client == NULL && dmio_client_create(NULL, &default_client) < 0)
		default_client = NULL;
	client = default_client;
	g_mutex_unlock(&default_lock);
	return client;
}

int dmio_get(unsigned int num_pages)
{
	int r = 0;

	g_mutex_lock(&default_lock);
	if (default_client == NULL)
		r = dmio_client_create(NULL, &default_client);
	if (r == 0)
		r = dmio_client_resize(default_client, default_pages + num_pages);
	if (r == 0) {
		default_pages += num_pages;
		default_users++;
	}
	g_mutex_unlock(&default_lock);
	return r;
}

void dmio_put(unsigned int num_pages)
{
	struct dmio_client *gone = NULL;

	g_mutex_lock(&default_lock);
	if (default_client == NULL || default_users == 0) {
		g_mutex_unlock(&default_lock);
		g_warning("dmio_put() without a matching dmio_get()");
		return;
	}
	default_pages = num_pages > default_pages ? 0 : default_pages - num_pages;
	if (--default_users == 0) {
		gone = default_client;
		default_client = NULL;
		default_pages = 0;
	} else {
		/* Shrinking never fails. */
		(void)dmio_client_resize(default_client, default_pages);
	}
	g_mutex_unlock(&default_lock);
	dmio_client_destroy(gone);
}
