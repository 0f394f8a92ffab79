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
#include <sys/types.h>

#include "config/config.h"
#include "mirror/mirror.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The kernel's FUSE_INIT request is at most this long (header and fuse_init_in). */
#define FRONTEND_INIT_MAX 256

/*
 * What a restart passes from the old daemon process to the new one, which serves the same FUSE
 * connection without mounting (takeover): the connection's descriptor, the FUSE_INIT request
 * the kernel sent once (the new libfuse session must see it before it answers anything, and
 * the kernel never sends it again), the file's attributes (the new process cannot stat the
 * mountpoint: only it could answer), the opens the kernel still holds, a count of restarts, and
 * the requests read and not yet begun when the restart came (answered by the new process).
 */
struct frontend_handover {
	int fd; /* /dev/fuse, without FD_CLOEXEC */
	/* Aligned as a fuse_in_header. */
	unsigned char init[FRONTEND_INIT_MAX] __attribute__((aligned(8)));
	size_t init_len;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	char *opens; /* opens_export's text */
	unsigned int restarts;
	/*
	 * The requests the old process had read but not begun (a memfd of records, see
	 * park_export in frontend.c), and how many; kept_fd -1: none.
	 */
	int kept_fd;
	unsigned int kept;
	/*
	 * After a crash (the descriptor from systemd's store): ask the kernel to send again the
	 * requests the dead process had read and not answered (FUSE_NOTIFY_RESEND).
	 */
	bool resend;
};

struct frontend_options {
	const char *mountpoint; /* an absolute path to a regular file */
	enum cache_mode cache;
	/* Want FUSE_CAP_SPLICE_READ: large writes' payloads spliced on to the legs. */
	bool splice;
	bool allow_other;
	bool debug;		  /* libfuse's request tracing */
	const char *fuse_opts;	  /* extra comma-separated -o options, or NULL */
	unsigned int max_threads; /* FUSE worker threads; 0 = libfuse's default */
	enum fuse_transport_mode transport; /* fuse-transport: FUSE over io_uring or /dev/fuse */
	/* SIGTERM while the file is open: seconds to wait for the last close (0: none). */
	unsigned int stop_timeout;
	/*
	 * Called after a control command add or remove succeeded, from the FUSE worker that ran
	 * it; save is false with --no-save.  May be NULL.
	 */
	void (*on_membership)(void *opaque, struct mirror *m, bool save);
	/*
	 * SIGHUP, from the stopper's thread; NULL: SIGHUP stops as SIGTERM does.  Returns true
	 * when the reload should go on as a restart (the daemon's binary was upgraded): the
	 * front end then restarts as for the control command restart (on_restart decides).
	 */
	bool (*on_reload)(void *opaque, struct mirror *m);
	/*
	 * The control command restart, from the FUSE worker that runs it: true when the daemon
	 * can restart (its configuration loads), else false with *error and nothing changes.  On
	 * true the loop ends as for a stop, without unmounting, and frontend_restarting() says so.
	 * NULL: restart is refused (ENOTSUP).
	 */
	bool (*on_restart)(void *opaque, GError **error);
	/*
	 * Once the connection's FUSE_INIT is known (read, or passed on by a takeover): h has the
	 * connection's descriptor, the request, the file's attributes and the restart count (no
	 * opens, nothing kept).  From the worker that read it, before it is answered, or from
	 * frontend_mount.  For systemd's file descriptor store.  May be NULL.
	 */
	void (*on_connected)(void *opaque, const struct frontend_handover *h);
	/*
	 * All workers read the connection's one descriptor (no clone descriptors): after a crash
	 * the requests the dead process had taken are then on the descriptor that lives on (in
	 * systemd's store), and FUSE_NOTIFY_RESEND brings them back.
	 */
	bool single_channel;
	void *opaque;
	/* Not NULL: serve this live connection instead of mounting (a restart's new process). */
	const struct frontend_handover *takeover;
};

struct frontend;

/*
 * Mount the mirror onto o->mountpoint (which must exist and be a regular file).  Returns 0, or
 * -errno with *error set (-EOPNOTSUPP: fuse-transport = io_uring and the kernel's
 * enable_uring parameter is not Y).  The stop handlers are installed (stop.h): SIGTERM, SIGINT (and SIGHUP
 * without on_reload) end frontend_run(), once the file is closed or o->stop_timeout has passed; so does the
 * control command stop.
 */
int frontend_mount(struct mirror *m, const struct frontend_options *o, struct frontend **out,
		   GError **error);

/*
 * Serve requests until unmounted or signalled.  Returns 0 or -errno (-EOPNOTSUPP:
 * fuse-transport = io_uring and the kernel did not agree to it in FUSE_INIT).
 */
int frontend_run(struct frontend *fe);

/* Stop serving (from another thread or a signal handler's deferred work). */
void frontend_exit(struct frontend *fe);

/*
 * After frontend_run: wait for the replies still owed by the mirror.  The file stays mounted
 * (requests wait in the kernel) until frontend_destroy, so that its mount disappears only once
 * the mirror is closed: fusemirrorctl stop waits for that.  From now on the stop signals are
 * ignored.
 */
void frontend_drain(struct frontend *fe);

/* After frontend_run: whether it ended for the control command restart. */
bool frontend_restarting(struct frontend *fe);

/*
 * After frontend_run and frontend_drain of a restart: fill *out for the next process (with a
 * new descriptor of the connection, not close-on-exec).  The front end is then not to be
 * destroyed: that would unmount.  Returns 0 or -errno with *error.
 */
int frontend_handover(struct frontend *fe, struct frontend_handover *out, GError **error);

/*
 * Drain (when not done yet), unmount, and free.  The mirror is not touched: it may be closed
 * already.  NULL is ignored.
 */
void frontend_destroy(struct frontend *fe);

#ifdef __cplusplus
}
#endif

#endif /* FUSEMIRROR_FRONTEND_H */
