// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * bench/nullfuse: the floor of bench/run. A FUSE file that does nothing: reads return zeros from
 * a static buffer, writes are acknowledged without being stored. It is served the way
 * fusemirrord serves the mirror file (low-level API, multithreaded loop with clone_fd and 16 idle
 * threads, max_write 1 MiB, max_background 128, direct_io, async DIO), so what it costs is what
 * FUSE itself costs on this machine; fusemirror cannot be faster.
 *
 *   nullfuse SIZE MOUNTFILE     serve a file of SIZE bytes on MOUNTFILE (a regular file) until
 *                               SIGTERM/SIGINT or fusermount3 -u; runs in the foreground
 *   nullfuse --ring SIZE MOUNTFILE
 *                               the same over FUSE over io_uring (src/fuse/ring.c, as
 *                               fusemirrord's fuse-transport = io_uring): exits 1 when the
 *                               kernel does not offer it; /dev/fuse still carries INIT and the
 *                               rest, read by the same libfuse loop
 *
 * Built by bench/run: cc -O2 nullfuse.c $(pkg-config --cflags --libs fuse3), and with
 * -DNULLFUSE_RING ../src/fuse/ring.c $(pkg-config --cflags --libs liburing glib-2.0) for --ring.
 */
#define FUSE_USE_VERSION 314
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef NULLFUSE_RING
#include <linux/fuse.h>
#include <sys/uio.h>

#include "fuse/ring.h"
#endif

#define MAX_IO (1024 * 1024)

static off_t file_size;
static char zeros[MAX_IO];
static struct timespec start_time;

static void fill(struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFREG | 0600;
	st->st_nlink = 1;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_size = file_size;
	st->st_blksize = 4096;
	st->st_blocks = file_size / 512;
	st->st_atim = st->st_mtim = st->st_ctim = start_time;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = MAX_IO;
	conn->max_background = 128;
	conn->congestion_threshold = 96;
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill(&st);
	fuse_reply_attr(req, &st, 1.0);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	(void)attr;
	(void)to_set;
	op_getattr(req, ino, fi);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fi->direct_io = 1;
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	if (off >= file_size)
		size = 0;
	else if ((off_t)size > file_size - off)
		size = (size_t)(file_size - off);
	if (size > MAX_IO)
		size = MAX_IO;
	fuse_reply_buf(req, zeros, size);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)ino;
	(void)buf;
	(void)fi;
	if (off >= file_size) {
		fuse_reply_err(req, ENOSPC);
		return;
	}
	if ((off_t)size > file_size - off)
		size = (size_t)(file_size - off);
	fuse_reply_write(req, size);
}

static void op_ok(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	op_ok(req, ino, fi);
}

#ifdef NULLFUSE_RING
/* --ring: the custom I/O layer that shows ring.c the INIT and takes the ring's replies. */
static struct fuse_ring *ring;
static struct fuse_session *session;
static int ring_failed;

static ssize_t ring_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);

	(void)userdata;
	if (n >= (ssize_t)sizeof(struct fuse_in_header) &&
	    ((struct fuse_in_header *)buf)->opcode == FUSE_INIT)
		fuse_ring_saw_init(ring, buf, (size_t)n);
	return n;
}

static ssize_t ring_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	GError *error = NULL;
	ssize_t n;
	int init_reply;

	(void)userdata;
	if (fuse_ring_reply(ring, iov, count, &n))
		return n;
	init_reply = fuse_ring_patch_init_reply(ring, iov, count);
	n = writev(fd, iov, count);
	if (init_reply && n > 0) {
		if (fuse_ring_start(ring, &error) == 0) {
			unsigned int queues, entries;

			fuse_ring_shape(ring, &queues, &entries);
			fprintf(stderr, "nullfuse: FUSE over io_uring: %u queues x %u entries\n",
				queues, entries);
		} else {
			fprintf(stderr, "nullfuse: FUSE over io_uring not available (%s)\n",
				error->message);
			g_error_free(error);
			ring_failed = 1;
			fuse_session_exit(session);
		}
	}
	return n;
}

static const struct fuse_custom_io ring_io = {
	.read = ring_read,
	.writev = ring_writev,
};
#endif

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_ok,
	.release = op_ok,
	.fsync = op_fsync,
};

int main(int argc, char **argv)
{
	char *fuse_argv[] = { argv[0], "-o", "fsname=nullfuse,subtype=nullfuse,default_permissions",
			      NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fuse_argv);
	struct fuse_loop_config *config;
	struct fuse_session *se;
	char *end;
	int r = 1, use_ring = 0;

	if (argc == 4 && strcmp(argv[1], "--ring") == 0) {
#ifdef NULLFUSE_RING
		use_ring = 1;
		argv++;
		argc--;
#else
		fprintf(stderr, "%s: built without --ring (NULLFUSE_RING)\n", argv[0]);
		return 2;
#endif
	}
	if (argc != 3) {
		fprintf(stderr, "usage: %s [--ring] SIZE MOUNTFILE\n", argv[0]);
		return 2;
	}
	file_size = strtoll(argv[1], &end, 10);
	if (*end != '\0' || file_size <= 0) {
		fprintf(stderr, "%s: bad size %s\n", argv[0], argv[1]);
		return 2;
	}
	clock_gettime(CLOCK_REALTIME, &start_time);
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (se == NULL)
		return 1;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, argv[2]) != 0)
		goto out_signals;
#ifdef NULLFUSE_RING
	if (use_ring) {
		session = se;
		ring = fuse_ring_new(&(struct fuse_ring_params){
			.se = se,
			.fd = fuse_session_fd(se),
			.transport = FUSE_TRANSPORT_IO_URING,
			.max_write = MAX_IO,
			.pin = -1,
		});
		if (fuse_session_custom_io(se, &ring_io, fuse_session_fd(se)) != 0)
			goto out_unmount;
	}
#else
	(void)use_ring;
#endif
	config = fuse_loop_cfg_create();
	if (config == NULL)
		goto out_unmount;
	fuse_loop_cfg_set_clone_fd(config, 1);
	fuse_loop_cfg_set_idle_threads(config, 16);
	r = fuse_session_loop_mt(se, config) < 0;
	fuse_loop_cfg_destroy(config);
out_unmount:
#ifdef NULLFUSE_RING
	fuse_ring_quiesce(ring, -1);
	fuse_session_unmount(se);
	fuse_ring_free(ring);
	r = r || ring_failed;
#else
	fuse_session_unmount(se);
#endif
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	return r;
}
