/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The FUSE front end: the mirror as one regular file, mounted onto a file, through libfuse's
 * low-level API.  Inode 1 is the file.  A read or write is answered by the libfuse worker that
 * received it, once the mirror is done with it (usually the worker itself did the legs' I/O; a
 * write overlapping one in flight waits for it first, in the mirror's range lock); flushes and
 * fallocates are answered by the mirror's completions.
 */
#ifndef FUSEMIRROR_FRONTEND_H
#define FUSEMIRROR_FRONTEND_H

#include <glib.h>
#include <stdbool.h>

#include "config/config.h"
#include "mirror/mirror.h"

#ifdef __cplusplus
extern "C" {
#endif

struct frontend_options {
	const char *mountpoint; /* an absolute path to a regular file */
	enum cache_mode cache;
	bool allow_other;
	bool debug;		  /* libfuse's request tracing */
	const char *fuse_opts;	  /* extra comma-separated -o options, or NULL */
	unsigned int max_threads; /* FUSE worker threads; 0 = libfuse's default */
};

struct frontend;

/*
 * Mount the mirror onto o->mountpoint (which must exist and be a regular file).  Returns 0, or
 * -errno with *error set.  libfuse's signal handlers are installed: SIGTERM, SIGINT and SIGHUP
 * end frontend_run().
 */
int frontend_mount(struct mirror *m, const struct frontend_options *o, struct frontend **out,
		   GError **error);

/* Serve requests until unmounted or signalled.  Returns 0 or -errno. */
int frontend_run(struct frontend *fe);

/* Stop serving (from another thread or a signal handler's deferred work). */
void frontend_exit(struct frontend *fe);

/*
 * Wait for the replies still owed by the mirror, unmount, and free.  The mirror stays open.
 * NULL is ignored.
 */
void frontend_destroy(struct frontend *fe);

#ifdef __cplusplus
}
#endif

#endif /* FUSEMIRROR_FRONTEND_H */
