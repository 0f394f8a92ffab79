/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * FUSE over io_uring (Linux 6.14 and later), for a libfuse 3.14 low-level session, which does
 * not speak it: the kernel hands requests to entries that its server registered on io_uring
 * rings, one queue per possible CPU, and takes each reply with the command that fetches the
 * entry's next request.  Requests not carried by the ring (FUSE_INIT, FORGET, INTERRUPT,
 * notifications, what comes before every queue has an entry) stay on /dev/fuse, which the
 * session's own loop goes on reading.
 *
 * The session is given the ring's requests with fuse_session_process_buf(), and sends their
 * replies, as all others, through the custom I/O layer's writev (fuse_session_custom_io): the
 * owner of that layer asks fuse_ring_reply() first, which takes the replies of the ring's
 * requests.  The owner also shows fuse_ring the FUSE_INIT request (fuse_ring_saw_init) and its
 * reply (fuse_ring_patch_init_reply, which asks for the ring in it), and starts the ring once
 * that reply is written (fuse_ring_start).
 *
 * Only libfuse, liburing and glib: bench/nullfuse links it too.
 */
#ifndef FUSEMIRROR_RING_H
#define FUSEMIRROR_RING_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct fuse_session;

/* fuse-transport (fusemirror.conf(5)). */
enum fuse_transport {
	FUSE_TRANSPORT_AUTO = 0, /* the ring when the kernel offers it, else /dev/fuse */
	FUSE_TRANSPORT_IO_URING, /* the ring or nothing */
	FUSE_TRANSPORT_DEV,	 /* /dev/fuse only */
};

struct fuse_ring_params {
	struct fuse_session *se;
	int fd;			       /* the connection's /dev/fuse descriptor */
	enum fuse_transport transport; /* DEV: the ring is never asked for */
	size_t max_write;	       /* the session's max_write (the payload buffers' size) */
	unsigned int threads;	       /* worker threads per queue; 0: the default */
	unsigned int entries;	       /* entries per thread; 0: the default */
	int pin;		       /* pin a queue's first thread to its CPU: 1, 0, -1 default */
};

struct fuse_ring;

/*
 * /sys/module/fuse/parameters/enable_uring: 1 (Y), 0 (N), or -errno (-ENOENT: the kernel has
 * no FUSE over io_uring).  The kernel reads it when it sends FUSE_INIT.
 */
int fuse_ring_kernel_param(void);

/* A ring for p (copied), not started.  Never NULL. */
struct fuse_ring *fuse_ring_new(const struct fuse_ring_params *p);

/* The connection's descriptor, once mounted (when it was not known at fuse_ring_new). */
void fuse_ring_set_fd(struct fuse_ring *ring, int fd);

/* The connection's FUSE_INIT request (len bytes): whether the kernel offers the ring. */
void fuse_ring_saw_init(struct fuse_ring *ring, const void *request, size_t len);

/* Whether the FUSE_INIT seen offered the ring (FUSE_OVER_IO_URING). */
bool fuse_ring_offered(const struct fuse_ring *ring);

/*
 * Before a reply is written: when it is the FUSE_INIT's and the ring is wanted and offered, add
 * FUSE_INIT_EXT and FUSE_OVER_IO_URING to it.  Returns whether the reply is FUSE_INIT's (then
 * fuse_ring_start, once it is written).
 */
bool fuse_ring_patch_init_reply(struct fuse_ring *ring, struct iovec *iov, int count);

/*
 * A taken-over connection (its FUSE_INIT was answered by an earlier process): take it that its
 * reply asked for the ring (when the transport is not DEV).  Only the caller can know.
 */
void fuse_ring_assume_asked(struct fuse_ring *ring);

/*
 * Register the entries and start serving them (after the FUSE_INIT reply that asked for the
 * ring is written, or on a taken-over connection after fuse_ring_assume_asked).  Returns 0 when the
 * ring serves, or -errno with *error saying why not (then /dev/fuse serves everything): -EOPNOTSUPP
 * when the kernel did not agree to the ring.  Logs nothing.
 */
int fuse_ring_start(struct fuse_ring *ring, GError **error);

/* Whether fuse_ring_start succeeded. */
bool fuse_ring_serving(const struct fuse_ring *ring);

/* Queues and entries per queue (for the log line), once started. */
void fuse_ring_shape(const struct fuse_ring *ring, unsigned int *queues, unsigned int *entries);

/*
 * From the custom writev: when the reply (iov[0] a fuse_out_header) answers a request of the
 * ring, send it there and return true with *result the bytes taken (or -1 and errno); else
 * false: the caller writes it to /dev/fuse.  Any thread.
 */
bool fuse_ring_reply(struct fuse_ring *ring, const struct iovec *iov, int count, ssize_t *result);

/* Requests the ring has handed to the session so far. */
uint64_t fuse_ring_requests(const struct fuse_ring *ring);

/*
 * Hand the session no more requests; returns once no worker is inside the session (a request
 * that comes later waits in the kernel until the unmount ends it), true, or after timeout_us
 * (-1: none), false.  The replies still owed go on being taken.  Idempotent.  NULL: true.
 */
bool fuse_ring_quiesce(struct fuse_ring *ring, gint64 timeout_us);

/*
 * After the unmount (the kernel then ends every entry): join the workers and free.  NULL is
 * ignored.
 */
void fuse_ring_free(struct fuse_ring *ring);

#ifdef __cplusplus
}
#endif

#endif /* FUSEMIRROR_RING_H */
