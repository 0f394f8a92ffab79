/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdmio - the Linux kernel's dm-io service, in userspace.
 *
 * Synchronous and asynchronous I/O to one or more regions of one or more devices (regular files
 * or block devices), with three kinds of data buffer (page list, bio vector, one contiguous "vm"
 * buffer, plus a plain iovec array) and a per-region error bitset: bit i of the error is set when
 * region i failed.  The library reports; it never decides policy.
 *
 * All functions return 0 or a negative errno; none of them takes or returns glib types.
 * See libdmio(3).
 */
#ifndef DMIO_H
#define DMIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DMIO_SECTOR_SHIFT 9
#define DMIO_SECTOR_SIZE (1u << DMIO_SECTOR_SHIFT) /* regions are counted in 512-byte sectors */
#define DMIO_PAGE_SIZE 4096u			   /* size of a page in a dmio_page_list */
#define DMIO_MAX_REGIONS 64u			   /* bits in the error bitset */

/* ---- Devices ----------------------------------------------------------------------------- */

struct dmio_dev;

/* Flags for dmio_dev_open(). */
#define DMIO_DEV_RDONLY (1u << 0) /* open read-only; writes, discards and zeroes get -EROFS */
#define DMIO_DEV_DIRECT (1u << 1) /* O_DIRECT; the library bounces unaligned buffers */
/*
 * Hold the device exclusively while it is open: O_EXCL for a block device (-EBUSY while it is
 * mounted or another holder has it, as md does); for a regular file an open-file-description
 * lock over the whole file (F_OFD_SETLK, a write lock, or a read lock with DMIO_DEV_RDONLY),
 * -EBUSY while another exclusive open or a conflicting fcntl(2) lock has it.
 */
#define DMIO_DEV_EXCLUSIVE (1u << 2)

/*
 * Open a regular file, a block device, or an NBD export (an nbd://, nbds:// or nbd+unix:// URI,
 * through libnbd; -ENOTSUP when built without it; see libdmio(3)).  On success *out owns the open descriptor; close it with
 * dmio_dev_close().  Returns 0, or -errno (-ENOENT, -EACCES, -EISDIR for a directory, -EINVAL for
 * an unknown flag or a path that is neither a regular file nor a block device, -EROFS, -EBUSY
 * when DMIO_DEV_EXCLUSIVE is asked and another holder has the device, ...).
 */
int dmio_dev_open(const char *path, unsigned int flags, struct dmio_dev **out);

/*
 * Close a device.  No I/O may be in flight on it, except regions abandoned by dmio_dev_abandon():
 * then the device is closed when the last of them returns.  NULL is ignored.
 */
void dmio_dev_close(struct dmio_dev *dev);

/* Size of the device in 512-byte sectors (a file's trailing partial sector is not counted). */
uint64_t dmio_dev_sectors(const struct dmio_dev *dev);

/* Logical block size in bytes (BLKSSZGET for block devices, 512 for files). */
unsigned int dmio_dev_logical_block_size(const struct dmio_dev *dev);

/* The path the device was opened with (owned by the device). */
const char *dmio_dev_path(const struct dmio_dev *dev);

/* True for block devices (and NBD exports), false for regular files. */
bool dmio_dev_is_block(const struct dmio_dev *dev);

/* The flags the device was opened with. */
unsigned int dmio_dev_flags(const struct dmio_dev *dev);

/*
 * The O_DIRECT alignment of a DMIO_DEV_DIRECT device, in bytes: *mem_align for the address (and
 * length) of each piece of memory the kernel may be handed without a bounce, *offset_align for a
 * region's start and length.  Both 1 for a device opened without DMIO_DEV_DIRECT.  Either pointer
 * may be NULL.
 */
void dmio_dev_direct_align(const struct dmio_dev *dev, unsigned int *mem_align,
			   unsigned int *offset_align);

/*
 * Capability probes.  A capability starts as the kernel advertises it (sysfs for block devices,
 * optimistic for files) and is switched off for good the first time the kernel answers
 * EOPNOTSUPP.  Without can_zero, DMIO_WRITE_ZEROES still works by writing zero pages; without
 * can_fua, DMIO_REQ_FUA writes are followed by fdatasync; without can_discard, DMIO_DISCARD fails
 * the region with EOPNOTSUPP.
 */
bool dmio_dev_can_discard(const struct dmio_dev *dev);
bool dmio_dev_can_zero(const struct dmio_dev *dev);
bool dmio_dev_can_fua(const struct dmio_dev *dev);

/*
 * Outstanding I/O of dev: returns how long, in nanoseconds, the device has been working on the
 * oldest region it started and has not answered (0: none), and sets *outstanding (when not
 * NULL) to the regions issued to it and not answered, started or waiting.  Abandoned regions
 * are not counted.
 */
uint64_t dmio_dev_busy_ns(struct dmio_dev *dev, unsigned int *outstanding);

/*
 * Give up on every outstanding region of dev whose call is DMIO_REQ_ABANDONABLE, started or
 * waiting: each finishes now with -err (a positive errno) as if the device had answered so, and
 * its call completes once its other regions did; a waiting region is never started.  Whatever
 * the device answers later is ignored.  A running region keeps its call's memory until the
 * device answers; dmio_dev_close() of the device is then carried out by its last answer.
 * Runs the completions in the calling thread: hold no lock they need.  Returns how many regions
 * were abandoned.
 */
unsigned int dmio_dev_abandon(struct dmio_dev *dev, int err);

/* Regions of dev abandoned while running whose device has not answered yet. */
unsigned int dmio_dev_abandoned(struct dmio_dev *dev);

/* ---- Paths: files and NBD URIs ------------------------------------------------------------- */

/*
 * True when path is an NBD URI (nbd://, nbds://, nbd+unix://, nbds+unix://, nbd+vsock:// or
 * nbds+vsock://), which dmio_dev_open() opens as an NBD export; false for NULL and any other
 * path.
 */
bool dmio_path_is_uri(const char *path);

/*
 * Why the NBD URI path cannot name an export (a phrase such as "names no host", to follow the
 * URI in a message), or NULL when it is well formed or is not an NBD URI.  Checked without
 * connecting: a well-formed URI may still name no server.
 */
const char *dmio_path_uri_problem(const char *path);

/*
 * path fit for messages and status: an NBD URI with its user information and the values of its
 * password= and tls-psk-file= parameters replaced by "***", any other path unchanged.  A new
 * string to free(); NULL when path is NULL or memory runs out.
 */
char *dmio_path_display(const char *path);

/*
 * One spelling per export, to tell whether two paths name the same one: a well-formed NBD URI
 * with its scheme and host in lower case, the default TCP port (10809) dropped and an empty
 * export name written "/"; any other path unchanged.  A new string to free(); NULL when path
 * is NULL or memory runs out.
 */
char *dmio_path_normalize(const char *path);

/* ---- Regions and memory -------------------------------------------------------------------- */

/* A range of a device, in 512-byte sectors.  count 0 is ignored, except by DMIO_FLUSH. */
struct dmio_region {
	struct dmio_dev *dev;
	uint64_t sector;
	uint64_t count;
};

/* A list of DMIO_PAGE_SIZE-byte pages. */
struct dmio_page_list {
	struct dmio_page_list *next;
	void *page;
};

/* One piece of a bio vector: len bytes at page + offset.  An array of them covers the region. */
struct dmio_bvec {
	void *page;
	unsigned int len;
	unsigned int offset;
};

/*
 * Completion callback of the asynchronous calls.  error is a bitset: bit i is set when region i
 * failed.  Called exactly once per call, from an engine thread.
 */
typedef void (*dmio_notify_fn)(unsigned long error, void *context);

/* ---- Clients and requests (the modern API) ------------------------------------------------- */

struct dmio_client;

enum dmio_engine {
	DMIO_ENGINE_THREADS = 0, /* a thread pool issuing preadv/pwritev per region (default) */
	DMIO_ENGINE_IO_URING = 1 /* liburing; only when built --with-liburing */
};

struct dmio_client_opts {
	enum dmio_engine engine;
	unsigned int threads;	     /* engine threads; 0 = default (16) */
	unsigned int reserved_pages; /* bounce pages kept ready, as dmio_client_resize() */
	unsigned int queue_depth;    /* io_uring submission queue entries; 0 = default (256) */
};

/*
 * Create a client: an engine plus a pool of reserved, page-aligned bounce pages.  opts may be NULL
 * for the defaults.  Returns 0 and sets *out, or -EINVAL (bad option), -ENOTSUP (engine not built
 * in), -ENOMEM, or the engine's setup error.
 */
int dmio_client_create(const struct dmio_client_opts *opts, struct dmio_client **out);

/*
 * Reserve exactly num_pages bounce pages for this client (growing or shrinking the pool), so that
 * I/O that needs bouncing never waits on allocation.  Returns 0 or -ENOMEM.
 */
int dmio_client_resize(struct dmio_client *client, unsigned int num_pages);

/*
 * Wait for the client's in-flight I/O, then free it.  NULL is ignored.  Never call it from a
 * notify fn of the same client (nor the last dmio_put() from one of the default client's): it
 * would wait for the very call that is running it.
 */
void dmio_client_destroy(struct dmio_client *client);

/* The name of the client's engine: "threads" or "io_uring". */
const char *dmio_client_engine_name(const struct dmio_client *client);

/*
 * How many calls of the client were bounced (their memory copied through pool pages, once per
 * call whatever the number of regions) since it was created.
 */
uint64_t dmio_client_bounces(const struct dmio_client *client);
/*
 * How the client's DMIO_MEM_PIPE writes reached their regions so far: *spliced (when not NULL)
 * receives the regions written by splicing the pipe's pages into the device, *copied those
 * written from a copy read out of the pipe (a device that cannot take a splice, O_DIRECT, a
 * failed duplicate, the rest of a refused splice).
 */
void dmio_client_pipe_stats(const struct dmio_client *client, uint64_t *spliced, uint64_t *copied);

/* Operations.  DMIO_READ and DMIO_WRITE are the seed's rw values. */
enum dmio_op {
	DMIO_READ = 0,
	DMIO_WRITE = 1,
	DMIO_FLUSH = 2,	       /* fdatasync every region's device (count is ignored) */
	DMIO_DISCARD = 3,      /* punch a hole / BLKDISCARD; reads afterwards return zeroes */
	DMIO_WRITE_ZEROES = 4, /* the range reads back as zeroes */
};

/* Request flags. */
#define DMIO_REQ_FUA (1u << 0) /* the write is durable when it completes (RWF_DSYNC) */
/*
 * Asynchronous calls: the calling thread may run regions itself (those cheaper than a thread
 * hand-off, or the first one), so the notify function may run in it before dmio() returns.
 */
#define DMIO_REQ_CALLER_RUNS (1u << 1)
/*
 * The call may be abandoned (dmio_dev_abandon()): a region whose device does not answer is
 * finished with the abandon's errno, and the call completes without waiting for it.  Such a
 * region keeps using the call's memory until its device answers: a synchronous call is bounced
 * through libdmio's own pages, so the caller's memory is free when dmio() returns; an
 * asynchronous call learns when its memory is free from notify.release.
 */
#define DMIO_REQ_ABANDONABLE (1u << 2)

enum dmio_mem_type {
	DMIO_MEM_PAGE_LIST = 0, /* ptr.pl, starting offset bytes into the first page */
	DMIO_MEM_BVEC = 1,	/* ptr.bvec */
	DMIO_MEM_VM = 2,	/* ptr.vma, one contiguous buffer */
	DMIO_MEM_IOVEC = 3,	/* ptr.iov.vec with ptr.iov.count entries */
	DMIO_MEM_PIPE = 4,	/* ptr.pipe, the read end of a pipe holding the data (writes) */
};

struct dmio_memory {
	enum dmio_mem_type type;
	unsigned int offset; /* DMIO_MEM_PAGE_LIST only */
	union {
		struct dmio_page_list *pl;
		struct dmio_bvec *bvec;
		void *vma;
		struct {
			const struct iovec *vec;
			unsigned int count;
		} iov;
		int pipe;
	} ptr;
};

/*
 * DMIO_MEM_PIPE (DMIO_WRITE only): the pipe already holds at least the longest region's bytes
 * (dmio() never waits for a writer), and dmio() takes exactly that many out of it before it
 * returns, whatever becomes of the regions; an argument error (-EINVAL, -EROFS) leaves the pipe
 * untouched, any other refusal (-ENOMEM) may have emptied it.  A region on a regular file or a
 * block device opened without DMIO_DEV_DIRECT gets its own duplicate of the pipe's pages
 * (tee(2)), spliced into the device by whoever runs the region: one copy, into the device.  The
 * other regions (other kinds, O_DIRECT, a duplicate that could not be made) share one copy of
 * the data, read out of the pipe once.  A region whose device refuses the splice writes the rest
 * from a copy (and that device is not spliced again); a device error fails the region as a
 * pwritev would.  Each region's pipe is its own until it is written (an abandoned region keeps
 * it until its device answers): the caller's pipe is free again when dmio() returns.
 */

struct dmio_notify {
	dmio_notify_fn fn; /* NULL: dmio() is synchronous */
	void *context;
	/*
	 * Optional, asynchronous calls: called once with context when no region uses the call's
	 * memory any more - right after fn, or, when a region was abandoned, once its device
	 * answered (which may be never) - from whichever thread lets go of it last.
	 */
	void (*release)(void *context);
};

struct dmio_request {
	enum dmio_op op;
	unsigned int flags; /* DMIO_REQ_* */
	struct dmio_memory mem; /* unused by flush, discard and write-zeroes */
	struct dmio_notify notify;
	struct dmio_client *client; /* NULL: the default client of dmio_get() */
	/*
	 * Optional: an array of num_regions ints that receives each region's errno (0 when it
	 * succeeded).  For an asynchronous call it must stay valid until the notify fn runs; it is
	 * filled before the call.
	 */
	int *region_errors;
};

/*
 * Issue one request over num_regions regions.  Writes (and discards, write-zeroes, flushes) go to
 * 1..64 regions, every one with the same data, in parallel; reads to exactly one region.  Each
 * region uses the first count sectors of the memory.
 *
 * Synchronous (req->notify.fn == NULL): returns 0 when every region succeeded, -EIO when any
 * failed; *error_bits (when not NULL) receives the bitset either way.
 * Asynchronous: returns 0 once submitted; the outcome reaches notify.fn only, exactly once.
 *
 * Argument errors return -EINVAL and issue nothing, notify.fn is not called: no or more than 64
 * regions, a read of several regions, a NULL device or buffer, a region past the end of its
 * device, an unknown op or flag, a DMIO_DEV_DIRECT region not aligned to the device.  A write,
 * discard or write-zeroes on a DMIO_DEV_RDONLY device returns -EROFS.
 *
 * A failed read leaves zeroes in the part of the buffer that could not be read.  Short transfers,
 * EINTR and EAGAIN are retried to completion.
 */
int dmio(struct dmio_request *req, unsigned int num_regions, struct dmio_region *where,
	 unsigned long *error_bits);

/* ---- The seed's API, on the default client ------------------------------------------------- */

/*
 * Create the default client on first use and grow its reserve by num_pages bounce pages.
 * Returns 0 or -errno.
 */
int dmio_get(unsigned int num_pages);

/*
 * Give back num_pages reserved by dmio_get().  When the last reservation is given back, the
 * default client waits for its in-flight I/O and is freed.
 */
void dmio_put(unsigned int num_pages);

/* Page-list memory, offset bytes into the first page.  rw is DMIO_READ or DMIO_WRITE. */
int dmio_sync(unsigned int num_regions, struct dmio_region *where, int rw,
	      struct dmio_page_list *pl, unsigned int offset, unsigned long *error_bits);
int dmio_async(unsigned int num_regions, struct dmio_region *where, int rw,
	       struct dmio_page_list *pl, unsigned int offset, dmio_notify_fn fn, void *context);

/* Bio-vector memory: an array of dmio_bvec covering each region's length. */
int dmio_sync_bvec(unsigned int num_regions, struct dmio_region *where, int rw,
		   struct dmio_bvec *bvec, unsigned long *error_bits);
int dmio_async_bvec(unsigned int num_regions, struct dmio_region *where, int rw,
		    struct dmio_bvec *bvec, dmio_notify_fn fn, void *context);

/* One contiguous buffer. */
int dmio_sync_vm(unsigned int num_regions, struct dmio_region *where, int rw, void *data,
		 unsigned long *error_bits);
int dmio_async_vm(unsigned int num_regions, struct dmio_region *where, int rw, void *data,
		  dmio_notify_fn fn, void *context);

#ifdef __cplusplus
}
#endif

#endif /* DMIO_H */
