/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tell ThreadSanitizer the ordering that glib's synchronisation gives (TSan builds only).
 *
 * Why: TSan sees happens-before only through what it intercepts (pthread_*, C11 and __atomic
 * operations in instrumented code) or is told through annotations.  Debian's libglib is not
 * built with -fsanitize=thread, and on Linux its GMutex and GCond (and so GOnce and the queue
 * of GThreadPool, built on them) are its own atomics and the futex system call, not pthread
 * mutexes: TSan sees none of the ordering they give, and reports the accesses they protect
 * (measured on the unit suites: 1,582 reports without this file, 1 with it, a real race).
 *
 * How: configure's TSAN_LDFLAGS links every program with -Wl,--wrap=SYMBOL for each function
 * below (the list there, TSAN_WRAPPED, must match this file), so that a call of SYMBOL from our
 * objects lands in __wrap_SYMBOL, which calls the real function (__real_SYMBOL) and tells TSan
 * what it did with the mutex annotations of <sanitizer/tsan_interface.h> (locks: the reports
 * then name the mutexes held, and lock-order inversions are caught too) or with __tsan_acquire
 * and __tsan_release on an address (GOnce, GThreadPool).  Calls made inside glib itself (the
 * thread pool taking its own queue's lock) are not redirected, and need not be: glib's own
 * memory accesses are not instrumented.  GCond's signal and broadcast need nothing: as for
 * pthread_cond_signal, the ordering comes from the mutex, released by the waiter in g_cond_wait
 * and taken again before it returns.  Neither do GRecMutex and GRWLock, which glib 2.74 builds
 * on pthread mutexes and rwlocks, nor GThread: g_thread_new and g_thread_join run
 * pthread_create and pthread_join, all intercepted by TSan (tests/glib-tsan-test.cc checks
 * these too).  GPrivate carries no ordering between threads, and we use no GAsyncQueue.
 *
 * This file is built into libdmio-core (which every program links) only with --enable-tsan.
 */
#include "config.h"

#include <glib.h>
#include <sanitizer/tsan_interface.h>

/* The real functions (the linker's names for the glib symbols) and our replacements. */
void __real_g_mutex_init(GMutex *mutex);
void __real_g_mutex_clear(GMutex *mutex);
void __real_g_mutex_lock(GMutex *mutex);
gboolean __real_g_mutex_trylock(GMutex *mutex);
void __real_g_mutex_unlock(GMutex *mutex);
void __real_g_cond_wait(GCond *cond, GMutex *mutex);
gboolean __real_g_cond_wait_until(GCond *cond, GMutex *mutex, gint64 end_time);
gboolean __real_g_once_init_enter(volatile void *location);
void __real_g_once_init_leave(volatile void *location, gsize result);
GThreadPool *__real_g_thread_pool_new(GFunc func, gpointer user_data, gint max_threads,
				      gboolean exclusive, GError **error);
gboolean __real_g_thread_pool_push(GThreadPool *pool, gpointer data, GError **error);
void __real_g_thread_pool_free(GThreadPool *pool, gboolean immediate, gboolean wait_);

void __wrap_g_mutex_init(GMutex *mutex);
void __wrap_g_mutex_clear(GMutex *mutex);
void __wrap_g_mutex_lock(GMutex *mutex);
gboolean __wrap_g_mutex_trylock(GMutex *mutex);
void __wrap_g_mutex_unlock(GMutex *mutex);
void __wrap_g_cond_wait(GCond *cond, GMutex *mutex);
gboolean __wrap_g_cond_wait_until(GCond *cond, GMutex *mutex, gint64 end_time);
gboolean __wrap_g_once_init_enter(volatile void *location);
void __wrap_g_once_init_leave(volatile void *location, gsize result);
GThreadPool *__wrap_g_thread_pool_new(GFunc func, gpointer user_data, gint max_threads,
				      gboolean exclusive, GError **error);
gboolean __wrap_g_thread_pool_push(GThreadPool *pool, gpointer data, GError **error);
void __wrap_g_thread_pool_free(GThreadPool *pool, gboolean immediate, gboolean wait_);

/* ---- GMutex ------------------------------------------------------------------------------- */

/*
 * A GMutex needs no g_mutex_init when it is static or zeroed: TSan then creates its mutex on the
 * first lock.  Destroying it lets TSan report a clear of a locked mutex, and forget the mutex
 * before its memory holds another one.
 */
void __wrap_g_mutex_init(GMutex *mutex)
{
	__real_g_mutex_init(mutex);
	__tsan_mutex_create(mutex, 0);
}

void __wrap_g_mutex_clear(GMutex *mutex)
{
	__tsan_mutex_destroy(mutex, 0);
	__real_g_mutex_clear(mutex);
}

void __wrap_g_mutex_lock(GMutex *mutex)
{
	__tsan_mutex_pre_lock(mutex, 0);
	__real_g_mutex_lock(mutex);
	__tsan_mutex_post_lock(mutex, 0, 0);
}

gboolean __wrap_g_mutex_trylock(GMutex *mutex)
{
	gboolean locked;

	__tsan_mutex_pre_lock(mutex, __tsan_mutex_try_lock);
	locked = __real_g_mutex_trylock(mutex);
	__tsan_mutex_post_lock(
	    mutex, __tsan_mutex_try_lock | (locked ? 0 : __tsan_mutex_try_lock_failed), 0);
	return locked;
}

void __wrap_g_mutex_unlock(GMutex *mutex)
{
	__tsan_mutex_pre_unlock(mutex, 0);
	__real_g_mutex_unlock(mutex);
	__tsan_mutex_post_unlock(mutex, 0);
}

/* ---- GCond: the wait releases the mutex and takes it again, as pthread_cond_wait --------- */

void __wrap_g_cond_wait(GCond *cond, GMutex *mutex)
{
	__tsan_mutex_pre_unlock(mutex, 0);
	__tsan_mutex_post_unlock(mutex, 0);
	__real_g_cond_wait(cond, mutex);
	__tsan_mutex_pre_lock(mutex, 0);
	__tsan_mutex_post_lock(mutex, 0, 0);
}

gboolean __wrap_g_cond_wait_until(GCond *cond, GMutex *mutex, gint64 end_time)
{
	gboolean signalled;

	__tsan_mutex_pre_unlock(mutex, 0);
	__tsan_mutex_post_unlock(mutex, 0);
	signalled = __real_g_cond_wait_until(cond, mutex, end_time);
	__tsan_mutex_pre_lock(mutex, 0);
	__tsan_mutex_post_lock(mutex, 0, 0);
	return signalled;
}

/* ---- GOnce -------------------------------------------------------------------------------- */

/*
 * g_once_init_leave publishes the value with an atomic store inside glib, which TSan does not
 * see: release on the location first.  The fast path of the g_once_init_enter macro is an
 * atomic load in our code, which acquires from that same address; the slow path (the function,
 * which may wait for the thread that initialises) acquires here when it returns FALSE.
 */
gboolean __wrap_g_once_init_enter(volatile void *location)
{
	gboolean first = __real_g_once_init_enter(location);

	if (!first)
		__tsan_acquire((void *)location);
	return first;
}

void __wrap_g_once_init_leave(volatile void *location, gsize result)
{
	__tsan_release((void *)location);
	__real_g_once_init_leave(location, result);
}

/* ---- GThreadPool -------------------------------------------------------------------------- */

/*
 * A task is handed to a worker through the pool's queue, inside glib: push releases on the task
 * pointer, and the worker acquires on it before it runs the task.  The worker runs our
 * function, not glib's, because g_thread_pool_new was given a trampoline with the caller's
 * function and data in a closure.  Each finished task releases on the closure, and
 * g_thread_pool_free (waiting) acquires on it: what the tasks did is ordered before what
 * follows the free.
 *
 * The pool's own memory needs more: its queue's nodes, its struct and its stop markers are
 * malloc'ed by the thread that calls new, push or free, and freed by a worker, with their order
 * kept by glib's queue lock alone.  TSan sees those malloc and free calls (it intercepts them
 * from any library) but not that lock, and would report each pair.  The calling thread ignores
 * its memory accesses while it is inside glib's new, push and free, which touch no memory of
 * ours: what glib allocates there starts with no history, and its later free by a worker has
 * nothing to race with.  The synchronisation TSan sees meanwhile (pthread_create of the
 * workers) is still recorded.
 */

/* Exported by libtsan (tsan_interface.cpp) but not declared in gcc 12's tsan_interface.h. */
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);

struct pool_closure {
	GFunc func;
	gpointer user_data;
};

static void pool_trampoline(gpointer data, gpointer user_data)
{
	struct pool_closure *closure = user_data;

	__tsan_acquire(data);
	closure->func(data, closure->user_data);
	__tsan_release(closure);
}

GThreadPool *__wrap_g_thread_pool_new(GFunc func, gpointer user_data, gint max_threads,
				      gboolean exclusive, GError **error)
{
	struct pool_closure *closure = g_new(struct pool_closure, 1);
	GThreadPool *pool;

	closure->func = func;
	closure->user_data = user_data;
	__tsan_ignore_thread_begin();
	pool = __real_g_thread_pool_new(pool_trampoline, closure, max_threads, exclusive, error);
	__tsan_ignore_thread_end();
	if (pool == NULL)
		g_free(closure);
	return pool;
}

gboolean __wrap_g_thread_pool_push(GThreadPool *pool, gpointer data, GError **error)
{
	gboolean pushed;

	__tsan_release(data);
	__tsan_ignore_thread_begin();
	pushed = __real_g_thread_pool_push(pool, data, error);
	__tsan_ignore_thread_end();
	return pushed;
}

/*
 * With wait_, glib returns once every worker is back waiting on the queue, past our trampoline:
 * the closure can go.  Without it, tasks may still run after the free returns, and the closure
 * is left behind (a few bytes, in a TSan build only).
 */
void __wrap_g_thread_pool_free(GThreadPool *pool, gboolean immediate, gboolean wait_)
{
	struct pool_closure *closure;

	/* Reading the pool's fields too: the last worker frees the struct, after glib's lock. */
	__tsan_ignore_thread_begin();
	closure = pool->func == pool_trampoline ? pool->user_data : NULL;
	__real_g_thread_pool_free(pool, immediate, wait_);
	__tsan_ignore_thread_end();
	if (closure != NULL && wait_) {
		__tsan_acquire(closure);
		g_free(closure);
	}
}
