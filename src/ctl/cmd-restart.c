/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl restart [--timeout SECONDS] FILE: restart the daemon serving FILE without
 * unmounting it (an upgrade, a leak), by writing "restart" to trusted.fusemirror.ctl.  The daemon
 * refuses when its configuration no longer loads (nothing changes); else it stops taking
 * requests, answers those it took, closes the legs clean and re-executes itself, and the new
 * process serves the same FUSE connection (fusemirrord(8), RESTART).  The command waits until
 * the new process answers: its user.fusemirror.restarts is one more than before.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define DEFAULT_WAIT 60 /* seconds */

static const char *refusal_reason(int err)
{
	switch (err) {
	case ENOTSUP:
		return " (this daemon does not know the command restart)";
	case EPERM:
		return " (only root may control a mirror)";
	default:
		return NULL;
	}
}

/*
 * The read of user.fusemirror.restarts, in a thread of its own: while the daemon restarts, the
 * read waits in the kernel's queue, and --timeout must still be kept.
 */
struct poll_read {
	char *file;
	GMutex lock; /* protects what follows */
	GCond cond;
	bool done;
	int result;  /* ctl_read_attribute's */
	char *value; /* on 0 */
	int refs;    /* the waiter and the thread */
};

static void poll_read_unref(struct poll_read *p)
{
	bool last;

	g_mutex_lock(&p->lock);
	last = --p->refs == 0;
	g_mutex_unlock(&p->lock);
	if (!last)
		return;
	g_free(p->file);
	g_free(p->value);
	g_mutex_clear(&p->lock);
	g_cond_clear(&p->cond);
	g_free(p);
}

static gpointer poll_read_thread(gpointer data)
{
	struct poll_read *p = data;
	char *value = NULL;
	int r = ctl_read_attribute(p->file, "restarts", &value);

	g_mutex_lock(&p->lock);
	p->result = r;
	p->value = value;
	p->done = true;
	g_cond_signal(&p->cond);
	g_mutex_unlock(&p->lock);
	poll_read_unref(p);
	return NULL;
}

/*
 * Read the restart count, waiting until deadline.  Returns 0 with *count, -ETIMEDOUT, or the
 * read's -errno.
 */
static int read_restarts(const char *file, gint64 deadline, guint64 *count)
{
	struct poll_read *p = g_new0(struct poll_read, 1);
	int r;

	p->file = g_strdup(file);
	g_mutex_init(&p->lock);
	g_cond_init(&p->cond);
	p->refs = 2;
	g_thread_unref(g_thread_new("restarts", poll_read_thread, p));
	g_mutex_lock(&p->lock);
	while (!p->done)
		if (!g_cond_wait_until(&p->cond, &p->lock, deadline))
			break;
	if (!p->done)
		r = -ETIMEDOUT;
	else if (p->result < 0)
		r = p->result;
	else if (!g_ascii_string_to_unsigned(p->value, 10, 0, G_MAXUINT, count, NULL))
		r = -EINVAL;
	else
		r = 0;
	g_mutex_unlock(&p->lock);
	poll_read_unref(p);
	return r;
}

static int run_restart(const struct ctl_command *cmd, int argc, char **argv)
{
	int wait = DEFAULT_WAIT;
	const GOptionEntry entries[] = {
	    {"timeout", 0, 0, G_OPTION_ARG_INT, &wait,
	     "Wait at most SECONDS for the new daemon process to serve (default 60)", "SECONDS"},
	    G_OPTION_ENTRY_NULL,
	};
	g_autoptr(GError) error = NULL;
	g_autofree char *shown_file = NULL;
	g_autofree char *context = NULL;
	g_autofree char *explanation = NULL;
	g_autofree char *name = NULL;
	struct ctl_status *st;
	guint64 before, now;
	gint64 deadline;
	int status = CTL_EXIT_FAILED, r;

	if (!ctl_parse_options(cmd, entries, &argc, &argv, 1, 1))
		return CTL_EXIT_USAGE;
	if (wait < 0)
		return ctl_usage_error(cmd, "--timeout %d: not a number of seconds", wait);
	shown_file = ctl_printable(argv[1]);
	context = g_strdup_printf("restart %s", shown_file);

	st = ctl_status_read(argv[1], &error);
	if (st == NULL) {
		ctl_message("%s: %s", context, error->message);
		return CTL_EXIT_FAILED;
	}
	name = ctl_printable(st->name);
	if (!ctl_check_live(st, context, "'restart'"))
		goto out;
	deadline = g_get_monotonic_time() + (gint64)wait * G_USEC_PER_SEC;
	r = read_restarts(argv[1], deadline, &before);
	if (r == -ENODATA) {
		ctl_message("%s: this daemon cannot restart in place (it has no "
			    "user.fusemirror.restarts); restart its service instead",
			    context);
		goto out;
	}
	if (r < 0) {
		ctl_message("%s: cannot read user.fusemirror.restarts: %s", context,
			    g_strerror(-r));
		goto out;
	}
	r = ctl_send(argv[1], "restart", &explanation);
	if (r < 0) {
		ctl_report_refusal(context, "restart", -r, explanation, refusal_reason(-r));
		goto out;
	}
	for (;;) {
		r = read_restarts(argv[1], deadline, &now);
		if (r == 0 && now > before)
			break;
		if (r == -ETIMEDOUT || (r == 0 && g_get_monotonic_time() >= deadline)) {
			ctl_message("%s: the daemon accepted restart, but no new process serves %s "
				    "after %d s (see its log)",
				    context, shown_file, wait);
			goto out;
		}
		if (r < 0) {
			ctl_message(
			    "%s: the daemon accepted restart, but then %s: %s (see its log)",
			    context, shown_file, g_strerror(-r));
			goto out;
		}
		/* The old process still answered: it is finishing what it took. */
		g_usleep(20 * 1000);
	}
	/* On stderr, as stop reports. */
	ctl_message(
	    "restarted the daemon of mirror '%s': %s stayed mounted (restart %" G_GUINT64_FORMAT
	    ")",
	    name, shown_file, now);
	status = CTL_EXIT_OK;
out:
	ctl_status_free(st);
	return status;
}

const struct ctl_command ctl_cmd_restart = {
    .name = "restart",
    .parameters = "FILE",
    .summary = "Restart the daemon serving FILE without unmounting it (an upgrade)",
    .description = "The daemon refuses when its configuration no longer loads.  Else it stops\n"
		   "taking requests (new ones wait in the kernel), answers those it took, marks\n"
		   "the legs clean and executes its binary again, which serves the same mount.\n"
		   "restart waits until the new process answers.\n"
		   "Exit status: 0 restarted, 1 refused, failed or not done within --timeout,\n"
		   "2 usage error.",
    .run = run_restart,
};
