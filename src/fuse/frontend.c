/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The FUSE front end (frontend.h).
 *
 * Reads and writes are answered by the worker thread that received them, once the mirror is
 * done (mirror_write_wait, mirror_read_wait): a write's payload goes to the legs from libfuse's
 * request buffer, with no copy.  Flushes, fsyncs and fallocates are answered from the mirror's
 * completion.
 */
#include "config.h"

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <fuse_lowlevel.h>
#include <linux/falloc.h>
#include <linux/fuse.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fuse/frontend.h"
#include "fuse/opens.h"
#include "fuse/ring.h"
#include "fuse/stop.h"
#include "fuse/xattr.h"

#define MAX_WRITE    (1u << 20)
#define BUFFER_SIZE  MAX_WRITE
#define ATTR_TIMEOUT 1.0

struct frontend {
	struct mirror *m;
	struct fuse_session *se;
	enum cache_mode cache;
	bool splice; /* FUSE_CAP_SPLICE_READ: large WRITE payloads come in a pipe (write_buf) */
	bool mounted;
	/* The file's attributes: the mountpoint's at start, changed by chmod/chown/utimes. */
	GMutex attr_lock;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	struct timespec atime, mtime, ctime;
	/* Requests handed to the mirror and not yet replied to. */
	atomic_uint inflight;
	/* Stopping (stop.h): the opens of the file, and the thread that decides when to stop. */
	struct opens *opens;
	struct stopper *stopper;
	struct xattr_hooks hooks; /* the control commands' stop and membership hooks */
	void (*on_membership)(void *opaque, struct mirror *m, bool save);
	bool (*on_reload)(void *opaque, struct mirror *m);
	void *opaque;
	pthread_t loop_thread; /* set before loop_running */
	atomic_bool loop_running, loop_returned;
	/* The loop's thread (frontend_run): loop_lock protects loop_result, loop_cond its end. */
	GMutex loop_lock;
	GCond loop_cond;
	int loop_result;
	struct fuse_loop_config *loop_config;
	bool drained;
	/* Set once by the restart hook, read after the loop: see frontend_restarting. */
	atomic_bool restarting;
	bool (*on_restart)(void *opaque, GError **error);
	/* Set at mount, then read-only: a taken-over connection is unmounted by us, not libfuse. */
	bool taken_over;
	char *mountpoint;
	unsigned int restarts; /* restarts of this mount so far (xattr_set_restarts) */
	bool single_channel;   /* read-only: frontend_options.single_channel */
	/*
	 * FUSE over io_uring (ring.h): set at mount, before any request, then read-only (the ring
	 * has its own locks).  ring_refused: fuse-transport = io_uring and the kernel said no.
	 */
	enum fuse_transport_mode transport;
	struct fuse_ring *ring;
	atomic_bool ring_refused;
	atomic_uint_fast64_t dev_requests; /* requests read from /dev/fuse */
};

/* frontend_options.on_connected, set before the loop; called once. */
static void (*connected_fn)(void *opaque, const struct frontend_handover *h);
static void *connected_opaque;
static struct frontend *connected_fe;

/* A request handed to the mirror: its answer replies (a read's or write's lives on the stack). */
struct request {
	struct frontend *fe;
	fuse_req_t req;
};

/* A request handed to the mirror counts in inflight until it is answered. */
static void request_begin(struct frontend *fe)
{
	atomic_fetch_add(&fe->inflight, 1);
}

static void request_answered(struct request *r)
{
	atomic_fetch_sub(&r->fe->inflight, 1);
}

static struct request *request_new(struct frontend *fe, fuse_req_t req)
{
	struct request *r = g_new0(struct request, 1);

	r->fe = fe;
	r->req = req;
	request_begin(fe);
	return r;
}

static void request_free(struct request *r)
{
	struct frontend *fe = r->fe;

	g_free(r);
	atomic_fetch_sub(&fe->inflight, 1);
}

static void touch(struct frontend *fe, bool modified)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	g_mutex_lock(&fe->attr_lock);
	if (modified)
		fe->mtime = fe->ctime = now;
	else
		fe->ctime = now;
	g_mutex_unlock(&fe->attr_lock);
}

static void fill_attr(struct frontend *fe, struct stat *st)
{
	uint64_t size = mirror_size(fe->m);

	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_nlink = 1;
	st->st_size = (off_t)size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)(size / 512);
	g_mutex_lock(&fe->attr_lock);
	st->st_mode = S_IFREG | (fe->mode & 07777);
	st->st_uid = fe->uid;
	st->st_gid = fe->gid;
	st->st_atim = fe->atime;
	st->st_mtim = fe->mtime;
	st->st_ctim = fe->ctime;
	g_mutex_unlock(&fe->attr_lock);
}

/* ---- The /dev/fuse channel ---------------------------------------------------------------- */

/*
 * Open flags to add to the open reply this thread is sending.  libfuse 3.14's fuse_file_info
 * has no field for FOPEN_PARALLEL_DIRECT_WRITES, so op_open sets them here and channel_writev,
 * which libfuse calls in the same thread to send the reply, adds them to fuse_open_out.
 */
static __thread uint32_t open_reply_flags;

/*
 * The kernel's FUSE_INIT request, kept for a restart's next process (frontend_handover).  Written
 * once, by the worker that reads the connection's first request (or by a takeover before the
 * loop starts), before init_request_len is stored; the kernel sends nothing else until INIT is
 * answered, so no other worker reads meanwhile.  Read after the loop.
 */
static unsigned char init_request[FRONTEND_INIT_MAX] __attribute__((aligned(8)));
static atomic_size_t init_request_len;

/*
 * A takeover replays the INIT the kernel already had answered: its reply, of this unique, must
 * not reach the kernel (which would take it for the answer of some other request).  0: none.
 * swallowed_error is the reply's error, for the takeover to check.  Set and read by the thread
 * of frontend_mount, which also sends that reply (fuse_session_process_buf), before any worker.
 */
static uint64_t swallow_unique;
static int32_t swallowed_error = 1;

/*
 * A restart's hand-over (frontend_handover) must lose no request the kernel sent: libfuse drops
 * a request that a worker read after the session's exit, and the kernel ends the requests left
 * on a closed clone descriptor with ECONNABORTED.  So a restart does not end the session: once
 * it begins, a worker that comes back to read parks here for good (exec ends it), a worker
 * whose read returns a request keeps it, unprocessed, for the next process (with the
 * descriptor it came from, whose processing list holds it) and parks, and a worker blocked in
 * read() is woken by PARK_SIGNAL (read returns EINTR, having taken nothing) to park too.  The
 * hand-over goes on once every worker is parked and the mirror owes no reply.
 *
 * park_lock protects every park_* variable and the workers' slots; park_begun is also read
 * without it (a hint: the decision is taken under the lock).  A leaf lock, taken under loop_lock
 * by frontend_run (park_done): nothing is called under it but memdup, g_ptr_array calls and
 * pthread_kill.
 */
#define PARK_SIGNAL (SIGRTMIN + 3)

struct worker_slot {
	pthread_t thread;
	bool in_read; /* inside read(): PARK_SIGNAL wakes it */
	/* Page-aligned room for a request's bytes after its first WRITE_HEAD (channel_read). */
	void *payload;
	size_t payload_cap;
};

/*
 * A FUSE_WRITE's payload sits WRITE_HEAD bytes into libfuse's buffer (fuse_in_header and
 * fuse_write_in), never page-aligned: every write to an O_DIRECT leg would be bounced (copied)
 * by libdmio.  So channel_read reads a request into {libfuse's buffer, WRITE_HEAD bytes} and
 * {the worker's page-aligned payload}: a WRITE's payload stays there, and op_write, on the same
 * thread, takes it (aligned_write says where libfuse believes it is); any other request is copied
 * back to its place in libfuse's buffer at once.  Thread-local, this worker's only.  A write_buf
 * handler (splice) would not see aligned_write: whoever adds one must take it there too.
 */
#define WRITE_HEAD (sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in))

static _Thread_local struct {
	const char *at;	     /* libfuse's buffer + WRITE_HEAD of the last WRITE read, or NULL */
	const char *payload; /* where its payload really is */
	size_t len;
} aligned_write;

struct parked_request {
	int fd; /* the descriptor it was read from */
	size_t len;
	void *bytes;
};

static GMutex park_lock;
static GCond park_cond;
static atomic_bool park_begun;
static GPtrArray *park_slots;	 /* struct worker_slot *: the workers alive (not owned) */
static unsigned int park_parked; /* workers parked */
static GPtrArray *park_requests; /* struct parked_request *: taken and kept for the next process */

static void worker_slot_free(gpointer data)
{
	g_mutex_lock(&park_lock);
	g_ptr_array_remove_fast(park_slots, data);
	g_cond_broadcast(&park_cond);
	g_mutex_unlock(&park_lock);
	free(((struct worker_slot *)data)->payload);
	g_free(data);
}

/* The calling worker's slot, registered on its first read; it goes when the thread exits. */
static struct worker_slot *worker_slot(void)
{
	static GPrivate key = G_PRIVATE_INIT(worker_slot_free);
	struct worker_slot *slot = g_private_get(&key);

	if (slot == NULL) {
		slot = g_new0(struct worker_slot, 1);
		slot->thread = pthread_self();
		g_mutex_lock(&park_lock);
		if (park_slots == NULL)
			park_slots = g_ptr_array_new();
		g_ptr_array_add(park_slots, slot);
		g_mutex_unlock(&park_lock);
		g_private_set(&key, slot);
	}
	return slot;
}

/* Park the calling worker for good (park_lock held).  exec ends it. */
static G_NORETURN void park(void)
{
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	park_parked++;
	g_cond_broadcast(&park_cond);
	for (;;)
		g_cond_wait(&park_cond, &park_lock);
}

static void on_park_signal(int sig)
{
	/* Only interrupts read(). */
}

/* Tell on_connected: the connection is fd, its INIT is known. */
static void connected(int fd)
{
	struct frontend *fe = connected_fe;
	struct frontend_handover h = {.fd = fd, .kept_fd = -1};

	if (connected_fn == NULL)
		return;
	h.init_len = atomic_load(&init_request_len);
	memcpy(h.init, init_request, h.init_len);
	g_mutex_lock(&fe->attr_lock);
	h.mode = fe->mode;
	h.uid = fe->uid;
	h.gid = fe->gid;
	g_mutex_unlock(&fe->attr_lock);
	h.restarts = fe->restarts;
	connected_fn(connected_opaque, &h);
}

static ssize_t channel_read(int fd, void *buf, size_t len, void *userdata)
{
	struct worker_slot *slot = worker_slot();
	bool split = false;
	ssize_t n;
	int err;

	aligned_write.at = NULL;
	if (slot->payload == NULL && len > WRITE_HEAD &&
	    posix_memalign(&slot->payload, 4096, len - WRITE_HEAD) == 0)
		slot->payload_cap = len - WRITE_HEAD;
	g_mutex_lock(&park_lock);
	if (atomic_load(&park_begun))
		park();
	slot->in_read = true;
	g_mutex_unlock(&park_lock);
	if (slot->payload != NULL && len > WRITE_HEAD && len - WRITE_HEAD <= slot->payload_cap) {
		struct iovec iov[2] = {
		    {.iov_base = buf, .iov_len = WRITE_HEAD},
		    {.iov_base = slot->payload, .iov_len = len - WRITE_HEAD},
		};

		n = readv(fd, iov, 2);
		split = n > (ssize_t)WRITE_HEAD;
	} else {
		n = read(fd, buf, len);
	}
	err = errno;
	if (split && ((struct fuse_in_header *)buf)->opcode == FUSE_WRITE) {
		aligned_write.at = (const char *)buf + WRITE_HEAD;
		aligned_write.payload = slot->payload;
		aligned_write.len = (size_t)n - WRITE_HEAD;
	} else if (split) {
		memcpy((char *)buf + WRITE_HEAD, slot->payload, (size_t)n - WRITE_HEAD);
	}
	g_mutex_lock(&park_lock);
	slot->in_read = false;
	if (atomic_load(&park_begun)) {
		if (n > 0) {
			struct parked_request *p = g_new0(struct parked_request, 1);

			p->fd = fd;
			p->len = (size_t)n;
			/* The real bytes, whole: a WRITE's payload is in the worker's pages. */
			p->bytes = g_memdup2(buf, (gsize)n);
			if (aligned_write.at != NULL)
				memcpy((char *)p->bytes + WRITE_HEAD, aligned_write.payload,
				       aligned_write.len);
			g_ptr_array_add(park_requests, p);
		}
		park();
	}
	g_mutex_unlock(&park_lock);

	if (n > 0)
		atomic_fetch_add(&connected_fe->dev_requests, 1);
	if (n >= (ssize_t)sizeof(struct fuse_in_header) && atomic_load(&init_request_len) == 0 &&
	    ((struct fuse_in_header *)buf)->opcode == FUSE_INIT && (size_t)n <= FRONTEND_INIT_MAX) {
		fuse_ring_saw_init(connected_fe->ring, buf, (size_t)n);
		memcpy(init_request, buf, (size_t)n);
		atomic_store(&init_request_len, (size_t)n);
		/* The session's descriptor: a clone's would not outlive this process. */
		connected(fuse_session_fd(connected_fe->se));
	}
	errno = err;
	return n;
}

/* Begin parking the workers (the restart hook); false when it has begun already. */
static bool park_begin(void)
{
	struct sigaction sa;
	bool first;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_park_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: read() must return. */
	sigaction(PARK_SIGNAL, &sa, NULL);
	g_mutex_lock(&park_lock);
	first = !atomic_load(&park_begun);
	if (first) {
		if (park_slots == NULL)
			park_slots = g_ptr_array_new();
		park_requests = g_ptr_array_new();
		atomic_store(&park_begun, true);
	}
	g_mutex_unlock(&park_lock);
	return first;
}

/*
 * Whether every worker is parked; wakes those still blocked in read().  A signal that comes
 * between the check of park_begun and read() is lost: so this is called again (frontend_run,
 * every few milliseconds) until it says yes.
 */
static bool park_done(void)
{
	bool done;

	g_mutex_lock(&park_lock);
	for (guint i = 0; i < park_slots->len; i++) {
		struct worker_slot *slot = g_ptr_array_index(park_slots, i);

		if (slot->in_read)
			pthread_kill(slot->thread, PARK_SIGNAL);
	}
	done = park_parked == park_slots->len;
	g_mutex_unlock(&park_lock);
	return done;
}

/*
 * In a takeover, the requests the last process kept are answered on the descriptors they were
 * read from (whose processing lists hold them): unique -> descriptor, under replay_lock (a
 * leaf).  replay_count says without the lock whether there is any.
 */
static GMutex replay_lock;
static GHashTable *replay_fds; /* guint64 unique -> int fd */
static atomic_uint replay_count;

/* Where the reply of unique goes: its kept descriptor (forgotten now), or fd. */
static int replay_target(uint64_t unique, int fd, bool *close_after)
{
	gpointer value;
	guint64 key = unique;

	*close_after = false;
	if (atomic_load(&replay_count) == 0)
		return fd;
	g_mutex_lock(&replay_lock);
	if (replay_fds != NULL && g_hash_table_lookup_extended(replay_fds, &key, NULL, &value)) {
		fd = GPOINTER_TO_INT(value);
		g_hash_table_remove(replay_fds, &key);
		atomic_fetch_sub(&replay_count, 1);
		*close_after = true;
	}
	g_mutex_unlock(&replay_lock);
	return fd;
}

/* Why the kernel does not serve this connection over io_uring, for the log. */
static const char *ring_absent_reason(bool mounted)
{
	int param = fuse_ring_kernel_param();

	if (param == -ENOENT)
		return "the kernel has no FUSE over io_uring";
	if (param == 0 && !mounted)
		return "/sys/module/fuse/parameters/enable_uring is N";
	if (param == 0)
		return "/sys/module/fuse/parameters/enable_uring was N at mount";
	return "the kernel did not offer it in FUSE_INIT";
}

/*
 * The FUSE_INIT reply that asked for the ring is written: start it, or say why /dev/fuse
 * serves (fuse-transport = io_uring: end the session, frontend_run fails).
 */
static void start_ring(struct frontend *fe)
{
	GError *error = NULL;
	unsigned int queues, entries;

	if (fe->transport == FUSE_TRANSPORT_MODE_DEV) {
		g_message("FUSE over io_uring not used (fuse-transport = dev): serving /dev/fuse");
		return;
	}
	if (!fuse_ring_offered(fe->ring)) {
		error = g_error_new_literal(G_FILE_ERROR, G_FILE_ERROR_NOSYS,
					    ring_absent_reason(true));
	} else if (fuse_ring_start(fe->ring, &error) == 0) {
		fuse_ring_shape(fe->ring, &queues, &entries);
		g_message("FUSE over io_uring: %u queues x %u entries", queues, entries);
		/* The requests on a dead process's entries are not sent again (fusemirrord(8)). */
		if (fe->single_channel)
			g_warning("FUSE over io_uring: a crash restart from systemd's descriptor "
				  "store cannot take this connection over cleanly (fuse-transport = "
				  "dev can)");
		return;
	}
	if (fe->transport == FUSE_TRANSPORT_MODE_IO_URING) {
		g_critical("fuse-transport = io_uring: FUSE over io_uring not available (%s): "
			   "stopping",
			   error->message);
		atomic_store(&fe->ring_refused, true);
		fuse_session_exit(fe->se);
	} else {
		g_message("FUSE over io_uring not available (%s): serving /dev/fuse",
			  error->message);
	}
	g_error_free(error);
}

static ssize_t channel_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	bool close_after = false, init_reply;
	ssize_t n;

	/* A reply to a request the ring carried goes back on the ring. */
	if (fuse_ring_reply(connected_fe->ring, iov, count, &n))
		return n;
	if (swallow_unique != 0 && count >= 1 && iov[0].iov_len == sizeof(struct fuse_out_header) &&
	    ((struct fuse_out_header *)iov[0].iov_base)->unique == swallow_unique) {
		ssize_t total = 0;

		/* A takeover's replayed FUSE_INIT: the ring learns what was negotiated. */
		fuse_ring_patch_init_reply(connected_fe->ring, iov, count);
		swallowed_error = ((struct fuse_out_header *)iov[0].iov_base)->error;
		swallow_unique = 0;
		for (int i = 0; i < count; i++)
			total += (ssize_t)iov[i].iov_len;
		return total;
	}
	if (open_reply_flags != 0 && count == 2 &&
	    iov[0].iov_len == sizeof(struct fuse_out_header) &&
	    iov[1].iov_len == sizeof(struct fuse_open_out)) {
		struct fuse_open_out *out = iov[1].iov_base;

		out->open_flags |= open_reply_flags;
	}
	if (count >= 1 && iov[0].iov_len == sizeof(struct fuse_out_header))
		fd = replay_target(((struct fuse_out_header *)iov[0].iov_base)->unique, fd,
				   &close_after);
	/* FUSE_INIT's reply asks for the ring (when wanted and offered). */
	init_reply = fuse_ring_patch_init_reply(connected_fe->ring, iov, count);
	n = writev(fd, iov, count);
	/* A kept descriptor held that one request: its processing list is empty now. */
	if (close_after)
		close(fd);
	/* The kernel has processed the reply when writev returns: entries may register. */
	if (init_reply && n > 0)
		start_ring(connected_fe);
	return n;
}

/*
 * A request that a worker spliced into libfuse's pipe after a restart began: its bytes out of
 * the pipe again, into memory, to be kept as channel_read keeps one; NULL when they cannot be.
 * libfuse hands us only the pipe's write end; opening it again through /proc gives a read end
 * of the same pipe.  Called without park_lock: the worker is not parked yet, so the hand-over
 * (park_done) waits for it.
 */
static struct parked_request *unsplice_request(int fd, int pipe_wr, size_t n)
{
	char path[64];
	struct parked_request *p;
	size_t done = 0;
	int rd;

	g_snprintf(path, sizeof(path), "/proc/self/fd/%d", pipe_wr);
	rd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (rd < 0) {
		g_warning("restart: cannot read back a spliced request (%s): it is lost",
			  g_strerror(errno));
		return NULL;
	}
	p = g_new0(struct parked_request, 1);
	p->fd = fd;
	p->bytes = g_malloc(n);
	while (done < n) {
		ssize_t r = read(rd, (char *)p->bytes + done, n - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		done += (size_t)r;
	}
	close(rd);
	p->len = done;
	return p;
}

/*
 * FUSE_CAP_SPLICE_READ's receive: channel_read's parking, around a splice from the descriptor
 * into libfuse's pipe.  The INIT comes before splicing is negotiated, through channel_read.
 */
static ssize_t channel_splice_receive(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
				      unsigned int flags, void *userdata)
{
	struct worker_slot *slot = worker_slot();
	ssize_t n;
	int err;

	g_mutex_lock(&park_lock);
	if (atomic_load(&park_begun))
		park();
	slot->in_read = true;
	g_mutex_unlock(&park_lock);
	n = splice(fdin, offin, fdout, offout, len, flags);
	err = errno;
	g_mutex_lock(&park_lock);
	slot->in_read = false;
	if (atomic_load(&park_begun)) {
		struct parked_request *p = NULL;

		if (n > 0) {
			g_mutex_unlock(&park_lock);
			p = unsplice_request(fdin, fdout, (size_t)n);
			g_mutex_lock(&park_lock);
		}
		if (p != NULL)
			g_ptr_array_add(park_requests, p);
		park();
	}
	g_mutex_unlock(&park_lock);
	errno = err;
	return n;
}

static const struct fuse_custom_io channel_io = {
    .read = channel_read,
    .writev = channel_writev,
    .splice_receive = channel_splice_receive,
};

/* ---- Operations ---------------------------------------------------------------------------- */

/*
 * libfuse splices a request only into a pipe that holds its largest one (MAX_WRITE and a page of
 * headers: 2 MiB once rounded), else it reads every request silently; a pipe that big needs
 * fs.pipe-max-size >= 2 MiB or CAP_SYS_RESOURCE.  Say so instead of pretending to splice.
 */
static bool splice_pipes_fit(void)
{
	int fds[2];
	bool fit;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return false;
	fit = fcntl(fds[0], F_SETPIPE_SZ, (int)(MAX_WRITE + 4096)) >= (int)(MAX_WRITE + 4096);
	close(fds[0]);
	close(fds[1]);
	if (!fit)
		g_message(
		    "splice: a pipe of %u KiB is refused (fs.pipe-max-size, CAP_SYS_RESOURCE): "
		    "writes are copied as with splice = false",
		    (MAX_WRITE + 4096) / 1024);
	return fit;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	conn->max_write = MAX_WRITE;
	conn->max_background = 128;
	conn->congestion_threshold = 96;
	/* O_TRUNC is ignored (the size is fixed), as on a block device. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	/*
	 * cache = writeback is the kernel's page cache in front of the file, without FUSE's
	 * writeback-cache mode: in that mode the kernel keeps its own idea of the size of the root
	 * inode (0) and lets writes grow it, and the mirror's size is fixed.
	 */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* Nobody holds locks on a disk image across machines; let the kernel do them locally. */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	/* Large WRITE payloads in a pipe, spliced on to the legs (op_write_buf). */
	if (((struct frontend *)userdata)->splice && (conn->capable & FUSE_CAP_SPLICE_READ) &&
	    splice_pipes_fit())
		conn->want |= FUSE_CAP_SPLICE_READ;
	else
		conn->want &= ~FUSE_CAP_SPLICE_READ;
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct frontend *fe = fuse_req_userdata(req);
	struct stat st;

	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(fe, &st);
	fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct frontend *fe = fuse_req_userdata(req);
	struct timespec now;
	struct stat st;

	/* The size is the mirror's: only a no-op "truncate" to it is allowed. */
	if ((to_set & FUSE_SET_ATTR_SIZE) && (uint64_t)attr->st_size != mirror_size(fe->m)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	g_mutex_lock(&fe->attr_lock);
	if (to_set & FUSE_SET_ATTR_MODE)
		fe->mode = attr->st_mode & 07777;
	if (to_set & FUSE_SET_ATTR_UID)
		fe->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		fe->gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_ATIME)
		fe->atime = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		fe->atime = now;
	if (to_set & FUSE_SET_ATTR_MTIME)
		fe->mtime = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		fe->mtime = now;
	fe->ctime = now;
	g_mutex_unlock(&fe->attr_lock);
	fill_attr(fe, &st);
	fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct frontend *fe = fuse_req_userdata(req);

	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	/* 0: a stop is decided, the file takes no new opener (as a stopping md device). */
	fi->fh = opens_add(fe->opens, fuse_req_ctx(req)->pid);
	if (fi->fh == 0) {
		fuse_reply_err(req, ENODEV);
		return;
	}
	if (fe->cache == CACHE_NONE) {
		fi->direct_io = 1;
		/*
		 * Without it the kernel takes the inode lock exclusively for every direct write,
		 * serializing the writers of the file; the mirror orders nothing by it.
		 */
		open_reply_flags = FOPEN_PARALLEL_DIRECT_WRITES;
	} else {
		fi->keep_cache = 1;
	}
	fuse_reply_open(req, fi);
	open_reply_flags = 0;
}

/*
 * Reads and writes wait in the worker thread for the mirror's answer, which, with fast legs,
 * the worker computed itself (the mirror lets the calling thread do the legs' I/O): so a write's
 * payload is used where libfuse read it, with no copy, and a read's data lands in the worker's
 * own buffer.  Other workers serve the requests that come meanwhile.
 */

/* The worker's read buffer: BUFFER_SIZE bytes, page-aligned, freed when the worker exits. */
static void *worker_buffer(void)
{
	static GPrivate key = G_PRIVATE_INIT(free);
	void *buf = g_private_get(&key);

	if (buf == NULL && posix_memalign(&buf, 4096, BUFFER_SIZE) == 0)
		g_private_set(&key, buf);
	return buf;
}

/*
 * The answer of a read or write, sent from whichever thread knows it first: with a leg that does
 * not answer, that is the mirror's failfast thread once the leg is given up on, while this
 * worker still waits for the leg to let go of its buffer.
 */
static void reply_read(void *opaque, ssize_t result, const void *data)
{
	struct request *r = opaque;

	if (result < 0)
		fuse_reply_err(r->req, (int)-result);
	else
		fuse_reply_buf(r->req, data, (size_t)result);
	request_answered(r);
}

static void reply_write(void *opaque, ssize_t result, const void *data)
{
	struct request *r = opaque;

	if (result < 0)
		fuse_reply_err(r->req, (int)-result);
	else
		fuse_reply_write(r->req, (size_t)result);
	request_answered(r);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct frontend *fe = fuse_req_userdata(req);
	struct request r = {.fe = fe, .req = req};
	void *buf;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (size > BUFFER_SIZE)
		size = BUFFER_SIZE;
	buf = worker_buffer();
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	request_begin(fe);
	/* Returns once no leg holds buf: this worker's buffer is its own again. */
	mirror_read_answered(fe->m, buf, size, (uint64_t)off, reply_read, &r);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct frontend *fe = fuse_req_userdata(req);
	struct request r = {.fe = fe, .req = req};

	/* The payload channel_read left page-aligned (aligned_write): the same bytes. */
	if (aligned_write.at != NULL && buf == aligned_write.at && size <= aligned_write.len)
		buf = aligned_write.payload;
	aligned_write.at = NULL;
	if (off < 0 || size > MAX_WRITE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	touch(fe, true);
	request_begin(fe);
	/* libfuse keeps buf until we return, and we return once no leg holds it. */
	mirror_write_answered(fe->m, buf, size, (uint64_t)off,
			      (fi->flags & (O_SYNC | O_DSYNC)) ? MIRROR_FUA : 0, reply_write, &r);
}

/*
 * Payloads smaller than this are read out of libfuse's pipe into the worker's buffer and written
 * as op_write's are: for them the tees and splices cost more system calls than the copy saves.
 */
#define SPLICE_WRITE_MIN (64u * 1024u)

/*
 * WRITE through write_buf: the payload in memory (small requests, or no splicing), or in
 * libfuse's per-thread pipe, which must be emptied before we return (the next request of this
 * worker is spliced into it): mirror_write_pipe_answered takes the bytes out in this thread.
 * Whatever is left in the pipe (bufv->idx not advanced) makes libfuse replace the pipe.
 */
static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
			 struct fuse_file_info *fi)
{
	struct frontend *fe = fuse_req_userdata(req);
	struct request r = {.fe = fe, .req = req};
	size_t size = fuse_buf_size(bufv);
	struct fuse_buf *b = &bufv->buf[0];
	unsigned int flags = (fi->flags & (O_SYNC | O_DSYNC)) ? MIRROR_FUA : 0;
	void *buf;

	if (bufv->count == 1 && !(b->flags & FUSE_BUF_IS_FD)) {
		op_write(req, ino, (const char *)b->mem + bufv->off, size, off, fi);
		return;
	}
	/* do_write_buf hands one whole pipe buffer: anything else is not libfuse 3.14's. */
	if (bufv->count != 1 || bufv->idx != 0 || bufv->off != 0 || (b->flags & FUSE_BUF_FD_SEEK) ||
	    off < 0 || size > MAX_WRITE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	touch(fe, true);
	request_begin(fe);
	if (size < SPLICE_WRITE_MIN && (buf = worker_buffer()) != NULL) {
		struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
		ssize_t n;

		dst.buf[0].mem = buf;
		n = fuse_buf_copy(&dst, bufv, 0);
		if (n != (ssize_t)size) {
			reply_write(&r, n < 0 ? n : -EIO, NULL);
			return;
		}
		mirror_write_answered(fe->m, buf, size, (uint64_t)off, flags, reply_write, &r);
		return;
	}
	if (mirror_write_pipe_answered(fe->m, b->fd, size, (uint64_t)off, flags, reply_write, &r))
		bufv->idx = bufv->count;
}

static void status_done(void *opaque, ssize_t result)
{
	struct request *r = opaque;

	fuse_reply_err(r->req, result < 0 ? (int)-result : 0);
	request_free(r);
}

static void flush_legs(fuse_req_t req)
{
	struct frontend *fe = fuse_req_userdata(req);
	struct request *r = request_new(fe, req);

	mirror_flush(fe->m, status_done, r);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	flush_legs(req);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	flush_legs(req);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct frontend *fe = fuse_req_userdata(req);

	opens_remove(fe->opens, fi->fh);
	fuse_reply_err(req, 0);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	struct frontend *fe = fuse_req_userdata(req);
	struct request *r;

	if (offset < 0 || length <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) && mode != FALLOC_FL_ZERO_RANGE &&
	    mode != (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	r = request_new(fe, req);
	touch(fe, true);
	if (mode & FALLOC_FL_PUNCH_HOLE)
		mirror_discard(fe->m, (uint64_t)offset, (uint64_t)length, status_done, r);
	else
		mirror_write_zeroes(fe->m, (uint64_t)offset, (uint64_t)length, 0, status_done, r);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct frontend *fe = fuse_req_userdata(req);
	struct statvfs sv;

	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = mirror_size(fe->m) / 4096;
	sv.f_files = 1;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

static void reply_xattr_value(fuse_req_t req, const char *value, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct frontend *fe = fuse_req_userdata(req);
	char *value;

	/* security.capability is asked before every write: answer it without any work. */
	if (strncmp(name, XATTR_STATUS_PREFIX, strlen(XATTR_STATUS_PREFIX)) != 0) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	/* last_error is the asking process's own (fusemirrorctl reads it after its setxattr). */
	value = xattr_status_get(fe->m, (uint64_t)fuse_req_ctx(req)->pid, name);
	if (value == NULL)
		fuse_reply_err(req, ENODATA);
	else
		reply_xattr_value(req, value, strlen(value), size);
	g_free(value);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct frontend *fe = fuse_req_userdata(req);
	size_t len;
	char *names = xattr_status_list(fe->m, &len);

	reply_xattr_value(req, names, len, size);
	g_free(names);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct frontend *fe = fuse_req_userdata(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	int r = xattr_set_hooked(fe->m, &fe->hooks, (uint64_t)ctx->pid, name, value, size,
				 ctx->uid == 0);

	fuse_reply_err(req, -r);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	if (strncmp(name, XATTR_STATUS_PREFIX, strlen(XATTR_STATUS_PREFIX)) == 0)
		fuse_reply_err(req, EPERM);
	else
		fuse_reply_err(req, ENODATA);
}

static const struct fuse_lowlevel_ops frontend_ops = {
    .init = op_init,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .write_buf = op_write_buf,
    .flush = op_flush,
    .fsync = op_fsync,
    .release = op_release,
    .fallocate = op_fallocate,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .setxattr = op_setxattr,
    .removexattr = op_removexattr,
};

/* ---- Stopping ------------------------------------------------------------------------------ */

/* The control command stop (a FUSE worker runs it). */
static int stop_hook(void *opaque, bool force, GError **error)
{
	struct frontend *fe = opaque;
	int r = opens_begin_stop(fe->opens, force, error);

	if (r < 0) {
		if (error != NULL && *error != NULL) {
			char *message =
			    g_strdup_printf("%s (stop --force stops anyway)", (*error)->message);

			g_free((*error)->message);
			(*error)->message = message;
		}
		return r;
	}
	stopper_request(fe->stopper);
	return 0;
}

/* The control command restart (a FUSE worker runs it). */
static int restart_hook(void *opaque, GError **error)
{
	struct frontend *fe = opaque;

	if (fe->on_restart == NULL) {
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_NOSYS,
				    "this daemon cannot restart");
		return -ENOTSUP;
	}
	if (atomic_load(&init_request_len) == 0) {
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
				    "the connection's FUSE_INIT was not kept: cannot restart");
		return -EIO;
	}
	if (opens_stopping(fe->opens)) {
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_AGAIN, "a stop is under way");
		return -EBUSY;
	}
	/*
	 * The requests on the ring's entries cannot be handed over (the kernel keeps them on
	 * this process's io_urings, which exec closes): refuse, serving on.
	 */
	if (fuse_ring_serving(fe->ring)) {
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_NOSYS,
				    "the FUSE connection is served over io_uring, whose requests a "
				    "restart cannot hand over (fuse-transport = dev allows restart)");
		return -ENOTSUP;
	}
	if (!fe->on_restart(fe->opaque, error))
		return -EINVAL;
	if (!park_begin()) {
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_EXIST,
				    "a restart is already under way");
		return -EALREADY;
	}
	g_message("mirror %s: the control command restart: handing the mount over to a new "
		  "process",
		  mirror_name(fe->m));
	/* frontend_run sees it, and returns once the workers are parked. */
	atomic_store(&fe->restarting, true);
	return 0;
}

static void membership_hook(void *opaque, struct mirror *m, bool save)
{
	struct frontend *fe = opaque;

	if (fe->on_membership != NULL)
		fe->on_membership(fe->opaque, m, save);
}

/* SIGHUP, on the stopper's thread; after an upgrade of the binary, a restart into it. */
static void reload_hook(void *opaque)
{
	struct frontend *fe = opaque;
	GError *error = NULL;

	if (!fe->on_reload(fe->opaque, fe->m))
		return;
	g_message("mirror %s: the binary was upgraded on disk: the reload restarts into it",
		  mirror_name(fe->m));
	if (restart_hook(fe, &error) < 0) {
		const char *why = error->message;

		if (g_str_has_prefix(why, "not restarting: "))
			why += strlen("not restarting: ");
		g_warning("mirror %s: not restarting into the upgraded binary: %s",
			  mirror_name(fe->m), why);
		g_error_free(error);
	}
}

/*
 * The stopper's exit: end the session and wake the loop's thread, which waits in sem_wait for a
 * worker to end; the signal (our handler, which does nothing harmful) makes it look at the
 * session's exit flag.  Returns whether the loop has returned.
 */
static bool exit_loop(void *opaque)
{
	struct frontend *fe = opaque;

	fuse_session_exit(fe->se);
	if (atomic_load(&fe->loop_returned))
		return true;
	if (atomic_load(&fe->loop_running))
		pthread_kill(fe->loop_thread, SIGTERM);
	return false;
}

/* ---- Session ------------------------------------------------------------------------------- */

#ifndef FUSE_NOTIFY_RESEND
#define FUSE_NOTIFY_RESEND 7
#endif

/*
 * After a crash: the requests the dead process had read and not answered are on the processing
 * list of the descriptor that lived on (the dead process's clone descriptors ended theirs with
 * ECONNABORTED); the kernel (6.9 and later) queues them again on FUSE_NOTIFY_RESEND.
 */
static void resend(struct frontend *fe, int fd)
{
	struct fuse_out_header out = {
	    .len = sizeof(out),
	    .error = FUSE_NOTIFY_RESEND,
	    .unique = 0,
	};

	if (write(fd, &out, sizeof(out)) != (ssize_t)sizeof(out))
		g_warning("mirror %s: the kernel does not send again the requests the dead process "
			  "had taken (FUSE_NOTIFY_RESEND: %s): they wait forever",
			  mirror_name(fe->m), g_strerror(errno));
	else
		g_message("mirror %s: asked the kernel to send again the requests the dead process "
			  "had taken",
			  mirror_name(fe->m));
}

/* Requests without a reply: their kept descriptor is closed once they are processed. */
static bool no_reply(uint32_t opcode)
{
	return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT ||
	       opcode == FUSE_NOTIFY_REPLY;
}

/*
 * Answer the requests the last process had read but not begun, on this thread, before the
 * loop starts: each one's reply goes to the descriptor it was read from (replay_target).
 */
static int replay_kept(struct frontend *fe, const struct frontend_handover *h, GError **error)
{
	uint32_t head[2];
	void *mem = NULL;
	int r = 0;

	if (h->kept_fd < 0)
		return 0;
	if (lseek(h->kept_fd, 0, SEEK_SET) < 0)
		r = -errno;
	for (unsigned int i = 0; r == 0 && i < h->kept; i++) {
		struct fuse_buf buf = {0};
		const struct fuse_in_header *in;
		guint64 *key;

		if (read(h->kept_fd, head, sizeof(head)) != (ssize_t)sizeof(head) ||
		    head[1] < sizeof(struct fuse_in_header) || head[1] > BUFFER_SIZE + 65536) {
			r = -EPROTO;
			break;
		}
		g_free(mem);
		/* Page-aligned and as big as a worker's buffer: libfuse may use it so. */
		mem = g_malloc0(head[1] + 4096);
		if (read(h->kept_fd, mem, head[1]) != (ssize_t)head[1]) {
			r = -EPROTO;
			break;
		}
		fcntl((int)head[0], F_SETFD, FD_CLOEXEC);
		in = mem;
		if (!no_reply(in->opcode)) {
			key = g_new(guint64, 1);
			*key = in->unique;
			g_mutex_lock(&replay_lock);
			if (replay_fds == NULL)
				replay_fds = g_hash_table_new_full(g_int64_hash, g_int64_equal,
								   g_free, NULL);
			g_hash_table_insert(replay_fds, key, GINT_TO_POINTER((int)head[0]));
			atomic_fetch_add(&replay_count, 1);
			g_mutex_unlock(&replay_lock);
		}
		buf.mem = mem;
		buf.size = head[1];
		fuse_session_process_buf(fe->se, &buf);
		if (no_reply(in->opcode))
			close((int)head[0]);
	}
	g_free(mem);
	close(h->kept_fd);
	if (r < 0)
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
			    "takeover: the requests the last process kept are malformed");
	return r;
}

/*
 * Serve a live connection (a restart's new process): the session reads and writes h->fd, and is
 * made to see the FUSE_INIT the kernel sent the first process, so that it answers requests;
 * that INIT's reply is swallowed (the kernel had its answer long ago).
 */
static int takeover(struct frontend *fe, const struct frontend_handover *h, GError **error)
{
	struct fuse_buf buf = {0};
	void *mem;
	int r;

	if (h->init_len < sizeof(struct fuse_in_header) + sizeof(uint32_t) * 2 ||
	    h->init_len > FRONTEND_INIT_MAX ||
	    ((const struct fuse_in_header *)h->init)->opcode != FUSE_INIT) {
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "takeover: the FUSE_INIT request passed on is malformed");
		return -EINVAL;
	}
	r = fuse_session_custom_io(fe->se, &channel_io, h->fd);
	if (r < 0) {
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-r),
			    "cannot set up the FUSE channel on descriptor %d: %s", h->fd,
			    g_strerror(-r));
		return r;
	}
	/* From here the session owns h->fd: fuse_session_destroy closes it. */
	fe->mounted = true;
	fe->taken_over = true;
	/* A crash's restart (resend) counts too; a graceful one was counted by the old process. */
	fe->restarts = h->restarts + (h->resend ? 1 : 0);
	xattr_set_restarts(fe->restarts);
	memcpy(init_request, h->init, h->init_len);
	atomic_store(&init_request_len, h->init_len);
	/* libfuse may read past the request's end (a page is what it reads into). */
	mem = g_malloc0(4096);
	memcpy(mem, h->init, h->init_len);
	buf.mem = mem;
	buf.size = h->init_len;
	swallow_unique = ((const struct fuse_in_header *)h->init)->unique;
	swallowed_error = 1;
	fuse_session_process_buf(fe->se, &buf);
	g_free(mem);
	if (swallow_unique != 0 || swallowed_error != 0) {
		r = swallow_unique != 0 ? -EPROTO : swallowed_error;
		swallow_unique = 0;
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
			    "takeover: libfuse did not accept the connection's FUSE_INIT (%s)",
			    r == -EPROTO ? "no reply" : g_strerror(-r));
		return r;
	}
	if (h->resend)
		resend(fe, h->fd);
	r = replay_kept(fe, h, error);
	if (r < 0)
		return r;
	/*
	 * After a crash the connection may be one the kernel serves over io_uring (the dead
	 * process asked for it): then its requests wait for entries, which this process must
	 * register.  What the dead process answered is not kept: it is taken to be what this
	 * configuration asks (the same file, unless it was edited in between).
	 */
	fuse_ring_saw_init(fe->ring, h->init, h->init_len);
	if (fe->transport != FUSE_TRANSPORT_MODE_DEV && fuse_ring_offered(fe->ring)) {
		fuse_ring_assume_asked(fe->ring);
		GError *ring_error = NULL;
		unsigned int queues, entries;

		if (fuse_ring_start(fe->ring, &ring_error) == 0) {
			fuse_ring_shape(fe->ring, &queues, &entries);
			g_message("FUSE over io_uring: %u queues x %u entries", queues, entries);
		} else {
			g_message("FUSE over io_uring not available (%s): serving /dev/fuse",
				  ring_error->message);
			g_error_free(ring_error);
		}
	}
	connected(h->fd);
	if (h->resend)
		g_message(
		    "took over the FUSE connection of %s (restart %u, after a crash): serving "
		    "it again",
		    fe->mountpoint, fe->restarts);
	else
		g_message("took over the FUSE connection of %s (restart %u, %u request%s the last "
			  "process had taken answered): serving it again",
			  fe->mountpoint, fe->restarts, h->kept, h->kept == 1 ? "" : "s");
	return 0;
}

/* user.fusemirror.fuse_transport and fuse_requests.* (xattr_set_fuse_stats). */
static void fuse_stats(void *opaque, struct xattr_fuse_stats *out)
{
	struct frontend *fe = opaque;

	out->ring = fuse_ring_serving(fe->ring);
	out->ring_requests = fuse_ring_requests(fe->ring);
	out->dev_requests = atomic_load(&fe->dev_requests);
}

int frontend_mount(struct mirror *m, const struct frontend_options *o, struct frontend **out,
		   GError **error)
{
	struct frontend *fe;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct stat st;
	char *opts;
	int r = 0;

	*out = NULL;
	/* A takeover must not stat the mountpoint: only this process could answer. */
	if (o->takeover != NULL) {
		memset(&st, 0, sizeof(st));
		st.st_mode = S_IFREG | o->takeover->mode;
		st.st_uid = o->takeover->uid;
		st.st_gid = o->takeover->gid;
		clock_gettime(CLOCK_REALTIME, &st.st_atim);
	} else if (stat(o->mountpoint, &st) < 0) {
		r = -errno;
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-r), "mountpoint %s: %s",
			    o->mountpoint, g_strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		g_set_error(
		    error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
		    "mountpoint %s is not a regular file: fusemirror mounts the mirror onto a "
		    "file",
		    o->mountpoint);
		return -EINVAL;
	}

	fe = g_new0(struct frontend, 1);
	fe->m = m;
	fe->cache = o->cache;
	fe->splice = o->splice;
	fe->mode = st.st_mode & 07777;
	fe->uid = st.st_uid;
	fe->gid = st.st_gid;
	fe->atime = st.st_atim;
	clock_gettime(CLOCK_REALTIME, &fe->mtime);
	fe->ctime = fe->mtime;
	g_mutex_init(&fe->attr_lock);
	g_mutex_init(&fe->loop_lock);
	g_cond_init(&fe->loop_cond);
	fe->on_membership = o->on_membership;
	fe->on_reload = o->on_reload;
	fe->opaque = o->opaque;
	fe->hooks.stop = stop_hook;
	fe->hooks.restart = restart_hook;
	fe->on_restart = o->on_restart;
	fe->mountpoint = g_strdup(o->mountpoint);
	fe->single_channel = o->single_channel;
	fe->transport = o->transport;
	connected_fn = o->on_connected;
	connected_opaque = o->opaque;
	connected_fe = fe;
	fe->hooks.on_membership = membership_hook;
	fe->hooks.opaque = fe;
	fe->opens = opens_new(o->mountpoint, error);
	if (fe->opens == NULL) {
		r = -EIO;
		goto fail_early;
	}
	if (o->takeover != NULL && o->takeover->opens != NULL &&
	    !opens_restore(fe->opens, o->takeover->opens)) {
		r = -EINVAL;
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "takeover: malformed table of opens '%s'", o->takeover->opens);
		goto fail_early;
	}

	/* The kernel reads the parameter when it sends FUSE_INIT: refuse before mounting. */
	if (o->transport == FUSE_TRANSPORT_MODE_IO_URING && o->takeover == NULL &&
	    fuse_ring_kernel_param() != 1) {
		r = -EOPNOTSUPP;
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOSYS,
			    "fuse-transport = io_uring: FUSE over io_uring not available (%s)",
			    ring_absent_reason(false));
		goto fail_early;
	}
	opts = g_strdup_printf("fsname=fusemirror:%s,subtype=fusemirror,default_permissions%s%s%s",
			       mirror_name(m), o->allow_other ? ",allow_other" : "",
			       o->fuse_opts != NULL && *o->fuse_opts ? "," : "",
			       o->fuse_opts != NULL ? o->fuse_opts : "");
	if (fuse_opt_add_arg(&args, "fusemirrord") != 0 || fuse_opt_add_arg(&args, "-o") != 0 ||
	    fuse_opt_add_arg(&args, opts) != 0 ||
	    (o->debug && fuse_opt_add_arg(&args, "-d") != 0)) {
		r = -ENOMEM;
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "out of memory");
		goto fail;
	}
	fe->se = fuse_session_new(&args, &frontend_ops, sizeof(frontend_ops), fe);
	if (fe->se == NULL) {
		r = -EINVAL;
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "FUSE rejected the options '%s' (see the messages above)", opts);
		goto fail;
	}
	fe->stopper = stopper_start(fe->opens, mirror_name(m), o->mountpoint, o->stop_timeout,
				    exit_loop, o->on_reload != NULL ? reload_hook : NULL, fe, error);
	if (fe->stopper == NULL) {
		r = -EIO;
		goto fail;
	}
	fe->ring = fuse_ring_new(&(struct fuse_ring_params){
	    .se = fe->se,
	    .fd = o->takeover != NULL ? o->takeover->fd : -1,
	    .transport = o->transport == FUSE_TRANSPORT_MODE_DEV ? FUSE_TRANSPORT_DEV
			 : o->transport == FUSE_TRANSPORT_MODE_IO_URING ? FUSE_TRANSPORT_IO_URING
									: FUSE_TRANSPORT_AUTO,
	    .max_write = MAX_WRITE,
	    .pin = -1,
	});
	xattr_set_fuse_stats(fuse_stats, fe);
	if (o->takeover != NULL) {
		r = takeover(fe, o->takeover, error);
		if (r < 0)
			goto fail;
	} else {
		if (fuse_session_mount(fe->se, o->mountpoint) != 0) {
			r = -EIO;
			g_set_error(
			    error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
			    "cannot mount onto %s (see the messages above; is /dev/fuse there?)",
			    o->mountpoint);
			goto fail;
		}
		fe->mounted = true;
		fuse_ring_set_fd(fe->ring, fuse_session_fd(fe->se));
		r = fuse_session_custom_io(fe->se, &channel_io, fuse_session_fd(fe->se));
		if (r < 0) {
			g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-r),
				    "cannot set up the FUSE channel: %s", g_strerror(-r));
			goto fail;
		}
	}
	g_free(opts);
	fuse_opt_free_args(&args);
	*out = fe;
	return 0;
fail:
	g_free(opts);
	fuse_opt_free_args(&args);
fail_early:
	frontend_destroy(fe);
	return r;
}

/* How long an ended session waits for workers that hold buffers of legs given up on. */
#define STUCK_WORKERS_GRACE_US (2 * G_USEC_PER_SEC)

static gpointer loop_main(gpointer data)
{
	struct frontend *fe = data;
	int r;

	fe->loop_thread = pthread_self();
	atomic_store(&fe->loop_running, true);
	r = fuse_session_loop_mt(fe->se, fe->loop_config);
	g_mutex_lock(&fe->loop_lock);
	fe->loop_result = r;
	atomic_store(&fe->loop_returned, true);
	g_cond_signal(&fe->loop_cond);
	g_mutex_unlock(&fe->loop_lock);
	return NULL;
}

int frontend_run(struct frontend *fe)
{
	struct fuse_loop_config *config = fuse_loop_cfg_create();
	gint64 grace_end = 0;
	GThread *thread;
	int r;

	if (config == NULL)
		return -ENOMEM;
	/*
	 * One /dev/fuse descriptor per worker: no contention on reading requests; but a crash
	 * then loses the requests taken (single_channel).
	 */
	fuse_loop_cfg_set_clone_fd(config, fe->single_channel ? 0 : 1);
	fuse_loop_cfg_set_idle_threads(config, 16);
	/*
	 * A worker whose buffer a hung leg holds waits until the leg lets go of it (maybe never):
	 * room for the requests in flight when a leg hangs, on top of the usual ten.
	 */
	fuse_loop_cfg_set_max_threads(config, 10 + 128);
	fe->loop_config = config;
	thread = g_thread_new("fuse-loop", loop_main, fe);

	/*
	 * The loop returns once its workers did; a worker stuck in a leg that was given up on
	 * never does.  Once the session ended and every request was answered, such workers are
	 * left behind (the process is about to exit).
	 */
	g_mutex_lock(&fe->loop_lock);
	while (!atomic_load(&fe->loop_returned)) {
		gint64 now = g_get_monotonic_time();

		/* A restart: the loop never returns, its workers park (channel_read). */
		if (atomic_load(&fe->restarting)) {
			/* (The ring does not serve: a restart is refused then.) */
			if (atomic_load(&fe->inflight) == 0 && park_done()) {
				g_mutex_unlock(&fe->loop_lock);
				return 0;
			}
			g_cond_wait_until(&fe->loop_cond, &fe->loop_lock,
					  now + 2 * G_TIME_SPAN_MILLISECOND);
			continue;
		}

		if (fuse_session_exited(fe->se) && atomic_load(&fe->inflight) == 0) {
			if (grace_end == 0)
				grace_end = now + STUCK_WORKERS_GRACE_US;
			else if (now >= grace_end)
				break;
		}
		g_cond_wait_until(&fe->loop_cond, &fe->loop_lock, now + 100 * G_TIME_SPAN_MILLISECOND);
	}
	g_mutex_unlock(&fe->loop_lock);
	if (!atomic_load(&fe->loop_returned)) {
		g_message("FUSE workers still wait for legs that were given up on: not waiting for "
			  "them");
		fuse_ring_quiesce(fe->ring, STUCK_WORKERS_GRACE_US);
		g_thread_unref(thread);
		return 0;
	}
	g_thread_join(thread);
	/* The ring's workers hand the mirror nothing more (it is about to be closed). */
	if (!fuse_ring_quiesce(fe->ring, STUCK_WORKERS_GRACE_US))
		g_message("FUSE over io_uring workers still wait for legs that were given up on: "
			  "not waiting for them");
	r = fe->loop_result;
	fe->loop_config = NULL;
	fuse_loop_cfg_destroy(config);
	if (atomic_load(&fe->ring_refused))
		return -EOPNOTSUPP;
	return r < 0 ? r : 0;
}

void frontend_exit(struct frontend *fe)
{
	fuse_session_exit(fe->se);
}

void frontend_drain(struct frontend *fe)
{
	if (fe->drained)
		return;
	fe->drained = true;
	stopper_free(fe->stopper);
	fe->stopper = NULL;
	/* The mirror still owes replies for requests the loop handed over. */
	while (atomic_load(&fe->inflight) > 0)
		g_usleep(1000);
}

/* libfuse unmounts what it mounted; a taken-over connection has no mountpoint in libfuse. */
static void unmount(struct frontend *fe)
{
	if (!fe->taken_over)
		fuse_session_unmount(fe->se);
	else if (umount2(fe->mountpoint, MNT_DETACH) < 0)
		g_warning("cannot unmount %s: %s", fe->mountpoint, g_strerror(errno));
}

bool frontend_restarting(struct frontend *fe)
{
	return atomic_load(&fe->restarting);
}

/*
 * The kept requests into a memfd (left open across exec): per request, its descriptor in the
 * next process (a dup, not close-on-exec, so that its processing list lives on), its length as
 * two native uint32_t, then its bytes.  Returns the memfd, or -errno.
 */
static int park_export(unsigned int *count)
{
	int memfd = memfd_create("fusemirror-kept", 0);
	int err = 0;

	*count = 0;
	if (memfd < 0)
		return -errno;
	g_mutex_lock(&park_lock);
	for (guint i = 0; err == 0 && i < park_requests->len; i++) {
		struct parked_request *p = g_ptr_array_index(park_requests, i);
		int fd = fcntl(p->fd, F_DUPFD, 3);
		uint32_t head[2] = {(uint32_t)fd, (uint32_t)p->len};

		if (fd < 0 || write(memfd, head, sizeof(head)) != (ssize_t)sizeof(head) ||
		    write(memfd, p->bytes, p->len) != (ssize_t)p->len)
			err = errno != 0 ? errno : EIO;
		else
			(*count)++;
	}
	g_mutex_unlock(&park_lock);
	if (err != 0) {
		close(memfd);
		return -err;
	}
	return memfd;
}

int frontend_handover(struct frontend *fe, struct frontend_handover *out, GError **error)
{
	size_t len = atomic_load(&init_request_len);
	int fd;

	memset(out, 0, sizeof(*out));
	if (!atomic_load(&park_begun)) {
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "no restart began");
		return -EINVAL;
	}
	out->kept_fd = park_export(&out->kept);
	if (out->kept_fd < 0) {
		int err = -out->kept_fd;

		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
			    "cannot keep the requests taken for the next process: %s",
			    g_strerror(err));
		return -err;
	}
	/* fcntl's F_DUPFD, unlike F_DUPFD_CLOEXEC, leaves the new descriptor open across exec. */
	fd = fcntl(fuse_session_fd(fe->se), F_DUPFD, 3);
	if (fd < 0) {
		int err = errno;

		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
			    "cannot duplicate the /dev/fuse descriptor: %s", g_strerror(err));
		return -err;
	}
	out->fd = fd;
	memcpy(out->init, init_request, len);
	out->init_len = len;
	g_mutex_lock(&fe->attr_lock);
	out->mode = fe->mode;
	out->uid = fe->uid;
	out->gid = fe->gid;
	g_mutex_unlock(&fe->attr_lock);
	out->opens = opens_export(fe->opens);
	out->restarts = fe->restarts + 1;
	return 0;
}

void frontend_destroy(struct frontend *fe)
{
	if (fe == NULL)
		return;
	frontend_drain(fe);
	/* A loop left behind with stuck workers still uses the session: unmount, keep the rest. */
	if (atomic_load(&fe->loop_running) && !atomic_load(&fe->loop_returned)) {
		if (fe->mounted)
			unmount(fe);
		return;
	}
	if (fe->se != NULL) {
		if (fe->mounted)
			unmount(fe);
		/* After the unmount, which ends the ring's entries; before the session goes. */
		if (fuse_ring_quiesce(fe->ring, STUCK_WORKERS_GRACE_US))
			fuse_ring_free(fe->ring);
		fe->ring = NULL;
		fuse_session_destroy(fe->se);
	}
	g_free(fe->mountpoint);
	opens_free(fe->opens);
	g_cond_clear(&fe->loop_cond);
	g_mutex_clear(&fe->loop_lock);
	g_mutex_clear(&fe->attr_lock);
	g_free(fe);
}
