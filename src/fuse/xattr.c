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
    "name", "path", "state", "read_errors", "write_errors", "uuid", "resync",
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
	if (strcmp(field, "uuid") == 0)
		return g_strdup(st.uuid);
	if (strcmp(field, "resync") == 0)
		return g_strdup(leg_resync_role_name(st.resync));
	return NULL;
}

/*
 * A leg index in canonical decimal ("01" is not one) followed by the character stop, below the
 * number of legs; -1 otherwise.  *rest (when not NULL) is set to the character after stop.
 */
static int parse_index(struct mirror *m, const char *text, char stop, const char **rest)
{
	unsigned long index;
	char *end;

	if (!g_ascii_isdigit(*text) || (*text == '0' && text[1] != stop))
		return -1;
	errno = 0;
	index = strtoul(text, &end, 10);
	if (*end != stop || errno != 0 || index >= mirror_num_legs(m))
		return -1;
	if (rest != NULL)
		*rest = end + 1;
	return (int)index;
}

char *xattr_status_get(struct mirror *m, uint64_t caller, const char *name)
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
	if (strcmp(key, "uuid") == 0)
		return mirror_uuid(m);
	if (strcmp(key, "last_error") == 0)
		return mirror_last_error(m, caller);
	if (strcmp(key, "resync.rate_min") == 0 || strcmp(key, "resync.rate_max") == 0) {
		uint64_t min, max;

		mirror_get_resync_rate(m, &min, &max);
		return g_strdup_printf("%" PRIu64, strcmp(key, "resync.rate_min") == 0 ? min : max);
	}
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
	if (strcmp(key, "resync.source") == 0) {
		struct resync_status rs;

		/* Empty when no resync runs. */
		mirror_resync_status(m, &rs);
		return rs.source >= 0 ? g_strdup_printf("%d", rs.source) : g_strdup("");
	}
	if (strncmp(key, "leg.", 4) == 0) {
		const char *field;
		int index = parse_index(m, key + 4, '.', &field);

		return index < 0 ? NULL : leg_value(m, (unsigned int)index, field);
	}
	return NULL;
}

char *xattr_status_list(struct mirror *m, size_t *length)
{
	static const char *const mirror_keys[] = {
	    "name",	     "state",		"legs",
	    "error_bits",    "events",		"uuid",
	    "last_error",    "resync.done",	"resync.total",
	    "resync.rate",   "resync.rate_min", "resync.rate_max",
	    "resync.source",
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

/* A byte rate in plain decimal. */
static bool parse_rate(const char *word, uint64_t *out)
{
	guint64 v;

	if (*word == '\0' || strspn(word, "0123456789") != strlen(word) ||
	    !g_ascii_string_to_unsigned(word, 10, 0, G_MAXUINT64, &v, NULL))
		return false;
	*out = v;
	return true;
}

/*
 * Run one control command (fusemirrorctl(8), CONTROL COMMANDS):
 *   fail N | remove [--force] N | add [--force] PATH | resync [--full] |
 *   set resync-rate-min|resync-rate-max BYTES
 * Returns 0 or -errno with *error saying why.
 */
static int ctl_command(struct mirror *m, const char *command, GError **error)
{
	const char *rest;
	char *verb;
	bool force = false;
	int r = -EINVAL;
	size_t len;

	while (*command == ' ' || *command == '\t')
		command++;
	len = strcspn(command, " \t");
	verb = g_strndup(command, len);
	rest = command + len;
	while (*rest == ' ' || *rest == '\t')
		rest++;
	if (g_str_has_prefix(rest, "--force") && (rest[7] == ' ' || rest[7] == '\t')) {
		force = true;
		rest += 7;
		while (*rest == ' ' || *rest == '\t')
			rest++;
	}

	if (strcmp(verb, "fail") == 0 && !force) {
		int index = parse_index(m, rest, '\0', NULL);

		if (index >= 0)
			r = mirror_fail_leg(m, (unsigned int)index, error);
	} else if (strcmp(verb, "remove") == 0) {
		int index = parse_index(m, rest, '\0', NULL);

		if (index >= 0)
			r = mirror_remove_leg(m, (unsigned int)index, force, error);
	} else if (strcmp(verb, "add") == 0 && *rest != '\0') {
		if (*rest != '/')
			g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
					    "add needs an absolute path");
		else
			r = mirror_add_leg(m, rest, force, error);
		if (r > 0)
			r = 0;
	} else if (strcmp(verb, "resync") == 0 && !force &&
		   (*rest == '\0' || strcmp(rest, "--full") == 0)) {
		r = mirror_resync(m, *rest != '\0', error);
	} else if (strcmp(verb, "set") == 0 && !force) {
		char **words = g_strsplit_set(rest, " \t", -1);
		uint64_t min, max, v;

		mirror_get_resync_rate(m, &min, &max);
		if (g_strv_length(words) == 2 && parse_rate(words[1], &v)) {
			const char *name = words[0];

			if (strcmp(name, "resync-rate-min") == 0) {
				mirror_set_resync_rate(m, v, max);
				r = 0;
			} else if (strcmp(name, "resync-rate-max") == 0) {
				mirror_set_resync_rate(m, min, v);
				r = 0;
			}
		}
		g_strfreev(words);
	}
	if (r < 0 && error != NULL && *error == NULL)
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "not a control command, or a bad argument");
	g_free(verb);
	return r;
}

int xattr_set(struct mirror *m, uint64_t caller, const char *name, const char *value, size_t size,
	      bool is_root)
{
	g_autoptr(GError) error = NULL;
	char *command;
	int r;

	if (strcmp(name, XATTR_CTL) == 0) {
		if (!is_root)
			return -EPERM;
		if (size == 0 || size > 4096 || memchr(value, '\0', size) != NULL)
			return -EINVAL;
		command = g_strndup(value, size);
		g_strchomp(command);
		r = ctl_command(m, command, &error);
		/* A refusal's reason is only ever the caller's last command's. */
		mirror_set_last_error(m, caller, error != NULL ? error->message : "");
		if (error != NULL)
			g_message("control command '%s' refused: %s", command, error->message);
		g_free(command);
		return r;
	}
	if (strncmp(name, XATTR_STATUS_PREFIX, strlen(XATTR_STATUS_PREFIX)) == 0)
		return -EPERM;
	return -ENOTSUP;
}
