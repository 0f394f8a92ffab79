/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Error messages of the config layer: "FILE:LINE: what is wrong", always one line, whatever
 * bytes the file or its name contain.
 */
#include <stdarg.h>

#include "config/config.h"
#include "config-internal.h"

GQuark config_error_quark(void)
{
	return g_quark_from_static_string("fusemirror-config-error-quark");
}

void config_ctx_init(struct config_ctx *ctx, const char *file)
{
	ctx->scratch = g_ptr_array_new_with_free_func(g_free);
	ctx->file = config_quote(ctx, file, 0);
}

void config_ctx_clear(struct config_ctx *ctx)
{
	g_clear_pointer(&ctx->scratch, g_ptr_array_unref);
	ctx->file = NULL;
}

static void quote_char(GString *out, gunichar c)
{
	switch (c) {
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
		if (c < 0x100)
			g_string_append_printf(out, "\\x%02x", (unsigned int)c);
		else
			g_string_append_printf(out, "\\u%04x", (unsigned int)c);
	}
}

const char *config_quote(struct config_ctx *ctx, const char *s, gsize max_chars)
{
	GString *out = g_string_new(NULL);
	const char *p = s;
	gsize chars = 0;

	while (*p != '\0') {
		gunichar c = g_utf8_get_char_validated(p, -1);

		if (max_chars > 0 && chars == max_chars) {
			g_string_append(out, "...");
			break;
		}
		chars++;
		if (c == (gunichar)-1 || c == (gunichar)-2) {
			/* Not UTF-8: show the byte, go on with the next one. */
			g_string_append_printf(out, "\\x%02x", (unsigned char)*p);
			p++;
			continue;
		}
		if (g_unichar_isprint(c))
			g_string_append_len(out, p, g_utf8_next_char(p) - p);
		else
			quote_char(out, c);
		p = g_utf8_next_char(p);
	}
	g_ptr_array_add(ctx->scratch, g_string_free(out, FALSE));
	return g_ptr_array_index(ctx->scratch, ctx->scratch->len - 1);
}

void config_set_error(struct config_ctx *ctx, GError **error, int code, unsigned int line,
		      const char *format, ...)
{
	g_autofree char *message = NULL;
	va_list args;

	va_start(args, format);
	message = g_strdup_vprintf(format, args);
	va_end(args);
	if (line > 0)
		g_set_error(error, CONFIG_ERROR, code, "%s:%u: %s", ctx->file, line, message);
	else
		g_set_error(error, CONFIG_ERROR, code, "%s: %s", ctx->file, message);
}
