/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Sizes as operators write them: "4096", "512K", "64 MiB", "1g".  Powers of 1024 only, since
 * every size here is a multiple of a block or a page.  Also seconds and direct = modes: the
 * values that the config file and the control commands (src/fuse/control.c) share.
 */
#include <string.h>

#include "config/config.h"

static int suffix_shift(const char *suffix)
{
	static const char units[] = "KMGT";
	const char *unit;

	if (*suffix == '\0')
		return 0;
	if (g_ascii_strcasecmp(suffix, "B") == 0)
		return 0;
	unit = strchr(units, g_ascii_toupper(*suffix));
	if (unit == NULL)
		return -1;
	suffix++;
	if (*suffix != '\0' && g_ascii_strcasecmp(suffix, "B") != 0 &&
	    g_ascii_strcasecmp(suffix, "iB") != 0)
		return -1;
	return 10 * (unit - units + 1);
}

gboolean config_parse_size(const char *text, uint64_t *out)
{
	const char *p = text, *digits_end;
	uint64_t value = 0;
	int shift;

	/* strtoull() would take white space, a sign, "0x" and an empty string. */
	if (text == NULL || !g_ascii_isdigit(*p))
		return FALSE;
	for (; g_ascii_isdigit(*p); p++) {
		unsigned int digit = *p - '0';

		if (value > (UINT64_MAX - digit) / 10)
			return FALSE;
		value = value * 10 + digit;
	}
	/* "64 MiB" is fine, "64 " is not. */
	digits_end = p;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' && p != digits_end)
		return FALSE;
	shift = suffix_shift(p);
	if (shift < 0 || value > (UINT64_MAX >> shift))
		return FALSE;
	*out = value << shift;
	return TRUE;
}

gboolean config_parse_seconds(const char *text, unsigned int *ms)
{
	const char *p = text;
	uint64_t whole = 0, frac = 0;
	unsigned int digits = 0;

	/* "3", "2.5", "0.250": no sign, no exponent, at most milliseconds. */
	if (text == NULL || !g_ascii_isdigit(*p))
		return FALSE;
	for (; g_ascii_isdigit(*p); p++) {
		whole = whole * 10 + (uint64_t)(*p - '0');
		if (whole > CONFIG_MAX_SECONDS)
			return FALSE;
	}
	if (*p == '.') {
		for (p++; g_ascii_isdigit(*p); p++, digits++) {
			if (digits == 3)
				return FALSE;
			frac = frac * 10 + (uint64_t)(*p - '0');
		}
		if (digits == 0)
			return FALSE;
		for (; digits < 3; digits++)
			frac *= 10;
	}
	if (*p != '\0' || whole * 1000 + frac > CONFIG_MAX_SECONDS * 1000ull)
		return FALSE;
	*ms = (unsigned int)(whole * 1000 + frac);
	return TRUE;
}

/* In the order of enum leg_direct. */
static const char *const direct_names[] = {"auto", "true", "false"};

const char *config_direct_name(enum leg_direct direct)
{
	return direct < G_N_ELEMENTS(direct_names) ? direct_names[direct] : "unknown";
}

gboolean config_parse_direct(const char *text, enum leg_direct *out)
{
	/* The spellings of a boolean key are welcome too (parse_boolean). */
	static const char *const spellings[][2] = {
	    {"auto", "auto"},	{"true", "true"}, {"yes", "true"}, {"1", "true"},
	    {"false", "false"}, {"no", "false"},  {"0", "false"},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(spellings); i++) {
		if (g_ascii_strcasecmp(text, spellings[i][0]) != 0)
			continue;
		for (size_t j = 0; j < G_N_ELEMENTS(direct_names); j++)
			if (strcmp(spellings[i][1], direct_names[j]) == 0)
				*out = (enum leg_direct)j;
		return TRUE;
	}
	return FALSE;
}
