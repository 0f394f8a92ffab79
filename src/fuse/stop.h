/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * When the front end stops: on SIGTERM, SIGINT (SIGHUP too when the caller does not reload on
 * it), or on the control command stop.
 *
 * A signal handler only writes the signal's number to a pipe (async-signal-safe); one thread,
 * the stopper, reads the pipe and decides.  With the file unused, or stop-timeout 0, it stops at
 * once.  Otherwise it logs what holds the file and waits up to stop-timeout for the last close
 * (an eventfd of the opens table), logging the holders again every STOPPER_LOG_INTERVAL
 * seconds; a second signal, or the timeout, stops anyway.  "Stop" is the caller's exit function
 * (fuse_session_exit and a wake-up of the loop), called from the stopper thread.
 */
#ifndef FUSEMIRROR_STOP_H
#define FUSEMIRROR_STOP_H

#include <glib.h>
#include <stdbool.h>

#include "fuse/opens.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STOPPER_LOG_INTERVAL 10 /* seconds between two "still held" messages */

struct stopper;

/*
 * Install the handlers of SIGTERM, SIGINT and SIGHUP (and ignore SIGPIPE, as libfuse does) and
 * start the stopper thread.  One stopper per process.  name and path are for the messages;
 * timeout is stop-timeout in seconds.  exit_fn(opaque) must make the loop return; it may be
 * called again while it has not (every 50 ms), and must then be cheap.  With reload_fn,
 * SIGHUP calls reload_fn(opaque) on the stopper's thread instead of stopping.  Returns NULL
 * with *error on failure.
 */
struct stopper *stopper_start(struct opens *opens, const char *name, const char *path,
			      unsigned int timeout, bool (*exit_fn)(void *opaque),
			      void (*reload_fn)(void *opaque), void *opaque, GError **error);

/* Stop now (an accepted control command stop; opens_begin_stop has been called). */
void stopper_request(struct stopper *s);

/*
 * Join the stopper thread and free it.  From now on the stop signals are ignored: a second
 * signal must not cut the final flush short.  NULL is ignored.
 */
void stopper_free(struct stopper *s);

#ifdef __cplusplus
}
#endif

#endif /* FUSEMIRROR_STOP_H */
