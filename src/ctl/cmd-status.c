/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl status [--json | --export] FILE: the state of a mirror and of each of its legs,
 * as a report like mdadm --detail, one JSON object, or KEY=VALUE lines like mdadm --export.  The
 * exit status is the state, so that scripts and monitoring need not parse anything.
 */
#include "config.h"

#include <string.h>

#include "ctl.h"

/* Display width of a string that is UTF-8 or, failing that, one byte per column. */
static size_t display_width(const char *s)
{
	return g_utf8_validate(s, -1, NULL) ? (size_t)g_utf8_strlen(s, -1) : strlen(s);
}

static void append_padded(GString *out, const char *s, size_t width, bool right)
{
	size_t len = display_width(s);
	size_t pad = width > len ? width - len : 0;

	if (right)
		g_string_append_printf(out, "%*s%s", (int)pad, "", s);
	else
		g_string_append_printf(out, "%s%*s", s, (int)pad, "");
}

enum leg_column {
	COL_INDEX,
	COL_NAME,
	COL_STATE,
	COL_RESYNC,
	COL_READ_ERRORS,
	COL_WRITE_ERRORS,
	COL_CORRECTED,
	COL_UUID,
	COL_PATH,
	N_COLS
};

static const struct {
	const char *title;
	bool right; /* numbers line up on the right */
} columns[N_COLS] = {
    [COL_INDEX] = {"Index", true},
    [COL_NAME] = {"Name", false},
    [COL_STATE] = {"State", false},
    [COL_RESYNC] = {"Resync", false},
    [COL_READ_ERRORS] = {"Read Errors", true},
    [COL_WRITE_ERRORS] = {"Write Errors", true},
    [COL_CORRECTED] = {"Corrected", true},
    [COL_UUID] = {"UUID", false},
    [COL_PATH] = {"Path", false},
};

/* Whether leg takes part in the running resync (the daemon says so in leg.I.resync). */
static bool leg_in_resync(const struct ctl_leg_status *leg)
{
	return leg->resync != NULL && strcmp(leg->resync, "none") != 0;
}

/*
 * The optional columns: Resync while a leg takes part in a resync, Corrected when the daemon
 * counts corrected read errors, UUID when the daemon gives the legs' UUIDs (metadata =
 * internal).  A daemon that gives none of them gets the table it always had.
 */
static void optional_columns(const struct ctl_status *st, bool shown[N_COLS])
{
	for (int c = 0; c < N_COLS; c++)
		shown[c] = c != COL_RESYNC && c != COL_UUID && c != COL_CORRECTED;
	for (unsigned int i = 0; i < st->nlegs; i++) {
		shown[COL_RESYNC] |= leg_in_resync(&st->legs[i]);
		shown[COL_CORRECTED] |= st->legs[i].has_corrected;
		shown[COL_UUID] |= st->legs[i].uuid != NULL;
	}
}

static void append_row(GString *out, char *const cells[N_COLS], const size_t width[N_COLS],
		       const bool shown[N_COLS])
{
	g_string_append(out, "  ");
	for (int c = 0; c < N_COLS; c++) {
		/* The path goes last and unpadded, so that a long one does not widen every row. */
		if (c == COL_PATH) {
			g_string_append(out, cells[c]);
			break;
		}
		if (!shown[c])
			continue;
		append_padded(out, cells[c], width[c], columns[c].right);
		g_string_append(out, "  ");
	}
	g_string_append_c(out, '\n');
}

/* Seconds until the resync is done at its rate; false when that cannot be told. */
static bool resync_eta(const struct ctl_status *st, uint64_t *seconds)
{
	uint64_t left;

	if (!st->has_resync || !ctl_status_resyncing(st) || st->resync_rate == 0)
		return false;
	left = st->resync_total > st->resync_done ? st->resync_total - st->resync_done : 0;
	*seconds = (left + st->resync_rate - 1) / st->resync_rate;
	return true;
}

/* The name of leg index, printable, or "?" when the status has no such leg. */
static char *leg_label(const struct ctl_status *st, int index)
{
	if (index < 0 || (unsigned int)index >= st->nlegs)
		return g_strdup("?");
	return ctl_printable(st->legs[index].name);
}

/*
 * The Resync lines of a running resync: its progress, then what it copies from where to where
 * ("from leg 0 (a) onto leg 1 (b, rewrite)").
 */
static void append_resync_text(GString *out, const struct ctl_status *st)
{
	g_autofree char *done = ctl_format_size(st->resync_done);
	g_autofree char *total = ctl_format_size(st->resync_total);
	g_autofree char *rate = ctl_format_rate(st->resync_rate, false);
	g_autofree char *eta = NULL;
	g_autofree char *source = NULL;
	char percent[G_ASCII_DTOSTR_BUF_SIZE];
	GString *onto = g_string_new(NULL);
	uint64_t seconds;

	g_ascii_formatd(percent, sizeof(percent), "%.1f",
			st->resync_total > 0
			    ? MIN(100.0, (double)st->resync_done * 100.0 / (double)st->resync_total)
			    : 0.0);
	eta = resync_eta(st, &seconds) ? ctl_format_seconds(seconds) : g_strdup("?");
	g_string_append_printf(out,
			       "%14s : %s%% (%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
			       " bytes, %s of %s) at %s, ETA %s\n",
			       "Resync", percent, (guint64)st->resync_done,
			       (guint64)st->resync_total, done, total,
			       st->resync_rate > 0 ? rate : "? B/s", eta);
	for (unsigned int i = 0; i < st->nlegs; i++) {
		const struct ctl_leg_status *leg = &st->legs[i];
		g_autofree char *name = NULL;
		g_autofree char *role = NULL;

		if (!leg_in_resync(leg) || strcmp(leg->resync, "source") == 0)
			continue;
		name = ctl_printable(leg->name);
		role = ctl_printable(leg->resync);
		g_string_append_printf(onto, "%sleg %u (%s, %s)", onto->len > 0 ? ", " : "",
				       leg->index, name, role);
	}
	if (st->resync_source >= 0 || onto->len > 0) {
		source = leg_label(st, st->resync_source);
		g_string_append_printf(out, "%14s : ", "Resyncing");
		if (st->resync_source >= 0)
			g_string_append_printf(out, "from leg %d (%s)", st->resync_source, source);
		if (onto->len > 0)
			g_string_append_printf(out, "%sonto %s", st->resync_source >= 0 ? " " : "",
					       onto->str);
		g_string_append_c(out, '\n');
	}
	g_string_free(onto, TRUE);
}

static void append_text(GString *out, const struct ctl_status *st)
{
	g_autofree char *file = ctl_printable(st->file);
	g_autofree char *name = ctl_printable(st->name);
	g_autofree char *state = ctl_printable(st->state);
	g_autofree char *human = ctl_format_size(st->size);
	char **cells = g_new0(char *, (size_t)(st->nlegs + 1) * N_COLS);
	size_t width[N_COLS];
	bool shown[N_COLS];

	optional_columns(st, shown);
	g_string_append_printf(out, "%s:\n", file);
	g_string_append_printf(out, "%14s : %s\n", "Name", name);
	if (st->uuid != NULL)
		g_string_append_printf(out, "%14s : %s\n", "UUID", st->uuid);
	g_string_append_printf(out, "%14s : %s\n", "State", state);
	g_string_append_printf(out, "%14s : %" G_GUINT64_FORMAT " (%s)\n", "Size",
			       (guint64)st->size, human);
	g_string_append_printf(out, "%14s : %u\n", "Legs", st->nlegs);
	g_string_append_printf(out, "%14s : %" G_GUINT64_FORMAT "\n", "Events",
			       (guint64)st->events);
	g_string_append_printf(out, "%14s : 0x%" G_GINT64_MODIFIER "x\n", "Error Bits",
			       (guint64)st->error_bits);
	if (st->has_max_read_errors)
		g_string_append_printf(out, "%14s : %" G_GUINT64_FORMAT "%s\n", "Read Err Limit",
				       (guint64)st->max_read_errors,
				       st->max_read_errors == 0 ? " (legs never fail for corrected "
								  "read errors)"
								: "");
	if (st->has_resync && ctl_status_resyncing(st))
		append_resync_text(out, st);
	if (st->has_replace && st->replace_leg >= 0) {
		g_autofree char *old = leg_label(st, st->replace_leg);
		g_autofree char *new_leg = leg_label(st, st->replace_by);

		g_string_append_printf(out, "%14s : leg %d (%s) by leg %d (%s)\n", "Replacing",
				       st->replace_leg, old, st->replace_by, new_leg);
	}
	if (st->has_check && strcmp(st->state, "checking") == 0)
		g_string_append_printf(out,
				       "%14s : %.1f%% (%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
				       " bytes compared)\n",
				       "Check",
				       st->resync_total > 0 ? (double)st->resync_done * 100.0 /
								  (double)st->resync_total
							    : 0.0,
				       (guint64)st->resync_done, (guint64)st->resync_total);
	if (st->has_check) {
		g_autofree char *ranges = ctl_printable(st->mismatches);

		g_string_append_printf(out, "%14s : %" G_GUINT64_FORMAT " sectors%s%s\n",
				       "Mismatches", (guint64)st->mismatch_cnt,
				       *ranges != '\0' ? " at " : "", ranges);
	}
	g_string_append_c(out, '\n');

	/* Row 0 holds the titles, row i + 1 leg i; the widths fit the widest cell of each column.
	 */
	for (int c = 0; c < N_COLS; c++)
		cells[c] = g_strdup(columns[c].title);
	for (unsigned int i = 0; i < st->nlegs; i++) {
		const struct ctl_leg_status *leg = &st->legs[i];
		char **row = cells + (size_t)(i + 1) * N_COLS;

		row[COL_INDEX] = g_strdup_printf("%u", leg->index);
		row[COL_NAME] = ctl_printable(leg->name);
		row[COL_STATE] = ctl_printable(leg->state);
		if (leg->slow) {
			char *plain = row[COL_STATE];

			row[COL_STATE] = g_strdup_printf("%s (slow)", plain);
			g_free(plain);
		}
		if (leg->behind_writes > 0) {
			char *plain = row[COL_STATE];

			row[COL_STATE] = g_strdup_printf("%s (behind %" G_GUINT64_FORMAT ")", plain,
							 (guint64)leg->behind_writes);
			g_free(plain);
		}
		row[COL_RESYNC] = leg_in_resync(leg) ? ctl_printable(leg->resync) : g_strdup("-");
		row[COL_UUID] = leg->uuid != NULL ? ctl_printable(leg->uuid) : g_strdup("-");
		row[COL_READ_ERRORS] =
		    g_strdup_printf("%" G_GUINT64_FORMAT, (guint64)leg->read_errors);
		row[COL_WRITE_ERRORS] =
		    g_strdup_printf("%" G_GUINT64_FORMAT, (guint64)leg->write_errors);
		row[COL_CORRECTED] =
		    leg->has_corrected
			? g_strdup_printf("%" G_GUINT64_FORMAT, (guint64)leg->corrected_errors)
			: g_strdup("-");
		row[COL_PATH] = ctl_printable(leg->path);
	}
	for (int c = 0; c < N_COLS; c++) {
		width[c] = 0;
		for (unsigned int r = 0; r <= st->nlegs; r++)
			width[c] = MAX(width[c], display_width(cells[(size_t)r * N_COLS + c]));
	}
	for (unsigned int r = 0; r <= st->nlegs; r++)
		append_row(out, cells + (size_t)r * N_COLS, width, shown);
	/* A remote leg trying to come back, or that gave up: say so under the table. */
	for (unsigned int i = 0; i < st->nlegs; i++) {
		const struct ctl_leg_status *leg = &st->legs[i];
		g_autofree char *what = NULL;

		if (leg->reconnect == NULL || strcmp(leg->reconnect, "idle") == 0)
			continue;
		what = ctl_printable(leg->reconnect);
		g_string_append_printf(out, "leg %u reconnect: %s\n", leg->index, what);
	}
	/* A write-mostly leg that may fall behind (write-behind): by how much, at most. */
	for (unsigned int i = 0; i < st->nlegs; i++) {
		const struct ctl_leg_status *leg = &st->legs[i];

		if (leg->has_write_behind && leg->write_behind > 0)
			g_string_append_printf(
			    out, "leg %u write-behind: %" G_GUINT64_FORMAT " writes\n", leg->index,
			    (guint64)leg->write_behind);
	}

	for (size_t i = 0; i < (size_t)(st->nlegs + 1) * N_COLS; i++)
		g_free(cells[i]);
	g_free(cells);
}

/* A string, or null when the daemon does not give it. */
static void append_json_optional(GString *out, const char *s)
{
	if (s != NULL)
		ctl_json_append_string(out, s);
	else
		g_string_append(out, "null");
}

/*
 * The resync: null when the daemon reports none, else its progress (the last one's when none
 * runs: active false), the ETA in seconds (null when it cannot be told) and the source leg.
 */
static void append_json_resync(GString *out, const struct ctl_status *st)
{
	uint64_t seconds;

	if (!st->has_resync) {
		g_string_append(out, "null");
		return;
	}
	g_string_append_printf(
	    out,
	    "{\"active\":%s,\"done\":%" G_GUINT64_FORMAT ",\"total\":%" G_GUINT64_FORMAT
	    ",\"rate\":%" G_GUINT64_FORMAT ",\"eta\":",
	    ctl_status_resyncing(st) ? "true" : "false", (guint64)st->resync_done,
	    (guint64)st->resync_total, (guint64)st->resync_rate);
	if (resync_eta(st, &seconds))
		g_string_append_printf(out, "%" G_GUINT64_FORMAT, (guint64)seconds);
	else
		g_string_append(out, "null");
	if (st->resync_source >= 0)
		g_string_append_printf(out, ",\"source\":%d}", st->resync_source);
	else
		g_string_append(out, ",\"source\":null}");
}

static void append_json(GString *out, const struct ctl_status *st)
{
	g_string_append(out, "{\"file\":");
	ctl_json_append_string(out, st->file);
	g_string_append(out, ",\"name\":");
	ctl_json_append_string(out, st->name);
	g_string_append(out, ",\"uuid\":");
	append_json_optional(out, st->uuid);
	g_string_append(out, ",\"state\":");
	ctl_json_append_string(out, st->state);
	g_string_append_printf(out, ",\"size\":%" G_GUINT64_FORMAT ",\"legs\":[",
			       (guint64)st->size);
	for (unsigned int i = 0; i < st->nlegs; i++) {
		const struct ctl_leg_status *leg = &st->legs[i];

		g_string_append_printf(out, "%s{\"index\":%u,\"name\":", i > 0 ? "," : "",
				       leg->index);
		ctl_json_append_string(out, leg->name);
		g_string_append(out, ",\"path\":");
		ctl_json_append_string(out, leg->path);
		g_string_append(out, ",\"state\":");
		ctl_json_append_string(out, leg->state);
		g_string_append(out, ",\"resync\":");
		append_json_optional(out, leg->resync);
		g_string_append(out, ",\"io_timeout\":");
		append_json_optional(out, leg->io_timeout);
		g_string_append_printf(out, ",\"slow\":%s", leg->slow ? "true" : "false");
		if (leg->has_behind)
			g_string_append_printf(out, ",\"behind\":%" G_GUINT64_FORMAT,
					       (guint64)leg->behind_writes);
		else
			g_string_append(out, ",\"behind\":null");
		if (leg->has_write_behind)
			g_string_append_printf(out, ",\"write_behind\":%" G_GUINT64_FORMAT,
					       (guint64)leg->write_behind);
		else
			g_string_append(out, ",\"write_behind\":null");
		g_string_append(out, ",\"reconnect\":");
		append_json_optional(out, leg->reconnect);
		g_string_append(out, ",\"uuid\":");
		append_json_optional(out, leg->uuid);
		g_string_append_printf(out,
				       ",\"read_errors\":%" G_GUINT64_FORMAT
				       ",\"write_errors\":%" G_GUINT64_FORMAT
				       ",\"corrected_errors\":",
				       (guint64)leg->read_errors, (guint64)leg->write_errors);
		if (leg->has_corrected)
			g_string_append_printf(out, "%" G_GUINT64_FORMAT "}",
					       (guint64)leg->corrected_errors);
		else
			g_string_append(out, "null}");
	}
	/* A string: JSON numbers above 2^53 lose bits in most parsers, and 64 legs need 64. */
	g_string_append_printf(out,
			       "],\"events\":%" G_GUINT64_FORMAT
			       ",\"error_bits\":\"0x%" G_GINT64_MODIFIER "x\",\"resync\":",
			       (guint64)st->events, (guint64)st->error_bits);
	append_json_resync(out, st);
	g_string_append(out, ",\"replace\":");
	if (!st->has_replace)
		g_string_append(out, "null");
	else if (st->replace_leg < 0)
		g_string_append(out, "{\"running\":false,\"leg\":null,\"by\":null}");
	else
		g_string_append_printf(out, "{\"running\":true,\"leg\":%d,\"by\":%d}",
				       st->replace_leg, st->replace_by);
	g_string_append(out, ",\"max_read_errors\":");
	if (st->has_max_read_errors)
		g_string_append_printf(out, "%" G_GUINT64_FORMAT, (guint64)st->max_read_errors);
	else
		g_string_append(out, "null");
	g_string_append(out, ",\"check\":");
	if (!st->has_check) {
		g_string_append(out, "null");
	} else {
		g_auto(GStrv) ranges = g_strsplit(st->mismatches, " ", -1);
		unsigned int n = 0;

		g_string_append_printf(
		    out, "{\"running\":%s,\"mismatch_cnt\":%" G_GUINT64_FORMAT ",\"mismatches\":[",
		    strcmp(st->state, "checking") == 0 ? "true" : "false",
		    (guint64)st->mismatch_cnt);
		for (char **r = ranges; *r != NULL; r++) {
			if (**r == '\0')
				continue;
			g_string_append(out, n++ > 0 ? "," : "");
			ctl_json_append_string(out, *r);
		}
		g_string_append(out, "]}");
	}
	g_string_append(out, "}\n");
}

static void append_export_line(GString *out, const char *key, const char *value)
{
	g_autofree char *quoted = ctl_shell_quote(value);

	g_string_append_printf(out, "%s=%s\n", key, quoted);
}

static void append_export_number(GString *out, const char *key, uint64_t value)
{
	g_string_append_printf(out, "%s=%" G_GUINT64_FORMAT "\n", key, (guint64)value);
}

static void append_export(GString *out, const struct ctl_status *st)
{
	append_export_line(out, "MIRROR_FILE", st->file);
	append_export_line(out, "MIRROR_NAME", st->name);
	if (st->uuid != NULL)
		append_export_line(out, "MIRROR_UUID", st->uuid);
	append_export_line(out, "MIRROR_STATE", st->state);
	append_export_number(out, "MIRROR_SIZE", st->size);
	append_export_number(out, "MIRROR_LEGS", st->nlegs);
	append_export_number(out, "MIRROR_EVENTS", st->events);
	g_string_append_printf(out, "MIRROR_ERROR_BITS=0x%" G_GINT64_MODIFIER "x\n",
			       (guint64)st->error_bits);
	if (st->has_max_read_errors)
		append_export_number(out, "MIRROR_MAX_READ_ERRORS", st->max_read_errors);
	if (st->has_resync) {
		uint64_t seconds;

		append_export_line(out, "MIRROR_RESYNC_ACTIVE",
				   ctl_status_resyncing(st) ? "1" : "0");
		append_export_number(out, "MIRROR_RESYNC_DONE", st->resync_done);
		append_export_number(out, "MIRROR_RESYNC_TOTAL", st->resync_total);
		append_export_number(out, "MIRROR_RESYNC_RATE", st->resync_rate);
		if (resync_eta(st, &seconds))
			append_export_number(out, "MIRROR_RESYNC_ETA", seconds);
		if (st->resync_source >= 0)
			append_export_number(out, "MIRROR_RESYNC_SOURCE",
					     (uint64_t)st->resync_source);
	}
	if (st->has_replace) {
		g_autofree char *leg = st->replace_leg >= 0 ? g_strdup_printf("%d", st->replace_leg)
							    : g_strdup("none");
		g_autofree char *by =
		    st->replace_by >= 0 ? g_strdup_printf("%d", st->replace_by) : g_strdup("none");

		append_export_line(out, "MIRROR_REPLACE_LEG", leg);
		append_export_line(out, "MIRROR_REPLACE_BY", by);
	}
	if (st->has_check) {
		append_export_line(out, "MIRROR_CHECK_ACTIVE",
				   strcmp(st->state, "checking") == 0 ? "1" : "0");
		append_export_number(out, "MIRROR_MISMATCH_CNT", st->mismatch_cnt);
		append_export_line(out, "MIRROR_MISMATCHES", st->mismatches);
	}
	for (unsigned int i = 0; i < st->nlegs; i++) {
		const struct ctl_leg_status *leg = &st->legs[i];
		g_autofree char *name = g_strdup_printf("MIRROR_LEG_%u_NAME", leg->index);
		g_autofree char *path = g_strdup_printf("MIRROR_LEG_%u_PATH", leg->index);
		g_autofree char *state = g_strdup_printf("MIRROR_LEG_%u_STATE", leg->index);
		g_autofree char *reads = g_strdup_printf("MIRROR_LEG_%u_READ_ERRORS", leg->index);
		g_autofree char *writes = g_strdup_printf("MIRROR_LEG_%u_WRITE_ERRORS", leg->index);

		append_export_line(out, name, leg->name);
		append_export_line(out, path, leg->path);
		append_export_line(out, state, leg->state);
		append_export_number(out, reads, leg->read_errors);
		append_export_number(out, writes, leg->write_errors);
		if (leg->has_corrected) {
			g_autofree char *key =
			    g_strdup_printf("MIRROR_LEG_%u_CORRECTED_ERRORS", leg->index);

			append_export_number(out, key, leg->corrected_errors);
		}
		if (leg->resync != NULL) {
			g_autofree char *key = g_strdup_printf("MIRROR_LEG_%u_RESYNC", leg->index);

			append_export_line(out, key, leg->resync);
		}
		if (leg->uuid != NULL) {
			g_autofree char *key = g_strdup_printf("MIRROR_LEG_%u_UUID", leg->index);

			append_export_line(out, key, leg->uuid);
		}
		if (leg->has_write_behind) {
			g_autofree char *key =
			    g_strdup_printf("MIRROR_LEG_%u_WRITE_BEHIND", leg->index);

			append_export_number(out, key, leg->write_behind);
		}
		if (leg->reconnect != NULL) {
			g_autofree char *key =
			    g_strdup_printf("MIRROR_LEG_%u_RECONNECT", leg->index);

			append_export_line(out, key, leg->reconnect);
		}
	}
}

static int run_status(const struct ctl_command *cmd, int argc, char **argv)
{
	gboolean json = FALSE, export = FALSE;
	const GOptionEntry entries[] = {
	    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL},
	    {"export", 0, 0, G_OPTION_ARG_NONE, &export,
	     "Print KEY=VALUE lines for a shell or udev", NULL},
	    G_OPTION_ENTRY_NULL,
	};
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) out = NULL;
	struct ctl_status *st;
	int status;

	if (!ctl_parse_options(cmd, entries, &argc, &argv, 1, 1))
		return CTL_EXIT_USAGE;
	if (json && export)
		return ctl_usage_error(cmd, "--json and --export cannot be combined");

	st = ctl_status_read(argv[1], &error);
	if (st == NULL) {
		g_autofree char *shown = ctl_printable(argv[1]);

		ctl_message("status %s: %s", shown, error->message);
		return CTL_STATUS_UNREADABLE;
	}

	if (!st->live) {
		g_autofree char *shown = ctl_printable(argv[1]);

		ctl_message("warning: %s is not on a FUSE file system: its %s* attributes are a "
			    "copy, not the status of a running mirror",
			    shown, CTL_XATTR_PREFIX);
	}

	out = g_string_new(NULL);
	if (json)
		append_json(out, st);
	else if (export)
		append_export(out, st);
	else
		append_text(out, st);
	/* A report that did not get out must not pass for a clean mirror. */
	status = ctl_write_stdout(out) ? ctl_status_exit_code(st) : CTL_STATUS_UNREADABLE;
	ctl_status_free(st);
	return status;
}

const struct ctl_command ctl_cmd_status = {
    .name = "status",
    .parameters = "FILE",
    .summary = "Show the state of a mirror, of its legs and their error counts",
    .description = "Exit status: 0 clean, 1 degraded (or resyncing, checking, any other state),\n"
		   "3 failed, 4 the status cannot be read (not a mirror, no such file, ...),\n"
		   "2 usage error.",
    .run = run_status,
};
