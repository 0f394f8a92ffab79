/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Inside the config layer: the message helpers shared by the passes, and the raw-text scan that
 * gives GKeyFile's groups and keys their line numbers.
 */
#ifndef FUSEMIRROR_CONFIG_INTERNAL_H
#define FUSEMIRROR_CONFIG_INTERNAL_H

#include <glib.h>

/* One parse: the file name for messages and the strings quoted for them, freed together. */
struct config_ctx {
	const char *file; /* already quoted for messages */
	GPtrArray *scratch;
};

void config_ctx_init(struct config_ctx *ctx, const char *file);
void config_ctx_clear(struct config_ctx *ctx);

/*
 * A copy of s fit for a one-line message: control characters and invalid UTF-8 escaped (\n,
 * \x01), at most max_chars characters (0 = no limit) with "..." after a cut.  Owned by ctx.
 */
const char *config_quote(struct config_ctx *ctx, const char *s, gsize max_chars);

/* Set *error to "FILE:LINE: message" (line 0: "FILE: message"). */
void config_set_error(struct config_ctx *ctx, GError **error, int code, unsigned int line,
		      const char *format, ...) G_GNUC_PRINTF(5, 6);

struct config_scan_key {
	char *name;
	unsigned int line;
};

struct config_scan_group {
	char *name; /* between the brackets, as written */
	unsigned int line;
	GPtrArray *keys; /* struct config_scan_key, in file order */
};

struct config_scan {
	GPtrArray *groups; /* struct config_scan_group, in file order, duplicates kept */
	GString *text;	   /* the text with trailing white space cut from every line */
};

/*
 * Read data line by line: fail with CONFIG_ERROR_SYNTAX and the line for anything that is not a
 * comment, a blank line, a group header or a key = value line inside a group, and record every
 * group and key with its line.  scan->text is what GKeyFile should load: trailing white space
 * (and the \r of CRLF files) never becomes part of a value.  Release with config_scan_clear(),
 * also after a failure.
 */
gboolean config_scan(struct config_ctx *ctx, const char *data, gsize length,
		     struct config_scan *scan, GError **error);
void config_scan_clear(struct config_scan *scan);

#endif /* FUSEMIRROR_CONFIG_INTERNAL_H */
