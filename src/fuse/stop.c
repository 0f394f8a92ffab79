/* SPDX-License-Identifier: GPL-2.0-or-later */
/* When the front end stops (stop.h): a self-pipe from the signal handler to one thread. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "fuse/control.h"
#include "fuse/stop.h"

/* Bytes on the pipe besides signal numbers. */
#define BYTE_REQUEST 0xfe /* stopper_request */
#define BYTE_QUIT    0xff /* stopper_free */

#define KICK_INTERVAL_MS 50

static const int stop_signals[] = {SIGTERM, SIGINT, SIGHUP};

/* The write end of the stopper's pipe, for the handler; -1 when there is none.  Lock-free. */
static atomic_int stop_pipe_write = -1;

struct stopper {
	struct opens *opens;
	char *name; /* escaped, for messages */
	char *path; /* escaped, for messages */
	unsigned int timeout;
	bool (*exit_fn)(void *opaque);
	void *opaque;
	void (*reload_fn)(void *opaque); /* SIGHUP, or NULL: SIGHUP stops */
	int pipe[2];
	GThread *thread;
	/* Only the stopper thread uses the rest. */
	bool stopping;	 /* exit_fn was called */
	bool loop_done;	 /* exit_fn said the loop returned */
	bool waiting;	 /* a signal came while the file was in use */
	gint64 deadline; /* monotonic µs: the end of stop-timeout */
	gint64 next_log; /* monotonic µs: the next "still in use" message */
};

static void on_stop_signal(int sig)
{
	int saved = errno;
	unsigned char byte = (unsigned char)sig;
	int fd = atomic_load(&stop_pipe_write);

	/* Non-blocking: with the pipe full, the stopper has bytes enough to read. */
	if (fd >= 0 && write(fd, &byte, 1) < 0) {
		/* nothing to do in a handler */
	}
	errno = saved;
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGTERM:
		return "SIGTERM";
	case SIGINT:
		return "SIGINT";
	case SIGHUP:
		return "SIGHUP";
	default:
		return "a signal";
	}
}

static void stop_now(struct stopper *s)
{
	g_autoptr(GError) ignored = NULL;

	s->stopping = true;
	s->waiting = false;
	/* With force it cannot fail: it only closes the door to new opens. */
	opens_begin_stop(s->opens, true, &ignored);
	s->loop_done = s->exit_fn(s->opaque);
}

static void on_signal(struct stopper *s, int sig)
{
	g_autoptr(GError) busy = NULL;
	g_autofree char *holders = NULL;

	if (s->waiting) {
		holders = opens_describe(s->opens);
		g_warning("mirror %s: second %s: stopping at once, although %s is still in use: %s",
			  s->name, signal_name(sig), s->path, holders);
		stop_now(s);
		return;
	}
	if (opens_begin_stop(s->opens, s->timeout == 0, &busy) == 0) {
		if (opens_count(s->opens) > 0) {
			holders = opens_describe(s->opens);
			g_warning("mirror %s: %s: stopping at once (stop-timeout = 0), although %s "
				  "is in use: %s",
				  s->name, signal_name(sig), s->path, holders);
		} else {
			g_message("mirror %s: %s: stopping", s->name, signal_name(sig));
		}
		stop_now(s);
		return;
	}
	holders = opens_describe(s->opens);
	g_warning("mirror %s: %s while %s is in use (%s): waiting up to %u s for the last close; "
		  "a second %s stops at once",
		  s->name, signal_name(sig), s->path, holders, s->timeout, signal_name(sig));
	s->waiting = true;
	s->deadline = g_get_monotonic_time() + (gint64)s->timeout * G_USEC_PER_SEC;
	s->next_log = g_get_monotonic_time() + STOPPER_LOG_INTERVAL * G_USEC_PER_SEC;
}

/* The count dropped to 0 while waiting (a new open may have come since). */
static void on_idle(struct stopper *s)
{
	g_autoptr(GError) busy = NULL;
	uint64_t value;

	if (read(opens_idle_fd(s->opens), &value, sizeof(value)) < 0 && errno != EAGAIN)
		g_debug("stopper: eventfd read: %s", g_strerror(errno));
	if (!s->waiting || opens_begin_stop(s->opens, false, &busy) < 0)
		return;
	g_message("mirror %s: the last close of %s came: stopping", s->name, s->path);
	stop_now(s);
}

static void on_tick(struct stopper *s)
{
	gint64 now = g_get_monotonic_time();
	g_autofree char *holders = NULL;

	if (!s->waiting)
		return;
	if (now >= s->deadline) {
		holders = opens_describe(s->opens);
		g_warning("mirror %s: stop-timeout (%u s) is over and %s is still in use (%s): "
			  "stopping anyway",
			  s->name, s->timeout, s->path, holders);
		stop_now(s);
	} else if (now >= s->next_log) {
		holders = opens_describe(s->opens);
		g_warning("mirror %s: still waiting for the last close of %s (%s); stopping in "
			  "%" G_GINT64_FORMAT " s",
			  s->name, s->path, holders,
			  (s->deadline - now + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC);
		s->next_log += STOPPER_LOG_INTERVAL * G_USEC_PER_SEC;
	}
}

/* Milliseconds until the next thing to do, for poll (-1: none). */
static int next_timeout(const struct stopper *s)
{
	gint64 until;

	if (s->stopping)
		return s->loop_done ? -1 : KICK_INTERVAL_MS;
	if (!s->waiting)
		return -1;
	until = MIN(s->deadline, s->next_log) - g_get_monotonic_time();
	return until <= 0 ? 0 : (int)MIN(until / 1000 + 1, 60000);
}

static gpointer stopper_thread(gpointer data)
{
	struct stopper *s = data;

	for (;;) {
		struct pollfd fds[2] = {
		    {.fd = s->pipe[0], .events = POLLIN},
		    {.fd = opens_idle_fd(s->opens), .events = POLLIN},
		};
		unsigned char bytes[64];
		ssize_t n;

		if (poll(fds, s->waiting ? 2 : 1, next_timeout(s)) < 0 && errno != EINTR) {
			g_warning("stopper: poll: %s", g_strerror(errno));
			g_usleep(KICK_INTERVAL_MS * 1000);
		}
		if (s->stopping && !s->loop_done)
			s->loop_done = s->exit_fn(s->opaque);
		n = (fds[0].revents & POLLIN) ? read(s->pipe[0], bytes, sizeof(bytes)) : 0;
		for (ssize_t i = 0; i < n; i++) {
			if (bytes[i] == BYTE_QUIT)
				return NULL;
			if (s->stopping)
				continue;
			if (bytes[i] == SIGHUP && s->reload_fn != NULL) {
				g_message("mirror %s: SIGHUP: reloading the configuration", s->name);
				s->reload_fn(s->opaque);
			} else if (bytes[i] == BYTE_REQUEST) {
				g_message("mirror %s: the control command stop: stopping", s->name);
				stop_now(s);
			} else {
				on_signal(s, bytes[i]);
			}
		}
		if (!s->stopping && (fds[1].revents & POLLIN))
			on_idle(s);
		if (!s->stopping)
			on_tick(s);
	}
}

struct stopper *stopper_start(struct opens *opens, const char *name, const char *path,
			      unsigned int timeout, bool (*exit_fn)(void *opaque),
			      void (*reload_fn)(void *opaque), void *opaque, GError **error)
{
	struct sigaction sa;
	struct stopper *s;

	g_return_val_if_fail(atomic_load(&stop_pipe_write) < 0, NULL);
	s = g_new0(struct stopper, 1);
	if (pipe2(s->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		int err = errno;

		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err), "pipe: %s",
			    g_strerror(err));
		g_free(s);
		return NULL;
	}
	s->opens = opens;
	s->name = control_escape(name);
	s->path = control_escape(path);
	s->timeout = timeout;
	s->exit_fn = exit_fn;
	s->reload_fn = reload_fn;
	s->opaque = opaque;
	s->thread = g_thread_new("stopper", stopper_thread, s);
	atomic_store(&stop_pipe_write, s->pipe[1]);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	/*
	 * No SA_RESTART, as libfuse's own handlers: with it the loop's sem_wait would be restarted
	 * and never see the session's exit flag.  Leg I/O on files and block devices is not
	 * interrupted; libfuse, glib and libnbd retry on EINTR.
	 */
	sa.sa_flags = 0;
	for (size_t i = 0; i < G_N_ELEMENTS(stop_signals); i++)
		sigaction(stop_signals[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return s;
}

void stopper_request(struct stopper *s)
{
	unsigned char byte = BYTE_REQUEST;

	if (write(s->pipe[1], &byte, 1) != 1)
		g_warning("stopper: cannot pass on the stop: %s", g_strerror(errno));
}

void stopper_free(struct stopper *s)
{
	unsigned char byte = BYTE_QUIT;

	if (s == NULL)
		return;
	for (size_t i = 0; i < G_N_ELEMENTS(stop_signals); i++)
		signal(stop_signals[i], SIG_IGN);
	atomic_store(&stop_pipe_write, -1);
	/* The handler wrote at most 64 Ki bytes, so there is room; else retry until read. */
	while (write(s->pipe[1], &byte, 1) != 1)
		g_usleep(1000);
	g_thread_join(s->thread);
	close(s->pipe[0]);
	close(s->pipe[1]);
	g_free(s->name);
	g_free(s->path);
	g_free(s);
}
