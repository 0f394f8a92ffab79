/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The mirror's extended attributes (xattr.h); names and values are documented in fusemirrorctl(8).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/control.h"
#include "fuse/xattr.h"

/* user.fusemirror.restarts: the daemon's, not the mirror's (xattr_set_restarts).  Lock-free. */
static atomic_uint daemon_restarts;

void xattr_set_restarts(unsigned int restarts)
{
	atomic_store(&daemon_restarts, restarts);
}

/* The front end's transport statistics (xattr_set_fuse_stats): set before any request. */
static void (*fuse_stats_fn)(void *opaque, struct xattr_fuse_stats *out);
static void *fuse_stats_opaque;

void xattr_set_fuse_stats(void (*fn)(void *opaque, struct xattr_fuse_stats *out), void *opaque)
{
	fuse_stats_fn = fn;
	fuse_stats_opaque = opaque;
}

static char *fuse_stats_value(const char *key)
{
	struct xattr_fuse_stats st = {0};

	if (fuse_stats_fn != NULL)
		fuse_stats_fn(fuse_stats_opaque, &st);
	if (strcmp(key, "fuse_transport") == 0)
		return g_strdup(st.ring ? "io_uring" : "dev");
	return g_strdup_printf("%" PRIu64, strcmp(key, "fuse_requests.io_uring") == 0
					       ? st.ring_requests
					       : st.dev_requests);
}

/* Per-leg attributes: user.fusemirror.leg.N.<field>. */
static const char *const leg_fields[] = {
    "name", "path", "state", "read_errors", "write_errors", "corrected_errors", "uuid", "resync",
    "io_timeout", "busy", "slow", "write_mostly", "write_behind", "behind", "behind_answered",
    "reconnect", "reconnect_delay", "reconnect_max", "direct",
};

/* Milliseconds as seconds: "30", "2.5", "0.125". */
static char *seconds_text(uint64_t ms)
{
	char *s = g_strdup_printf("%" PRIu64 ".%03u", ms / 1000, (unsigned int)(ms % 1000));
	char *end = s + strlen(s) - 1;

	while (*end == '0')
		*end-- = '\0';
	if (*end == '.')
		*end = '\0';
	return s;
}

static char *leg_value(struct mirror *m, unsigned int index, const char *field)
{
	struct leg_status st;

	mirror_leg_status(m, index, &st);
	if (strcmp(field, "name") == 0)
		return g_strdup(st.name);
	if (strcmp(field, "path") == 0)
		return g_strdup(st.shown); /* redacted: status is world-readable */
	if (strcmp(field, "state") == 0)
		return g_strdup(leg_state_name(st.state));
	if (strcmp(field, "read_errors") == 0)
		return g_strdup_printf("%" PRIu64, st.read_errors);
	if (strcmp(field, "write_errors") == 0)
		return g_strdup_printf("%" PRIu64, st.write_errors);
	if (strcmp(field, "corrected_errors") == 0)
		return g_strdup_printf("%" PRIu64, st.corrected_errors);
	if (strcmp(field, "uuid") == 0)
		return g_strdup(st.uuid);
	if (strcmp(field, "resync") == 0)
		return g_strdup(leg_resync_role_name(st.resync));
	if (strcmp(field, "io_timeout") == 0)
		return seconds_text(st.io_timeout_ms);
	if (strcmp(field, "busy") == 0)
		return seconds_text(st.busy_ms);
	if (strcmp(field, "slow") == 0)
		return g_strdup(st.slow ? "1" : "0");
	if (strcmp(field, "write_mostly") == 0)
		return g_strdup(st.write_mostly ? "1" : "0");
	if (strcmp(field, "direct") == 0)
		return g_strdup(st.direct ? "on" : "off");
	if (strcmp(field, "write_behind") == 0)
		return g_strdup_printf("%u", st.write_behind);
	if (strcmp(field, "behind") == 0)
		return g_strdup_printf("%u writes, %" PRIu64 " bytes", st.behind_writes,
				       st.behind_bytes);
	if (strcmp(field, "behind_answered") == 0)
		return g_strdup_printf("%" PRIu64, st.behind_answered);
	if (strcmp(field, "reconnect") == 0)
		return mirror_leg_reconnect_status(m, index);
	if (strcmp(field, "reconnect_delay") == 0 || strcmp(field, "reconnect_max") == 0) {
		unsigned int delay_ms, max;

		mirror_get_reconnect(m, (int)index, &delay_ms, &max);
		return strcmp(field, "reconnect_delay") == 0 ? seconds_text(delay_ms)
							      : g_strdup_printf("%u", max);
	}
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
	if (strcmp(key, "event_log") == 0)
		return mirror_event_log(m);
	if (strcmp(key, "restarts") == 0)
		return g_strdup_printf("%u", atomic_load(&daemon_restarts));
	if (strcmp(key, "fuse_transport") == 0 || strcmp(key, "fuse_requests.io_uring") == 0 ||
	    strcmp(key, "fuse_requests.dev") == 0)
		return fuse_stats_value(key);
	if (strcmp(key, "resync.rate_min") == 0 || strcmp(key, "resync.rate_max") == 0) {
		uint64_t min, max;

		mirror_get_resync_rate(m, &min, &max);
		return g_strdup_printf("%" PRIu64, strcmp(key, "resync.rate_min") == 0 ? min : max);
	}
	if (strcmp(key, "max_read_errors") == 0)
		return g_strdup_printf("%u", mirror_get_max_read_errors(m));
	if (strcmp(key, "splice.spliced") == 0 || strcmp(key, "splice.copied") == 0) {
		uint64_t spliced, copied;

		mirror_pipe_stats(m, &spliced, &copied);
		return g_strdup_printf("%" PRIu64, key[7] == 's' ? spliced : copied);
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
	if (strcmp(key, "mismatch_cnt") == 0 || strcmp(key, "mismatches") == 0) {
		struct check_status cs;

		/* Of the running or last check or repair: 0 and "" before the first. */
		mirror_check_status(m, &cs);
		if (key[8] == '_')
			return g_strdup_printf("%" PRIu64, cs.mismatch_cnt);
		return mirror_check_ranges_text(&cs);
	}
	if (strcmp(key, "replace.leg") == 0 || strcmp(key, "replace.by") == 0) {
		struct replace_status rs;
		int leg;

		mirror_replace_status(m, &rs);
		leg = strcmp(key, "replace.leg") == 0 ? rs.leg : rs.by;
		return leg >= 0 ? g_strdup_printf("%d", leg) : g_strdup("none");
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
	    "name",
	    "state",
	    "legs",
	    "error_bits",
	    "events",
	    "uuid",
	    "last_error",
	    "resync.done",
	    "resync.total",
	    "resync.rate",
	    "resync.rate_min",
	    "resync.rate_max",
	    "resync.source",
	    "mismatch_cnt",
	    "mismatches",
	    "max_read_errors",
	    "replace.leg",
	    "replace.by",
	    "event_log",
	    "restarts",
	    "fuse_transport",
	    "fuse_requests.io_uring",
	    "fuse_requests.dev",
	    "splice.spliced",
	    "splice.copied",
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

/* A leg the command names: one of the mirror's. */
static int check_leg(struct mirror *m, unsigned int index, GError **error)
{
	unsigned int n = mirror_num_legs(m);

	if (index < n)
		return 0;
	g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
		    "no leg %u (the mirror has legs 0 to %u)", index, n - 1);
	return -EINVAL;
}

/*
 * Serializes set's read-check-write of the rates: two operators setting min and max at once
 * must not both pass the check against the other's old value.  Taken before any lock of the
 * mirror (mirror_get/set_resync_rate take their own); nothing else is taken under it.
 */
static GMutex tunables_lock;

static int set_tunable(struct mirror *m, const struct control_command *c, GError **error)
{
	uint64_t min, max;
	int r = 0;

	g_mutex_lock(&tunables_lock);
	mirror_get_resync_rate(m, &min, &max);
	switch (c->tunable) {
	case CONTROL_RESYNC_RATE_MIN:
		if (max != 0 && c->value > max) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "resync-rate-min %" PRIu64 " is above resync-rate-max %" PRIu64,
				    c->value, max);
			r = -EINVAL;
		} else {
			mirror_set_resync_rate(m, c->value, max);
		}
		break;
	case CONTROL_IO_TIMEOUT:
		r = mirror_set_io_timeout(m, c->has_leg ? (int)c->leg : -1, (unsigned int)c->value);
		if (r < 0)
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "no leg %u (the mirror has %u)", c->leg, mirror_num_legs(m));
		break;
	case CONTROL_RESYNC_RATE_MAX:
		if (c->value != 0 && c->value < min) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "resync-rate-max %" PRIu64 " is below resync-rate-min %" PRIu64,
				    c->value, min);
			r = -EINVAL;
		} else {
			mirror_set_resync_rate(m, min, c->value);
		}
		break;
	case CONTROL_MAX_READ_ERRORS:
		mirror_set_max_read_errors(m, (unsigned int)c->value);
		break;
	case CONTROL_WRITE_BEHIND:
		r = mirror_set_write_behind(m, c->has_leg ? (int)c->leg : -1,
					    (unsigned int)c->value);
		if (r == -EINVAL)
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "no leg %u (the mirror has %u)", c->leg, mirror_num_legs(m));
		else if (r == -EPERM && c->has_leg)
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_PERM,
				    "leg %u is not write-mostly: write-behind is for write-mostly "
				    "legs",
				    c->leg);
		else if (r == -EPERM)
			g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_PERM,
					    "no leg is write-mostly: write-behind is for write-mostly "
					    "legs");
		else if (r < 0)
			g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_NOSYS,
					    "write-behind needs metadata = internal (the write-intent "
					    "bitmap)");
		break;
	case CONTROL_RECONNECT_DELAY:
	case CONTROL_RECONNECT_MAX:
		r = c->tunable == CONTROL_RECONNECT_DELAY
			? mirror_set_reconnect(m, c->has_leg ? (int)c->leg : -1, (int)c->value, -1)
			: mirror_set_reconnect(m, c->has_leg ? (int)c->leg : -1, -1, (int)c->value);
		if (r < 0)
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "no leg %u (the mirror has %u)", c->leg, mirror_num_legs(m));
		break;
	}
	g_mutex_unlock(&tunables_lock);
	return r;
}

/* What the end of a replace needs to save the config: the hooks and --no-save. */
struct replace_end {
	const struct xattr_hooks *hooks;
	bool save;
};

/* A replace ended (on its thread, no lock of the mirror held): the old leg went, or not. */
static void replace_done(void *opaque, struct mirror *m, bool replaced)
{
	struct replace_end *end = opaque;

	if (replaced && end->hooks != NULL && end->hooks->on_membership != NULL)
		end->hooks->on_membership(end->hooks->opaque, m, end->save);
	g_free(end);
}

/*
 * Run one parsed control command (fusemirrorctl(8), CONTROL COMMANDS).  Returns 0 or -errno with
 * *error saying why.
 */
static int ctl_run(struct mirror *m, const struct xattr_hooks *hooks,
		   const struct control_command *c, GError **error)
{
	int r;

	switch (c->verb) {
	case CONTROL_FAIL:
		r = check_leg(m, c->leg, error);
		return r < 0 ? r : mirror_fail_leg(m, c->leg, error);
	case CONTROL_REMOVE:
		r = check_leg(m, c->leg, error);
		if (r == 0)
			r = mirror_remove_leg(m, c->leg, c->force, error);
		break;
	case CONTROL_ADD:
		r = mirror_add_leg_direct(m, c->path, c->force, (enum leg_direct)c->direct, error);
		if (r > 0)
			r = 0;
		break;
	case CONTROL_REPLACE: {
		struct replace_end *end = g_new0(struct replace_end, 1);

		r = check_leg(m, c->leg, error);
		end->hooks = hooks;
		end->save = !c->no_save;
		/* Returns once the new leg is added: its end runs on the mirror's thread. */
		if (r == 0)
			r = mirror_replace_leg_direct(m, c->leg, c->path,
						      (enum leg_direct)c->direct, replace_done, end,
						      error);
		if (r < 0)
			g_free(end);
		else
			r = 0;
		break;
	}
	case CONTROL_RESYNC:
		return mirror_resync(m, c->full, error);
	case CONTROL_CHECK:
		return mirror_check(m, false, -1, error);
	case CONTROL_REPAIR:
		if (c->has_source) {
			r = check_leg(m, c->leg, error);
			if (r < 0)
				return r;
		}
		return mirror_check(m, true, c->has_source ? (int)c->leg : -1, error);
	case CONTROL_SET:
		return set_tunable(m, c, error);
	case CONTROL_STOP:
		if (hooks == NULL || hooks->stop == NULL) {
			g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_NOSYS,
					    "this mirror is not served by a daemon that can stop");
			return -ENOTSUP;
		}
		return hooks->stop(hooks->opaque, c->force, error);
	case CONTROL_RESTART:
		if (hooks == NULL || hooks->restart == NULL) {
			g_set_error_literal(
			    error, G_FILE_ERROR, G_FILE_ERROR_NOSYS,
			    "this mirror is not served by a daemon that can restart");
			return -ENOTSUP;
		}
		return hooks->restart(hooks->opaque, error);
	default:
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "unknown command");
		return -EINVAL;
	}
	if (r == 0 && hooks != NULL && hooks->on_membership != NULL)
		hooks->on_membership(hooks->opaque, m, !c->no_save);
	return r;
}

static int ctl_command(struct mirror *m, const struct xattr_hooks *hooks, const char *command,
		       GError **error)
{
	struct control_command c;
	int r = control_parse(command, &c, error);

	if (r < 0)
		return r;
	r = ctl_run(m, hooks, &c, error);
	control_command_clear(&c);
	if (r < 0 && error != NULL && *error == NULL)
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s failed: %s",
			    control_verb_name(c.verb), g_strerror(-r));
	return r;
}

int xattr_set(struct mirror *m, uint64_t caller, const char *name, const char *value, size_t size,
	      bool is_root)
{
	return xattr_set_hooked(m, NULL, caller, name, value, size, is_root);
}

int xattr_set_hooked(struct mirror *m, const struct xattr_hooks *hooks, uint64_t caller,
		     const char *name, const char *value, size_t size, bool is_root)
{
	g_autoptr(GError) error = NULL;
	char *command;
	int r;

	if (strcmp(name, XATTR_CTL) == 0) {
		if (!is_root)
			return -EPERM;
		if (size > 4096) {
			mirror_set_last_error(m, caller, "the command is longer than 4096 bytes");
			return -EINVAL;
		}
		if (size == 0 || memchr(value, '\0', size) != NULL) {
			mirror_set_last_error(m, caller,
					      size == 0 ? "empty control command"
							: "the command contains a NUL byte");
			return -EINVAL;
		}
		command = g_strndup(value, size);
		/* One trailing newline (echo's, setfattr's) and trailing blanks. */
		g_strchomp(command);
		r = ctl_command(m, hooks, command, &error);
		/* A refusal's reason is only ever the caller's last command's. */
		mirror_set_last_error(m, caller, error != NULL ? error->message : "");
		if (error != NULL) {
			/* Escaped: no text of a command may forge or hide a log line. */
			g_autofree char *shown = control_escape(command);
			g_autofree char *why = control_escape(error->message);

			g_message("control command \"%s\" refused: %s", shown, why);
		}
		g_free(command);
		return r;
	}
	if (strncmp(name, XATTR_STATUS_PREFIX, strlen(XATTR_STATUS_PREFIX)) == 0)
		return -EPERM;
	return -ENOTSUP;
}
