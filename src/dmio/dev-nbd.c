/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The NBD kind: an export of any NBD server, reached through libnbd's synchronous calls.
 * path is an NBD URI (nbd://HOST[:PORT]/EXPORT, nbds://..., nbd+unix:///EXPORT?socket=PATH),
 * parsed by libnbd (nbd_connect_uri).
 *
 * Connections.  The engine runs one job per thread, many at once, and libnbd serializes the
 * synchronous calls on one handle.  So each device keeps a small pool of connections (up to
 * NBD_MAX_CONNS, and only one when the server does not allow multi-conn): a thread checks one
 * out, runs its synchronous call, checks it back in; new ones are opened lazily, outside the
 * lock, while all the open ones are busy and there is room.  A job abandoned by io-timeout
 * (abandon.c) keeps its handle checked out until libnbd returns: no one else can use it
 * meanwhile, which is all abandon needs.
 *
 * Why not libnbd's aio calls yet: one handle could then carry many requests in flight, with a
 * poll loop of our own to drive it and completions to hand back to the engine.  That is the next
 * step; a pool of synchronous handles already runs requests in parallel and keeps every call
 * within the device vtable's one-attempt-blocking contract.
 *
 * A dead connection (the server went away) fails its call with libnbd's errno, and marks the
 * whole device lost: every later call fails at once with -ENOTCONN, without reconnecting (a
 * server that comes back may be another one; deciding that is the caller's business: it opens
 * the device again).
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

/* Connections per device at most: about as many as the engine runs jobs at once. */
#define NBD_MAX_CONNS 8u
/* libnbd refuses data payloads above 64 MiB; 32 MiB is the NBD spec's safe maximum. */
#define NBD_MAX_PAYLOAD (32u * 1024 * 1024)
/* Trim and write-zeroes carry no payload, but their length is 32 bits on the wire. */
#define NBD_MAX_EFFECT (1u << 30)

struct nbd_dev {
	struct dmio_dev dev;
	char *shown;		/* the URI with its secrets redacted, for messages */
	unsigned int max_conns; /* 1 without multi-conn */
	uint32_t max_request;	/* bytes of data per command */
	bool can_flush;
	atomic_bool lost; /* a connection died: every call fails with -ENOTCONN */
	/*
	 * The pool, under lock (a leaf: no I/O, no other lock under it): idle handles, and how
	 * many are open (idle, checked out, or being connected).  cond: a handle came back or a
	 * slot came free.
	 */
	GMutex lock;
	GCond cond;
	struct nbd_handle *idle[NBD_MAX_CONNS];
	unsigned int idle_count;
	unsigned int open_count;
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
	/* tls-psk-file= and tls-certificates= name local files; the URI is the admin's own. */
	if (nbd_set_uri_allow_local_file(h, true) < 0 || nbd_connect_uri(h, uri) < 0) {
		*err = nbd_failure();
		g_debug("%s: cannot connect: %s", shown, nbd_message(uri));
		nbd_close(h);
		return NULL;
	}
	return h;
}

/* A handle of this thread's own until nbd_put(): an idle one, or a new one when there is room. */
static struct nbd_handle *nbd_get(struct nbd_dev *nd, int *err)
{
	struct nbd_handle *h = NULL;

	g_mutex_lock(&nd->lock);
	while (nd->idle_count == 0 && nd->open_count >= nd->max_conns && !atomic_load(&nd->lost))
		g_cond_wait(&nd->cond, &nd->lock);
	if (atomic_load(&nd->lost)) {
		g_mutex_unlock(&nd->lock);
		*err = -ENOTCONN;
		return NULL;
	}
	if (nd->idle_count > 0) {
		h = nd->idle[--nd->idle_count];
		g_mutex_unlock(&nd->lock);
		return h;
	}
	nd->open_count++; /* the slot is ours while we connect, outside the lock */
	g_mutex_unlock(&nd->lock);

	h = nbd_connect(nd->dev.path, nd->shown, err);
	if (h == NULL) {
		g_mutex_lock(&nd->lock);
		nd->open_count--;
		g_cond_signal(&nd->cond);
		g_mutex_unlock(&nd->lock);
	}
	return h;
}

/*
 * Give a handle back after a call that returned r.  A dead connection is closed (outside the
 * lock) and the device marked lost.
 */
static void nbd_put(struct nbd_dev *nd, struct nbd_handle *h, int r)
{
	bool dead = r < 0 && (nbd_aio_is_dead(h) > 0 || nbd_aio_is_closed(h) > 0);

	g_mutex_lock(&nd->lock);
	if (dead) {
		nd->open_count--;
		if (!atomic_exchange(&nd->lost, true))
			g_message("%s: connection lost (%s)", nd->shown, g_strerror(-r));
		g_cond_broadcast(&nd->cond); /* waiters fail now */
	} else {
		nd->idle[nd->idle_count++] = h;
		g_cond_signal(&nd->cond);
	}
	g_mutex_unlock(&nd->lock);
	if (dead)
		nbd_close(h);
}

/* The data of one command: iov[0] itself when it holds enough, else gathered into bounce. */
static size_t request_len(const struct nbd_dev *nd, const struct iovec *iov, int iovcnt)
{
	size_t len = 0;
	int i;

	for (i = 0; i < iovcnt && len < nd->max_request; i++)
		len += iov[i].iov_len;
	return MIN(len, (size_t)nd->max_request);
}

static ssize_t nbd_dev_preadv(struct dmio_dev *dev, const struct iovec *iov, int iovcnt,
			      uint64_t offset)
{
	struct nbd_dev *nd = nbd_of(dev);
	size_t len = request_len(nd, iov, iovcnt);
	bool direct = iov[0].iov_len >= len;
	void *buf = direct ? iov[0].iov_base : g_malloc(len);
	struct nbd_handle *h;
	int err, r;

	if (len == 0)
		return 0;
	h = nbd_get(nd, &err);
	if (h == NULL) {
		r = err;
	} else {
		r = nbd_pread(h, buf, len, offset, 0) < 0 ? nbd_failure() : 0;
		nbd_put(nd, h, r);
	}
	if (!direct) {
		size_t pos = 0;
		int i;

		for (i = 0; r == 0 && pos < len; i++) {
			size_t n = MIN(iov[i].iov_len, len - pos);

			memcpy(iov[i].iov_base, (char *)buf + pos, n);
			pos += n;
		}
		g_free(buf);
	}
	return r < 0 ? r : (ssize_t)len;
}

static ssize_t nbd_dev_pwritev(struct dmio_dev *dev, const struct iovec *iov, int iovcnt,
			       uint64_t offset, int rwf_flags)
{
	struct nbd_dev *nd = nbd_of(dev);
	size_t len = request_len(nd, iov, iovcnt);
	bool direct = iov[0].iov_len >= len;
	void *buf;
	uint32_t flags = 0;
	struct nbd_handle *h;
	int err, r;

	if (dev->flags & DMIO_DEV_RDONLY)
		return -EROFS;
	if (rwf_flags & RWF_DSYNC) {
		if (!atomic_load(&dev->can_fua))
			return -EOPNOTSUPP;
		flags |= LIBNBD_CMD_FLAG_FUA;
	}
	if (len == 0)
		return 0;
	buf = direct ? iov[0].iov_base : g_malloc(len); /* after the refusals: nothing to free */
	if (!direct) {
		size_t pos = 0;
		int i;

		for (i = 0; pos < len; i++) {
			size_t n = MIN(iov[i].iov_len, len - pos);

			memcpy((char *)buf + pos, iov[i].iov_base, n);
			pos += n;
		}
	}
	h = nbd_get(nd, &err);
	if (h == NULL) {
		r = err;
	} else {
		r = nbd_pwrite(h, buf, len, offset, flags) < 0 ? nbd_failure() : 0;
		nbd_put(nd, h, r);
	}
	if (!direct)
		g_free(buf);
	return r < 0 ? r : (ssize_t)len;
}

static int nbd_dev_flush(struct dmio_dev *dev)
{
	struct nbd_dev *nd = nbd_of(dev);
	struct nbd_handle *h;
	int err, r;

	/*
	 * A server that does not offer flush has no write cache of its own to flush (NBD
	 * protocol: it must not advertise the flag it cannot honour): a no-op success.
	 */
	if (!nd->can_flush)
		return atomic_load(&nd->lost) ? -ENOTCONN : 0;
	h = nbd_get(nd, &err);
	if (h == NULL)
		return err;
	r = nbd_flush(h, 0) < 0 ? nbd_failure() : 0;
	nbd_put(nd, h, r);
	return r;
}

/* Trim (zero false) or write-zeroes over a range, in commands of at most NBD_MAX_EFFECT bytes. */
static int nbd_effect(struct nbd_dev *nd, bool zero, uint64_t offset, uint64_t len)
{
	struct nbd_handle *h;
	int err, r = 0;

	if (nd->dev.flags & DMIO_DEV_RDONLY)
		return -EROFS;
	if (!atomic_load(zero ? &nd->dev.can_zero : &nd->dev.can_discard))
		return -EOPNOTSUPP;
	h = nbd_get(nd, &err);
	if (h == NULL)
		return err;
	while (r == 0 && len > 0) {
		uint64_t n = MIN(len, (uint64_t)NBD_MAX_EFFECT);

		if ((zero ? nbd_zero(h, n, offset, 0) : nbd_trim(h, n, offset, 0)) < 0)
			r = nbd_failure();
		offset += n;
		len -= n;
	}
	nbd_put(nd, h, r);
	return r;
}

static int nbd_dev_discard(struct dmio_dev *dev, uint64_t offset, uint64_t len)
{
	return nbd_effect(nbd_of(dev), false, offset, len);
}

static int nbd_dev_zero(struct dmio_dev *dev, uint64_t offset, uint64_t len)
{
	return nbd_effect(nbd_of(dev), true, offset, len);
}

/* Every job has answered (dmio_dev_close's contract): every open handle is idle. */
static void nbd_dev_close(struct dmio_dev *dev)
{
	struct nbd_dev *nd = nbd_of(dev);
	unsigned int i;

	for (i = 0; i < nd->idle_count; i++)
		nbd_close(nd->idle[i]);
	if (nd->idle_count != nd->open_count)
		g_warning("%s: closed with %u connections busy", nd->shown,
			  nd->open_count - nd->idle_count);
	g_mutex_clear(&nd->lock);
	g_cond_clear(&nd->cond);
	g_free(nd->shown);
}

static const struct dmio_dev_ops nbd_ops = {
    .kind = "nbd",
    .preadv = nbd_dev_preadv,
    .pwritev = nbd_dev_pwritev,
    .flush = nbd_dev_flush,
    .discard = nbd_dev_discard,
    .zero = nbd_dev_zero,
    .close = nbd_dev_close,
};

int dmio_dev_nbd_open(const char *path, unsigned int flags, struct dmio_dev **out)
{
	struct nbd_dev *nd;
	struct nbd_handle *h;
	int64_t size, minimum, maximum;
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
	nd->dev.fd = -1; /* io_uring sends fd-less devices to its fallback pool */
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
	nd->max_conns = nbd_can_multi_conn(h) > 0 ? NBD_MAX_CONNS : 1;
	nd->max_request =
	    maximum > 0 ? (uint32_t)MIN(maximum, (int64_t)NBD_MAX_PAYLOAD) : NBD_MAX_PAYLOAD;
	/* Whole blocks per command: round the maximum down to the minimum block size. */
	if (nd->max_request >= nd->dev.lbs)
		nd->max_request -= nd->max_request % nd->dev.lbs;
	nd->can_flush = nbd_can_flush(h) > 0;
	atomic_init(&nd->lost, false);
	g_mutex_init(&nd->lock);
	g_cond_init(&nd->cond);
	nd->idle[0] = h;
	nd->idle_count = 1;
	nd->open_count = 1;
	*out = &nd->dev;
	return 0;
}

#else /* !HAVE_LIBNBD */

int dmio_dev_nbd_open(const char *path, unsigned int flags, struct dmio_dev **out)
{
	g_autofree char *shown = dmio_nbd_redact_uri(path);

	g_debug("%s: built without libnbd: NBD exports cannot be opened", shown);
	return -ENOTSUP;
}

#endif /* HAVE_LIBNBD */
