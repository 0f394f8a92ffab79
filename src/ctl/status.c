/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The status of a mirror, read from the user.fusemirror.* extended attributes of its file and
 * stat().  The values are ASCII without a trailing newline; every one is checked, so that a report
 * never shows a number the daemon did not give.
 */
#include "config.h"

#include <errno.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>

#include "ctl.h"

/* Linux caps an extended attribute value at 64 KiB. */
#define XATTR_VALUE_MAX 65536

G_DEFINE_QUARK(fusemirror - ctl - error - quark, ctl_error)

int ctl_read_attribute(const char *file, const char *attr, char **value)
{
	g_autofree char *name = g_strconcat(CTL_XATTR_PREFIX, attr, NULL);
	size_t size = 256;

	for (;;) {
		g_autofree char *buf = g_malloc(size + 1);
		ssize_t len = getxattr(file, name, buf, size);

		if (len >= 0) {
			if (memchr(buf, '\0', len) != NULL)
				return -EILSEQ;
			buf[len] = '\0';
			*value = g_steal_pointer(&buf);
			return 0;
		}
		/* The value grew, or is longer than our first guess. */
		if (errno != ERANGE || size >= XATTR_VALUE_MAX)
			return -errno;
		size = XATTR_VALUE_MAX;
	}
}

static bool read_string(const char *file, const char *attr, char **value, GError **error)
{
	int r = ctl_read_attribute(file, attr, value);

	if (r < 0) {
		g_set_error(error, CTL_ERROR, CTL_ERROR_VALUE, "cannot read %s%s: %s",
			    CTL_XATTR_PREFIX, attr, g_strerror(-r));
		return false;
	}
	return true;
}

/* The value text of attribute attr as a decimal number from 0 to max. */
static bool parse_number(const char *attr, const char *text, uint64_t max, uint64_t *value,
			 GError **error)
{
	guint64 number;

	if (!g_ascii_string_to_unsigned(text, 10, 0, max, &number, NULL)) {
		g_autofree char *shown = ctl_printable(text);

		g_set_error(error, CTL_ERROR, CTL_ERROR_VALUE,
			    "%s%s is '%s', not a number between 0 and %" G_GUINT64_FORMAT,
			    CTL_XATTR_PREFIX, attr, shown, (guint64)max);
		return false;
	}
	*value = number;
	return true;
}

static bool read_number(const char *file, const char *attr, uint64_t max, uint64_t *value,
			GError **error)
{
	g_autofree char *text = NULL;

	return read_string(file, attr, &text, error) && parse_number(attr, text, max, value, error);
}

/*
 * An attribute that older daemons do not have: *present is false when the file has none.  One
 * that is there is checked as any other.
 */
static bool read_optional_string(const char *file, const char *attr, bool *present, char **value,
				 GError **error)
{
	int r = ctl_read_attribute(file, attr, value);

	*present = r == 0;
	if (r == -ENODATA)
		return true;
	if (r < 0) {
		g_set_error(error, CTL_ERROR, CTL_ERROR_VALUE, "cannot read %s%s: %s",
			    CTL_XATTR_PREFIX, attr, g_strerror(-r));
		return false;
	}
	return true;
}

static bool read_optional_number(const char *file, const char *attr, bool *present, uint64_t *value,
				 GError **error)
{
	g_autofree char *text = NULL;

	if (!read_optional_string(file, attr, present, &text, error))
		return false;
	return !*present || parse_number(attr, text, G_MAXUINT64, value, error);
}

/* The UUID as the daemon gives it: 36 characters of hex digits and dashes. */
static bool read_uuid(const char *file, struct ctl_status *status, GError **error)
{
	bool present;

	if (!read_optional_string(file, "uuid", &present, &status->uuid, error))
		return false;
	/* Empty with metadata = none: no superblocks, no UUID. */
	if (present && *status->uuid == '\0') {
		g_clear_pointer(&status->uuid, g_free);
		present = false;
	}
	if (present && !g_uuid_string_is_valid(status->uuid)) {
		g_autofree char *shown = ctl_printable(status->uuid);

		g_set_error(error, CTL_ERROR, CTL_ERROR_VALUE, "%suuid is '%s', not a UUID",
			    CTL_XATTR_PREFIX, shown);
		return false;
	}
	return true;
}

/* resync.source: a leg index, or empty when no resync runs. */
static bool read_resync_source(const char *file, struct ctl_status *status, GError **error)
{
	g_autofree char *text = NULL;
	bool present;
	uint64_t index;

	status->resync_source = -1;
	if (!read_optional_string(file, "resync.source", &present, &text, error))
		return false;
	if (!present || *text == '\0')
		return true;
	if (!parse_number("resync.source", text, CTL_MAX_LEGS - 1, &index, error))
		return false;
	status->resync_source = (int)index;
	return true;
}

/* replace.NAME: a leg index, or none (-1) when no replace runs. */
static bool read_replace_leg(const char *file, const char *attr, bool *present, int *leg,
			     GError **error)
{
	g_autofree char *text = NULL;
	uint64_t index;

	*leg = -1;
	if (!read_optional_string(file, attr, present, &text, error))
		return false;
	if (!*present || strcmp(text, "none") == 0)
		return true;
	if (!parse_number(attr, text, CTL_MAX_LEGS - 1, &index, error))
		return false;
	*leg = (int)index;
	return true;
}

/* The replace attributes come as a pair: leg and by, or none (an older daemon). */
static bool read_replace(const char *file, struct ctl_status *status, GError **error)
{
	bool has_by = false;

	if (!read_replace_leg(file, "replace.leg", &status->has_replace, &status->replace_leg,
			      error) ||
	    !read_replace_leg(file, "replace.by", &has_by, &status->replace_by, error))
		return false;
	status->has_replace = status->has_replace && has_by;
	return true;
}

/* The resync attributes come as a set: done and total, or none. */
static bool read_resync(const char *file, struct ctl_status *status, GError **error)
{
	bool has_total = false, has_rate = false, has_ranges = false;

	if (!read_optional_number(file, "resync.done", &status->has_resync, &status->resync_done,
				  error) ||
	    !read_optional_number(file, "resync.total", &has_total, &status->resync_total, error) ||
	    !read_optional_number(file, "resync.rate", &has_rate, &status->resync_rate, error) ||
	    !read_optional_number(file, "resync.rate_min", &status->has_rate_min,
				  &status->resync_rate_min, error) ||
	    !read_optional_number(file, "resync.rate_max", &status->has_rate_max,
				  &status->resync_rate_max, error) ||
	    !read_optional_number(file, "max_read_errors", &status->has_max_read_errors,
				  &status->max_read_errors, error))
		return false;
	status->has_resync = status->has_resync && has_total;
	if (!read_optional_number(file, "mismatch_cnt", &status->has_check, &status->mismatch_cnt,
				  error) ||
	    !read_optional_string(file, "mismatches", &has_ranges, &status->mismatches, error))
		return false;
	/* Both, or neither (an older daemon). */
	status->has_check = status->has_check && has_ranges;
	if (!has_rate)
		status->resync_rate = 0;
	return read_resync_source(file, status, error);
}

/* error_bits is "0x" and hex digits, up to one bit per leg. */
static bool read_bitset(const char *file, const char *attr, uint64_t *value, GError **error)
{
	g_autofree char *text = NULL;
	guint64 number;

	if (!read_string(file, attr, &text, error))
		return false;
	if ((strncmp(text, "0x", 2) != 0 && strncmp(text, "0X", 2) != 0) ||
	    !g_ascii_string_to_unsigned(text + 2, 16, 0, G_MAXUINT64, &number, NULL)) {
		g_autofree char *shown = ctl_printable(text);

		g_set_error(error, CTL_ERROR, CTL_ERROR_VALUE,
			    "%s%s is '%s', not a hexadecimal bitset like 0x2", CTL_XATTR_PREFIX,
			    attr, shown);
		return false;
	}
	*value = number;
	return true;
}

static bool read_leg(const char *file, struct ctl_leg_status *leg, GError **error)
{
	g_autofree char *name = g_strdup_printf("leg.%u.name", leg->index);
	g_autofree char *path = g_strdup_printf("leg.%u.path", leg->index);
	g_autofree char *state = g_strdup_printf("leg.%u.state", leg->index);
	g_autofree char *read_errors = g_strdup_printf("leg.%u.read_errors", leg->index);
	g_autofree char *write_errors = g_strdup_printf("leg.%u.write_errors", leg->index);

	g_autofree char *corrected = g_strdup_printf("leg.%u.corrected_errors", leg->index);
	g_autofree char *uuid = g_strdup_printf("leg.%u.uuid", leg->index);
	g_autofree char *resync = g_strdup_printf("leg.%u.resync", leg->index);
	g_autofree char *io_timeout = g_strdup_printf("leg.%u.io_timeout", leg->index);
	g_autofree char *slow_name = g_strdup_printf("leg.%u.slow", leg->index);
	g_autofree char *reconnect = g_strdup_printf("leg.%u.reconnect", leg->index);
	g_autofree char *slow = NULL;
	g_autofree char *behind_name = g_strdup_printf("leg.%u.behind", leg->index);
	g_autofree char *behind = NULL;
	g_autofree char *write_behind = g_strdup_printf("leg.%u.write_behind", leg->index);
	bool present;

	if (!read_string(file, name, &leg->name, error) ||
	    !read_string(file, path, &leg->path, error) ||
	    !read_string(file, state, &leg->state, error) ||
	    !read_number(file, read_errors, G_MAXUINT64, &leg->read_errors, error) ||
	    !read_number(file, write_errors, G_MAXUINT64, &leg->write_errors, error) ||
	    !read_optional_number(file, corrected, &leg->has_corrected, &leg->corrected_errors,
				  error) ||
	    !read_optional_string(file, uuid, &present, &leg->uuid, error) ||
	    !read_optional_string(file, resync, &present, &leg->resync, error) ||
	    !read_optional_string(file, io_timeout, &present, &leg->io_timeout, error) ||
	    !read_optional_string(file, slow_name, &present, &slow, error) ||
	    !read_optional_string(file, behind_name, &leg->has_behind, &behind, error) ||
	    !read_optional_number(file, write_behind, &leg->has_write_behind, &leg->write_behind,
				  error) ||
	    !read_optional_string(file, reconnect, &present, &leg->reconnect, error))
		return false;
	leg->slow = slow != NULL && strcmp(slow, "1") == 0;
	/* "3 writes, 12288 bytes": the count is what status shows. */
	if (leg->has_behind) {
		char *end = NULL;

		leg->behind_writes = g_ascii_strtoull(behind, &end, 10);
		if (end == behind || !g_str_has_prefix(end, " writes, ")) {
			g_autofree char *shown = ctl_printable(behind);

			g_set_error(error, CTL_ERROR, CTL_ERROR_VALUE,
				    "%s%s is '%s', not like '3 writes, 12288 bytes'",
				    CTL_XATTR_PREFIX, behind_name, shown);
			return false;
		}
	}
	/* Empty for an empty slot, or with metadata = none. */
	if (leg->uuid != NULL && *leg->uuid == '\0')
		g_clear_pointer(&leg->uuid, g_free);
	if (leg->uuid != NULL && !g_uuid_string_is_valid(leg->uuid)) {
		g_autofree char *shown = ctl_printable(leg->uuid);

		g_set_error(error, CTL_ERROR, CTL_ERROR_VALUE, "%s%s is '%s', not a UUID",
			    CTL_XATTR_PREFIX, uuid, shown);
		return false;
	}
	return true;
}

struct ctl_status *ctl_status_read(const char *file, GError **error)
{
	struct ctl_status *status = g_new0(struct ctl_status, 1);
	struct statfs fs;
	struct stat st;
	uint64_t nlegs;
	int r;

	status->file = g_strdup(file);
	if (stat(file, &st) < 0) {
		g_set_error(error, CTL_ERROR, CTL_ERROR_ACCESS, "%s", g_strerror(errno));
		goto fail;
	}
	status->size = st.st_size;
	status->live = statfs(file, &fs) == 0 && fs.f_type == FUSE_SUPER_MAGIC;

	/* state is what makes a file a mirror: tell "not a mirror" apart from a broken one. */
	r = ctl_read_attribute(file, "state", &status->state);
	if (r == -ENODATA || r == -ENOTSUP) {
		g_set_error(error, CTL_ERROR, CTL_ERROR_NOT_MIRROR,
			    "not a fusemirror mirror (it has no %sstate attribute)",
			    CTL_XATTR_PREFIX);
		goto fail;
	}
	if (r < 0) {
		g_set_error(error, CTL_ERROR,
			    r == -ENOENT || r == -EACCES ? CTL_ERROR_ACCESS : CTL_ERROR_VALUE,
			    "cannot read %sstate: %s", CTL_XATTR_PREFIX, g_strerror(-r));
		goto fail;
	}

	if (!read_string(file, "name", &status->name, error) ||
	    !read_number(file, "legs", CTL_MAX_LEGS, &nlegs, error) ||
	    !read_number(file, "events", G_MAXUINT64, &status->events, error) ||
	    !read_bitset(file, "error_bits", &status->error_bits, error) ||
	    !read_uuid(file, status, error) || !read_resync(file, status, error) ||
	    !read_replace(file, status, error))
		goto fail;

	status->nlegs = nlegs;
	status->legs = g_new0(struct ctl_leg_status, status->nlegs);
	for (unsigned int i = 0; i < status->nlegs; i++) {
		status->legs[i].index = i;
		if (!read_leg(file, &status->legs[i], error))
			goto fail;
	}
	return status;

fail:
	ctl_status_free(status);
	return NULL;
}

void ctl_status_free(struct ctl_status *status)
{
	if (status == NULL)
		return;
	for (unsigned int i = 0; i < status->nlegs && status->legs != NULL; i++) {
		g_free(status->legs[i].name);
		g_free(status->legs[i].path);
		g_free(status->legs[i].state);
		g_free(status->legs[i].io_timeout);
		g_free(status->legs[i].reconnect);
		g_free(status->legs[i].uuid);
		g_free(status->legs[i].resync);
	}
	g_free(status->legs);
	g_free(status->mismatches);
	g_free(status->file);
	g_free(status->name);
	g_free(status->state);
	g_free(status->uuid);
	g_free(status);
}

const struct ctl_leg_status *ctl_status_find_leg(const struct ctl_status *status, const char *leg)
{
	guint64 index;

	/* A name wins over an index: a leg may well be called "1". */
	for (unsigned int i = 0; i < status->nlegs; i++)
		if (strcmp(status->legs[i].name, leg) == 0)
			return &status->legs[i];
	if (g_ascii_string_to_unsigned(leg, 10, 0, G_MAXUINT, &index, NULL) &&
	    index < status->nlegs)
		return &status->legs[index];
	return NULL;
}

char *ctl_status_leg_choices(const struct ctl_status *status)
{
	GString *text = g_string_new(NULL);

	for (unsigned int i = 0; i < status->nlegs; i++) {
		g_autofree char *name = ctl_printable(status->legs[i].name);

		g_string_append_printf(text, "%s%s (%u)", i > 0 ? ", " : "", name,
				       status->legs[i].index);
	}
	return g_string_free(text, FALSE);
}

bool ctl_status_resyncing(const struct ctl_status *status)
{
	return strcmp(status->state, "resyncing") == 0;
}

int ctl_status_exit_code(const struct ctl_status *status)
{
	if (strcmp(status->state, "clean") == 0)
		return CTL_STATUS_CLEAN;
	if (strcmp(status->state, "failed") == 0)
		return CTL_STATUS_FAILED;
	/* degraded, resyncing, checking, and whatever a newer daemon reports: needs a look. */
	return CTL_STATUS_DEGRADED;
}
