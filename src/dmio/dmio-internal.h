/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdmio internals: the device vtable, the per-call and per-region state, the engine vtable and
 * the bounce-page pool.  Nothing here is installed.
 */
#ifndef DMIO_INTERNAL_H
#define DMIO_INTERNAL_H

#include <glib.h>
#include <stdatomic.h>

#include "dmio.h"

/* ---- Devices: one file per kind behind this vtable (nbdkit-plugin style) ------------------ */

struct dmio_dev_ops {
	const char *kind;
	/*
	 * One attempt each; the caller loops over short transfers and EINTR/EAGAIN.
	 * Return bytes transferred or -errno.
	 */
	ssize_t (*preadv)(struct dmio_dev *dev, const struct iovec *iov, int iovcnt,
			  uint64_t offset);
	ssize_t (*pwritev)(struct dmio_dev *dev, const struct iovec *iov, int iovcnt,
			   uint64_t offset, int rwf_flags);
	int (*flush)(struct dmio_dev *dev);				     /* 0 or -errno */
	int (*discard)(struct dmio_dev *dev, uint64_t offset, uint64_t len); /* 0 or -errno */
	int (*zero)(struct dmio_dev *dev, uint64_t offset, uint64_t len);    /* 0 or -errno */
	/*
	 * Optional, asynchronous (engine-async.c drives it): start a whole op and return at once.
	 * op is any dmio_op; a read or write moves exactly len bytes of iov (the kind splits it to
	 * its own limits); flags may hold DMIO_REQ_FUA (a write, only when can_fua).  0: done
	 * (opaque, 0 or -errno) comes exactly once, later, from a thread of the kind's own that
	 * calls nothing else of ours, so done must not block on other I/O nor call the device
	 * itself.  -errno: refused at once, done never comes.  Until done, the memory is the
	 * device's.  The kind's other ops stay synchronous (and may be built on this one).
	 */
	int (*submit)(struct dmio_dev *dev, enum dmio_op op, const struct iovec *iov,
		      unsigned int iovcnt, uint64_t offset, uint64_t len, unsigned int flags,
		      void (*done)(void *opaque, int err), void *opaque);
	/*
	 * Every job has answered, abandoned ones too (abandon.c defers the close to the last of
	 * them); a kind with submit ends with -ENOTCONN whatever a direct caller of submit still
	 * has in flight, and has called every done before it returns.
	 */
	void (*close)(struct dmio_dev *dev);
};

struct dmio_dev {
	const struct dmio_dev_ops *ops;
	char *path;
	int fd; /* -1 for kinds that have none; io_uring only drives devices with an fd */
	unsigned int flags;
	bool is_block;
	uint64_t size;		   /* bytes */
	unsigned int lbs;	   /* logical block size */
	unsigned int mem_align;	   /* O_DIRECT buffer alignment (1 when not direct) */
	unsigned int offset_align; /* O_DIRECT offset/length alignment (1 when not direct) */
	atomic_bool can_discard;
	atomic_bool can_zero;
	atomic_bool can_fua;
	/*
	 * DMIO_MEM_PIPE regions may be spliced into fd (pipe.c): set by the file kind without
	 * DMIO_DEV_DIRECT, switched off for good when the kernel refuses a splice into it.
	 */
	atomic_bool can_splice;
	/* Moving average of one region's I/O time, ns: decides whether a fan-out pays (dmio.c). */
	atomic_ullong avg_ns;
	atomic_ullong timed_ns; /* CLOCK_MONOTONIC when avg_ns was last updated */
	atomic_ullong probe_ns; /* when a call last ran inline only to update avg_ns */
	/*
	 * Outstanding jobs (abandon.c), under jobs_lock, a leaf: every job of a call from dmio()
	 * until its outcome is recorded, in the order the calls came (jobs_head is the oldest);
	 * abandoned_running counts abandoned jobs whose device has not answered yet; a close
	 * while there are some is done by the last of them (close_pending).
	 */
	GMutex jobs_lock;
	struct dmio_job *jobs_head, *jobs_tail;
	unsigned int jobs_count;
	unsigned int abandoned_running;
	bool close_pending;
};

/* The file and block-device kind (dev-file.c). */
int dmio_dev_file_open(const char *path, unsigned int flags, struct dmio_dev **out);

/* The crash-test kind (dev-crash.c, for tests): path is DMIO_DEV_CRASH_PREFIX and a disk's name. */
#define DMIO_DEV_CRASH_PREFIX "crash:"
int dmio_dev_crash_open(const char *path, unsigned int flags, struct dmio_dev **out);

/* The fault-injecting kind (dev-fault.c, for tests): path is DMIO_DEV_FAULT_PREFIX and a path. */
#define DMIO_DEV_FAULT_PREFIX "fault:"
int dmio_dev_fault_open(const char *path, unsigned int flags, struct dmio_dev **out);

/*
 * The NBD kind (dev-nbd.c): path is an NBD URI (nbd://, nbds://, nbd+unix://, ...); -ENOTSUP
 * when built without libnbd.
 */
bool dmio_dev_is_nbd_uri(const char *path);
int dmio_dev_nbd_open(const char *path, unsigned int flags, struct dmio_dev **out);
/* The URI with its userinfo, password= and tls-psk-file= values replaced by "***" (g_free). */
char *dmio_nbd_redact_uri(const char *uri);

/* Free a device (its kind's close): at once, or by the last abandoned job to return. */
void dmio_dev_free(struct dmio_dev *dev);

/* Switch a capability off for good (the kernel said EOPNOTSUPP). */
void dmio_dev_cap_off(atomic_bool *cap, const struct dmio_dev *dev, const char *what);

/* ---- One call (io) and its regions (jobs) ------------------------------------------------- */

enum dmio_job_op {
	DMIO_JOB_IO = 0, /* the request's op on the job's region */
	DMIO_JOB_NOP,	 /* no region to touch: only carries the completion through the engine */
};

struct dmio_io;

struct dmio_job {
	struct dmio_io *io;
	enum dmio_job_op kind;
	unsigned int index; /* bit in the error bitset */
	struct dmio_region region;
	uint64_t offset; /* bytes */
	uint64_t len;	 /* bytes */
	/*
	 * The data, exactly len bytes (read/write only): io->iov itself, or a trimmed copy of its
	 * prefix in iov_own when this region is shorter than the longest one.
	 */
	const struct iovec *iov;
	unsigned int iovcnt;
	struct iovec *iov_own;
	/* Set by whoever runs the job: an engine worker, or a synchronous caller raiding the queue.
	 */
	atomic_bool claimed;
	/* When its device started on it, CLOCK_MONOTONIC ns; 0 while it waits (abandon.c). */
	atomic_ullong started_ns;
	/* On its device's list of outstanding jobs (abandon.c), under the device's jobs_lock. */
	struct dmio_job *dev_prev, *dev_next;
	bool tracked;
	bool abandoned; /* its outcome was recorded by dmio_dev_abandon(): a late answer is ignored */
	bool engine_owns; /* the engine claimed it (io_uring: before it went into the ring) */
	/*
	 * Started through its device's submit (engine-async.c): the device's answer, written by
	 * the device's thread before it hands the job to engine->finished, read by the engine
	 * thread that completes it (the engine's queue orders the two).
	 */
	bool dev_answered;
	int dev_result;
	/*
	 * DMIO_MEM_PIPE (pipe.c): the job writes from a pipe of its own, pipe[0] holding exactly
	 * len bytes (a tee of the caller's pipe), instead of iov.  The pipe is the job's: only
	 * whoever runs it (claimed) touches it, and gives it back to the client's pool (or closes
	 * it) before the job's outcome is recorded; a job never run has it closed by io_free.
	 */
	bool spliced;
	int pipe[2];
	int pipe_size;
};

struct dmio_io {
	struct dmio_client *client;
	enum dmio_op op;
	unsigned int flags;
	atomic_uint pending;
	atomic_ulong error_bits;
	int *region_errors;
	dmio_notify_fn fn;
	void *context;
	/*
	 * pending counts the jobs whose outcome is unknown; the one that brings it to zero finishes
	 * the call (notify fn, or wakes the synchronous caller, who spins briefly on done before
	 * sleeping on cond).  refs counts who may still touch the call: the synchronous caller and
	 * each job handed to the engine; the last to let go frees it.
	 */
	GMutex lock;
	GCond cond;
	atomic_bool done;
	bool sleeping; /* the caller waits on cond; under lock */
	atomic_uint refs;
	/* The data every job reads or writes: the caller's memory or one shared bounce copy. */
	struct iovec *iov;
	unsigned int iovcnt;
	uint64_t len; /* the longest region, bytes */
	/* Bounce pages (from the client's pool) and the caller's memory to copy reads back to. */
	void **bounce_pages;
	unsigned int bounce_count;
	struct iovec *user_iov;
	unsigned int user_iovcnt;
	/* DMIO_REQ_ABANDONABLE: called once nothing uses the call's memory (notify.release). */
	void (*release)(void *context);
	/*
	 * A running job was abandoned: the memory is the device's until it returns, so the bounce
	 * pages go back to the pool when the call is freed, not when it completes; the call holds
	 * the client (client->lent) until then.
	 */
	atomic_bool lent;
	unsigned int num_jobs;
	struct dmio_job jobs[];
};

/*
 * Do one job's I/O, blocking, in the calling thread: full transfers, retries, capability
 * fallbacks, zero-filling the unread part of a failed read.  Returns 0 or -errno.
 */
int dmio_job_execute(struct dmio_job *job);

/*
 * Report a job handed to the engine finished with err (0 or -errno), and drop the engine's
 * reference to its call.  The last job of a call copies bounced reads back, runs the notify fn
 * (async) or wakes the caller (sync).  Engines call it exactly once per submitted job, from their
 * own threads, unless they use dmio_job_run().
 */
void dmio_job_complete(struct dmio_job *job, int err);

/*
 * For engines whose queued jobs a synchronous caller may run itself (engine ops .stealable):
 * run the job unless the caller already claimed it, then drop the engine's reference.
 */
void dmio_job_run(struct dmio_job *job);

/* Drop the engine's reference to a job it will not run (someone else claimed it). */
void dmio_job_drop(struct dmio_job *job);

/* Point a job at the prefix of io->iov that covers its length (dmio.c). */
void dmio_job_set_iov(struct dmio_io *io, struct dmio_job *job);
/*
 * Take io->len bytes of bounce pages from the client's pool into io->bounce_pages (owned by the
 * call, freed by io_free) and describe them in a new iovec (*pages_out, the caller's): the page
 * count, or -errno.  The bounce of unaligned memory and the pipe's shared copy both start here.
 */
int dmio_io_take_bounce(struct dmio_io *io, struct iovec **pages_out);

/* ---- DMIO_MEM_PIPE (pipe.c) ---------------------------------------------------------------- */

/*
 * In dmio(), before any job is tracked or submitted, from the caller's thread: give every
 * spliceable job its tee of the caller's pipe fd; read the data once into bounce pages for the
 * others (io->iov), else discard it.  On return the caller's pipe holds io->len bytes fewer.
 * 0, -EINVAL (the pipe holds less than io->len: nothing taken) or -ENOMEM; on an error the
 * jobs hold no pipe and no bounce page is taken.
 */
int dmio_io_from_pipe(struct dmio_io *io, int fd);
/* Run a spliced job's write (not its FUA flush); gives its pipe back.  0 or -errno. */
int dmio_job_splice(struct dmio_job *job);
/* Close the pipe of a job that was never run (io_free). */
void dmio_job_pipe_close(struct dmio_job *job);
/* The client's pool of empty pipes. */
void dmio_client_pipes_init(struct dmio_client *client);
void dmio_client_pipes_destroy(struct dmio_client *client);

/* ---- Outstanding jobs and abandoning them (abandon.c) -------------------------------------- */

/* CLOCK_MONOTONIC in ns: the jobs' timing (dmio.c) and their ages (abandon.c). */
uint64_t dmio_now_ns(void);

/* Put a new job on its device's list (dmio(), before anyone may run it). */
void dmio_job_track(struct dmio_job *job);
/* The device starts on the job now. */
void dmio_job_mark_started(struct dmio_job *job);
/*
 * The job's device answered: take it off the list.  False when the job was abandoned: the
 * answer is ignored (and the last such answer of a closed device frees the device).
 */
bool dmio_job_untrack(struct dmio_job *job);
/* Record a job's outcome (the caller saw dmio_job_untrack() return true, or abandons it). */
void dmio_job_record(struct dmio_job *job, int err);
/* Take a reference to a call / drop one (the last frees it). */
void dmio_io_ref(struct dmio_io *io);
void dmio_io_unref(struct dmio_io *io);
/* Run a claimed-or-not job of a call with an abandoned job on a thread of its own. */
void dmio_job_rescue(struct dmio_job *job);

/* True in threads that run engine work (completions); synchronous calls made there run inline. */
bool dmio_in_engine_thread(void);
void dmio_set_engine_thread(void);

/* ---- Engines ------------------------------------------------------------------------------ */

struct dmio_engine_ops {
	const char *name;
	/* Set up the engine; 0 or -errno. */
	int (*create)(const struct dmio_client_opts *opts, void **priv);
	/* Start a job; it must end with dmio_job_complete() from an engine thread. */
	void (*submit)(void *priv, struct dmio_job *job);
	/* Tear down; every submitted job has completed. */
	void (*destroy)(void *priv);
	/* Workers call dmio_job_run(), so a synchronous caller may run queued jobs itself. */
	bool stealable;
	/*
	 * Optional: delta more (or fewer) of the engine's threads are stuck in jobs that were
	 * abandoned; the engine starts as many more so that it keeps its strength.
	 */
	void (*stuck)(void *priv, int delta);
	/*
	 * Required with dmio_job_submit_async(): a job its device answered (job->dev_answered) is
	 * handed over from the device's thread; run dmio_job_finish_async() on an engine thread,
	 * without blocking here.
	 */
	void (*finished)(void *priv, struct dmio_job *job);
};

/*
 * Engines call it first in their submit (engine-async.c): true when the job's device has a
 * submit op and takes the job's op as it is (no capability fallback needed), and so the job was
 * claimed and started on the device (or dropped: someone else had claimed it); false: the
 * engine runs the job its own way.  No engine thread waits while the device works on it.
 */
bool dmio_job_submit_async(struct dmio_job *job);
/*
 * On an engine thread, for a job handed to engine->finished: what dmio_job_execute() would add
 * (zero-filling a failed read, the fallbacks of a refused op), then dmio_job_complete().
 */
void dmio_job_finish_async(struct dmio_job *job);

extern const struct dmio_engine_ops dmio_engine_threads;
#ifdef HAVE_LIBURING
extern const struct dmio_engine_ops dmio_engine_io_uring;
#endif

/* ---- The bounce-page pool (pool.c) --------------------------------------------------------- */

struct dmio_pool {
	GMutex lock;
	void **free_pages;
	unsigned int free_count;
	unsigned int reserved; /* pages kept: free ones plus those lent out */
	unsigned int lent;
};

void dmio_pool_init(struct dmio_pool *pool);
/* Keep num_pages pages reserved; 0 or -ENOMEM. */
int dmio_pool_resize(struct dmio_pool *pool, unsigned int num_pages);
/* Take count page-aligned pages: from the reserve, else freshly allocated.  0 or -ENOMEM. */
int dmio_pool_take(struct dmio_pool *pool, unsigned int count, void **pages);
/* Give pages back: into the reserve up to its size, freed beyond it. */
void dmio_pool_give(struct dmio_pool *pool, unsigned int count, void **pages);
void dmio_pool_destroy(struct dmio_pool *pool);

/* ---- Clients ------------------------------------------------------------------------------ */

struct dmio_client {
	const struct dmio_engine_ops *engine;
	void *engine_priv;
	struct dmio_pool pool;
	GMutex lock;
	GCond idle;
	atomic_uint inflight;	/* calls submitted and not yet notified */
	atomic_bool destroying; /* dmio_client_destroy() waits for inflight to drop to 0 */
	atomic_ullong bounces;	/* calls bounced (io_bounce), for dmio_client_bounces() */
	/*
	 * Under lock: calls whose memory an abandoned job still holds; a destroy while there are
	 * some only marks the client orphaned, and the last of them destroys it.
	 */
	unsigned int lent;
	bool orphaned;
	/*
	 * Empty pipes for DMIO_MEM_PIPE regions (pipe.c), under pipes_lock, a leaf taken around
	 * nothing but the array.  The counters say how pipe regions were written.
	 */
	GMutex pipes_lock;
	GArray *pipes; /* struct dmio_pipe */
	atomic_ullong pipe_spliced;
	atomic_ullong pipe_copied;
};

/* A call became lent (an abandoned job holds its memory) / is freed after being lent. */
void dmio_client_lent_begin(struct dmio_client *client);
void dmio_client_lent_end(struct dmio_client *client);

/* The default client of the seed's API, created on first use; NULL when it cannot be. */
struct dmio_client *dmio_default_client(void);

/* Account for a call starting / ending on the client (destroy waits for the count to drop). */
void dmio_client_call_begin(struct dmio_client *client);
void dmio_client_call_end(struct dmio_client *client);

#endif /* DMIO_INTERNAL_H */
