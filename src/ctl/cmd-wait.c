/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl wait [--interval SECONDS] FILE: block until no resync (nor check or repair, the
 * state checking) runs on a mirror, as mdadm --wait does, polling user.fusemirror.state and the
 * resync.* attributes.  On a terminal the progress is a bar redrawn in place on stderr; otherwise
 * one line per 10% and a last one, so that a log stays short.  The exit status is then the mirror's
 * state, as status gives it.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "ctl.h"

#define DEFAULT_COLUMNS 80
#define MAX_INTERVAL	3600.0

struct progress {
	const char *shown_file;
	bool tty;	    /* draw a bar on stderr */
	bool seen;	    /* a resync was running at some point */
	const char *what;   /* "resync", or "check" for the state checking (progress in resync.*) */
	int last_decade;    /* the 10% step of the last plain line; -1 before the first */
	uint64_t last_done; /* resync.done when it last changed, and when that was seen */
	gint64 last_time;
	uint64_t measured_rate; /* for a daemon that gives no resync.rate */
};

/* Set while a bar is on the terminal without its newline, for the signal handler. */
static volatile sig_atomic_t bar_drawn;

/* Leave the terminal on a fresh line when interrupted, then die of the signal as usual. */
static void on_signal(int sig)
{
	if (bar_drawn) {
		ssize_t unused = write(STDERR_FILENO, "\n", 1);

		(void)unused;
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static unsigned int terminal_columns(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return DEFAULT_COLUMNS;
}

/* "3h05m", "4m02s", "12s": the time left, or "?" when it cannot be told. */
static char *format_eta(uint64_t left, uint64_t rate)
{
	uint64_t seconds;

	if (rate == 0)
		return g_strdup("?");
	seconds = (left + rate - 1) / rate;
	return ctl_format_seconds(seconds);
}

/*
 * The rate: the daemon's, else the bytes copied between the last two changes of resync.done over
 * the time between them (kept while it does not change, as polls may come faster than updates).
 */
static uint64_t current_rate(struct progress *p, const struct ctl_status *st)
{
	gint64 now = g_get_monotonic_time();

	if (p->last_time != 0 && st->resync_done > p->last_done && now > p->last_time)
		p->measured_rate = (uint64_t)((double)(st->resync_done - p->last_done) *
					      G_USEC_PER_SEC / (double)(now - p->last_time));
	if (st->resync_done != p->last_done || p->last_time == 0) {
		p->last_done = st->resync_done;
		p->last_time = now;
	}
	return st->resync_rate != 0 ? st->resync_rate : p->measured_rate;
}

static void draw_bar(double percent, const char *text)
{
	unsigned int columns = terminal_columns();
	size_t fixed = strlen("resync [] ") + strlen(text);
	GString *line = g_string_new("\rresync ");

	/* A bar of at least 10 cells, or none on a narrow terminal. */
	if (columns > fixed + 10) {
		size_t cells = columns - fixed - 1;
		size_t full = (size_t)(percent / 100.0 * (double)cells);

		full = MIN(full, cells);
		g_string_append_c(line, '[');
		for (size_t i = 0; i < cells; i++)
			g_string_append_c(line, i < full ? '#' : '.');
		g_string_append(line, "] ");
	}
	g_string_append(line, text);
	/* Erase what a longer line before left. */
	g_string_append(line, "\033[K");
	fputs(line->str, stderr);
	fflush(stderr);
	g_string_free(line, TRUE);
	bar_drawn = 1;
}

static void show_progress(struct progress *p, const struct ctl_status *st)
{
	g_autofree char *done = NULL;
	g_autofree char *total = NULL;
	g_autofree char *rate_text = NULL;
	g_autofree char *eta = NULL;
	g_autofree char *text = NULL;
	uint64_t rate, left;
	double percent;
	int decade;

	if (!st->has_resync) {
		/* A daemon that does not report progress: say once that it runs. */
		if (p->tty)
			draw_bar(0, "running (the daemon reports no progress)");
		else if (p->last_decade < 0)
			ctl_message("wait %s: resync running (the daemon reports no progress)",
				    p->shown_file);
		p->last_decade = 0;
		return;
	}

	/* A resync that started over: report its steps again. */
	if (st->resync_done < p->last_done) {
		p->last_decade = -1;
		p->last_time = 0;
		p->measured_rate = 0;
	}
	rate = current_rate(p, st);
	left = st->resync_total > st->resync_done ? st->resync_total - st->resync_done : 0;
	percent = st->resync_total > 0
		      ? MIN(100.0, (double)st->resync_done * 100.0 / (double)st->resync_total)
		      : 0.0;
	done = ctl_format_size(st->resync_done);
	total = ctl_format_size(st->resync_total);
	rate_text = rate > 0 ? ctl_format_rate(rate, false) : g_strdup("? B/s");
	eta = format_eta(left, rate);

	if (p->tty) {
		char number[G_ASCII_DTOSTR_BUF_SIZE];

		/* Not printf: "42.5%" under every locale, as the sizes are. */
		g_ascii_formatd(number, sizeof(number), "%.1f",
				(double)(int64_t)(percent * 10) / 10);
		text = g_strdup_printf("%5s%%  %s / %s  %s  ETA %s", number, done, total, rate_text,
				       eta);
		draw_bar(percent, text);
		return;
	}
	decade = (int)(percent / 10);
	if (decade <= p->last_decade)
		return;
	p->last_decade = decade;
	ctl_message("wait %s: %s %d%% (%s of %s) at %s, %s left", p->shown_file, p->what,
		    (int)percent, done, total, rate_text, eta);
}

/* The last line: the resync is over (or none ran), and the state it left. */
static void show_end(struct progress *p, const struct ctl_status *st)
{
	g_autofree char *state = ctl_printable(st->state);

	if (bar_drawn) {
		fputc('\n', stderr);
		bar_drawn = 0;
	}
	if (p->seen)
		ctl_message("wait %s: the %s is over; the mirror is %s", p->shown_file, p->what,
			    state);
	else
		ctl_message("wait %s: no resync is running; the mirror is %s", p->shown_file,
			    state);
}

static bool parse_interval(const char *text, double *seconds)
{
	char *end;

	errno = 0;
	*seconds = g_ascii_strtod(text, &end);
	return errno == 0 && end != text && *end == '\0' && *seconds > 0 &&
	       *seconds <= MAX_INTERVAL;
}

static int run_wait(const struct ctl_command *cmd, int argc, char **argv)
{
	g_autofree char *interval_text = NULL;
	const GOptionEntry entries[] = {
	    {"interval", 0, 0, G_OPTION_ARG_STRING, &interval_text,
	     "Seconds between two looks at the progress (default 1; 0.2 is fine)", "SECONDS"},
	    G_OPTION_ENTRY_NULL,
	};
	g_autofree char *shown_file = NULL;
	struct progress p = {.last_decade = -1};
	double interval = 1.0;
	int status;

	if (!ctl_parse_options(cmd, entries, &argc, &argv, 1, 1))
		return CTL_EXIT_USAGE;
	if (interval_text != NULL && !parse_interval(interval_text, &interval))
		return ctl_usage_error(cmd,
				       "--interval %s: not a number of seconds above 0 and "
				       "at most 3600",
				       interval_text);
	shown_file = ctl_printable(argv[1]);
	p.shown_file = shown_file;
	p.tty = isatty(STDERR_FILENO) && g_strcmp0(g_getenv("TERM"), "dumb") != 0;
	if (p.tty) {
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		signal(SIGHUP, on_signal);
	}

	for (;;) {
		g_autoptr(GError) error = NULL;
		struct ctl_status *st = ctl_status_read(argv[1], &error);

		if (st == NULL) {
			if (bar_drawn) {
				fputc('\n', stderr);
				bar_drawn = 0;
			}
			ctl_message("wait %s: %s", shown_file, error->message);
			return CTL_STATUS_UNREADABLE;
		}
		/* A copy's attributes never change: waiting on them would never end. */
		if (!st->live) {
			ctl_message("wait %s: not on a FUSE file system: no fusemirrord serves it "
				    "(its %s* attributes are a copy), so there is nothing to wait "
				    "for",
				    shown_file, CTL_XATTR_PREFIX);
			ctl_status_free(st);
			return CTL_STATUS_UNREADABLE;
		}
		if (!ctl_status_resyncing(st) && strcmp(st->state, "checking") != 0) {
			show_end(&p, st);
			status = ctl_status_exit_code(st);
			ctl_status_free(st);
			return status;
		}
		p.seen = true;
		p.what = ctl_status_resyncing(st) ? "resync" : "check";
		show_progress(&p, st);
		ctl_status_free(st);
		g_usleep((gulong)(interval * G_USEC_PER_SEC));
	}
}

const struct ctl_command ctl_cmd_wait = {
    .name = "wait",
    .parameters = "FILE",
    .summary = "Wait until no resync runs on a mirror, showing its progress",
    .description = "The progress goes to stderr: a bar on a terminal, else a line per 10%.\n"
		   "Exit status, as status's once the resync is over: 0 clean, 1 degraded,\n"
		   "3 failed, 4 the status cannot be read (or no daemon serves FILE),\n"
		   "2 usage error.",
    .run = run_wait,
};
