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
	COL_READ_ERRORS,
	COL_WRITE_ERRORS,
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
    [COL_READ_ERRORS] = {"Read Errors", true},
    [COL_WRITE_ERRORS] = {"Write Errors", true},
    [COL_PATH] = {"Path", false},
};

static void append_row(GString *out, char *const cells[N_COLS], const size_t width[N_COLS])
{
	g_string_append(out, "  ");
	for (int c = 0; c < N_COLS; c++) {
		/* The path goes last and unpadded, so that a long one does not widen every row. */
		if (c == COL_PATH) {
			g_string_append(out, cells[c]);
			break;
		}
		append_padded(out, cells[c], width[c], columns[c].right);
		g_string_append(out, "  ");
	}
	g_string_append_c(out, '\n');
}

static void append_text(GString *out, const struct ctl_status *st)
{
	g_autofree char *file = ctl_printable(st->file);
	g_autofree char *name = ctl_printable(st->name);
	g_autofree char *state = ctl_printable(st->state);
	g_autofree char *human = ctl_format_size(st->size);
	char **cells = g_new0(char *, (size_t)(st->nlegs + 1) * N_COLS);
	size_t width[N_COLS];

	g_string_append_printf(out, "%s:\n", file);
	g_string_append_printf(out, "%14s : %s\n", "Name", name);
	g_string_append_printf(out, "%14s : %s\n", "State", state);
	g_string_append_printf(out, "%14s : %" G_GUINT64_FORMAT " (%s)\n", "Size",
			       (guint64)st->size, human);
	g_string_append_printf(out, "%14s : %u\n", "Legs", st->nlegs);
	g_string_append_printf(out, "%14s : %" G_GUINT64_FORMAT "\n", "Events",
			       (guint64)st->events);
	g_string_append_printf(out, "%14s : 0x%" G_GINT64_MODIFIER "x\n", "Error Bits",
			       (guint64)st->error_bits);
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
		row[COL_READ_ERRORS] =
		    g_strdup_printf("%" G_GUINT64_FORMAT, (guint64)leg->read_errors);
		row[COL_WRITE_ERRORS] =
		    g_strdup_printf("%" G_GUINT64_FORMAT, (guint64)leg->write_errors);
		row[COL_PATH] = ctl_printable(leg->path);
	}
	for (int c = 0; c < N_COLS; c++) {
		width[c] = 0;
		for (unsigned int r = 0; r <= st->nlegs; r++)
			width[c] = MAX(width[c], display_width(cells[(size_t)r * N_COLS + c]));
	}
	for (unsigned int r = 0; r <= st->nlegs; r++)
		append_row(out, cells + (size_t)r * N_COLS, width);

	for (size_t i = 0; i < (size_t)(st->nlegs + 1) * N_COLS; i++)
		g_free(cells[i]);
	g_free(cells);
}

static void append_json(GString *out, const struct ctl_status *st)
{
	g_string_append(out, "{\"file\":");
	ctl_json_append_string(out, st->file);
	g_string_append(out, ",\"name\":");
	ctl_json_append_string(out, st->name);
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
		g_string_append_printf(out,
				       ",\"read_errors\":%" G_GUINT64_FORMAT
				       ",\"write_errors\":%" G_GUINT64_FORMAT "}",
				       (guint64)leg->read_errors, (guint64)leg->write_errors);
	}
	/* A string: JSON numbers above 2^53 lose bits in most parsers, and 64 legs need 64. */
	g_string_append_printf(out,
			       "],\"events\":%" G_GUINT64_FORMAT
			       ",\"error_bits\":\"0x%" G_GINT64_MODIFIER "x\"}\n",
			       (guint64)st->events, (guint64)st->error_bits);
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
	append_export_line(out, "MIRROR_STATE", st->state);
	append_export_number(out, "MIRROR_SIZE", st->size);
	append_export_number(out, "MIRROR_LEGS", st->nlegs);
	append_export_number(out, "MIRROR_EVENTS", st->events);
	g_string_append_printf(out, "MIRROR_ERROR_BITS=0x%" G_GINT64_MODIFIER "x\n",
			       (guint64)st->error_bits);
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
		   "2 failed, 4 the status cannot be read (not a mirror, no such file, ...),\n"
		   "64 usage error.",
    .run = run_status,
};
