/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Runtime records of running daemons, and who holds a leg (runtime.h).
 *
 * A record is a key file:
 *
 *	[daemon]
 *	pid = 1234
 *	start-time = 5678	(clock ticks after boot: /proc/PID/stat's 22nd field)
 *	name = data
 *	mountpoint = /srv/data.img
 *	config = /etc/fusemirror/data.conf
 *
 *	[leg 0]
 *	name = a
 *	path = /dev/loop3
 *	rdev = 7:3		(a block device; a file has "dev = MAJ:MIN" and "inode = N")
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <dmio.h>

#include "config/runtime.h"

#define GROUP_DAEMON "daemon"

struct runtime_leg {
	char *name;
	char *path;
	bool is_block;
	dev_t dev; /* st_rdev of a block device, st_dev of a file */
	ino_t ino; /* files only */
};

struct runtime_record {
	GMutex lock; /* protects everything below: the daemon rewrites it from event threads */
	char *name;
	char *mountpoint;
	char *config;
	GArray *legs; /* of struct runtime_leg */
	char *file;   /* the record's path once written, else NULL */
};

const char *runtime_dir(void)
{
	const char *dir = g_getenv(RUNTIME_DIR_ENV);

	return dir != NULL && *dir != '\0' ? dir : RUNTIME_DIR;
}

/* The 22nd field of /proc/PID/stat (after the parenthesised command name), or 0. */
static guint64 process_start_time(pid_t pid)
{
	char path[64], *contents = NULL, *p;
	guint64 start = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!g_file_get_contents(path, &contents, NULL, NULL))
		return 0;
	p = strrchr(contents, ')');
	if (p != NULL) {
		char **fields = g_strsplit(p + 2, " ", 21);

		/* fields[0] is the 3rd field (state): the start time is fields[19]. */
		if (g_strv_length(fields) > 19)
			start = g_ascii_strtoull(fields[19], NULL, 10);
		g_strfreev(fields);
	}
	g_free(contents);
	return start;
}

/* ---- A daemon's own record --------------------------------------------------------------- */

static void leg_clear(gpointer data)
{
	struct runtime_leg *leg = data;

	g_free(leg->name);
	g_free(leg->path);
}

struct runtime_record *runtime_record_new(const char *name, const char *mountpoint,
					  const char *config)
{
	struct runtime_record *rec = g_new0(struct runtime_record, 1);

	g_mutex_init(&rec->lock);
	rec->name = g_strdup(name);
	rec->mountpoint = g_strdup(mountpoint);
	rec->config = g_strdup(config);
	rec->legs = g_array_new(FALSE, TRUE, sizeof(struct runtime_leg));
	g_array_set_clear_func(rec->legs, leg_clear);
	return rec;
}

void runtime_record_clear_legs(struct runtime_record *rec)
{
	g_mutex_lock(&rec->lock);
	g_array_set_size(rec->legs, 0);
	g_mutex_unlock(&rec->lock);
}

void runtime_record_add_leg(struct runtime_record *rec, const char *name, const char *path)
{
	struct runtime_leg leg = {0};
	struct stat st;

	/* An NBD export is no local file: it cannot be claimed, so no record holds it. */
	if (path == NULL || *path == '\0' || dmio_path_is_uri(path) || stat(path, &st) < 0)
		return;
	leg.is_block = S_ISBLK(st.st_mode);
	leg.dev = leg.is_block ? st.st_rdev : st.st_dev;
	leg.ino = leg.is_block ? 0 : st.st_ino;
	leg.name = g_strdup(name != NULL ? name : "");
	leg.path = g_strdup(path);
	g_mutex_lock(&rec->lock);
	g_array_append_val(rec->legs, leg);
	g_mutex_unlock(&rec->lock);
}

static char *dev_text(dev_t dev)
{
	return g_strdup_printf("%u:%u", major(dev), minor(dev));
}

static char *record_to_data(struct runtime_record *rec, gsize *length)
{
	GKeyFile *kf = g_key_file_new();
	char *data;

	g_key_file_set_comment(kf, NULL, NULL,
			       " A running fusemirrord and the legs it holds: see fusemirrord(8)",
			       NULL);
	g_key_file_set_int64(kf, GROUP_DAEMON, "pid", getpid());
	g_key_file_set_uint64(kf, GROUP_DAEMON, "start-time", process_start_time(getpid()));
	g_key_file_set_string(kf, GROUP_DAEMON, "name", rec->name);
	g_key_file_set_string(kf, GROUP_DAEMON, "mountpoint", rec->mountpoint);
	g_key_file_set_string(kf, GROUP_DAEMON, "config", rec->config);
	for (guint i = 0; i < rec->legs->len; i++) {
		const struct runtime_leg *leg = &g_array_index(rec->legs, struct runtime_leg, i);
		char *group = g_strdup_printf("leg %u", i);
		char *dev = dev_text(leg->dev);

		g_key_file_set_string(kf, group, "name", leg->name);
		g_key_file_set_string(kf, group, "path", leg->path);
		if (leg->is_block) {
			g_key_file_set_string(kf, group, "rdev", dev);
		} else {
			g_key_file_set_string(kf, group, "dev", dev);
			g_key_file_set_uint64(kf, group, "inode", leg->ino);
		}
		g_free(dev);
		g_free(group);
	}
	data = g_key_file_to_data(kf, length, NULL);
	g_key_file_free(kf);
	return data;
}

bool runtime_record_write(struct runtime_record *rec, GError **error)
{
	const char *dir = runtime_dir();
	char *file, *data;
	gsize length;
	bool ok;

	if (g_mkdir_with_parents(dir, 0755) < 0) {
		int err = errno;

		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
			    "cannot create %s: %s", dir, g_strerror(err));
		return false;
	}
	file = g_strdup_printf("%s/%d" RUNTIME_RECORD_EXT, dir, (int)getpid());
	g_mutex_lock(&rec->lock);
	data = record_to_data(rec, &length);
	/* A temporary file in the same directory, fsync'ed and renamed: readers see all or none. */
	ok = g_file_set_contents_full(file, data, (gssize)length, G_FILE_SET_CONTENTS_CONSISTENT,
				      0644, error);
	if (ok) {
		g_free(rec->file);
		rec->file = g_steal_pointer(&file);
	}
	g_mutex_unlock(&rec->lock);
	g_free(data);
	g_free(file);
	return ok;
}

void runtime_record_remove(struct runtime_record *rec)
{
	g_mutex_lock(&rec->lock);
	if (rec->file != NULL && unlink(rec->file) < 0 && errno != ENOENT)
		g_warning("cannot remove the runtime record %s: %s", rec->file, g_strerror(errno));
	g_clear_pointer(&rec->file, g_free);
	g_mutex_unlock(&rec->lock);
}

void runtime_record_free(struct runtime_record *rec)
{
	if (rec == NULL)
		return;
	g_array_unref(rec->legs);
	g_free(rec->name);
	g_free(rec->mountpoint);
	g_free(rec->config);
	g_free(rec->file);
	g_mutex_clear(&rec->lock);
	g_free(rec);
}

/* ---- Lookups --------------------------------------------------------------------------------- */

void runtime_holder_clear(struct runtime_holder *holder)
{
	g_clear_pointer(&holder->name, g_free);
	g_clear_pointer(&holder->mountpoint, g_free);
	g_clear_pointer(&holder->config, g_free);
	g_clear_pointer(&holder->leg, g_free);
	holder->pid = 0;
}

/* Whether the record's pid still runs the process that wrote it. */
static bool record_alive(GKeyFile *kf, pid_t *pid)
{
	gint64 p = g_key_file_get_int64(kf, GROUP_DAEMON, "pid", NULL);
	guint64 start = g_key_file_get_uint64(kf, GROUP_DAEMON, "start-time", NULL);

	*pid = (pid_t)p;
	if (p <= 0 || p > INT32_MAX)
		return false;
	if (kill((pid_t)p, 0) < 0 && errno == ESRCH)
		return false;
	/* The pid was reused by another process since. */
	return start == 0 || process_start_time((pid_t)p) == start;
}

/* Whether leg group of kf is the file or device st. */
static bool leg_matches(GKeyFile *kf, const char *group, const struct stat *st)
{
	char *text;
	unsigned int maj, min;
	bool same = false;

	if (S_ISBLK(st->st_mode)) {
		text = g_key_file_get_string(kf, group, "rdev", NULL);
		same = text != NULL && sscanf(text, "%u:%u", &maj, &min) == 2 &&
		       makedev(maj, min) == st->st_rdev;
	} else {
		text = g_key_file_get_string(kf, group, "dev", NULL);
		same = text != NULL && sscanf(text, "%u:%u", &maj, &min) == 2 &&
		       makedev(maj, min) == st->st_dev &&
		       g_key_file_get_uint64(kf, group, "inode", NULL) == (guint64)st->st_ino;
	}
	g_free(text);
	return same;
}

static void fill_holder(GKeyFile *kf, pid_t pid, const char *leg_group,
			struct runtime_holder *holder)
{
	holder->pid = pid;
	holder->name = g_key_file_get_string(kf, GROUP_DAEMON, "name", NULL);
	holder->mountpoint = g_key_file_get_string(kf, GROUP_DAEMON, "mountpoint", NULL);
	holder->config = g_key_file_get_string(kf, GROUP_DAEMON, "config", NULL);
	holder->leg = leg_group != NULL ? g_key_file_get_string(kf, leg_group, "name", NULL) : NULL;
	if (holder->name == NULL)
		holder->name = g_strdup("");
	if (holder->mountpoint == NULL)
		holder->mountpoint = g_strdup("");
	if (holder->config == NULL)
		holder->config = g_strdup("");
}

/*
 * Walk the live records, other than this process's: leg_stat set, find the one listing it as a
 * leg; else the one whose mountpoint is mountpoint.  Dead records are removed on the way.
 */
static bool find_holder(const struct stat *leg_stat, const char *mountpoint,
			struct runtime_holder *holder)
{
	const char *dir = runtime_dir();
	const char *entry;
	bool found = false;
	GDir *d = g_dir_open(dir, 0, NULL);

	memset(holder, 0, sizeof(*holder));
	if (d == NULL)
		return false;
	while (!found && (entry = g_dir_read_name(d)) != NULL) {
		char *file, **groups;
		GKeyFile *kf;
		pid_t pid;

		/* Only "PID.record": temporary files of a record being written are skipped. */
		if (!g_str_has_suffix(entry, RUNTIME_RECORD_EXT) ||
		    strspn(entry, "0123456789") != strlen(entry) - strlen(RUNTIME_RECORD_EXT) ||
		    strlen(entry) == strlen(RUNTIME_RECORD_EXT))
			continue;
		file = g_build_filename(dir, entry, NULL);
		kf = g_key_file_new();
		if (!g_key_file_load_from_file(kf, file, G_KEY_FILE_NONE, NULL)) {
			g_key_file_free(kf);
			g_free(file);
			continue;
		}
		if (!record_alive(kf, &pid)) {
			/* Its daemon died without removing it (SIGKILL, a crash). */
			if (unlink(file) == 0)
				g_debug("removed the runtime record %s of a dead fusemirrord",
					file);
		} else if (pid != getpid()) {
			groups = g_key_file_get_groups(kf, NULL);
			for (char **g = groups; *g != NULL && !found; g++) {
				if (leg_stat != NULL && g_str_has_prefix(*g, "leg ") &&
				    leg_matches(kf, *g, leg_stat)) {
					fill_holder(kf, pid, *g, holder);
					found = true;
				}
			}
			g_strfreev(groups);
			if (!found && mountpoint != NULL) {
				char *mp =
				    g_key_file_get_string(kf, GROUP_DAEMON, "mountpoint", NULL);

				if (mp != NULL && strcmp(mp, mountpoint) == 0) {
					fill_holder(kf, pid, NULL, holder);
					found = true;
				}
				g_free(mp);
			}
		}
		g_key_file_free(kf);
		g_free(file);
	}
	g_dir_close(d);
	return found;
}

bool runtime_find_leg_holder(const char *path, struct runtime_holder *holder)
{
	struct stat st;

	memset(holder, 0, sizeof(*holder));
	if (stat(path, &st) < 0)
		return false;
	return find_holder(&st, NULL, holder);
}

bool runtime_find_mountpoint_holder(const char *mountpoint, struct runtime_holder *holder)
{
	return find_holder(NULL, mountpoint, holder);
}

char *runtime_printable(const char *text)
{
	GString *out = g_string_new(NULL);

	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			g_string_append_printf(out, "\\x%02x", *p);
		else
			g_string_append_c(out, (char)*p);
	}
	return g_string_free(out, FALSE);
}

static void mount_free(gpointer data)
{
	struct runtime_mount *mount = data;

	g_free(mount->point);
	g_free(mount->type);
	g_free(mount->source);
	g_free(mount);
}

GPtrArray *runtime_read_mounts(GError **error)
{
	g_autofree char *contents = NULL;
	g_auto(GStrv) lines = NULL;
	GPtrArray *mounts;

	if (!g_file_get_contents("/proc/self/mountinfo", &contents, NULL, error))
		return NULL;
	mounts = g_ptr_array_new_with_free_func(mount_free);
	lines = g_strsplit(contents, "\n", -1);
	for (char **l = lines; *l != NULL; l++) {
		g_auto(GStrv) fields = g_strsplit(*l, " ", -1);
		guint n = g_strv_length(fields), i = 6;
		struct runtime_mount *mount;
		unsigned int maj, min;

		if (n < 5 || sscanf(fields[2], "%u:%u", &maj, &min) != 2)
			continue;
		while (i < n && strcmp(fields[i], "-") != 0)
			i++;
		mount = g_new0(struct runtime_mount, 1);
		mount->dev = makedev(maj, min);
		mount->point = g_strcompress(fields[4]);
		mount->type = g_strdup(i + 1 < n ? fields[i + 1] : "");
		mount->source = i + 2 < n ? g_strcompress(fields[i + 2]) : g_strdup("");
		g_ptr_array_add(mounts, mount);
	}
	return mounts;
}

/* Where the block device rdev is mounted (the first mount of it), or NULL. */
static char *mounted_on(dev_t rdev)
{
	g_autoptr(GPtrArray) mounts = runtime_read_mounts(NULL);

	for (guint i = 0; mounts != NULL && i < mounts->len; i++) {
		const struct runtime_mount *mount = g_ptr_array_index(mounts, i);

		if (mount->dev == rdev)
			return g_strdup(mount->point);
	}
	return NULL;
}

/* The pid of a classic fcntl lock that conflicts with a write lock on path, or 0. */
static pid_t lock_owner(const char *path)
{
	struct flock lock = {
	    .l_type = F_WRLCK,
	    .l_whence = SEEK_SET,
	};
	pid_t pid = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return 0;
	/* Open-file-description locks show pid -1: only a POSIX lock names its process. */
	if (fcntl(fd, F_GETLK, &lock) == 0 && lock.l_type != F_UNLCK && lock.l_pid > 0)
		pid = lock.l_pid;
	close(fd);
	return pid;
}

char *runtime_describe_holder(const char *path)
{
	struct runtime_holder holder;
	struct stat st;
	char *text;

	if (runtime_find_leg_holder(path, &holder)) {
		char *name = runtime_printable(holder.name);
		char *mountpoint = runtime_printable(holder.mountpoint);

		text = g_strdup_printf("is held by mirror '%s' at %s (pid %d)", name, mountpoint,
				       (int)holder.pid);
		g_free(name);
		g_free(mountpoint);
		runtime_holder_clear(&holder);
		return text;
	}
	if (stat(path, &st) == 0 && S_ISBLK(st.st_mode)) {
		char *where = mounted_on(st.st_rdev);

		if (where != NULL) {
			char *shown = runtime_printable(where);

			text = g_strdup_printf("is mounted on %s", shown);
			g_free(shown);
			g_free(where);
			return text;
		}
		return g_strdup("is held by another program (opened exclusively)");
	}
	if (stat(path, &st) == 0) {
		pid_t pid = lock_owner(path);

		if (pid > 0)
			return g_strdup_printf("is held by another program (pid %d, locked)",
					       (int)pid);
	}
	return g_strdup("is held by another program (locked)");
}
