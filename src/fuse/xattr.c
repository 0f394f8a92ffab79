/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The mirror's extended attributes (xattr.h); names and values are documented in fusemirrorctl(8).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/xattr.h"

/* Per-leg attributes: user.fusemirror.leg.N.<field>. */
static const char *const leg_fields[] = {
    "name", "path", "state", "read_errors", "write_errors",
};

static char *leg_value(struct mirror *m, unsigned int index, const char *field)
{
	struct leg_status st;

	mirror_leg_status(m, index, &st);
	if (strcmp(field, "name") == 0)
		return g_strdup(st.name);
	if (strcmp(field, "path") == 0)
		return g_strdup(st.path);
	if (strcmp(field, "state") == 0)
		return g_strdup(leg_state_name(st.state));
	if (strcmp(field, "read_errors") == 0)
		return g_strdup_printf("%" PRIu64, st.read_errors);
	if (strcmp(field, "write_errors") == 0)
		return g_strdup_printf("%" PRIu64, st.write_errors);
	return NULL;
}

char *xattr_status_get(struct mirror *m, const char *name)
{
	const char *key;

	if (strncmp(name, XATTR_STATUS_PREFIX, strlen(XATTR_STATUS_PREFIX)) != 0)
		return NULL;
	key = name + strlen(XATTR_STATUS_PREFIX);
	if (strcmp(key, "name") == 0)
		return g_strdup(mirror_name(m));
	if (strcmp(key, "state") == 0)
		return g_strdup(mirror_state_name(mirror_state(m)));
	if (strcmp(key, "legs") == 0)
		return g_strdup_printf("%u", mirror_num_legs(m));
	if (strcmp(key, "error_bits") == 0)
		return g_strdup_printf("0x%lx", mirror_error_bits(m));
	if (strcmp(key, "events") == 0)
		return g_strdup_printf("%" PRIu64, mirror_events(m));
	if (strcmp(key, "resync.done") == 0 || strcmp(key, "resync.total") == 0 ||
	    strcmp(key, "resync.rate") == 0) {
		struct resync_status rs;

		mirror_resync_status(m, &rs);
		if (key[7] == 'd')
			return g_strdup_printf("%" PRIu64, rs.done);
		if (key[7] == 't')
			return g_strdup_printf("%" PRIu64, rs.total);
		return g_strdup_printf("%" PRIu64, rs.active ? rs.rate : 0);
	}
	if (strncmp(key, "leg.", 4) == 0) {
		const char *p = key + 4;
		char *end;
		unsigned long index;

		/* Canonical decimal only: "leg.01.name" is not an attribute. */
		if (!g_ascii_isdigit(*p) || (*p == '0' && p[1] != '.'))
			return NULL;
		index = strtoul(p, &end, 10);
		if (*end != '.' || index >= mirror_num_legs(m))
			return NULL;
		return leg_value(m, (unsigned int)index, end + 1);
	}
	return NULL;
}

char *xattr_status_list(struct mirror *m, size_t *length)
{
	static const char *const mirror_keys[] = {
	    "name",   "state",	     "legs",	     "error_bits",
	    "events", "resync.done", "resync.total", "resync.rate",
	};
	GString *s = g_string_new(NULL);
	unsigned int i, f;

	for (i = 0; i < G_N_ELEMENTS(mirror_keys); i++) {
		g_string_append_printf(s, XATTR_STATUS_PREFIX "%s", mirror_keys[i]);
		g_string_append_c(s, '\0');
	}
	for (i = 0; i < mirror_num_legs(m); i++) {
		for (f = 0; f < G_N_ELEMENTS(leg_fields); f++) {
			g_string_append_printf(s, XATTR_STATUS_PREFIX "leg.%u.%s", i,
					       leg_fields[f]);
			g_string_append_c(s, '\0');
		}
	}
	*length = s->len;
	return g_string_free(s, FALSE);
}

/* Run one control command. */
static int ctl_command(struct mirror *m, const char *command)
{
	char **words = g_strsplit_set(command, " \t", -1);
	unsigned int n = 0;
	int r = -EINVAL;

	/* Drop the empty words of repeated blanks. */
	for (unsigned int i = 0; words[i] != NULL; i++) {
		if (*words[i] != '\0')
			words[n++] = words[i];
		else
			g_free(words[i]);
	}
	words[n] = NULL;

	if (n == 2 && strcmp(words[0], "fail") == 0) {
		char *end;
		unsigned long index;

		errno = 0;
		index = strtoul(words[1], &end, 10);
		if (g_ascii_isdigit(*words[1]) && *end == '\0' && errno == 0 &&
		    index < mirror_num_legs(m))
			r = mirror_fail_leg(m, (unsigned int)index);
	}
	g_strfreev(words);
	return r;
}

int xattr_set(struct mirror *m, const char *name, const char *value, size_t size, bool is_root)
{
	char *command;
	int r;

	if (strcmp(name, XATTR_CTL) == 0) {
		if (!is_root)
			return -EPERM;
		if (size == 0 || size > 4096 || memchr(value, '\0', size) != NULL)
			return -EINVAL;
		command = g_strndup(value, size);
		g_strchomp(command);
		r = ctl_command(m, command);
		g_free(command);
		return r;
	}
	if (strncmp(name, XATTR_STATUS_PREFIX, strlen(XATTR_STATUS_PREFIX)) == 0)
		return -EPERM;
	return -ENOTSUP;
}
