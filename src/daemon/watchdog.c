/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The systemd watchdog thread: see watchdog.h. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <glib.h>

#include "daemon/notify.h"
#include "daemon/watchdog.h"

#define CHECK_BYTES 4096
/* An attribute every mirror has (xattr.c), answered by the FUSE loop without touching a leg. */
#define CHECK_XATTR "user.fusemirror.state"

struct watchdog {
	struct mirror *mirror; /* read only while in_read, which stop_io waits out */
	char *mountpoint;
	gint64 interval_us;
	GThread *thread;
	/* lock, a leaf, protects stopping and in_read; cond signals both changes. */
	GMutex lock;
	GCond cond;
	bool stopping;
	bool in_read;
};

/* Whether the read through the mirror answered (any result: an error is an answer). */
static bool check_mirror(struct watchdog *w, void *buf)
{
	bool go;

	g_mutex_lock(&w->lock);
	go = !w->stopping;
	w->in_read = go;
	g_mutex_unlock(&w->lock);
	if (!go)
		return false;
	(void)mirror_read_wait(w->mirror, buf, CHECK_BYTES, 0);
	g_mutex_lock(&w->lock);
	w->in_read = false;
	g_cond_broadcast(&w->cond);
	g_mutex_unlock(&w->lock);
	return true;
}

/* Whether the FUSE loop answered a getxattr (ENOTCONN: the connection is gone). */
static bool check_loop(const struct watchdog *w)
{
	char value[64];

	return getxattr(w->mountpoint, CHECK_XATTR, value, sizeof(value)) >= 0 ||
	       (errno != ENOTCONN && errno != EINTR);
}

static gpointer watchdog_thread(gpointer data)
{
	struct watchdog *w = data;
	void *buf = g_malloc(CHECK_BYTES);

	for (;;) {
		gint64 next = g_get_monotonic_time() + w->interval_us;
		bool alive = check_mirror(w, buf) && check_loop(w);

		g_mutex_lock(&w->lock);
		if (alive && !w->stopping)
			notify_systemd("WATCHDOG=1");
		while (!w->stopping && g_get_monotonic_time() < next)
			g_cond_wait_until(&w->cond, &w->lock, next);
		if (w->stopping) {
			g_mutex_unlock(&w->lock);
			break;
		}
		g_mutex_unlock(&w->lock);
	}
	g_free(buf);
	return NULL;
}

struct watchdog *watchdog_start(struct mirror *m, const char *mountpoint)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	struct watchdog *w;
	guint64 us;

	if (usec == NULL || !g_ascii_string_to_unsigned(usec, 10, 1, G_MAXINT64, &us, NULL))
		return NULL;
	if (pid != NULL && *pid != '\0') {
		guint64 p;

		if (!g_ascii_string_to_unsigned(pid, 10, 1, G_MAXINT32, &p, NULL) ||
		    (pid_t)p != getpid())
			return NULL;
	}
	w = g_new0(struct watchdog, 1);
	w->mirror = m;
	w->mountpoint = g_strdup(mountpoint);
	/* Half the timeout, as sd_watchdog_enabled(3) advises. */
	w->interval_us = (gint64)(us / 2);
	g_mutex_init(&w->lock);
	g_cond_init(&w->cond);
	g_message("systemd watchdog: a ping every %" G_GINT64_FORMAT " ms once the engine and the "
		  "FUSE loop answered",
		  w->interval_us / 1000);
	w->thread = g_thread_new("watchdog", watchdog_thread, w);
	return w;
}

void watchdog_stop_io(struct watchdog *w)
{
	if (w == NULL)
		return;
	g_mutex_lock(&w->lock);
	w->stopping = true;
	g_cond_broadcast(&w->cond);
	while (w->in_read)
		g_cond_wait(&w->cond, &w->lock);
	g_mutex_unlock(&w->lock);
}

void watchdog_free(struct watchdog *w)
{
	if (w == NULL)
		return;
	watchdog_stop_io(w);
	g_thread_join(w->thread);
	g_mutex_clear(&w->lock);
	g_cond_clear(&w->cond);
	g_free(w->mountpoint);
	g_free(w);
}
