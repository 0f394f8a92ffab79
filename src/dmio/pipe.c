/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * DMIO_MEM_PIPE: a write whose data is in a pipe (FUSE's spliced WRITE payload), one copy per
 * region.  tee(2) duplicates the pipe's buffers by reference into a pipe per spliceable region,
 * and whoever runs the region splices that pipe into the device: the only copy of the data is
 * the kernel's into the device.  Regions that cannot take a splice share one copy, read out of
 * the caller's pipe once, after the tees (tee does not consume it).
 *
 * Who owns what:
 * - The caller's pipe: the caller's.  dmio_io_from_pipe() runs in dmio(), in the caller's
 *   thread, before any job can run; it tees, then reads or discards the data, and returns with
 *   the caller's pipe io->len bytes emptier.  Nothing of the call touches it afterwards, so an
 *   engine thread, a late (abandoned) region or a retry never needs the caller's pipe.
 * - A job's pipe (job->pipe): the job's, from the tee until its write ends, touched only by the
 *   one who claimed the job; it holds exactly the bytes the job still has to write.  A splice
 *   that the device refuses part-way leaves the rest in it, which is read out and written from
 *   memory.  The pipe goes back to the client's pool when it is empty, else it is closed, before
 *   the job's outcome is recorded (so the client is alive: its call is in flight, or lent to an
 *   abandoned job).  A job that is never run (abandoned while it waited) has its pipe closed by
 *   io_free.
 * - The shared copy: bounce pages of the client's pool, owned by the call as io_bounce's are
 *   (given back when the call completes, or when it is freed if an abandoned job holds them).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "dmio-internal.h"

#define PIPES_KEPT 64u /* empty pipes a client keeps for the next calls */

struct dmio_pipe {
	int fd[2];
	int size; /* F_GETPIPE_SZ */
};

void dmio_client_pipes_init(struct dmio_client *client)
{
	g_mutex_init(&client->pipes_lock);
	client->pipes = g_array_new(FALSE, FALSE, sizeof(struct dmio_pipe));
	atomic_init(&client->pipe_spliced, 0);
	atomic_init(&client->pipe_copied, 0);
}

void dmio_client_pipes_destroy(struct dmio_client *client)
{
	guint i;

	for (i = 0; i < client->pipes->len; i++) {
		struct dmio_pipe *p = &g_array_index(client->pipes, struct dmio_pipe, i);

		close(p->fd[0]);
		close(p->fd[1]);
	}
	g_array_free(client->pipes, TRUE);
	g_mutex_clear(&client->pipes_lock);
}

void dmio_client_pipe_stats(const struct dmio_client *client, uint64_t *spliced, uint64_t *copied)
{
	struct dmio_client *c = (struct dmio_client *)client;

	if (spliced != NULL)
		*spliced = c != NULL ? atomic_load(&c->pipe_spliced) : 0;
	if (copied != NULL)
		*copied = c != NULL ? atomic_load(&c->pipe_copied) : 0;
}

/*
 * An empty pipe that can hold size bytes in as many buffers as the caller's pipe has: from the
 * pool, else a new one.  False when none can be had.
 */
static bool pipe_take(struct dmio_client *client, int size, struct dmio_pipe *out)
{
	bool found = false;

	g_mutex_lock(&client->pipes_lock);
	if (client->pipes->len > 0) {
		*out = g_array_index(client->pipes, struct dmio_pipe, client->pipes->len - 1);
		g_array_set_size(client->pipes, client->pipes->len - 1);
		found = true;
	}
	g_mutex_unlock(&client->pipes_lock);
	if (!found) {
		if (pipe2(out->fd, O_CLOEXEC) < 0)
			return false;
		out->size = fcntl(out->fd[0], F_GETPIPE_SZ);
	}
	if (out->size < size) {
		int r = fcntl(out->fd[0], F_SETPIPE_SZ, size);

		if (r < size) {
			close(out->fd[0]);
			close(out->fd[1]);
			return false;
		}
		out->size = r;
	}
	return true;
}

/* An empty pipe back to the pool (or closed beyond PIPES_KEPT). */
static void pipe_give(struct dmio_client *client, const struct dmio_pipe *p)
{
	bool kept = false;

	g_mutex_lock(&client->pipes_lock);
	if (client->pipes->len < PIPES_KEPT) {
		g_array_append_vals(client->pipes, p, 1);
		kept = true;
	}
	g_mutex_unlock(&client->pipes_lock);
	if (!kept) {
		close(p->fd[0]);
		close(p->fd[1]);
	}
}

void dmio_job_pipe_close(struct dmio_job *job)
{
	if (!job->spliced || job->pipe[0] < 0)
		return;
	close(job->pipe[0]);
	close(job->pipe[1]);
	job->pipe[0] = job->pipe[1] = -1;
}

/* Read exactly len bytes out of pipe fd into iov (the pipe holds them).  0 or -errno. */
static int pipe_read_full(int fd, const struct iovec *iov, unsigned int count, uint64_t len)
{
	struct iovec stack[16];
	struct iovec *v = count <= G_N_ELEMENTS(stack) ? stack : g_new(struct iovec, count);
	unsigned int idx = 0;
	uint64_t done = 0;
	int err = 0;

	memcpy(v, iov, count * sizeof(*v));
	while (done < len && idx < count) {
		ssize_t r = readv(fd, v + idx, (int)MIN(count - idx, (unsigned int)IOV_MAX));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? -errno : -EIO;
			break;
		}
		done += (uint64_t)r;
		while (r > 0 && idx < count) {
			if ((size_t)r >= v[idx].iov_len) {
				r -= (ssize_t)v[idx].iov_len;
				idx++;
			} else {
				v[idx].iov_base = (char *)v[idx].iov_base + r;
				v[idx].iov_len -= (size_t)r;
				r = 0;
			}
		}
	}
	if (v != stack)
		g_free(v);
	return err;
}

/* Drop len bytes of pipe fd (their pages' references) without reading them.  0 or -errno. */
static int pipe_discard(int fd, uint64_t len)
{
	static gsize once;
	static int null_fd = -1;

	if (g_once_init_enter(&once)) {
		null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		g_once_init_leave(&once, 1);
	}
	while (len > 0) {
		ssize_t r = null_fd >= 0 ? splice(fd, NULL, null_fd, NULL, len, SPLICE_F_MOVE) : -1;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			/* No /dev/null to splice to: read the bytes away. */
			char scratch[16384];
			ssize_t n = read(fd, scratch, MIN(len, sizeof(scratch)));

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return n < 0 ? -errno : -EIO;
			r = n;
		}
		len -= (uint64_t)r;
	}
	return 0;
}

/* The shared copy: io->len bytes of the pipe into bounce pages, io->iov pointing at them. */
static int pipe_bounce(struct dmio_io *io, int fd)
{
	struct iovec *pages_iov;
	int count = dmio_io_take_bounce(io, &pages_iov);
	int r;

	if (count < 0)
		return count;
	r = pipe_read_full(fd, pages_iov, (unsigned int)count, io->len);
	/* io_free frees io->iov when user_iov is set: the empty in-call array stands for it. */
	io->user_iov = io->iov;
	io->user_iovcnt = 0;
	io->iov = pages_iov;
	io->iovcnt = (unsigned int)count;
	return r;
}

int dmio_io_from_pipe(struct dmio_io *io, int fd)
{
	struct dmio_client *client = io->client;
	unsigned int i, copies = 0;
	int avail = 0, size;
	int r;

	/* The data must be there: a read of an emptier pipe would wait for a writer. */
	if (ioctl(fd, FIONREAD, &avail) < 0 || avail < 0 || (uint64_t)avail < io->len)
		return -EINVAL;
	size = fcntl(fd, F_GETPIPE_SZ);
	if (size < 0)
		return -EINVAL;
	for (i = 0; i < io->num_jobs; i++) {
		struct dmio_job *job = &io->jobs[i];
		struct dmio_dev *dev = job->region.dev;
		struct dmio_pipe p;
		ssize_t n;

		job->pipe[0] = job->pipe[1] = -1;
		if (job->kind != DMIO_JOB_IO)
			continue;
		if (!atomic_load(&dev->can_splice) || dev->fd < 0 || !pipe_take(client, size, &p)) {
			copies++;
			continue;
		}
		do
			n = tee(fd, p.fd[1], job->len, 0);
		while (n < 0 && errno == EINTR);
		if (n != (ssize_t)job->len) {
			/* A partial duplicate cannot be finished (tee starts over): copy. */
			close(p.fd[0]);
			close(p.fd[1]);
			copies++;
			continue;
		}
		job->spliced = true;
		job->pipe[0] = p.fd[0];
		job->pipe[1] = p.fd[1];
		job->pipe_size = p.size;
	}
	if (copies > 0) {
		r = pipe_bounce(io, fd);
		if (r == 0) {
			for (i = 0; i < io->num_jobs; i++)
				if (io->jobs[i].kind == DMIO_JOB_IO && !io->jobs[i].spliced)
					dmio_job_set_iov(io, &io->jobs[i]);
			atomic_fetch_add(&client->pipe_copied, copies);
		}
	} else {
		r = pipe_discard(fd, io->len);
	}
	if (r < 0) {
		for (i = 0; i < io->num_jobs; i++) {
			dmio_job_pipe_close(&io->jobs[i]);
			io->jobs[i].spliced = false;
		}
		if (io->bounce_pages != NULL) {
			dmio_pool_give(&client->pool, io->bounce_count, io->bounce_pages);
			g_free(io->bounce_pages);
			io->bounce_pages = NULL;
		}
		if (io->user_iov != NULL) {
			g_free(io->iov);
			io->iov = io->user_iov;
			io->user_iov = NULL;
		}
		return r;
	}
	return 0;
}

/* The device cannot take a splice at all (as opposed to failing the write). */
static bool splice_refused(int err)
{
	return err == EINVAL || err == ENOSYS || err == EOPNOTSUPP || err == EBADF;
}

/* The rest of a refused splice: read what the job's pipe still holds, write it from memory. */
static int write_rest_from_copy(struct dmio_job *job, uint64_t done)
{
	struct dmio_dev *dev = job->region.dev;
	uint64_t left = job->len - done;
	struct iovec iov;
	char *buf;
	int r;

	if (posix_memalign((void **)&buf, DMIO_PAGE_SIZE, left) != 0)
		return -ENOMEM;
	iov.iov_base = buf;
	iov.iov_len = left;
	r = pipe_read_full(job->pipe[0], &iov, 1, left);
	while (r == 0 && left > 0) {
		ssize_t n = dev->ops->pwritev(dev, &iov, 1, job->offset + done, 0);

		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n <= 0) {
			r = n < 0 ? (int)n : -EIO;
			break;
		}
		done += (uint64_t)n;
		left -= (uint64_t)n;
		iov.iov_base = (char *)iov.iov_base + n;
		iov.iov_len = left;
	}
	free(buf);
	return r;
}

int dmio_job_splice(struct dmio_job *job)
{
	struct dmio_dev *dev = job->region.dev;
	struct dmio_client *client = job->io->client;
	uint64_t done = 0;
	bool copied = false;
	int r = 0;

	while (done < job->len) {
		loff_t off = (loff_t)(job->offset + done);
		ssize_t n =
		    splice(job->pipe[0], NULL, dev->fd, &off, job->len - done, SPLICE_F_MOVE);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && splice_refused(errno)) {
			dmio_dev_cap_off(&dev->can_splice, dev, "splice");
			r = write_rest_from_copy(job, done);
			copied = true;
			break;
		}
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		done += (uint64_t)n;
	}
	atomic_fetch_add(copied ? &client->pipe_copied : &client->pipe_spliced, 1);
	if (r == 0) {
		struct dmio_pipe p = {.fd = {job->pipe[0], job->pipe[1]}, .size = job->pipe_size};

		job->pipe[0] = job->pipe[1] = -1;
		pipe_give(client, &p);
	} else {
		/* Bytes the device did not take are still in it. */
		dmio_job_pipe_close(job);
	}
	return r;
}
