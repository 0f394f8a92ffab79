/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The opens of the mirror file and what holds it (opens.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fuse/control.h"
#include "fuse/opens.h"

/* At most this many holders are named in a message; the rest are counted. */
#define MAX_NAMED 4

struct opener {
	pid_t pid;
	char *comm; /* escaped: a process names itself */
};

struct opens {
	char *path;
	int idle_fd;	     /* eventfd: written when count drops to 0 */
	GMutex lock;	     /* protects what follows */
	GHashTable *openers; /* id -> struct opener */
	uint64_t next_id;
	bool stopping; /* no new opens */
};

static void opener_free(gpointer data)
{
	struct opener *o = data;

	g_free(o->comm);
	g_free(o);
}

/* The command name of pid, escaped, or "?" when it is gone. */
static char *process_comm(pid_t pid)
{
	g_autofree char *file = g_strdup_printf("/proc/%d/comm", (int)pid);
	g_autofree char *text = NULL;

	if (!g_file_get_contents(file, &text, NULL, NULL))
		return g_strdup("?");
	g_strchomp(text);
	return control_escape(text);
}

struct opens *opens_new(const char *path, GError **error)
{
	struct opens *opens;
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	if (fd < 0) {
		int err = errno;

		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err), "eventfd: %s",
			    g_strerror(err));
		return NULL;
	}
	opens = g_new0(struct opens, 1);
	opens->path = g_strdup(path);
	opens->idle_fd = fd;
	g_mutex_init(&opens->lock);
	opens->openers = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, opener_free);
	opens->next_id = 1;
	return opens;
}

void opens_free(struct opens *opens)
{
	if (opens == NULL)
		return;
	g_hash_table_destroy(opens->openers);
	g_mutex_clear(&opens->lock);
	close(opens->idle_fd);
	g_free(opens->path);
	g_free(opens);
}

uint64_t opens_add(struct opens *opens, pid_t pid)
{
	struct opener *o = g_new0(struct opener, 1);
	uint64_t *key = g_new(uint64_t, 1);
	uint64_t id = 0;

	/* /proc read outside the lock. */
	o->pid = pid;
	o->comm = process_comm(pid);
	g_mutex_lock(&opens->lock);
	if (!opens->stopping) {
		id = opens->next_id++;
		*key = id;
		g_hash_table_insert(opens->openers, key, o);
		key = NULL;
		o = NULL;
	}
	g_mutex_unlock(&opens->lock);
	g_free(key);
	if (o != NULL)
		opener_free(o);
	return id;
}

char *opens_export(struct opens *opens)
{
	GString *s = g_string_new(NULL);
	GHashTableIter iter;
	gpointer key, value;

	g_mutex_lock(&opens->lock);
	g_string_append_printf(s, "%" G_GUINT64_FORMAT, opens->next_id);
	g_hash_table_iter_init(&iter, opens->openers);
	while (g_hash_table_iter_next(&iter, &key, &value))
		g_string_append_printf(s, ",%" G_GUINT64_FORMAT ":%d", *(uint64_t *)key,
				       (int)((struct opener *)value)->pid);
	g_mutex_unlock(&opens->lock);
	return g_string_free(s, FALSE);
}

bool opens_restore(struct opens *opens, const char *text)
{
	g_auto(GStrv) items = g_strsplit(text, ",", -1);
	guint64 next, id, pid;

	if (items[0] == NULL ||
	    !g_ascii_string_to_unsigned(items[0], 10, 1, G_MAXUINT64, &next, NULL))
		return false;
	for (guint i = 1; items[i] != NULL; i++) {
		char *colon = strchr(items[i], ':');

		if (colon == NULL)
			return false;
		*colon = '\0';
		if (!g_ascii_string_to_unsigned(items[i], 10, 1, next - 1, &id, NULL) ||
		    !g_ascii_string_to_unsigned(colon + 1, 10, 0, G_MAXINT32, &pid, NULL))
			return false;
	}
	g_mutex_lock(&opens->lock);
	opens->next_id = next;
	g_mutex_unlock(&opens->lock);
	for (guint i = 1; items[i] != NULL; i++) {
		struct opener *o = g_new0(struct opener, 1);
		uint64_t *key = g_new(uint64_t, 1);

		*key = g_ascii_strtoull(items[i], NULL, 10);
		o->pid = (pid_t)g_ascii_strtoull(items[i] + strlen(items[i]) + 1, NULL, 10);
		/* /proc read outside the lock. */
		o->comm = process_comm(o->pid);
		g_mutex_lock(&opens->lock);
		g_hash_table_insert(opens->openers, key, o);
		g_mutex_unlock(&opens->lock);
	}
	return true;
}

void opens_remove(struct opens *opens, uint64_t id)
{
	bool idle;

	g_mutex_lock(&opens->lock);
	idle = g_hash_table_remove(opens->openers, &id) && g_hash_table_size(opens->openers) == 0;
	g_mutex_unlock(&opens->lock);
	if (idle) {
		uint64_t one = 1;

		/* Only fails when the counter is full: the reader is woken already. */
		if (write(opens->idle_fd, &one, sizeof(one)) < 0)
			g_debug("opens: eventfd write: %s", g_strerror(errno));
	}
}

bool opens_stopping(struct opens *opens)
{
	bool stopping;

	g_mutex_lock(&opens->lock);
	stopping = opens->stopping;
	g_mutex_unlock(&opens->lock);
	return stopping;
}

unsigned int opens_count(struct opens *opens)
{
	unsigned int n;

	g_mutex_lock(&opens->lock);
	n = g_hash_table_size(opens->openers);
	g_mutex_unlock(&opens->lock);
	return n;
}

int opens_begin_stop(struct opens *opens, bool force, GError **error)
{
	g_autofree char *holders = NULL;
	bool busy;

	g_mutex_lock(&opens->lock);
	busy = !force && g_hash_table_size(opens->openers) > 0;
	if (!busy)
		opens->stopping = true;
	g_mutex_unlock(&opens->lock);
	if (!busy)
		return 0;
	holders = opens_describe(opens);
	g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s is in use: %s", opens->path,
		    holders);
	return -EBUSY;
}

int opens_idle_fd(struct opens *opens)
{
	return opens->idle_fd;
}

/* Whether the first line of file is text. */
static bool file_line_is(const char *file, const char *text)
{
	g_autofree char *contents = NULL;

	if (!g_file_get_contents(file, &contents, NULL, NULL))
		return false;
	contents[strcspn(contents, "\n")] = '\0';
	return strcmp(contents, text) == 0;
}

char **opens_find_loop_devices(const char *path)
{
	GPtrArray *found = g_ptr_array_new();
	GDir *dir = g_dir_open("/sys/block", 0, NULL);
	const char *name;

	while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
		g_autofree char *file = NULL;

		if (!g_str_has_prefix(name, "loop"))
			continue;
		file = g_strdup_printf("/sys/block/%s/loop/backing_file", name);
		if (file_line_is(file, path))
			g_ptr_array_add(found, g_strdup_printf("/dev/%s", name));
	}
	if (dir != NULL)
		g_dir_close(dir);
	g_ptr_array_add(found, NULL);
	return (char **)g_ptr_array_free(found, FALSE);
}

/* Whether process pid (a /proc entry name) has an fd whose target is path. */
static bool process_holds(const char *pid, const char *path)
{
	g_autofree char *fd_dir = g_strdup_printf("/proc/%s/fd", pid);
	GDir *dir = g_dir_open(fd_dir, 0, NULL);
	const char *fd;
	bool holds = false;

	while (dir != NULL && !holds && (fd = g_dir_read_name(dir)) != NULL) {
		g_autofree char *link = g_build_filename(fd_dir, fd, NULL);
		g_autofree char *target = g_file_read_link(link, NULL);

		holds = target != NULL && strcmp(target, path) == 0;
	}
	if (dir != NULL)
		g_dir_close(dir);
	return holds;
}

char **opens_find_processes(const char *path)
{
	GPtrArray *found = g_ptr_array_new();
	GDir *dir = g_dir_open("/proc", 0, NULL);
	const char *name;
	pid_t self = getpid();

	while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
		if (strspn(name, "0123456789") != strlen(name) || atoi(name) == (int)self)
			continue;
		if (process_holds(name, path)) {
			g_autofree char *comm = process_comm((pid_t)atoi(name));

			g_ptr_array_add(found, g_strdup_printf("%s (%s)", name, comm));
		}
	}
	if (dir != NULL)
		g_dir_close(dir);
	g_ptr_array_add(found, NULL);
	return (char **)g_ptr_array_free(found, FALSE);
}

/* "A, B and 3 more": the first MAX_NAMED of names. */
static void append_names(GString *s, char **names, const char *one, const char *many)
{
	guint n = g_strv_length(names);

	g_string_append(s, n == 1 ? one : many);
	for (guint i = 0; i < n && i < MAX_NAMED; i++)
		g_string_append_printf(s, "%s%s", i > 0 ? ", " : " ", names[i]);
	if (n > MAX_NAMED)
		g_string_append_printf(s, " and %u more", n - MAX_NAMED);
}

char *opens_describe(struct opens *opens)
{
	g_auto(GStrv) loops = opens_find_loop_devices(opens->path);
	g_auto(GStrv) procs = opens_find_processes(opens->path);
	GString *s = g_string_new(NULL);

	if (loops[0] != NULL) {
		append_names(s, loops, "loop device", "loop devices");
		g_string_append(s, loops[1] == NULL ? " is bound to it" : " are bound to it");
	}
	if (procs[0] != NULL) {
		if (s->len > 0)
			g_string_append(s, "; ");
		append_names(s, procs, "process", "processes");
		g_string_append(s, procs[1] == NULL ? " has it open" : " have it open");
	}
	if (s->len == 0) {
		GHashTableIter iter;
		gpointer value;
		unsigned int n, named = 0;

		/* Held from elsewhere (another pid namespace, a passed fd): say what we know. */
		g_mutex_lock(&opens->lock);
		n = g_hash_table_size(opens->openers);
		g_string_append_printf(s, "%u open%s", n, n == 1 ? "" : "s");
		g_hash_table_iter_init(&iter, opens->openers);
		while (named < MAX_NAMED && g_hash_table_iter_next(&iter, NULL, &value)) {
			struct opener *o = value;

			g_string_append_printf(s, "%s process %d (%s)",
					       named == 0 ? ", opened by" : ",", (int)o->pid,
					       o->comm);
			named++;
		}
		g_mutex_unlock(&opens->lock);
	}
	return g_string_free(s, FALSE);
}
