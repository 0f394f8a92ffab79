/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * FUSE over io_uring (ring.h).
 *
 * Shape: per queue (one per possible CPU, as the kernel wants), `threads` worker threads, each
 * with its own small io_uring (SQE128) and `entries` entries registered for that queue.  A
 * worker waits for a completion (an entry filled with a request), lays the request out as
 * /dev/fuse would have (fuse_in_header and the op's own header just before the payload: the
 * payload buffer has a page of headroom, and the payload itself is never copied), and gives it
 * to fuse_session_process_buf().  The reply comes back through the owner's writev
 * (fuse_ring_reply), from this worker or from any other thread (a mirror's completion): the
 * request's unique names its entry (entries_by_unique), the reply's header and body go into the
 * entry, and COMMIT_AND_FETCH on the entry's io_uring hands the reply over and the entry back.
 *
 * Why 4 threads x 1 entry per queue, the first pinned (RING_DEFAULT_*).  fusemirrord serves a
 * read or write in the thread that received it (the mirror lets the caller do the legs' I/O),
 * so a queue serves at most as many requests at once as it has threads; with one entry per
 * thread the kernel only hands a request to an idle thread (an entry is available once its
 * thread committed), and it reuses the last committed entry first (LIFO), so at QD1 one hot
 * thread ping-pongs with its caller.  Measured on this 2-CPU machine (kernel 6.18, 2 tmpfs
 * legs, fio direct=1, 3 s per job, each shape and fuse-transport = dev in two interleaved
 * rounds; the machine was shared and noisy, figures vary up to 3x between rounds):
 *   1 thread x 2 entries, pinned   QD32 4k write 15.8k-33.7k IOPS, 1 MiB QD8 328-808 MiB/s
 *   2 threads x 1 entry, pinned    QD32 4k write 19.2k-31.9k,      1 MiB QD8 620-1322
 *   4 threads x 1 entry, pinned    QD32 4k write 23.6k-45.7k,      1 MiB QD8 942-1290
 *   /dev/fuse (fuse-transport=dev) QD32 4k write 20.5k-34.6k,      1 MiB QD8 329-1049
 * One thread per queue (the notes' probe) wins QD1 but serialises a queue: at depth fio's
 * requests mostly come from one CPU, hence one queue.  Few entries also keep the kernel's copy
 * into the payload buffers in cache (notes: 1 entry 6.1 GB/s against about 3 with 16).  The
 * null server (bench/nullfuse --ring, default shape) against /dev/fuse in one bench/run
 * --quick: QD1 4k write latency 0.35x, QD32 4k write 1.18x, QD32 4k read 1.37x, 1 MiB QD8
 * write 1.24x.  The environment variables FUSEMIRROR_RING_THREADS, FUSEMIRROR_RING_ENTRIES
 * and FUSEMIRROR_RING_PIN override the defaults (for measuring; not an interface).
 *
 * Locks: map_lock protects entries_by_unique (a leaf: nothing is called under it but the hash
 * table's functions).  quiesce_lock protects quiescing and busy.  Each worker's submit_lock
 * protects its io_uring's submission queue (the worker and the repliers submit; only the worker
 * reaps completions); taken under neither of the others.  No I/O under any of them but the
 * io_uring_submit that hands an entry back, which never blocks.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#elif !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* bench/nullfuse: pthread_setaffinity_np */
#endif

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)

#include <errno.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_LIBURING
#include <liburing.h>
#endif

#include "fuse/ring.h"

/*
 * Defaults (see the header comment): 4 threads of 1 entry per queue, the first pinned to the
 * queue's CPU; at most RING_MAX_THREADS workers in all (many possible CPUs: fewer per queue).
 */
#define RING_DEFAULT_THREADS 4
#define RING_DEFAULT_ENTRIES 1
#define RING_DEFAULT_PIN     1
#define RING_MAX_THREADS     64

/* The kernel's ABI (include/uapi/linux/fuse.h, 7.42+): Debian 12's header predates it. */
#define RING_FUSE_OVER_IO_URING	  (1u << 9) /* in flags2: bit 41 of the 64-bit flags */
#define RING_CMD_REGISTER	  1
#define RING_CMD_COMMIT_AND_FETCH 2
#define RING_HEADER_IN_OUT_SZ	  128
#define RING_HEADER_OP_SZ	  128
#define RING_HEADROOM		  4096

struct ring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id; /* the request's unique */
	uint32_t payload_sz;
	uint32_t padding;
	uint64_t reserved;
};

/* What the kernel reads and writes in an entry besides the payload (the iovec 0). */
struct ring_headers {
	char in_out[RING_HEADER_IN_OUT_SZ]; /* fuse_in_header in, fuse_out_header out */
	char op_in[RING_HEADER_OP_SZ];	    /* the op's first argument */
	struct ring_ent_in_out ent_in_out;
};

/* The command area of the SQE128's second half. */
struct ring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};

struct ring_thread;

/* An entry: its headers, its payload, and the request it holds. */
struct ring_entry {
	struct ring_thread *thread;
	struct ring_headers *headers;
	char *mem;     /* RING_HEADROOM + payload_size bytes, page-aligned */
	char *payload; /* mem + RING_HEADROOM */
	struct iovec iov[2];
	/* The worker's own (written by it, or by a replier once the worker handed it over). */
	bool ended; /* the kernel ended it (-ENOTCONN at unmount) or refused it */
	/*
	 * Handed back to the kernel so often: a replier's release before its commit, the worker's
	 * acquire at the completion.  The kernel orders the two already (the commit comes before
	 * the next request's completion); this says so where ThreadSanitizer can see it.
	 */
	atomic_uint handoffs;
};

struct ring_thread {
	struct fuse_ring *ring;
	unsigned int qid;
	unsigned int index; /* within its queue */
#ifdef HAVE_LIBURING
	struct io_uring uring;
#endif
	bool uring_ready;
	GMutex submit_lock; /* protects uring's submission queue */
	GThread *thread;
	struct ring_entry *entries;
	unsigned int live; /* the worker's: entries neither ended nor held */
};

struct fuse_ring {
	struct fuse_ring_params p;
	size_t payload_size;
	/* Set by fuse_ring_saw_init, before the INIT reply; then read-only. */
	atomic_bool offered;
	uint64_t init_unique;
	/* Set by fuse_ring_patch_init_reply, before fuse_ring_start; then read-only. */
	bool asked;
	bool setxattr_ext;
	unsigned int queues, threads_per_queue, entries_per_thread;
	bool default_threads; /* threads_per_queue is RING_DEFAULT_THREADS, not asked for */
	int pin;
	struct ring_thread *threads; /* queues * threads_per_queue, set by fuse_ring_start */
	atomic_bool serving;
	atomic_uint_fast64_t requests;
	GMutex map_lock;
	GHashTable *entries_by_unique; /* unique -> struct ring_entry *, requests in the session */
	atomic_uint mapped;	       /* its size, read without the lock as a hint */
	GMutex quiesce_lock;
	GCond quiesce_cond;
	bool quiescing;
	unsigned int busy; /* workers inside fuse_session_process_buf */
};

int fuse_ring_kernel_param(void)
{
	char c = 0;
	FILE *f = fopen("/sys/module/fuse/parameters/enable_uring", "r");

	if (f == NULL)
		return -errno;
	if (fread(&c, 1, 1, f) != 1)
		c = 0;
	fclose(f);
	return c == 'Y' || c == 'y' || c == '1';
}

static unsigned int env_uint(const char *name, unsigned int fallback, unsigned int max)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;

	if (v == NULL || *v == '\0')
		return fallback;
	n = strtoul(v, &end, 10);
	return *end == '\0' && n <= max ? (unsigned int)n : fallback;
}

struct fuse_ring *fuse_ring_new(const struct fuse_ring_params *p)
{
	struct fuse_ring *ring = g_new0(struct fuse_ring, 1);

	ring->p = *p;
	ring->default_threads = p->threads == 0 && getenv("FUSEMIRROR_RING_THREADS") == NULL;
	ring->threads_per_queue =
	    p->threads != 0 ? p->threads
			    : env_uint("FUSEMIRROR_RING_THREADS", RING_DEFAULT_THREADS, 16);
	if (ring->threads_per_queue == 0)
		ring->threads_per_queue = RING_DEFAULT_THREADS;
	ring->entries_per_thread =
	    p->entries != 0 ? p->entries
			    : env_uint("FUSEMIRROR_RING_ENTRIES", RING_DEFAULT_ENTRIES, 64);
	if (ring->entries_per_thread == 0)
		ring->entries_per_thread = RING_DEFAULT_ENTRIES;
	ring->pin =
	    p->pin >= 0 ? p->pin : (int)env_uint("FUSEMIRROR_RING_PIN", RING_DEFAULT_PIN, 1);
	/* The kernel wants max(8 KiB, max_write, max_pages pages); libfuse's max_pages covers
	 * max_write. */
	ring->payload_size = p->max_write < 8192 ? 8192 : (p->max_write + 4095) & ~(size_t)4095;
	g_mutex_init(&ring->map_lock);
	g_mutex_init(&ring->quiesce_lock);
	g_cond_init(&ring->quiesce_cond);
	ring->entries_by_unique = g_hash_table_new(g_int64_hash, g_int64_equal);
	return ring;
}

void fuse_ring_set_fd(struct fuse_ring *ring, int fd)
{
	ring->p.fd = fd;
}

void fuse_ring_saw_init(struct fuse_ring *ring, const void *request, size_t len)
{
	const struct fuse_in_header *in = request;
	const struct fuse_init_in *arg = (const void *)(in + 1);

	if (len < sizeof(*in) + offsetof(struct fuse_init_in, flags2) + sizeof(arg->flags2) ||
	    in->opcode != FUSE_INIT)
		return;
	ring->init_unique = in->unique;
	atomic_store(&ring->offered, arg->major == 7 && (arg->flags & FUSE_INIT_EXT) &&
					 (arg->flags2 & RING_FUSE_OVER_IO_URING));
}

bool fuse_ring_offered(const struct fuse_ring *ring)
{
	return atomic_load(&ring->offered);
}

bool fuse_ring_patch_init_reply(struct fuse_ring *ring, struct iovec *iov, int count)
{
	const struct fuse_out_header *out;
	struct fuse_init_out *arg;

	if (ring->init_unique == 0 || count < 2 || iov[0].iov_len != sizeof(*out))
		return false;
	out = iov[0].iov_base;
	if (out->unique != ring->init_unique)
		return false;
	if (out->error != 0 || iov[1].iov_len < offsetof(struct fuse_init_out, flags2) + 4)
		return true;
	arg = iov[1].iov_base;
	ring->setxattr_ext = (arg->flags & FUSE_SETXATTR_EXT) != 0;
	if (ring->p.transport != FUSE_TRANSPORT_DEV && atomic_load(&ring->offered)) {
		arg->flags |= FUSE_INIT_EXT;
		arg->flags2 |= RING_FUSE_OVER_IO_URING;
		ring->asked = true;
	}
	return true;
}

void fuse_ring_assume_asked(struct fuse_ring *ring)
{
	if (ring->p.transport != FUSE_TRANSPORT_DEV)
		ring->asked = true;
}

bool fuse_ring_serving(const struct fuse_ring *ring)
{
	return ring != NULL && atomic_load(&ring->serving);
}

void fuse_ring_shape(const struct fuse_ring *ring, unsigned int *queues, unsigned int *entries)
{
	*queues = ring->queues;
	*entries = ring->threads_per_queue * ring->entries_per_thread;
}

uint64_t fuse_ring_requests(const struct fuse_ring *ring)
{
	return ring == NULL ? 0 : atomic_load(&ring->requests);
}

/* The number of possible CPUs: the kernel makes one queue for each. */
static unsigned int possible_cpus(void)
{
	char text[256];
	FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
	unsigned int max = 0;
	char *s;

	if (f == NULL || fgets(text, sizeof(text), f) == NULL) {
		if (f != NULL)
			fclose(f);
		return (unsigned int)sysconf(_SC_NPROCESSORS_CONF);
	}
	fclose(f);
	/* "0-1", "0,2-5": the highest number plus one. */
	for (s = text; *s != '\0';) {
		char *end;
		unsigned long n = strtoul(s, &end, 10);

		if (end == s)
			break;
		if (n > max)
			max = (unsigned int)n;
		s = *end != '\0' ? end + 1 : end;
	}
	return max + 1;
}

/*
 * The size of the op's own header, which the kernel puts in op_in (the request's first
 * argument): not in the request, so known by opcode.  0: none, or an opcode libfuse answers
 * without reading (ENOSYS).  Names (the only first argument for some ops) end with their NUL.
 */
static size_t op_in_size(const struct fuse_ring *ring, uint32_t opcode, const char *op_in)
{
	switch (opcode) {
	case FUSE_GETATTR:
		return sizeof(struct fuse_getattr_in);
	case FUSE_SETATTR:
		return sizeof(struct fuse_setattr_in);
	case FUSE_OPEN:
	case FUSE_OPENDIR:
		return sizeof(struct fuse_open_in);
	case FUSE_READ:
	case FUSE_READDIR:
	case FUSE_READDIRPLUS:
		return sizeof(struct fuse_read_in);
	case FUSE_WRITE:
		return sizeof(struct fuse_write_in);
	case FUSE_RELEASE:
	case FUSE_RELEASEDIR:
		return sizeof(struct fuse_release_in);
	case FUSE_FSYNC:
	case FUSE_FSYNCDIR:
		return sizeof(struct fuse_fsync_in);
	case FUSE_FLUSH:
		return sizeof(struct fuse_flush_in);
	case FUSE_SETXATTR:
		return ring->setxattr_ext ? sizeof(struct fuse_setxattr_in)
					  : FUSE_COMPAT_SETXATTR_IN_SIZE;
	case FUSE_GETXATTR:
	case FUSE_LISTXATTR:
		return sizeof(struct fuse_getxattr_in);
	case FUSE_ACCESS:
		return sizeof(struct fuse_access_in);
	case FUSE_FALLOCATE:
		return sizeof(struct fuse_fallocate_in);
	case FUSE_LSEEK:
		return sizeof(struct fuse_lseek_in);
	case FUSE_BMAP:
		return sizeof(struct fuse_bmap_in);
	case FUSE_POLL:
		return sizeof(struct fuse_poll_in);
	case FUSE_IOCTL:
		return sizeof(struct fuse_ioctl_in);
	case FUSE_GETLK:
	case FUSE_SETLK:
	case FUSE_SETLKW:
		return sizeof(struct fuse_lk_in);
	case FUSE_COPY_FILE_RANGE:
		return sizeof(struct fuse_copy_file_range_in);
	case FUSE_LOOKUP:
	case FUSE_REMOVEXATTR:
	case FUSE_UNLINK:
	case FUSE_RMDIR:
	case FUSE_READLINK:
		/*
		 * The kernels that have the ring give these ops an empty first argument (Linux
		 * 6.14, "make args->in_args[0] to be always the header"): the name is the
		 * payload, op_in holds nothing (test-ring-suite.sh: removexattr got a stale name).
		 */
		return 0;
	default:
		return 0;
	}
}

#ifdef HAVE_LIBURING

/* Fill sqe with the entry's command (submit_lock held, or before the worker starts). */
static void prep_cmd(struct io_uring_sqe *sqe, struct ring_entry *ent, uint32_t cmd_op,
		     uint64_t commit_id)
{
	struct ring_thread *t = ent->thread;
	struct ring_cmd_req *req;

	memset(sqe, 0, 128);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = t->ring->p.fd;
	sqe->cmd_op = cmd_op;
	req = (struct ring_cmd_req *)sqe->cmd;
	req->qid = (uint16_t)t->qid;
	req->commit_id = commit_id;
	if (cmd_op == RING_CMD_REGISTER) {
		sqe->addr = (uintptr_t)ent->iov;
		sqe->len = 2;
	}
	io_uring_sqe_set_data(sqe, ent);
}

/* Submit one command for ent on its worker's io_uring, from any thread. */
static int submit_cmd(struct ring_entry *ent, uint32_t cmd_op, uint64_t commit_id)
{
	struct ring_thread *t = ent->thread;
	struct io_uring_sqe *sqe;
	int r;

	g_mutex_lock(&t->submit_lock);
	sqe = io_uring_get_sqe(&t->uring);
	if (sqe == NULL) {
		/* Cannot happen (an SQE per entry, submitted at once); be safe anyway. */
		io_uring_submit(&t->uring);
		sqe = io_uring_get_sqe(&t->uring);
	}
	if (sqe == NULL) {
		g_mutex_unlock(&t->submit_lock);
		return -EBUSY;
	}
	prep_cmd(sqe, ent, cmd_op, commit_id);
	r = io_uring_submit(&t->uring);
	g_mutex_unlock(&t->submit_lock);
	return r < 0 ? r : 0;
}

/* The worker stops on a NOP whose data is NULL (fuse_ring_free). */
static void submit_stop(struct ring_thread *t)
{
	struct io_uring_sqe *sqe;

	g_mutex_lock(&t->submit_lock);
	sqe = io_uring_get_sqe(&t->uring);
	if (sqe == NULL) {
		io_uring_submit(&t->uring);
		sqe = io_uring_get_sqe(&t->uring);
	}
	if (sqe != NULL) {
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data(sqe, NULL);
		io_uring_submit(&t->uring);
	}
	g_mutex_unlock(&t->submit_lock);
}

/* Lay out ent's request for libfuse and process it (the worker's thread). */
static void serve(struct ring_entry *ent)
{
	struct fuse_ring *ring = ent->thread->ring;
	struct ring_headers *h = ent->headers;
	struct fuse_in_header *in = (struct fuse_in_header *)h->in_out;
	uint32_t payload_sz = h->ent_in_out.payload_sz;
	size_t opsz = op_in_size(ring, in->opcode, h->op_in);
	/*
	 * libfuse reads fuse_in_header in place: it must be 8-aligned.  It is when the op's header
	 * is (a WRITE's: 40 + 40 bytes, the payload not moved); a name as first argument (an
	 * xattr's) is not, and then the payload, small for such ops, moves back into the headroom
	 * by the few bytes the alignment takes.
	 */
	char *base = (char *)((uintptr_t)(ent->payload - opsz - sizeof(*in)) & ~(uintptr_t)7);
	struct fuse_buf buf = {0};
	guint64 *key;

	if (payload_sz > ring->payload_size)
		payload_sz = (uint32_t)ring->payload_size;
	if (base + sizeof(*in) + opsz != ent->payload)
		memmove(base + sizeof(*in) + opsz, ent->payload, payload_sz);
	memcpy(base, in, sizeof(*in));
	memcpy(base + sizeof(*in), h->op_in, opsz);
	((struct fuse_in_header *)base)->len = (uint32_t)(sizeof(*in) + opsz + payload_sz);
	/* Before libfuse sees it: its reply may come from another thread before we return. */
	key = (guint64 *)&((struct fuse_in_header *)base)->unique;
	g_mutex_lock(&ring->map_lock);
	g_hash_table_insert(ring->entries_by_unique, key, ent);
	atomic_fetch_add(&ring->mapped, 1);
	g_mutex_unlock(&ring->map_lock);
	atomic_fetch_add(&ring->requests, 1);
	buf.mem = base;
	buf.size = sizeof(*in) + opsz + payload_sz;
	fuse_session_process_buf(ring->p.se, &buf);
}

static gpointer worker_main(gpointer data)
{
	struct ring_thread *t = data;
	struct fuse_ring *ring = t->ring;
	sigset_t all;

	/* Signals are the daemon's main thread's and libfuse's loop's business. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	if (ring->pin && t->index == 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(t->qid, &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	while (t->live > 0) {
		struct io_uring_cqe *cqe;
		struct ring_entry *ent;
		int res, r;

		r = io_uring_wait_cqe(&t->uring, &cqe);
		if (r == -EINTR)
			continue;
		if (r < 0)
			break;
		ent = io_uring_cqe_get_data(cqe);
		res = cqe->res;
		io_uring_cqe_seen(&t->uring, cqe);
		if (ent == NULL)
			break; /* fuse_ring_free */
		(void)atomic_load_explicit(&ent->handoffs, memory_order_acquire);
		if (res == -EAGAIN || res == -EINTR) {
			g_usleep(1000);
			if (submit_cmd(ent, RING_CMD_REGISTER, 0) < 0) {
				ent->ended = true;
				t->live--;
			}
			continue;
		}
		if (res < 0) {
			/* -ENOTCONN: the connection ended (unmount, abort). */
			ent->ended = true;
			t->live--;
			continue;
		}
		g_mutex_lock(&ring->quiesce_lock);
		if (ring->quiescing) {
			/* Held for good: the unmount ends the request. */
			g_mutex_unlock(&ring->quiesce_lock);
			t->live--;
			continue;
		}
		ring->busy++;
		g_mutex_unlock(&ring->quiesce_lock);
		serve(ent);
		g_mutex_lock(&ring->quiesce_lock);
		if (--ring->busy == 0 && ring->quiescing)
			g_cond_broadcast(&ring->quiesce_cond);
		g_mutex_unlock(&ring->quiesce_lock);
	}
	return NULL;
}

bool fuse_ring_reply(struct fuse_ring *ring, const struct iovec *iov, int count, ssize_t *result)
{
	const struct fuse_out_header *out;
	struct fuse_out_header *dst;
	struct ring_entry *ent;
	guint64 unique;
	size_t body = 0, off = 0;
	int r;

	if (ring == NULL || atomic_load(&ring->mapped) == 0 || count < 1 ||
	    iov[0].iov_len != sizeof(*out))
		return false;
	out = iov[0].iov_base;
	unique = out->unique;
	g_mutex_lock(&ring->map_lock);
	ent = g_hash_table_lookup(ring->entries_by_unique, &unique);
	if (ent != NULL) {
		g_hash_table_remove(ring->entries_by_unique, &unique);
		atomic_fetch_sub(&ring->mapped, 1);
	}
	g_mutex_unlock(&ring->map_lock);
	if (ent == NULL)
		return false;

	for (int i = 1; i < count; i++)
		body += iov[i].iov_len;
	dst = (struct fuse_out_header *)ent->headers->in_out;
	*dst = *out;
	if (body > ring->payload_size) {
		/* No reply of ours is that long; answer rather than leave the request hanging. */
		dst->error = -EIO;
		body = 0;
	} else {
		for (int i = 1; i < count; i++) {
			/* A body already in place (a reply built in the payload) is not copied. */
			if (iov[i].iov_base != ent->payload + off)
				memmove(ent->payload + off, iov[i].iov_base, iov[i].iov_len);
			off += iov[i].iov_len;
		}
	}
	dst->len = (uint32_t)(sizeof(*dst) + body);
	/* The kernel takes exactly this much of the payload: nothing older leaks. */
	ent->headers->ent_in_out.payload_sz = (uint32_t)body;
	atomic_fetch_add_explicit(&ent->handoffs, 1, memory_order_release);
	r = submit_cmd(ent, RING_CMD_COMMIT_AND_FETCH, unique);
	if (r < 0) {
		errno = -r;
		*result = -1;
	} else {
		*result = (ssize_t)(sizeof(*out) + body);
	}
	return true;
}

/* One worker's io_uring and entries, registered; its thread not yet started. */
static int thread_setup(struct fuse_ring *ring, struct ring_thread *t, GError **error)
{
	unsigned int n = ring->entries_per_thread;
	int r;

	t->ring = ring;
	g_mutex_init(&t->submit_lock);
	/* An SQE per entry and one for the stop NOP; completions likewise. */
	r = io_uring_queue_init(n + 1, &t->uring, IORING_SETUP_SQE128);
	if (r < 0) {
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-r),
			    "io_uring_queue_init with SQE128: %s", g_strerror(-r));
		return r;
	}
	t->uring_ready = true;
	t->entries = g_new0(struct ring_entry, n);
	for (unsigned int i = 0; i < n; i++) {
		struct ring_entry *ent = &t->entries[i];
		void *mem;

		ent->thread = t;
		ent->headers = g_malloc0(sizeof(*ent->headers));
		if (posix_memalign(&mem, 4096, RING_HEADROOM + ring->payload_size) != 0) {
			g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_NOMEM,
					    "out of memory for the ring's payload buffers");
			return -ENOMEM;
		}
		memset(mem, 0, RING_HEADROOM + ring->payload_size);
		ent->mem = mem;
		ent->payload = ent->mem + RING_HEADROOM;
		ent->iov[0].iov_base = ent->headers;
		ent->iov[0].iov_len = sizeof(*ent->headers);
		ent->iov[1].iov_base = ent->payload;
		ent->iov[1].iov_len = ring->payload_size;
	}
	return 0;
}

/*
 * Register t's entries; errors come back at once (REGISTER completes only with a request, or
 * with the kernel's refusal, which io_uring posts before the submit returns).
 */
static int thread_register(struct ring_thread *t, GError **error)
{
	for (unsigned int i = 0; i < t->ring->entries_per_thread; i++) {
		struct ring_entry *ent = &t->entries[i];

		for (int tries = 0;; tries++) {
			struct io_uring_cqe *cqe;
			int r = submit_cmd(ent, RING_CMD_REGISTER, 0);

			if (r < 0) {
				g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-r),
					    "io_uring submit: %s", g_strerror(-r));
				return r;
			}
			if (io_uring_peek_cqe(&t->uring, &cqe) != 0 || cqe->res >= 0 ||
			    io_uring_cqe_get_data(cqe) != ent)
				break; /* registered (or already serving a request) */
			r = cqe->res;
			io_uring_cqe_seen(&t->uring, cqe);
			/* EAGAIN: the kernel has not processed the INIT reply yet. */
			if (r == -EAGAIN && tries < 1000) {
				g_usleep(1000);
				continue;
			}
			g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-r), "%s",
				    r == -EOPNOTSUPP ? "the kernel did not agree to it"
				    : r == -EINVAL   ? "the kernel refused the entries (EINVAL)"
						     : g_strerror(-r));
			return r;
		}
		t->live++;
	}
	return 0;
}

/*
 * Entries the kernel may still write into (see fuse_ring_free): kept, reachable, until the
 * process exits.  kept_lock protects kept_entries.
 */
static GMutex kept_lock;
static GPtrArray *kept_entries;

static void thread_teardown(struct ring_thread *t, bool free_buffers)
{
	if (t->uring_ready)
		io_uring_queue_exit(&t->uring);
	t->uring_ready = false;
	if (t->entries != NULL && free_buffers) {
		for (unsigned int i = 0; i < t->ring->entries_per_thread; i++) {
			free(t->entries[i].mem);
			g_free(t->entries[i].headers);
		}
		g_free(t->entries);
	} else if (t->entries != NULL) {
		g_mutex_lock(&kept_lock);
		if (kept_entries == NULL)
			kept_entries = g_ptr_array_new();
		g_ptr_array_add(kept_entries, t->entries);
		g_mutex_unlock(&kept_lock);
	}
	t->entries = NULL;
	g_mutex_clear(&t->submit_lock);
}

int fuse_ring_start(struct fuse_ring *ring, GError **error)
{
	unsigned int n;
	int r = 0;

	if (ring->p.transport == FUSE_TRANSPORT_DEV) {
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_NOSYS,
				    "fuse-transport = dev");
		return -EOPNOTSUPP;
	}
	if (!atomic_load(&ring->offered)) {
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_NOSYS,
				    "the kernel does not offer it in FUSE_INIT");
		return -EOPNOTSUPP;
	}
	/*
	 * The kernel takes entries whenever enable_uring is Y, negotiated or not, and then
	 * routes requests to them as if the connection had agreed: only a connection that
	 * asked for the ring may register (a hung request otherwise).
	 */
	if (!ring->asked) {
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_NOSYS,
				    "the FUSE_INIT reply did not ask for it");
		return -EOPNOTSUPP;
	}
	if (ring->threads != NULL) {
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_EXIST, "started already");
		return -EALREADY;
	}
	ring->queues = possible_cpus();
	/* Only the default shrinks; what the caller or the environment asked for is kept. */
	if (ring->default_threads && ring->queues * ring->threads_per_queue > RING_MAX_THREADS)
		ring->threads_per_queue = MAX(1, RING_MAX_THREADS / ring->queues);
	n = ring->queues * ring->threads_per_queue;
	ring->threads = g_new0(struct ring_thread, n);
	for (unsigned int i = 0; i < n && r == 0; i++) {
		ring->threads[i].qid = i / ring->threads_per_queue;
		ring->threads[i].index = i % ring->threads_per_queue;
		r = thread_setup(ring, &ring->threads[i], error);
	}
	for (unsigned int i = 0; i < n && r == 0; i++)
		r = thread_register(&ring->threads[i], error);
	if (r < 0) {
		/* Closing an io_uring cancels its registered entries (-ENOTCONN). */
		for (unsigned int i = 0; i < n; i++)
			thread_teardown(&ring->threads[i], ring->threads[i].live == 0);
		g_free(ring->threads);
		ring->threads = NULL;
		return r;
	}
	for (unsigned int i = 0; i < n; i++)
		ring->threads[i].thread = g_thread_new("fuse-ring", worker_main, &ring->threads[i]);
	atomic_store(&ring->serving, true);
	return 0;
}

bool fuse_ring_quiesce(struct fuse_ring *ring, gint64 timeout_us)
{
	gint64 end = g_get_monotonic_time() + timeout_us;
	bool done;

	if (ring == NULL)
		return true;
	g_mutex_lock(&ring->quiesce_lock);
	ring->quiescing = true;
	while (ring->busy > 0)
		if (timeout_us < 0)
			g_cond_wait(&ring->quiesce_cond, &ring->quiesce_lock);
		else if (!g_cond_wait_until(&ring->quiesce_cond, &ring->quiesce_lock, end))
			break;
	done = ring->busy == 0;
	g_mutex_unlock(&ring->quiesce_lock);
	return done;
}

void fuse_ring_free(struct fuse_ring *ring)
{
	unsigned int n;

	if (ring == NULL)
		return;
	fuse_ring_quiesce(ring, -1);
	n = ring->threads != NULL ? ring->queues * ring->threads_per_queue : 0;
	for (unsigned int i = 0; i < n; i++) {
		submit_stop(&ring->threads[i]);
		g_thread_join(ring->threads[i].thread);
	}
	for (unsigned int i = 0; i < n; i++) {
		struct ring_thread *t = &ring->threads[i];
		bool all_ended = true;

		for (unsigned int e = 0; e < ring->entries_per_thread; e++)
			all_ended = all_ended && t->entries[e].ended;
		/*
		 * An entry the kernel has not ended may still be written into until the
		 * io_uring's asynchronous teardown cancels it: its buffers are left to the
		 * process's exit.
		 */
		thread_teardown(t, all_ended);
	}
	g_free(ring->threads);
	g_hash_table_destroy(ring->entries_by_unique);
	g_mutex_clear(&ring->map_lock);
	g_mutex_clear(&ring->quiesce_lock);
	g_cond_clear(&ring->quiesce_cond);
	g_free(ring);
}

#else /* !HAVE_LIBURING */

bool fuse_ring_reply(struct fuse_ring *ring, const struct iovec *iov, int count, ssize_t *result)
{
	return false;
}

int fuse_ring_start(struct fuse_ring *ring, GError **error)
{
	g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_NOSYS, "built without liburing");
	return -EOPNOTSUPP;
}

bool fuse_ring_quiesce(struct fuse_ring *ring, gint64 timeout_us)
{
	return true;
}

void fuse_ring_free(struct fuse_ring *ring)
{
	if (ring == NULL)
		return;
	g_hash_table_destroy(ring->entries_by_unique);
	g_mutex_clear(&ring->map_lock);
	g_mutex_clear(&ring->quiesce_lock);
	g_cond_clear(&ring->quiesce_cond);
	g_free(ring);
}

#endif /* HAVE_LIBURING */
