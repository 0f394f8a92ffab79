/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The raw-text pass over a config file.  GKeyFile reports no line numbers, and it merges
 * duplicate groups and keys silently; so the text is read here first, line by line, with the
 * same grammar: syntax errors get their line, and every group and key is recorded with its own,
 * duplicates included, for the checks of config.c.
 */
#include <string.h>

#include "config/config.h"
#include "config-internal.h"

/* How much of an offending line a message shows. */
#define QUOTE_LINE_CHARS 60

static void key_free(gpointer data)
{
	struct config_scan_key *key = data;

	g_free(key->name);
	g_free(key);
}

static void group_free(gpointer data)
{
	struct config_scan_group *group = data;

	g_free(group->name);
	g_ptr_array_unref(group->keys);
	g_free(group);
}

void config_scan_clear(struct config_scan *scan)
{
	g_clear_pointer(&scan->groups, g_ptr_array_unref);
	if (scan->text != NULL)
		g_string_free(scan->text, TRUE);
	scan->text = NULL;
}

/* What GKeyFile refuses in a group name. */
static bool group_name_is_valid(const char *name, gsize length)
{
	if (length == 0)
		return false;
	for (gsize i = 0; i < length; i++) {
		unsigned char c = name[i];

		if (c == '[' || c == ']' || c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static gboolean syntax_error(struct config_ctx *ctx, GError **error, unsigned int line,
			     const char *text, const char *problem)
{
	config_set_error(ctx, error, CONFIG_ERROR_SYNTAX, line, "syntax error: '%s' %s",
			 config_quote(ctx, text, QUOTE_LINE_CHARS), problem);
	return FALSE;
}

static gboolean scan_line(struct config_ctx *ctx, struct config_scan *scan, unsigned int line,
			  const char *start, const char *end, GError **error)
{
	struct config_scan_group *group;
	struct config_scan_key *key;
	const char *equals, *key_end;
	g_autofree char *text = g_strndup(start, end - start);

	if (start == end || *start == '#')
		return TRUE;

	if (*start == '[') {
		if (end[-1] != ']' || !group_name_is_valid(start + 1, end - start - 2))
			return syntax_error(ctx, error, line, text,
					    "is not a group header: write [mirror] or [leg NAME]");
		group = g_new0(struct config_scan_group, 1);
		group->name = g_strndup(start + 1, end - start - 2);
		group->line = line;
		group->keys = g_ptr_array_new_with_free_func(key_free);
		g_ptr_array_add(scan->groups, group);
		return TRUE;
	}

	equals = memchr(start, '=', end - start);
	if (equals == NULL)
		return syntax_error(ctx, error, line, text,
				    "is not a [group] header, a key = value line or a # comment");
	key_end = equals;
	while (key_end > start && g_ascii_isspace(key_end[-1]))
		key_end--;
	if (key_end == start)
		return syntax_error(ctx, error, line, text, "has no key before '='");
	if (scan->groups->len == 0) {
		g_autofree char *name = g_strndup(start, key_end - start);

		config_set_error(ctx, error, CONFIG_ERROR_SYNTAX, line,
				 "key '%s' is outside any group: put it in [mirror] or [leg NAME]",
				 config_quote(ctx, name, QUOTE_LINE_CHARS));
		return FALSE;
	}
	key = g_new0(struct config_scan_key, 1);
	key->name = g_strndup(start, key_end - start);
	key->line = line;
	group = g_ptr_array_index(scan->groups, scan->groups->len - 1);
	g_ptr_array_add(group->keys, key);
	return TRUE;
}

gboolean config_scan(struct config_ctx *ctx, const char *data, gsize length,
		     struct config_scan *scan, GError **error)
{
	const char *p = data, *end;
	unsigned int line = 0;

	scan->groups = g_ptr_array_new_with_free_func(group_free);
	scan->text = g_string_sized_new(length + 1);
	if (data == NULL)
		return TRUE;
	end = data + length;

	while (p < end) {
		const char *eol = memchr(p, '\n', end - p);
		const char *next = eol != NULL ? eol + 1 : end;
		const char *start = p;

		if (eol == NULL)
			eol = end;
		line++;
		/* GKeyFile would stop at a NUL and quietly ignore the rest of the file. */
		if (memchr(p, '\0', eol - p) != NULL) {
			config_set_error(ctx, error, CONFIG_ERROR_SYNTAX, line,
					 "syntax error: NUL byte (is this a text file?)");
			return FALSE;
		}
		if (!g_utf8_validate_len(p, eol - p, NULL)) {
			config_set_error(ctx, error, CONFIG_ERROR_SYNTAX, line,
					 "syntax error: the line is not valid UTF-8");
			return FALSE;
		}
		while (eol > p && g_ascii_isspace(eol[-1]))
			eol--;
		while (start < eol && g_ascii_isspace(*start))
			start++;
		g_string_append_len(scan->text, start, eol - start);
		g_string_append_c(scan->text, '\n');
		if (!scan_line(ctx, scan, line, start, eol, error))
			return FALSE;
		p = next;
	}
	return TRUE;
}
