/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The NBD kind: an export of any NBD server, reached through libnbd's asynchronous calls.
 * path is an NBD URI (nbd://HOST[:PORT]/EXPORT, nbds://..., nbd+unix:///EXPORT?socket=PATH),
 * parsed by libnbd (nbd_connect_uri).  Size, block sizes and capabilities come from the server.
 *
 * Connections.  One when the server does not allow multi-conn, else NBD_MULTI_CONNS, all
 * opened with the device.  Each carries up to NBD_MAX_INFLIGHT commands at once; the new command
 * goes to the live connection with the fewest in flight, and what finds them all full waits in
 * the device's backlog until a reply makes room.
 *
 * One dispatcher thread per device alone drives its handles: it takes submissions from a queue
 * (under lock; an eventfd wakes it), issues them with nbd_aio_*(), and polls the connections'
 * descriptors and the eventfd.  A submission is cut into commands of at most max_request bytes
 * (the server's maximum block size, whole minimum blocks; trim and write-zeroes up to
 * NBD_MAX_EFFECT), each read or written in place when it lies within one iovec entry, else
 * through a copy; it is answered once every command has: with the first command's error, if
 * any.  FUA is NBD_CMD_FLAG_FUA, flush NBD_CMD_FLUSH (answered at once when the server has no
 * cache to flush), discard NBD_CMD_TRIM, write-zeroes NBD_CMD_WRITE_ZEROES, each only when the
 * server offers it (else -EOPNOTSUPP, and libdmio falls back).  The answers (submit's done) are
 * called from the dispatcher, which never runs anything else of ours: the engines hand them to
 * their own threads (engine-async.c), the synchronous ops below wait on them.  So no thread
 * blocks per request, and a synchronous call in a notify fn cannot wait for the dispatcher that
 * would answer it.
 *
 * A command is over when libnbd frees its callbacks, answered or not: a command that a dead or
 * closed handle drops finishes with -ENOTCONN.  A dead connection (the server went away) is
 * closed at once, so that all its commands in flight finish promptly, and marks the whole device
 * lost: every later call fails at once with -ENOTCONN, without reconnecting (a server that comes
 * back may be another one; deciding that is the caller's business: it opens the device again).
 * An abandoned job (io-timeout, abandon.c) keeps its memory until its command is over, and its
 * late answer is ignored; a hung server's commands simply stay in flight.  The close stops the
 * dispatcher, which fails what is queued and closes the handles (ending what is in flight).
 *
 * DMIO_DEV_EXCLUSIVE cannot be had on a remote export: it is accepted and not enforced.
 * The URI may carry secrets (userinfo, password=, tls-psk-file=): dev->path keeps it whole for
 * dmio_dev_path(), every message here names the device by nbd_redact_uri() instead.
 *
 * Without libnbd at build time an NBD URI opens with -ENOTSUP.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dmio-internal.h"

bool dmio_dev_is_nbd_uri(const char *path)
{
	static const char *const schemes[] = {
	    "nbd://", "nbds://", "nbd+unix://", "nbds+unix://", "nbd+vsock://", "nbds+vsock://",
	};
	unsigned int i;

	for (i = 0; i < G_N_ELEMENTS(schemes); i++)
		if (g_str_has_prefix(path, schemes[i]))
			return true;
	return false;
}

/* Replace the value of query parameter key= (through the next '&', '#' or the end) by "***". */
static void redact_param(GString *s, const char *key)
{
	size_t klen = strlen(key);
	char *q = strchr(s->str, '?');

	while (q != NULL) {
		char *p = q + 1;

		if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
			size_t start = (size_t)(p + klen + 1 - s->str);
			size_t end = start;

			while (end < s->len && s->str[end] != '&' && s->str[end] != '#')
				end++;
			g_string_erase(s, (gssize)start, (gssize)(end - start));
			g_string_insert(s, (gssize)start, "***");
			p = s->str + start + 3;
		}
		q = strchr(p, '&');
	}
}

char *dmio_nbd_redact_uri(const char *uri)
{
	GString *s = g_string_new(uri);
	char *authority = strstr(s->str, "://");

	if (authority != NULL) {
		size_t start = (size_t)(authority + 3 - s->str);
		size_t end = start + strcspn(s->str + start, "/?#");
		char *at = memrchr(s->str + start, '@', end - start);

		if (at != NULL) {
			g_string_erase(s, (gssize)start, (gssize)(at - (s->str + start)));
			g_string_insert(s, (gssize)start, "***");
		}
	}
	redact_param(s, "password");
	redact_param(s, "tls-psk-file");
	return g_string_free(s, false);
}

#ifdef HAVE_LIBNBD

#include <libnbd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Connections per device when the server allows multi-conn (one otherwise). */
#define NBD_MULTI_CONNS 4u
/* Commands in flight per connection at most; more wait in the device's backlog. */
#define NBD_MAX_INFLIGHT 64u
/* libnbd refuses data payloads above 64 MiB; 32 MiB is the NBD spec's safe maximum. */
#define NBD_MAX_PAYLOAD (32u * 1024 * 1024)
/* Trim and write-zeroes carry no payload, but their length is 32 bits on the wire. */
#define NBD_MAX_EFFECT (1u << 30)

struct nbd_dev;

/* One connection; the dispatcher's alone once the device is open. */
struct nbd_conn {
	struct nbd_handle *h; /* NULL once it died (closed at once) */
	unsigned int inflight; /* its commands that libnbd has not let go of */
};

/*
 * One submission, in one or more commands (split to max_request or NBD_MAX_EFFECT).  The
 * submitter fills it; once queued it is the dispatcher's, which alone touches it (and frees it
 * after done).
 */
struct nbd_req {
	struct nbd_req *next; /* in the queue, then in the backlog */
	enum dmio_op op;
	const struct iovec *iov;
	unsigned int iovcnt;
	uint64_t offset;
	uint64_t len;
	uint32_t cmd_flags; /* LIBNBD_CMD_FLAG_FUA */
	void (*done)(void *opaque, int err);
	void *opaque;
	uint64_t issued;      /* bytes covered by the commands issued so far */
	unsigned int iov_idx; /* where the next command's data starts in iov */
	size_t iov_off;
	unsigned int pending; /* commands issued and not finished */
	bool backlogged;      /* queued or in the backlog: commands left to issue */
	bool flush_sent;
	int err; /* the first failed command's, or the reason issuing stopped */
};

/* One NBD command: the user_data of its libnbd callbacks (dispatcher only). */
struct nbd_cmd {
	struct nbd_req *req;
	struct nbd_conn *conn;
	void *bounce; /* the data, gathered (write) or to scatter (read); NULL: in iov itself */
	uint32_t len;
	unsigned int iov_idx; /* where its data starts in req->iov */
	size_t iov_off;
	int err;
	bool answered; /* the completion callback ran: err is the server's answer */
	bool issuing;  /* inside nbd_aio_*(): the issuer finishes it */
	bool freed;    /* libnbd let go of it */
};

struct nbd_dev {
	struct dmio_dev dev;
	char *shown;		/* the URI with its secrets redacted, for messages */
	uint32_t max_request;	/* bytes of data per command */
	bool can_flush;
	atomic_bool lost; /* a connection died: every call fails with -ENOTCONN */
	/* Fixed at open; the connections are the dispatcher's alone. */
	struct nbd_conn conns[NBD_MULTI_CONNS];
	unsigned int num_conns;
	int wake_fd;	 /* eventfd: the queue got a submission, or stopping was set */
	GThread *thread; /* the dispatcher */
	/*
	 * Under lock, a leaf (nothing under it but the wake-up write): submissions the
	 * dispatcher has not taken yet, and the close's word to stop.
	 */
	GMutex lock;
	struct nbd_req *queue_head, *queue_tail;
	bool stopping;
	/* Dispatcher only: submissions with commands left to issue, oldest first. */
	struct nbd_req *backlog_head, *backlog_tail;
};
G_STATIC_ASSERT(offsetof(struct nbd_dev, dev) == 0);

static struct nbd_dev *nbd_of(struct dmio_dev *dev)
{
	return (struct nbd_dev *)dev;
}

/* The errno of libnbd's last failed call in this thread, EIO when it has none. */
static int nbd_failure(void)
{
	int err = nbd_get_errno();

	return err > 0 ? -err : -EIO;
}

/* libnbd's message for the last error, unless it quotes a secret of the URI. */
static const char *nbd_message(const char *uri)
{
	const char *msg = nbd_get_error();
	char *redacted;
	bool same;

	if (msg == NULL)
		return "unknown error";
	redacted = dmio_nbd_redact_uri(uri);
	same = strcmp(redacted, uri) == 0;
	g_free(redacted);
	/* A URI with secrets: libnbd's messages may quote parts of it (a key file's path). */
	return same ? msg : "(libnbd's message withheld: the URI carries secrets)";
}

/* A new connection to uri, or NULL with *err set (messages name the device by shown). */
static struct nbd_handle *nbd_connect(const char *uri, const char *shown, int *err)
{
	struct nbd_handle *h = nbd_create();

	if (h == NULL) {
		*err = nbd_failure();
		return NULL;
	}
	/*
	 * tls-psk-file= and tls-certificates= name local files; the URI is the admin's own.  A
	 * failed read is zero-filled by libdmio (dmio_job_execute, engine-async.c): libnbd need
	 * not clear every read buffer before it fills it.
	 */
	if (nbd_set_uri_allow_local_file(h, true) < 0 || nbd_set_pread_initialize(h, false) < 0 ||
	    nbd_connect_uri(h, uri) < 0) {
		*err = nbd_failure();
		g_debug("%s: cannot connect: %s", shown, nbd_message(uri));
		nbd_close(h);
		return NULL;
	}
	return h;
}

/* ---- The dispatcher: one thread drives every connection of the device -------------------- */

/* Move (idx, off) len bytes on in iov. */
static void iov_advance(const struct iovec *iov, unsigned int *idx, size_t *off, uint64_t len)
{
	while (len > 0) {
		size_t n = MIN(iov[*idx].iov_len - *off, len);

		*off += n;
		len -= n;
		if (*off == iov[*idx].iov_len) {
			(*idx)++;
			*off = 0;
		}
	}
}

/* Copy len bytes between buf and iov from (idx, off): into buf (gather) or out of it. */
static void iov_copy(const struct iovec *iov, unsigned int idx, size_t off, void *buf,
		     uint64_t len, bool gather)
{
	char *p = buf;

	while (len > 0) {
		size_t n = MIN(iov[idx].iov_len - off, len);

		if (gather)
			memcpy(p, (char *)iov[idx].iov_base + off, n);
		else
			memcpy((char *)iov[idx].iov_base + off, p, n);
		p += n;
		len -= n;
		idx++;
		off = 0;
	}
}

/* The submission is over when nothing is left to issue and every command has finished. */
static void req_maybe_done(struct nbd_req *req)
{
	if (req->backlogged || req->pending > 0)
		return;
	req->done(req->opaque, req->err);
	g_free(req);
}

/* A command is over (answered, or let go of by libnbd); err 0 or -errno. */
static void cmd_finish(struct nbd_cmd *cmd, int err)
{
	struct nbd_req *req = cmd->req;

	cmd->conn->inflight--;
	if (err == 0 && cmd->bounce != NULL && req->op == DMIO_READ)
		iov_copy(req->iov, cmd->iov_idx, cmd->iov_off, cmd->bounce, cmd->len, false);
	g_free(cmd->bounce);
	if (err < 0 && req->err == 0)
		req->err = err;
	req->pending--;
	g_free(cmd);
	req_maybe_done(req);
}

/* libnbd callbacks, run in the dispatcher with the handle's lock held: no nbd_*() here. */
static int cmd_completed(void *user_data, int *error)
{
	struct nbd_cmd *cmd = user_data;

	cmd->answered = true;
	cmd->err = *error > 0 ? -*error : 0;
	return 1; /* retire it: cmd_freed follows */
}

static void cmd_freed(void *user_data)
{
	struct nbd_cmd *cmd = user_data;

	cmd->freed = true;
	/* Let go of unanswered: the handle was closed under it (it died, or the device closes). */
	if (!cmd->issuing)
		cmd_finish(cmd, cmd->answered ? cmd->err : -ENOTCONN);
}

static void conn_close(struct nbd_conn *conn)
{
	struct nbd_handle *h = conn->h;

	conn->h = NULL;
	/* Its commands still in flight are freed here: each finishes with -ENOTCONN. */
	nbd_close(h);
}

/* After libnbd worked on conn: a dead connection is closed and the device is lost. */
static void conn_check(struct nbd_dev *nd, struct nbd_conn *conn, int err)
{
	if (nbd_aio_is_dead(conn->h) <= 0 && nbd_aio_is_closed(conn->h) <= 0)
		return;
	if (!atomic_exchange(&nd->lost, true))
		g_message("%s: connection lost (%s)", nd->shown,
			  err < 0 ? g_strerror(-err) : "closed");
	conn_close(conn);
}

/* The live connection with the fewest commands in flight, NULL when all are full or dead. */
static struct nbd_conn *conn_pick(struct nbd_dev *nd)
{
	struct nbd_conn *best = NULL;
	unsigned int i;

	for (i = 0; i < nd->num_conns; i++) {
		struct nbd_conn *c = &nd->conns[i];

		if (c->h != NULL && c->inflight < NBD_MAX_INFLIGHT &&
		    (best == NULL || c->inflight < best->inflight))
			best = c;
	}
	return best;
}

static bool req_all_issued(const struct nbd_req *req)
{
	if (req->err != 0)
		return true; /* a command failed: the rest would not help */
	if (req->op == DMIO_FLUSH)
		return req->flush_sent;
	return req->issued == req->len;
}

/* Issue the next command of req on conn. */
static void cmd_issue(struct nbd_dev *nd, struct nbd_conn *conn, struct nbd_req *req)
{
	bool data = req->op == DMIO_READ || req->op == DMIO_WRITE;
	uint64_t limit = data ? nd->max_request : NBD_MAX_EFFECT;
	uint64_t n = MIN(req->len - req->issued, limit);
	uint64_t offset = req->offset + req->issued;
	struct nbd_cmd *cmd = g_new0(struct nbd_cmd, 1);
	nbd_completion_callback cb = {
	    .callback = cmd_completed, .user_data = cmd, .free = cmd_freed};
	void *buf = NULL;
	int64_t cookie;

	cmd->req = req;
	cmd->conn = conn;
	cmd->len = (uint32_t)n;
	cmd->iov_idx = req->iov_idx;
	cmd->iov_off = req->iov_off;
	if (data) {
		const struct iovec *v = &req->iov[req->iov_idx];

		/* Within one iovec entry: straight into it; across several: a copy. */
		if (v->iov_len - req->iov_off >= n) {
			buf = (char *)v->iov_base + req->iov_off;
		} else {
			buf = cmd->bounce = g_malloc(n);
			if (req->op == DMIO_WRITE)
				iov_copy(req->iov, req->iov_idx, req->iov_off, buf, n, true);
		}
		iov_advance(req->iov, &req->iov_idx, &req->iov_off, n);
	}
	req->issued += n;
	if (req->op == DMIO_FLUSH)
		req->flush_sent = true;
	req->pending++;
	conn->inflight++;

	cmd->issuing = true;
	switch (req->op) {
	case DMIO_READ:
		cookie = nbd_aio_pread(conn->h, buf, n, offset, cb, 0);
		break;
	case DMIO_WRITE:
		cookie = nbd_aio_pwrite(conn->h, buf, n, offset, cb, req->cmd_flags);
		break;
	case DMIO_FLUSH:
		cookie = nbd_aio_flush(conn->h, cb, 0);
		break;
	case DMIO_DISCARD:
		cookie = nbd_aio_trim(conn->h, n, offset, cb, req->cmd_flags);
		break;
	default:
		cookie = nbd_aio_zero(conn->h, n, offset, cb, req->cmd_flags);
		break;
	}
	cmd->issuing = false;
	if (cookie < 0) {
		/* libnbd freed the callbacks already: the command is ours to finish. */
		int err = nbd_failure();

		cmd_finish(cmd, err);
		conn_check(nd, conn, err);
	} else if (cmd->freed) {
		cmd_finish(cmd, cmd->answered ? cmd->err : -ENOTCONN);
	}
}

/* Issue commands of the backlog, oldest first, while a connection has room. */
static void backlog_issue(struct nbd_dev *nd)
{
	struct nbd_req *req;

	while ((req = nd->backlog_head) != NULL) {
		if (atomic_load(&nd->lost) && req->err == 0)
			req->err = -ENOTCONN;
		/* Nothing to send: an empty transfer, or a flush of a server with no cache. */
		if (req->op == DMIO_FLUSH && !nd->can_flush)
			req->flush_sent = true;
		if (!req_all_issued(req)) {
			struct nbd_conn *conn = conn_pick(nd);

			if (conn == NULL)
				return; /* full: a completion makes room */
			cmd_issue(nd, conn, req);
			if (!req_all_issued(req))
				continue;
		}
		nd->backlog_head = req->next;
		if (nd->backlog_head == NULL)
			nd->backlog_tail = NULL;
		req->backlogged = false;
		req_maybe_done(req);
	}
}

/* Take the submissions queued since the last round; true when the device closes. */
static bool queue_take(struct nbd_dev *nd)
{
	struct nbd_req *head, *tail;
	bool stopping;

	g_mutex_lock(&nd->lock);
	head = nd->queue_head;
	tail = nd->queue_tail;
	nd->queue_head = nd->queue_tail = NULL;
	stopping = nd->stopping;
	g_mutex_unlock(&nd->lock);
	if (head != NULL) {
		if (nd->backlog_tail != NULL)
			nd->backlog_tail->next = head;
		else
			nd->backlog_head = head;
		nd->backlog_tail = tail;
	}
	return stopping;
}

/* Let libnbd work on the connections poll() found ready. */
static void conns_notify(struct nbd_dev *nd, const struct pollfd *pfd,
			 struct nbd_conn *const *polled, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct nbd_conn *conn = polled[i];
		short rev = pfd[i].revents;
		unsigned int dir;
		int r = 0;

		if (rev == 0 || conn->h == NULL)
			continue;
		dir = nbd_aio_get_direction(conn->h);
		/* Readable and writable: the reply first (libnbd's advice). */
		if ((rev & POLLIN) || ((rev & (POLLHUP | POLLERR)) && (dir & LIBNBD_AIO_DIRECTION_READ)))
			r = nbd_aio_notify_read(conn->h);
		else if (rev & (POLLOUT | POLLHUP | POLLERR))
			r = nbd_aio_notify_write(conn->h);
		conn_check(nd, conn, r < 0 ? nbd_failure() : 0);
	}
}

static gpointer nbd_dispatch(gpointer data)
{
	struct nbd_dev *nd = data;
	struct pollfd pfd[1 + NBD_MULTI_CONNS];
	struct nbd_conn *polled[NBD_MULTI_CONNS];
	struct nbd_req *req;
	unsigned int i, n;
	uint64_t count;

	while (!queue_take(nd)) {
		backlog_issue(nd);

		pfd[0].fd = nd->wake_fd;
		pfd[0].events = POLLIN;
		n = 0;
		for (i = 0; i < nd->num_conns; i++) {
			struct nbd_conn *conn = &nd->conns[i];
			unsigned int dir;

			if (conn->h == NULL)
				continue;
			dir = nbd_aio_get_direction(conn->h);
			pfd[1 + n].fd = nbd_aio_get_fd(conn->h);
			pfd[1 + n].events = (short)(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
						    ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0));
			pfd[1 + n].revents = 0;
			polled[n++] = conn;
		}
		if (poll(pfd, 1 + n, -1) < 0) {
			if (errno != EINTR) {
				g_warning("%s: poll: %s", nd->shown, g_strerror(errno));
				g_usleep(1000);
			}
			continue;
		}
		if ((pfd[0].revents & POLLIN) && read(nd->wake_fd, &count, sizeof(count)) < 0 &&
		    errno != EAGAIN)
			g_warning("%s: cannot read the wake-up eventfd: %s", nd->shown,
				  g_strerror(errno));
		conns_notify(nd, pfd + 1, polled, n);
	}

	/* Closing: what waits fails, and closing the handles ends what is in flight. */
	while ((req = nd->backlog_head) != NULL) {
		nd->backlog_head = req->next;
		req->backlogged = false;
		if (req->err == 0)
			req->err = -ENOTCONN;
		req_maybe_done(req);
	}
	nd->backlog_tail = NULL;
	for (i = 0; i < nd->num_conns; i++)
		if (nd->conns[i].h != NULL)
			conn_close(&nd->conns[i]);
	return NULL;
}

/* ---- The device ops -------------------------------------------------------------------------- */

static int nbd_dev_submit(struct dmio_dev *dev, enum dmio_op op, const struct iovec *iov,
			  unsigned int iovcnt, uint64_t offset, uint64_t len, unsigned int flags,
			  void (*done)(void *opaque, int err), void *opaque)
{
	struct nbd_dev *nd = nbd_of(dev);
	struct nbd_req *req;
	uint32_t cmd_flags = 0;
	bool wake;

	switch (op) {
	case DMIO_READ:
	case DMIO_FLUSH:
		break;
	case DMIO_WRITE:
	case DMIO_DISCARD:
	case DMIO_WRITE_ZEROES:
		if (dev->flags & DMIO_DEV_RDONLY)
			return -EROFS;
		if ((op == DMIO_DISCARD && !atomic_load(&dev->can_discard)) ||
		    (op == DMIO_WRITE_ZEROES && !atomic_load(&dev->can_zero)))
			return -EOPNOTSUPP;
		if (flags & DMIO_REQ_FUA) {
			if (!atomic_load(&dev->can_fua))
				return -EOPNOTSUPP;
			cmd_flags |= LIBNBD_CMD_FLAG_FUA;
		}
		break;
	default:
		return -EINVAL;
	}
	if (atomic_load(&nd->lost))
		return -ENOTCONN;

	req = g_new0(struct nbd_req, 1);
	req->op = op;
	req->iov = iov;
	req->iovcnt = iovcnt;
	req->offset = offset;
	req->len = op == DMIO_FLUSH ? 0 : len;
	req->cmd_flags = cmd_flags;
	req->done = done;
	req->opaque = opaque;
	req->backlogged = true;

	g_mutex_lock(&nd->lock);
	if (nd->stopping) {
		g_mutex_unlock(&nd->lock);
		g_free(req);
		return -ENOTCONN;
	}
	wake = nd->queue_head == NULL; /* else the first of those queued woke it already */
	if (nd->queue_tail != NULL)
		nd->queue_tail->next = req;
	else
		nd->queue_head = req;
	nd->queue_tail = req;
	/* Under the lock: once it is released the request may complete and the device close. */
	if (wake && write(nd->wake_fd, &(uint64_t){1}, sizeof(uint64_t)) < 0)
		g_warning("%s: cannot wake the dispatcher: %s", nd->shown, g_strerror(errno));
	g_mutex_unlock(&nd->lock);
	return 0;
}

/* The synchronous ops: a submission, and a wait for its answer. */
struct nbd_wait {
	GMutex lock;
	GCond cond;
	bool done;
	int err;
};

static void nbd_wait_done(void *opaque, int err)
{
	struct nbd_wait *w = opaque;

	g_mutex_lock(&w->lock);
	w->err = err;
	w->done = true;
	g_cond_signal(&w->cond);
	g_mutex_unlock(&w->lock);
}

static int nbd_sync(struct dmio_dev *dev, enum dmio_op op, const struct iovec *iov,
		    unsigned int iovcnt, uint64_t offset, uint64_t len, unsigned int flags)
{
	struct nbd_wait w = {.done = false};
	int r;

	g_mutex_init(&w.lock);
	g_cond_init(&w.cond);
	r = nbd_dev_submit(dev, op, iov, iovcnt, offset, len, flags, nbd_wait_done, &w);
	if (r == 0) {
		g_mutex_lock(&w.lock);
		while (!w.done)
			g_cond_wait(&w.cond, &w.lock);
		r = w.err;
		g_mutex_unlock(&w.lock);
	}
	g_cond_clear(&w.cond);
	g_mutex_clear(&w.lock);
	return r;
}

static uint64_t iov_len(const struct iovec *iov, int iovcnt)
{
	uint64_t len = 0;
	int i;

	for (i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	return len;
}

static ssize_t nbd_dev_preadv(struct dmio_dev *dev, const struct iovec *iov, int iovcnt,
			      uint64_t offset)
{
	uint64_t len = MIN(iov_len(iov, iovcnt), (uint64_t)SSIZE_MAX);
	int r = nbd_sync(dev, DMIO_READ, iov, (unsigned int)iovcnt, offset, len, 0);

	return r < 0 ? r : (ssize_t)len;
}

static ssize_t nbd_dev_pwritev(struct dmio_dev *dev, const struct iovec *iov, int iovcnt,
			       uint64_t offset, int rwf_flags)
{
	uint64_t len = MIN(iov_len(iov, iovcnt), (uint64_t)SSIZE_MAX);
	int r = nbd_sync(dev, DMIO_WRITE, iov, (unsigned int)iovcnt, offset, len,
			 (rwf_flags & RWF_DSYNC) ? DMIO_REQ_FUA : 0);

	return r < 0 ? r : (ssize_t)len;
}

/*
 * A server that does not offer flush has no write cache of its own to flush (NBD protocol: it
 * must not advertise the flag it cannot honour): the dispatcher answers it at once.
 */
static int nbd_dev_flush(struct dmio_dev *dev)
{
	return nbd_sync(dev, DMIO_FLUSH, NULL, 0, 0, 0, 0);
}

static int nbd_dev_discard(struct dmio_dev *dev, uint64_t offset, uint64_t len)
{
	return nbd_sync(dev, DMIO_DISCARD, NULL, 0, offset, len, 0);
}

static int nbd_dev_zero(struct dmio_dev *dev, uint64_t offset, uint64_t len)
{
	return nbd_sync(dev, DMIO_WRITE_ZEROES, NULL, 0, offset, len, 0);
}

static void nbd_dev_close(struct dmio_dev *dev)
{
	struct nbd_dev *nd = nbd_of(dev);

	g_mutex_lock(&nd->lock);
	nd->stopping = true;
	if (write(nd->wake_fd, &(uint64_t){1}, sizeof(uint64_t)) < 0)
		g_warning("%s: cannot wake the dispatcher: %s", nd->shown, g_strerror(errno));
	g_mutex_unlock(&nd->lock);
	/* It answers whatever is still in flight (-ENOTCONN) and closes the connections. */
	g_thread_join(nd->thread);
	close(nd->wake_fd);
	g_mutex_clear(&nd->lock);
	g_free(nd->shown);
}

static const struct dmio_dev_ops nbd_ops = {
    .kind = "nbd",
    .preadv = nbd_dev_preadv,
    .pwritev = nbd_dev_pwritev,
    .flush = nbd_dev_flush,
    .discard = nbd_dev_discard,
    .zero = nbd_dev_zero,
    .submit = nbd_dev_submit,
    .close = nbd_dev_close,
};

int dmio_dev_nbd_open(const char *path, unsigned int flags, struct dmio_dev **out)
{
	struct nbd_dev *nd;
	struct nbd_handle *h;
	int64_t size, minimum, maximum;
	GError *error = NULL;
	unsigned int i, want;
	int err;
	char *shown = dmio_nbd_redact_uri(path);

	h = nbd_connect(path, shown, &err);
	if (h == NULL) {
		g_free(shown);
		return err;
	}
	size = nbd_get_size(h);
	minimum = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
	maximum = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
	if (size < 0 || minimum < 0 || maximum < 0) {
		err = nbd_failure();
		g_debug("%s: cannot learn the export's size: %s", shown, nbd_message(path));
		nbd_close(h);
		g_free(shown);
		return err;
	}
	/* A read-only export opens as DMIO_DEV_RDONLY: dmio() refuses writes with -EROFS. */
	if (nbd_is_read_only(h) > 0)
		flags |= DMIO_DEV_RDONLY;

	nd = g_new0(struct nbd_dev, 1);
	nd->dev.ops = &nbd_ops;
	nd->dev.path = g_strdup(path);
	nd->dev.fd = -1; /* no descriptor: the engines hand its jobs to submit */
	nd->dev.flags = flags;
	/* A trimmed range of an export need not read back as zeroes: it behaves as a disk. */
	nd->dev.is_block = true;
	nd->dev.size = (uint64_t)size;
	nd->dev.lbs = minimum >= DMIO_SECTOR_SIZE ? (unsigned int)minimum : DMIO_SECTOR_SIZE;
	nd->dev.mem_align = 1;
	nd->dev.offset_align = nd->dev.lbs;
	atomic_init(&nd->dev.can_discard, nbd_can_trim(h) > 0);
	atomic_init(&nd->dev.can_zero, nbd_can_zero(h) > 0);
	atomic_init(&nd->dev.can_fua, nbd_can_fua(h) > 0);
	atomic_init(&nd->dev.avg_ns, 0);
	atomic_init(&nd->dev.timed_ns, 0);
	atomic_init(&nd->dev.probe_ns, 0);
	nd->shown = shown;
	nd->max_request =
	    maximum > 0 ? (uint32_t)MIN(maximum, (int64_t)NBD_MAX_PAYLOAD) : NBD_MAX_PAYLOAD;
	/* Whole blocks per command: round the maximum down to the minimum block size. */
	if (nd->max_request >= nd->dev.lbs)
		nd->max_request -= nd->max_request % nd->dev.lbs;
	nd->can_flush = nbd_can_flush(h) > 0;
	atomic_init(&nd->lost, false);
	g_mutex_init(&nd->lock);

	/* Multi-conn: the server keeps the connections consistent, so spread over a few. */
	want = nbd_can_multi_conn(h) > 0 ? NBD_MULTI_CONNS : 1;
	nd->conns[0].h = h;
	nd->num_conns = 1;
	for (i = 1; i < want; i++) {
		struct nbd_handle *more = nbd_connect(path, shown, &err);

		if (more == NULL)
			break; /* fewer connections then; the first one serves */
		nd->conns[nd->num_conns++].h = more;
	}

	nd->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (nd->wake_fd < 0) {
		err = -errno;
		goto fail;
	}
	nd->thread = g_thread_try_new("dmio-nbd", nbd_dispatch, nd, &error);
	if (nd->thread == NULL) {
		g_warning("%s: cannot start its dispatcher thread: %s", shown, error->message);
		g_error_free(error);
		close(nd->wake_fd);
		err = -EAGAIN;
		goto fail;
	}
	*out = &nd->dev;
	return 0;

fail:
	for (i = 0; i < nd->num_conns; i++)
		nbd_close(nd->conns[i].h);
	g_mutex_clear(&nd->lock);
	g_free(nd->dev.path);
	g_free(nd);
	g_free(shown);
	return err;
}

#else /* !HAVE_LIBNBD */

int dmio_dev_nbd_open(const char *path, unsigned int flags, struct dmio_dev **out)
{
	g_autofree char *shown = dmio_nbd_redact_uri(path);

	g_debug("%s: built without libnbd: NBD exports cannot be opened", shown);
	return -ENOTSUP;
}

#endif /* HAVE_LIBNBD */
