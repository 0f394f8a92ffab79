/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Keeping a config file true: rewrite its [leg NAME] groups to the legs a mirror has now.
 *
 * The rewrite edits the text, not a GKeyFile: g_key_file_to_data() writes every "key = value" as
 * "key=value" and leaves the comments of a removed group behind, so a round trip through it would
 * change lines nobody asked to change.  Here only the lines of the legs that changed are touched:
 * a kept group has its path or write-mostly value replaced in place (its other keys, comments and
 * spacing stay), a removed group goes with the comment lines just above its header, a new group is
 * appended at the end.  GKeyFile still does the escaping of values, and the result is parsed again
 * before anything is written: a rewrite that would not read back as the requested legs is refused.
 *
 * The file is replaced atomically: a temporary file in the same directory with the old file's
 * mode and owner, fsync, rename over the old one, fsync the directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "config-internal.h"

#define LEG_GROUP_PREFIX "leg "

enum line_kind {
	LINE_BLANK,
	LINE_COMMENT,
	LINE_GROUP,
	LINE_KEY,
};

/* One line of the file, as written. */
struct line {
	const char *text; /* not NUL-terminated */
	gsize length;	  /* without the "\n" (a "\r" before it is part of the text) */
	bool newline;	  /* followed by "\n" (the last line may not be) */
	enum line_kind kind;
	char *name; /* LINE_GROUP: between the brackets; LINE_KEY: the key */
};

/* The text of one output line: an original line, or a replacement. */
struct rewrite {
	struct line *lines;
	unsigned int num_lines;
	GString *out;
};

static void lines_free(struct line *lines, unsigned int num_lines)
{
	for (unsigned int i = 0; i < num_lines; i++)
		g_free(lines[i].name);
	g_free(lines);
}

/* The same grammar as config_scan(): the file has passed config_parse() already. */
static struct line *split_lines(const char *data, gsize length, unsigned int *num_lines)
{
	GArray *lines = g_array_new(FALSE, TRUE, sizeof(struct line));
	const char *p = data, *end = data + length;

	while (p < end) {
		const char *eol = memchr(p, '\n', end - p);
		const char *start = p, *stop;
		struct line line = {.text = p};

		if (eol == NULL)
			eol = end;
		line.length = eol - p;
		line.newline = eol < end;
		stop = eol;
		while (stop > start && g_ascii_isspace(stop[-1]))
			stop--;
		while (start < stop && g_ascii_isspace(*start))
			start++;
		if (start == stop) {
			line.kind = LINE_BLANK;
		} else if (*start == '#') {
			line.kind = LINE_COMMENT;
		} else if (*start == '[') {
			line.kind = LINE_GROUP;
			line.name = g_strndup(start + 1, stop - start - 2);
		} else {
			const char *key_end = memchr(start, '=', stop - start);

			while (key_end > start && g_ascii_isspace(key_end[-1]))
				key_end--;
			line.kind = LINE_KEY;
			line.name = g_strndup(start, key_end - start);
		}
		g_array_append_val(lines, line);
		p = eol < end ? eol + 1 : end;
	}
	*num_lines = lines->len;
	return (struct line *)g_array_free(lines, FALSE);
}

char *config_escape_value(const char *value)
{
	g_autoptr(GKeyFile) keyfile = g_key_file_new();

	g_key_file_set_string(keyfile, "g", "k", value);
	return g_key_file_get_value(keyfile, "g", "k", NULL);
}

const struct leg_config *config_find_leg(const struct leg_config *legs, unsigned int num_legs,
					 const char *name)
{
	for (unsigned int i = 0; i < num_legs; i++)
		if (strcmp(legs[i].name, name) == 0)
			return &legs[i];
	return NULL;
}

static bool is_leg_group(const struct line *line)
{
	return line->kind == LINE_GROUP && g_str_has_prefix(line->name, LEG_GROUP_PREFIX);
}

/* The first line of the comments right above the header at h (no blank line between). */
static unsigned int attached_start(const struct line *lines, unsigned int h)
{
	while (h > 0 && lines[h - 1].kind == LINE_COMMENT)
		h--;
	return h;
}

/* "key = " of a key line: everything up to the value (GKeyFile skips the space after '='). */
static gsize value_start(const struct line *line)
{
	const char *equals = memchr(line->text, '=', line->length);
	gsize at = equals - line->text + 1;

	while (at < line->length && (line->text[at] == ' ' || line->text[at] == '\t'))
		at++;
	return at;
}

/* The line ending kept from a line: "\r" of CRLF files. */
static const char *line_cr(const struct line *line)
{
	return line->length > 0 && line->text[line->length - 1] == '\r' ? "\r" : "";
}

static void append_key(GString *out, const char *indent, gsize indent_len, const char *key,
		       const char *separator, const char *value, const char *cr)
{
	g_autofree char *escaped = config_escape_value(value);

	g_string_append_len(out, indent, indent_len);
	g_string_append_printf(out, "%s%s%s%s\n", key, separator, escaped, cr);
}

/*
 * The lines of the leg group whose header is lines[h] and that ends before lines[end], with
 * path and write-mostly set to leg's.  Other keys and comments are copied as they are.
 */
static void rewrite_group(struct rewrite *rw, unsigned int h, unsigned int end,
			  const struct leg_config *now, const struct leg_config *leg)
{
	const struct line *lines = rw->lines;
	unsigned int last_key = h, path_line = 0;
	bool has_write_mostly = false;

	for (unsigned int i = h + 1; i < end; i++) {
		if (lines[i].kind != LINE_KEY)
			continue;
		last_key = i;
		if (strcmp(lines[i].name, "path") == 0)
			path_line = i;
		if (strcmp(lines[i].name, "write-mostly") == 0)
			has_write_mostly = true;
	}
	for (unsigned int i = h; i < end; i++) {
		const struct line *line = &lines[i];
		bool is_path = line->kind == LINE_KEY && strcmp(line->name, "path") == 0;
		bool is_wm = line->kind == LINE_KEY && strcmp(line->name, "write-mostly") == 0;

		if (is_path && strcmp(now->path, leg->path) != 0) {
			g_string_append_len(rw->out, line->text, value_start(line));
			append_key(rw->out, "", 0, "", "", leg->path, line_cr(line));
		} else if (is_wm && now->write_mostly != leg->write_mostly) {
			g_string_append_len(rw->out, line->text, value_start(line));
			append_key(rw->out, "", 0, "", "", leg->write_mostly ? "true" : "false",
				   line_cr(line));
		} else {
			g_string_append_len(rw->out, line->text, line->length);
			if (line->newline)
				g_string_append_c(rw->out, '\n');
		}
		if (i == last_key && !has_write_mostly && leg->write_mostly) {
			/* Written as the path line is: same indentation and " = ". */
			const struct line *pl = &lines[path_line];
			gsize indent = strspn(pl->text, " \t");
			gsize sep_start = indent + strlen("path");
			g_autofree char *separator =
			    g_strndup(pl->text + sep_start, value_start(pl) - sep_start);

			append_key(rw->out, pl->text, indent, "write-mostly", separator, "true",
				   line_cr(pl));
		}
	}
}

/* A new [leg NAME] group at the end, after a blank line. */
static void append_group(GString *out, const struct leg_config *leg)
{
	if (out->len > 0 && out->str[out->len - 1] != '\n')
		g_string_append_c(out, '\n');
	if (out->len > 0 && !(out->len >= 2 && out->str[out->len - 2] == '\n'))
		g_string_append_c(out, '\n');
	g_string_append_printf(out, "[" LEG_GROUP_PREFIX "%s]\n", leg->name);
	append_key(out, "", 0, "path", " = ", leg->path, "");
	if (leg->write_mostly)
		append_key(out, "", 0, "write-mostly", " = ", "true", "");
}

/* Whether config has exactly legs (by name, with the same path and write-mostly). */
static bool same_legs(const struct mirror_config *config, const struct leg_config *legs,
		      unsigned int num_legs)
{
	if (config->num_legs != num_legs)
		return false;
	for (unsigned int i = 0; i < num_legs; i++) {
		const struct leg_config *got =
		    config_find_leg(config->legs, config->num_legs, legs[i].name);

		if (got == NULL || strcmp(got->path, legs[i].path) != 0 ||
		    got->write_mostly != legs[i].write_mostly)
			return false;
	}
	return true;
}

char *config_rewrite_legs(const char *data, gsize length, const char *filename,
			  const struct leg_config *legs, unsigned int num_legs, GError **error)
{
	g_autoptr(GError) local = NULL;
	struct mirror_config *now, *after;
	struct rewrite rw = {0};
	g_autofree bool *drop = NULL;
	unsigned int first_group;
	bool ok;

	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	/* Only a valid config is edited: its groups and keys are then what split_lines() sees. */
	now = config_parse(data, length, filename, &local);
	if (now == NULL) {
		g_set_error(error, CONFIG_ERROR, local->code, "not rewritten: %s", local->message);
		return NULL;
	}
	rw.lines = split_lines(data, length, &rw.num_lines);
	rw.out = g_string_sized_new(length + 256);
	drop = g_new0(bool, rw.num_lines + 1);

	for (first_group = 0; first_group < rw.num_lines; first_group++)
		if (rw.lines[first_group].kind == LINE_GROUP)
			break;

	/*
	 * Mark the lines of the groups that go: the header, the keys, and the comments that touch
	 * them (above the header, among and right below the keys), with the blank lines above.
	 * A comment after a blank line may be about what follows: it stays.
	 */
	for (unsigned int h = first_group; h < rw.num_lines;) {
		unsigned int next = h + 1, last_key = h, from, to;

		while (next < rw.num_lines && rw.lines[next].kind != LINE_GROUP) {
			if (rw.lines[next].kind == LINE_KEY)
				last_key = next;
			next++;
		}
		if (is_leg_group(&rw.lines[h]) &&
		    config_find_leg(legs, num_legs, rw.lines[h].name + strlen(LEG_GROUP_PREFIX)) ==
			NULL) {
			from = attached_start(rw.lines, h);
			while (from > 0 && rw.lines[from - 1].kind == LINE_BLANK)
				from--;
			to = last_key + 1;
			while (to < next && rw.lines[to].kind == LINE_COMMENT)
				to++;
			/* At the top of the file, the blank lines after it go instead. */
			if (from == 0)
				while (to < next && rw.lines[to].kind == LINE_BLANK)
					to++;
			for (unsigned int i = from; i < to; i++)
				drop[i] = true;
		}
		h = next;
	}

	for (unsigned int i = 0; i < rw.num_lines;) {
		const struct line *line = &rw.lines[i];
		unsigned int next = i + 1;

		if (drop[i]) {
			i++;
			continue;
		}
		if (is_leg_group(line)) {
			const char *name = line->name + strlen(LEG_GROUP_PREFIX);
			const struct leg_config *leg = config_find_leg(legs, num_legs, name);

			while (next < rw.num_lines && rw.lines[next].kind != LINE_GROUP &&
			       !drop[next])
				next++;
			rewrite_group(&rw, i, next, config_find_leg(now->legs, now->num_legs, name),
				      leg);
			i = next;
			continue;
		}
		g_string_append_len(rw.out, line->text, line->length);
		if (line->newline)
			g_string_append_c(rw.out, '\n');
		i = next;
	}
	for (unsigned int i = 0; i < num_legs; i++)
		if (config_find_leg(now->legs, now->num_legs, legs[i].name) == NULL)
			append_group(rw.out, &legs[i]);

	/* What is written must read back as asked, and as valid as before. */
	g_clear_error(&local);
	after = config_parse(rw.out->str, rw.out->len, filename, &local);
	ok = after != NULL && same_legs(after, legs, num_legs);
	if (after == NULL)
		g_set_error(error, CONFIG_ERROR, local->code,
			    "not rewritten: the new legs would not make a valid config: %s",
			    local->message);
	else if (!ok)
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_INVALID,
			    "%s: not rewritten: the rewritten file does not read back as the "
			    "mirror's legs",
			    filename);
	config_free(after);
	config_free(now);
	lines_free(rw.lines, rw.num_lines);
	if (!ok) {
		g_string_free(rw.out, TRUE);
		return NULL;
	}
	return g_string_free(rw.out, FALSE);
}

static gboolean io_error(GError **error, const char *path, const char *what, int err)
{
	g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_IO, "%s: not rewritten: %s: %s", path, what,
		    g_strerror(err));
	return FALSE;
}

/* Write data to a new file beside path with st's mode and owner, then rename it over path. */
static gboolean replace_file(const char *path, const struct stat *st, const char *data,
			     gsize length, GError **error)
{
	g_autofree char *dir = g_path_get_dirname(path);
	g_autofree char *base = g_path_get_basename(path);
	g_autofree char *tmp = g_strdup_printf("%s/.%s.XXXXXX", dir, base);
	gsize done = 0;
	int fd, dfd, err;

	fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return io_error(error, path, "cannot create a temporary file in its directory",
				errno);
	/* Owner first: fchown may clear set-id bits that fchmod then restores. */
	if ((fchown(fd, st->st_uid, st->st_gid) < 0 && errno != EPERM) ||
	    fchmod(fd, st->st_mode & 07777) < 0)
		goto fail;
	while (done < length) {
		ssize_t n = write(fd, data + done, length - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		done += n;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	/* The rename is durable once the directory is. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		err = errno;
		if (dfd >= 0)
			close(dfd);
		return io_error(error, path, "written, but its directory cannot be synced", err);
	}
	close(dfd);
	return TRUE;

fail:
	err = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return io_error(error, path, "cannot write the new version", err);
}

gboolean config_save_legs(const char *path, const struct leg_config *legs, unsigned int num_legs,
			  gboolean *changed, GError **error)
{
	g_autofree char *data = NULL, *text = NULL;
	g_autoptr(GError) local = NULL;
	char *real;
	struct stat st;
	gsize length;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (changed != NULL)
		*changed = FALSE;

	/* A symbolic link stays one: its target is what is rewritten. */
	real = realpath(path, NULL);
	if (real == NULL)
		return io_error(error, path, "cannot resolve it", errno);
	if (stat(real, &st) < 0) {
		io_error(error, path, "cannot stat it", errno);
		free(real);
		return FALSE;
	}
	if (!S_ISREG(st.st_mode)) {
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_IO,
			    "%s: not rewritten: not a regular file", path);
		free(real);
		return FALSE;
	}
	if (!g_file_get_contents(real, &data, &length, &local)) {
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_IO, "%s: not rewritten: %s", path,
			    local->message);
		free(real);
		return FALSE;
	}
	text = config_rewrite_legs(data, length, path, legs, num_legs, error);
	if (text == NULL) {
		free(real);
		return FALSE;
	}
	if (strcmp(text, data) == 0) {
		free(real);
		return TRUE;
	}
	if (!replace_file(real, &st, text, strlen(text), error)) {
		free(real);
		return FALSE;
	}
	if (changed != NULL)
		*changed = TRUE;
	free(real);
	return TRUE;
}
