/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The leg table (superblock-names.h): for each slot below num_legs, in slot order, its name,
 * a NUL, its last path, a NUL; zeroes after the last.  All zeroes - a superblock written before
 * the table existed - reads as every name and path unknown.
 */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "mirror/superblock-names.h"

/* Why len bytes of text cannot be a name or path (what), or NULL. */
static char *text_problem(const char *text, size_t len, unsigned int slot, const char *what)
{
	const char *end, *c;

	if (!g_utf8_validate(text, (gssize)len, &end))
		return g_strdup_printf("leg table: slot %u's %s is not valid UTF-8 (byte %u)", slot,
				       what, (unsigned int)(end - text));
	for (c = text; c < text + len; c = g_utf8_next_char(c))
		if (g_unichar_iscntrl(g_utf8_get_char(c)))
			return g_strdup_printf("leg table: slot %u's %s byte %u (U+%04" PRIX32
					       ") is a control character",
					       slot, what, (unsigned int)(c - text),
					       (uint32_t)g_utf8_get_char(c));
	return NULL;
}

bool superblock_leg_text_ok(const char *text, size_t max)
{
	size_t len = strnlen(text, max + 1);
	char *problem;

	if (len > max)
		return false;
	problem = text_problem(text, len, 0, "text");
	g_free(problem);
	return problem == NULL;
}

void superblock_names_encode(const struct superblock *sb, uint8_t *area, size_t size)
{
	unsigned int i, n = MIN(sb->num_legs, SB_MAX_LEGS);
	size_t name_len[SB_MAX_LEGS], path_len[SB_MAX_LEGS], total = 0, pos = 0;

	for (i = 0; i < n; i++) {
		const struct sb_leg_role *r = &sb->roles[i];
		bool member = r->role != SB_ROLE_EMPTY;

		name_len[i] = member && superblock_leg_text_ok(r->name, SB_LEG_NAME_MAX)
				  ? strlen(r->name)
				  : 0;
		path_len[i] = member && superblock_leg_text_ok(r->path, SB_LEG_PATH_MAX)
				  ? strlen(r->path)
				  : 0;
		total += name_len[i] + path_len[i] + 2;
	}
	/* 64 slots of two NULs always fit. */
	for (i = n; i-- > 0 && total > size;) {
		total -= path_len[i];
		path_len[i] = 0;
	}
	for (i = n; i-- > 0 && total > size;) {
		total -= name_len[i];
		name_len[i] = 0;
	}
	for (i = 0; i < n; i++) {
		memcpy(area + pos, sb->roles[i].name, name_len[i]);
		pos += name_len[i] + 1;
		memcpy(area + pos, sb->roles[i].path, path_len[i]);
		pos += path_len[i] + 1;
	}
}

/* One NUL-terminated text of at most max bytes at *pos into out; NULL or the problem. */
static char *take_text(const uint8_t *area, size_t size, size_t *pos, unsigned int slot,
		       const char *what, size_t max, char *out)
{
	const uint8_t *start = area + *pos, *nul = memchr(start, 0, size - *pos);
	size_t len;
	char *problem;

	if (nul == NULL)
		return g_strdup_printf("leg table: slot %u's %s is not terminated within the "
				       "table",
				       slot, what);
	len = (size_t)(nul - start);
	if (len > max)
		return g_strdup_printf("leg table: slot %u's %s is %zu bytes, more than %zu", slot,
				       what, len, max);
	problem = text_problem((const char *)start, len, slot, what);
	if (problem != NULL)
		return problem;
	memcpy(out, start, len);
	out[len] = '\0';
	*pos += len + 1;
	return NULL;
}

char *superblock_names_decode(const uint8_t *area, size_t size, struct superblock *sb)
{
	unsigned int i, n = MIN(sb->num_legs, SB_MAX_LEGS);
	size_t pos = 0;
	char *problem;

	for (i = 0; i < n; i++) {
		struct sb_leg_role *r = &sb->roles[i];

		problem = take_text(area, size, &pos, i, "name", SB_LEG_NAME_MAX, r->name);
		if (problem == NULL)
			problem = take_text(area, size, &pos, i, "path", SB_LEG_PATH_MAX, r->path);
		if (problem != NULL)
			return problem;
		/* The encoder records nothing for an empty slot: one that has text was not ours. */
		if (r->role == SB_ROLE_EMPTY && (r->name[0] != '\0' || r->path[0] != '\0'))
			return g_strdup_printf("leg table: slot %u is empty but has a %s", i,
					       r->name[0] != '\0' ? "name" : "path");
	}
	for (; pos < size; pos++)
		if (area[pos] != 0)
			return g_strdup_printf("leg table: byte %zu after its end is 0x%02x, not "
					       "zero",
					       pos, area[pos]);
	return NULL;
}
