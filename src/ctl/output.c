/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Output helpers: JSON strings, shell quoting, printable text and sizes.  Names and paths come
 * from the config file and may hold any byte, so every format escapes what it cannot carry.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "dmio.h"

void ctl_json_append_string(GString *out, const char *s)
{
	/* JSON is UTF-8 only: a path in another encoding is shown, if not exactly. */
	g_autofree char *valid = g_utf8_make_valid(s, -1);

	g_string_append_c(out, '"');
	for (const unsigned char *p = (const unsigned char *)valid; *p != '\0'; p++) {
		switch (*p) {
		case '"':
			g_string_append(out, "\\\"");
			break;
		case '\\':
			g_string_append(out, "\\\\");
			break;
		case '\b':
			g_string_append(out, "\\b");
			break;
		case '\f':
			g_string_append(out, "\\f");
			break;
		case '\n':
			g_string_append(out, "\\n");
			break;
		case '\r':
			g_string_append(out, "\\r");
			break;
		case '\t':
			g_string_append(out, "\\t");
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				g_string_append_printf(out, "\\u%04x", *p);
			else
				g_string_append_c(out, *p);
		}
	}
	g_string_append_c(out, '"');
}

char *ctl_shell_quote(const char *s)
{
	/* mdadm --export leaves plain values bare; udev's IMPORT and eval both read them so. */
	static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789_-.,:/+@%=";

	if (*s != '\0' && strspn(s, safe) == strlen(s))
		return g_strdup(s);
	return g_shell_quote(s);
}

/* From the first NBD URI that starts a word of s on, s redacted (dmio_path_display), or NULL. */
static char *redact_uri(const char *s)
{
	for (const char *p = s; *p != '\0'; p++) {
		if ((p == s || p[-1] == ' ' || p[-1] == '\'') && dmio_path_is_uri(p)) {
			g_autofree char *head = g_strndup(s, (gsize)(p - s));
			g_autofree char *tail = dmio_path_display(p);

			return g_strconcat(head, tail, NULL);
		}
	}
	return NULL;
}

char *ctl_printable(const char *s)
{
	GString *out = g_string_new(NULL);
	g_autofree char *redacted = redact_uri(s);

	if (redacted != NULL)
		s = redacted;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '\\')
			g_string_append(out, "\\\\");
		else if (*p < 0x20 || *p == 0x7f)
			g_string_append_printf(out, "\\x%02x", *p);
		else
			g_string_append_c(out, *p);
	}
	return g_string_free(out, FALSE);
}

char *ctl_format_size(uint64_t bytes)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	char number[G_ASCII_DTOSTR_BUF_SIZE];
	double value = bytes;
	size_t unit = 0;

	if (bytes < 1024)
		return g_strdup_printf("%" G_GUINT64_FORMAT " B", (guint64)bytes);
	value /= 1024;
	while (value >= 1024 && unit + 1 < G_N_ELEMENTS(units)) {
		value /= 1024;
		unit++;
	}
	/* Not printf: the report reads the same under every locale, "1.00" never "1,00". */
	g_ascii_formatd(number, sizeof(number), "%.2f", value);
	return g_strdup_printf("%s %s", number, units[unit]);
}

bool ctl_write_stdout(const GString *out)
{
	if (fwrite(out->str, 1, out->len, stdout) != out->len || fflush(stdout) != 0) {
		int saved = errno;

		ctl_message("cannot write to standard output: %s", g_strerror(saved));
		return false;
	}
	return true;
}

char *ctl_format_seconds(uint64_t seconds)
{
	if (seconds >= 3600)
		return g_strdup_printf("%" G_GUINT64_FORMAT "h%02um", (guint64)(seconds / 3600),
				       (unsigned int)(seconds % 3600 / 60));
	if (seconds >= 60)
		return g_strdup_printf("%um%02us", (unsigned int)(seconds / 60),
				       (unsigned int)(seconds % 60));
	return g_strdup_printf("%us", (unsigned int)seconds);
}

char *ctl_format_rate(uint64_t bytes_per_second, bool zero_is_unlimited)
{
	g_autofree char *size = NULL;

	if (bytes_per_second == 0 && zero_is_unlimited)
		return g_strdup("unlimited");
	size = ctl_format_size(bytes_per_second);
	return g_strdup_printf("%s/s", size);
}
