/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl monitor [--program PROG] [--mail ADDR] [--test] [--oneshot] [--interval S]
 * [FILE...]: follow the events of mirrors live, as mdadm --monitor does.  Each mirror's
 * user.fusemirror.event_log (the daemon's last 64 events, numbered) is read every interval; a
 * new event is printed, given to the program and, from priority warning up, mailed.  Without
 * FILE every mirror served here (the mount table, as list) is followed, and mirrors that come
 * later too, from their first event.  --test sends a TestMessage for each mirror first.
 * An event repeated on one leg more than RATE_BURST times in RATE_WINDOW is held back, and one
 * line says how many were suppressed once the window is over.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/runtime.h"
#include "ctl.h"

#define RATE_WINDOW (60 * G_USEC_PER_SEC)
#define RATE_BURST  5
#define MAIL_FROM_PRIORITY "warning" /* and critical: what is mailed */

struct options {
	const char *program;
	const char *mail;
	char *sendmail; /* found at start when mail is given */
};

struct event {
	uint64_t seq;
	gint64 time_us;
	const char *priority, *name, *leg, *message;
};

/* How often one (event, leg) came within its window (the rate limit). */
struct burst {
	gint64 start;
	unsigned int count;
	unsigned long suppressed;
	char *mirror, *name, *leg;
};

struct watched {
	char *file;
	char *name;	 /* the mirror's name, once read */
	uint64_t last;	 /* the newest event seen */
	bool answering;	 /* whether the last read worked (messages on change only) */
};

static char *timestamp(gint64 time_us)
{
	g_autoptr(GDateTime) t = g_date_time_new_from_unix_local(time_us / G_USEC_PER_SEC);

	return t != NULL ? g_date_time_format(t, "%Y-%m-%d %H:%M:%S") : g_strdup("?");
}

/* The program, as on-event's: PROG EVENT MIRROR LEG, and the rest in the environment. */
static void run_program(const struct options *o, const struct watched *w, const struct event *e)
{
	g_autoptr(GError) error = NULL;
	char *argv[] = {(char *)o->program, (char *)e->name, w->name, (char *)e->leg, NULL};
	g_auto(GStrv) env = g_get_environ();
	int status;

	env = g_environ_setenv(env, "FUSEMIRROR_EVENT", e->name, TRUE);
	env = g_environ_setenv(env, "FUSEMIRROR_MIRROR", w->name, TRUE);
	env = g_environ_setenv(env, "FUSEMIRROR_FILE", w->file, TRUE);
	env = g_environ_setenv(env, "FUSEMIRROR_LEG", e->leg, TRUE);
	env = g_environ_setenv(env, "FUSEMIRROR_PRIORITY", e->priority, TRUE);
	env = g_environ_setenv(env, "FUSEMIRROR_MESSAGE", e->message, TRUE);
	if (!g_spawn_sync(NULL, argv, env, G_SPAWN_SEARCH_PATH | G_SPAWN_CHILD_INHERITS_STDIN, NULL,
			  NULL, NULL, NULL, &status, &error))
		ctl_message("monitor: cannot run %s: %s", o->program, error->message);
	else if (!g_spawn_check_wait_status(status, &error))
		ctl_message("monitor: %s %s: %s", o->program, e->name, error->message);
}

static bool mailed(const char *priority)
{
	return strcmp(priority, "critical") == 0 || strcmp(priority, MAIL_FROM_PRIORITY) == 0;
}

/* One mail through sendmail -t: the headers name the event, the body is the message. */
static void send_mail(const struct options *o, const struct watched *w, const struct event *e)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *when = timestamp(e->time_us);
	g_autofree char *body = NULL;
	char *argv[] = {o->sendmail, (char *)"-t", NULL};
	char host[256] = "localhost";
	int in = -1, status;
	GPid pid;
	size_t done = 0, len;

	if (gethostname(host, sizeof(host)) < 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	body = g_strdup_printf("To: %s\nSubject: fusemirror %s event on %s:%s\n\n"
			       "This is an automatically generated mail from fusemirrorctl monitor "
			       "on %s.\n\n"
			       "A %s event (priority %s) was detected on mirror %s (%s)%s%s at %s:\n\n"
			       "  %s\n",
			       o->mail, e->name, host, w->name, host, e->name, e->priority, w->name,
			       w->file, strcmp(e->leg, "-") != 0 ? ", leg " : "",
			       strcmp(e->leg, "-") != 0 ? e->leg : "", when, e->message);
	if (!g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid,
				      &in, NULL, NULL, &error)) {
		ctl_message("monitor: cannot mail %s about %s on %s: %s", o->mail, e->name, w->name,
			    error->message);
		return;
	}
	len = strlen(body);
	while (done < len) {
		ssize_t n = write(in, body + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(in);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	g_spawn_close_pid(pid);
	if (done < len || !g_spawn_check_wait_status(status, &error))
		ctl_message("monitor: %s did not take the mail to %s about %s on %s%s%s", o->sendmail,
			    o->mail, e->name, w->name, error != NULL ? ": " : "",
			    error != NULL ? error->message : "");
}

static void emit(const struct options *o, const struct watched *w, const struct event *e)
{
	g_autofree char *when = timestamp(e->time_us);

	printf("%s %s %s %s: %s\n", when, w->name, e->name, e->leg, e->message);
	fflush(stdout);
	if (o->program != NULL)
		run_program(o, w, e);
	if (o->mail != NULL && mailed(e->priority))
		send_mail(o, w, e);
}

/* Whether the event goes out now, or is counted as suppressed (see the header). */
static bool rate_allows(GPtrArray *bursts, const struct watched *w, const struct event *e,
			gint64 now)
{
	struct burst *b = NULL;

	for (guint i = 0; i < bursts->len && b == NULL; i++) {
		struct burst *x = g_ptr_array_index(bursts, i);

		if (strcmp(x->mirror, w->file) == 0 && strcmp(x->name, e->name) == 0 &&
		    strcmp(x->leg, e->leg) == 0)
			b = x;
	}
	if (b == NULL) {
		b = g_new0(struct burst, 1);
		b->mirror = g_strdup(w->file);
		b->name = g_strdup(e->name);
		b->leg = g_strdup(e->leg);
		b->start = now;
		g_ptr_array_add(bursts, b);
	}
	if (now - b->start >= RATE_WINDOW && b->suppressed == 0) {
		b->start = now;
		b->count = 0;
	}
	if (++b->count <= RATE_BURST)
		return true;
	b->suppressed++;
	return false;
}

/* The windows that ended with events held back: one summary line each. */
static void rate_summaries(GPtrArray *bursts, gint64 now)
{
	for (guint i = 0; i < bursts->len; i++) {
		struct burst *b = g_ptr_array_index(bursts, i);

		if (b->suppressed == 0 || now - b->start < RATE_WINDOW)
			continue;
		printf("%s %s: suppressed %lu more %s event%s on %s in %" G_GINT64_FORMAT " s\n",
		       "monitor", b->mirror, b->suppressed, b->name, b->suppressed == 1 ? "" : "s",
		       b->leg, (gint64)(RATE_WINDOW / G_USEC_PER_SEC));
		fflush(stdout);
		b->suppressed = 0;
		b->count = 0;
		b->start = now;
	}
}

static void burst_free(gpointer data)
{
	struct burst *b = data;

	g_free(b->mirror);
	g_free(b->name);
	g_free(b->leg);
	g_free(b);
}

/* One line of the event log into e (pointing into line); false when it is not one. */
static bool parse_event(char *line, struct event *e)
{
	char *f[6], *end;
	unsigned int n = 0;

	for (char *p = line; n < 6; n++) {
		f[n] = p;
		p = n < 5 ? strchr(p, '\t') : NULL;
		if (p == NULL)
			break;
		*p++ = '\0';
	}
	if (n != 5)
		return false;
	errno = 0;
	e->seq = g_ascii_strtoull(f[0], &end, 10);
	if (*end != '\0' || errno != 0 || e->seq == 0)
		return false;
	e->time_us = g_ascii_strtoll(f[1], &end, 10);
	if (*end != '\0')
		return false;
	e->priority = f[2];
	e->name = f[3];
	e->leg = f[4];
	e->message = f[5];
	return true;
}

/*
 * Read one mirror's log; emit what is newer than w->last (everything when report is false:
 * then only remember where it ends).  Returns false when the mirror does not answer.
 */
static bool poll_mirror(const struct options *o, struct watched *w, GPtrArray *bursts, bool report)
{
	g_autofree char *log = NULL;
	g_auto(GStrv) lines = NULL;
	uint64_t newest = 0;
	int r;

	if (w->name == NULL && ctl_read_attribute(w->file, "name", &w->name) < 0)
		return false;
	r = ctl_read_attribute(w->file, "event_log", &log);
	if (r < 0)
		return false;
	lines = g_strsplit(log, "\n", -1);
	for (unsigned int i = 0; lines[i] != NULL; i++) {
		struct event e;

		if (parse_event(lines[i], &e) && e.seq > newest)
			newest = e.seq;
	}
	/* A new daemon on the file counts again from 1: all of its events are new. */
	if (newest < w->last)
		w->last = 0;
	g_strfreev(g_steal_pointer(&lines));
	lines = g_strsplit(log, "\n", -1);
	for (unsigned int i = 0; lines[i] != NULL; i++) {
		struct event e;

		if (!parse_event(lines[i], &e) || e.seq <= w->last)
			continue;
		if (report && rate_allows(bursts, w, &e, g_get_monotonic_time()))
			emit(o, w, &e);
	}
	w->last = MAX(w->last, newest);
	return true;
}

static struct watched *watched_new(const char *file)
{
	struct watched *w = g_new0(struct watched, 1);

	w->file = g_strdup(file);
	w->answering = true;
	return w;
}

static void watched_free(gpointer data)
{
	struct watched *w = data;

	g_free(w->file);
	g_free(w->name);
	g_free(w);
}

static struct watched *find_watched(GPtrArray *all, const char *file)
{
	for (guint i = 0; i < all->len; i++)
		if (strcmp(((struct watched *)g_ptr_array_index(all, i))->file, file) == 0)
			return g_ptr_array_index(all, i);
	return NULL;
}

/* Without FILE: the mirrors in the mount table now; new ones are followed from event 1. */
static void rescan(GPtrArray *all, bool at_start)
{
	g_autoptr(GPtrArray) mounts = runtime_read_mounts(NULL);

	for (guint i = 0; mounts != NULL && i < mounts->len; i++) {
		const struct runtime_mount *mnt = g_ptr_array_index(mounts, i);
		struct watched *w;

		if (strcmp(mnt->type, "fuse.fusemirror") != 0 || find_watched(all, mnt->point))
			continue;
		w = watched_new(mnt->point);
		/* Found later: its events so far are news (its assembly's, say). */
		w->last = 0;
		g_ptr_array_add(all, w);
		if (!at_start)
			ctl_message("monitor: now following %s", mnt->point);
	}
}

/* TestMessage for each mirror, through the same paths as a real event. */
static void send_tests(const struct options *o, GPtrArray *all)
{
	for (guint i = 0; i < all->len; i++) {
		struct watched *w = g_ptr_array_index(all, i);
		g_autofree char *message = NULL;
		struct event e = {.time_us = g_get_real_time(), .priority = "warning",
				  .name = "TestMessage", .leg = "-"};

		if (w->name == NULL && ctl_read_attribute(w->file, "name", &w->name) < 0)
			continue;
		message = g_strdup_printf("a test of the alerts of mirror %s, sent by "
					  "fusemirrorctl monitor --test",
					  w->name);
		e.message = message;
		emit(o, w, &e);
	}
}

static char *find_sendmail(void)
{
	static const char *const places[] = {"/usr/sbin/sendmail", "/usr/lib/sendmail"};
	char *found = g_find_program_in_path("sendmail");

	for (unsigned int i = 0; found == NULL && i < G_N_ELEMENTS(places); i++)
		if (g_file_test(places[i], G_FILE_TEST_IS_EXECUTABLE))
			found = g_strdup(places[i]);
	return found;
}

static int run_monitor(const struct ctl_command *cmd, int argc, char **argv)
{
	g_autofree char *program = NULL, *mail = NULL;
	gboolean test = FALSE, oneshot = FALSE;
	double interval = 1.0;
	const GOptionEntry entries[] = {
	    {"program", 0, 0, G_OPTION_ARG_FILENAME, &program,
	     "Run PROGRAM EVENT MIRROR LEG for each event (as on-event)", "PROGRAM"},
	    {"mail", 0, 0, G_OPTION_ARG_STRING, &mail,
	     "Mail ADDRESS about each event of priority warning or above (through sendmail)",
	     "ADDRESS"},
	    {"test", 0, 0, G_OPTION_ARG_NONE, &test,
	     "First send a TestMessage event for each mirror", NULL},
	    {"oneshot", '1', 0, G_OPTION_ARG_NONE, &oneshot,
	     "Look once (and send the tests), then exit", NULL},
	    {"interval", 0, 0, G_OPTION_ARG_DOUBLE, &interval,
	     "Seconds between two looks (default 1)", "SECONDS"},
	    G_OPTION_ENTRY_NULL,
	};
	g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func(watched_free);
	g_autoptr(GPtrArray) bursts = g_ptr_array_new_with_free_func(burst_free);
	struct options o = {0};
	bool by_files;
	int status = 0;

	if (!ctl_parse_options(cmd, entries, &argc, &argv, 0, G_MAXINT))
		return CTL_EXIT_USAGE;
	if (!(interval >= 0.05 && interval <= 3600))
		return ctl_usage_error(cmd, "--interval takes 0.05 to 3600 seconds, not %g",
				       interval);
	o.program = program;
	o.mail = mail;
	if (mail != NULL) {
		o.sendmail = find_sendmail();
		if (o.sendmail == NULL) {
			ctl_message("monitor: --mail needs sendmail, which is not installed (no "
				    "sendmail in PATH, /usr/sbin or /usr/lib)");
			return 1;
		}
	}
	by_files = argc > 1;
	for (int i = 1; i < argc; i++) {
		g_autofree char *abs = g_canonicalize_filename(argv[i], NULL);

		if (find_watched(all, abs) == NULL)
			g_ptr_array_add(all, watched_new(abs));
	}
	if (!by_files)
		rescan(all, true);
	/* What happened before the monitor started is not news. */
	for (guint i = 0; i < all->len; i++) {
		struct watched *w = g_ptr_array_index(all, i);

		if (!poll_mirror(&o, w, bursts, false)) {
			ctl_message("monitor: %s does not answer (is a daemon serving it?)", w->file);
			w->answering = false;
			status = 1;
		}
	}
	if (test)
		send_tests(&o, all);
	while (!oneshot) {
		g_usleep((gulong)(interval * G_USEC_PER_SEC));
		if (!by_files)
			rescan(all, false);
		for (guint i = 0; i < all->len; i++) {
			struct watched *w = g_ptr_array_index(all, i);
			bool ok = poll_mirror(&o, w, bursts, true);

			if (ok != w->answering)
				ctl_message(ok ? "monitor: %s answers again"
					       : "monitor: %s does not answer any more",
					    w->file);
			w->answering = ok;
		}
		rate_summaries(bursts, g_get_monotonic_time());
	}
	g_free(o.sendmail);
	return status;
}

const struct ctl_command ctl_cmd_monitor = {
    .name = "monitor",
    .parameters = "[FILE...]",
    .summary = "Follow the events of mirrors live: print them, run a program, send mail",
    .description =
	"Without FILE, every mirror served here is followed, and those that start later.\n"
	"Each event is printed as TIME MIRROR EVENT LEG: MESSAGE; --program runs PROGRAM\n"
	"EVENT MIRROR LEG with FUSEMIRROR_* in its environment; --mail sends a mail for each\n"
	"event of priority warning or above.  An event repeated on one leg more than 5 times\n"
	"in 60 s is held back, and one line says how many were.\n"
	"Exit status (with --oneshot, or on a signal): 0, 1 a mirror did not answer or mail\n"
	"cannot be sent, 2 usage error.",
    .run = run_monitor,
};
