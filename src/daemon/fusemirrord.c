/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrord: assemble the mirror described by a config file and serve it as one file through
 * FUSE.  See fusemirrord(8).
 *
 * Exit status: 0 clean stop, 1 runtime failure, 2 usage error, 3 in use (a leg or the mountpoint
 * is held by another mirror or program), 78 bad configuration.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <syslog.h>
#include <unistd.h>

#include <dmio.h>

#include "config/config.h"
#include "config/runtime.h"
#include "daemon/log.h"
#include "daemon/notify.h"
#include "daemon/reload.h"
#include "daemon/takeover.h"
#include "daemon/watchdog.h"
#include "daemon/save-config.h"
#include "fuse/frontend.h"
#include "mirror/mirror.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2
#define EXIT_IN_USE  3
#define EXIT_CONFIG  78

static gboolean opt_foreground;
static gboolean opt_debug;
static gboolean opt_version;
static char *opt_config;
static char *opt_force_source;
static char **opt_fuse;
static char **opt_args;
static char *opt_takeover; /* a restart's hand-over (takeover.h) */

static const GOptionEntry options[] = {
    {"foreground", 'f', 0, G_OPTION_ARG_NONE, &opt_foreground,
     "Stay in the foreground (and log to stderr or journald)", NULL},
    {"debug", 'd', 0, G_OPTION_ARG_NONE, &opt_debug,
     "Log debug messages and trace FUSE requests; implies -f", NULL},
    {"config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config,
     "The mirror's config file (default " CONFIG_DEFAULT_PATH ")", "FILE"},
    {"force-source", 0, 0, G_OPTION_ARG_STRING, &opt_force_source,
     "After a split brain: trust leg LEG and resync the others from it in full", "LEG"},
    {"options", 'o', 0, G_OPTION_ARG_STRING_ARRAY, &opt_fuse,
     "Extra FUSE mount options, comma-separated (may be repeated)", "OPTS"},
    {"version", 'V', 0, G_OPTION_ARG_NONE, &opt_version, "Print the version and exit", NULL},
    {"takeover", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &opt_takeover, NULL, NULL},
    {G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &opt_args, NULL, "[MOUNTPOINT]"},
    {NULL, 0, 0, 0, NULL, NULL, NULL},
};

struct daemon {
	char *created_mountpoint; /* the empty file we created, removed if start-up fails */
	struct mirror_config *config;
	struct daemon_config_file config_file; /* rewritten after add and remove */
	struct mirror *mirror;
	GThreadPool *event_pool; /* runs the on-event program off the I/O path */
	int ready_fd;		 /* write end of the pipe to the waiting parent, or -1 */
	/* Who we are and which legs we hold, under /run (runtime.h), once the legs are claimed. */
	struct runtime_record *record;
	atomic_bool record_live; /* written: events that change the legs rewrite it */
	GMutex record_lock;	 /* a leaf: one rewrite of the record at a time */
	GMutex config_lock;	 /* a leaf: config->on_event, which a reload changes */
	char *abs_config;	 /* the file a reload reads */
};

/* ---- Events: the on-event program and systemd's STATUS= ------------------------------------ */

struct event_job {
	char *argv[5];
};

static void run_event_program(gpointer data, gpointer user_data)
{
	struct event_job *job = data;
	GError *error = NULL;

	/* Without G_SPAWN_DO_NOT_REAP_CHILD glib double-forks: no zombie to collect. */
	if (!g_spawn_async(NULL, job->argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
			   &error)) {
		g_warning("on-event program %s: %s", job->argv[0], error->message);
		g_error_free(error);
	}
	for (unsigned int i = 0; i < G_N_ELEMENTS(job->argv); i++)
		g_free(job->argv[i]);
	g_free(job);
}

static void update_status(struct mirror *m)
{
	unsigned int i, in_sync = 0;
	char *status;

	for (i = 0; i < mirror_num_legs(m); i++) {
		struct leg_status st;

		mirror_leg_status(m, i, &st);
		in_sync += st.state == LEG_IN_SYNC;
	}
	status = g_strdup_printf("STATUS=%s, %u of %u legs in sync",
				 mirror_state_name(mirror_state(m)), in_sync, mirror_num_legs(m));
	if (mirror_state(m) == MIRROR_RESYNCING) {
		struct resync_status rs;
		char *with;

		/* Called on every event, so at each ResyncProgress (10%). */
		mirror_resync_status(m, &rs);
		with = g_strdup_printf(
		    "%s, resync %u%% (%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes)",
		    status, rs.total > 0 ? (unsigned int)(rs.done * 100 / rs.total) : 0, rs.done,
		    rs.total);
		g_free(status);
		status = with;
	}
	notify_systemd(status);
	g_free(status);
}

/* ---- The runtime record ------------------------------------------------------------------ */

/* (Re)write the record with the legs m holds now; a failure only costs the holder's name. */
static void write_record(struct daemon *d, struct mirror *m)
{
	GError *error = NULL;

	g_mutex_lock(&d->record_lock);
	runtime_record_clear_legs(d->record);
	for (unsigned int i = 0; i < mirror_num_legs(m); i++) {
		struct leg_status st;

		mirror_leg_status(m, i, &st);
		if (st.state != LEG_REMOVED)
			runtime_record_add_leg(d->record, st.name, st.path);
	}
	if (!runtime_record_write(d->record, &error)) {
		g_warning("cannot write the runtime record: %s; refusals to others will not name "
			  "this mirror",
			  error->message);
		g_error_free(error);
	}
	g_mutex_unlock(&d->record_lock);
}

/*
 * Assembly waits for a missing leg (assemble-timeout, up to an hour): systemd hears why and
 * gives the start that long, plus a minute for the rest of assembly, instead of killing it at
 * its TimeoutStartSec=.
 */
static void on_assembly_wait(void *opaque, const char *leg, const char *path,
			     unsigned int waited_s, unsigned int timeout_s)
{
	unsigned int left = timeout_s > waited_s ? timeout_s - waited_s : 0;
	char *state;

	(void)opaque;
	state = g_strdup_printf("STATUS=waiting for leg %s (%s) (%u of %u s)\n"
				"EXTEND_TIMEOUT_USEC=%" G_GUINT64_FORMAT,
				leg, path, waited_s, timeout_s,
				(guint64)(left + 60) * G_USEC_PER_SEC);
	notify_systemd(state);
	g_free(state);
}

/* Events come from mirror_open on (assembly's), on the mirror's threads: use m, not d->mirror. */
static void on_event(void *opaque, struct mirror *m, const char *event, GLogLevelFlags level,
		     int leg, const char *message)
{
	struct daemon *d = opaque;
	struct event_job *job;
	struct leg_status st;
	char *program;

	update_status(m);
	if (atomic_load(&d->record_live) &&
	    (strcmp(event, "LegAdded") == 0 || strcmp(event, "LegRemoved") == 0))
		write_record(d, m);
	if (d->event_pool == NULL)
		return;
	g_mutex_lock(&d->config_lock);
	program = g_strdup(d->config->on_event);
	g_mutex_unlock(&d->config_lock);
	if (program == NULL)
		return;
	job = g_new0(struct event_job, 1);
	job->argv[0] = program;
	job->argv[1] = g_strdup(event);
	job->argv[2] = g_strdup(mirror_name(m));
	if (leg >= 0) {
		mirror_leg_status(m, (unsigned int)leg, &st);
		job->argv[3] = g_strdup(st.name);
	} else {
		job->argv[3] = g_strdup("");
	}
	g_thread_pool_push(d->event_pool, job, NULL);
}

/*
 * SIGHUP (systemctl reload): re-read the configuration's runtime tunables (reload.c), telling
 * systemd RELOADING=1 first and READY=1 once done.  On the stopper's thread.  True when the
 * binary was upgraded: the front end goes on with a restart into it.
 */
static bool on_reload(void *opaque, struct mirror *m)
{
	struct daemon *d = opaque;
	char *state = g_strdup_printf("RELOADING=1\nMONOTONIC_USEC=%" G_GINT64_FORMAT,
				      g_get_monotonic_time());

	notify_systemd(state);
	g_free(state);
	reload_config(m, d->config, &d->config_lock, d->abs_config);
	notify_systemd("READY=1");
	update_status(m);
	return takeover_binary_replaced();
}

/*
 * The control command restart, on the FUSE worker that runs it: refused unless the next process
 * would load the configuration.
 */
static bool on_restart(void *opaque, GError **error)
{
	struct daemon *d = opaque;
	GError *why = NULL;
	struct mirror_config *config = config_load(d->abs_config, &why);

	if (config == NULL || !config_check_on_event(config, &why)) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "not restarting: the configuration does not load: %s", why->message);
		g_error_free(why);
		config_free(config);
		return false;
	}
	config_free(config);
	return true;
}

/* The connection is up (its FUSE_INIT known): keep it in systemd's store, for a crash. */
static void on_connected(void *opaque, const struct frontend_handover *h)
{
	(void)opaque;
	takeover_store(h->fd, h);
}

/*
 * A control command add, remove or replace succeeded: rewrite the config's [leg] groups from the
 * slots, unless the command said --no-save.  On the command's thread, after the mirror's
 * reconfig_lock is released and before fusemirrorctl add or remove returns; for the end of a
 * replace (its old leg removed), on the mirror's replace thread, with no lock of the mirror held
 * and before the status stops showing the replace.
 */
static void on_membership(void *opaque, struct mirror *m, bool save)
{
	struct daemon *d = opaque;

	if (save) {
		daemon_save_config(&d->config_file, m);
	} else {
		g_autofree char *file = g_strescape(d->config->file, NULL);

		g_message("mirror %s: the legs changed and %s is not rewritten (--no-save)",
			  mirror_name(m), file);
	}
}

/* ---- Daemonizing: the parent exits with the child's start-up status ------------------------- */

/*
 * Fork before any thread exists.  The parent waits for one status byte from the child (0 once
 * the file is served, or the exit status of a failed start) and exits with it.
 */
static int daemon_fork(void)
{
	int fds[2];
	unsigned char status = EXIT_RUNTIME;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		g_printerr("fusemirrord: pipe: %s\n", g_strerror(errno));
		exit(EXIT_RUNTIME);
	}
	pid = fork();
	if (pid < 0) {
		g_printerr("fusemirrord: fork: %s\n", g_strerror(errno));
		exit(EXIT_RUNTIME);
	}
	if (pid > 0) {
		close(fds[1]);
		if (read(fds[0], &status, 1) != 1)
			status = EXIT_RUNTIME;
		_exit(status);
	}
	close(fds[0]);
	setsid();
	return fds[1];
}

/* Tell the waiting parent how the start went; once serving, detach from the terminal. */
static void daemon_ready(struct daemon *d, unsigned char status)
{
	int null;

	if (d->ready_fd < 0)
		return;
	if (status == 0) {
		null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			if (null > STDERR_FILENO)
				close(null);
		}
		log_use_syslog();
		if (chdir("/") < 0)
			g_debug("chdir /: %s", g_strerror(errno));
	}
	if (write(d->ready_fd, &status, 1) != 1)
		g_debug("cannot tell the parent: %s", g_strerror(errno));
	close(d->ready_fd);
	d->ready_fd = -1;
}

static G_NORETURN void die(struct daemon *d, int status, const char *format, ...)
    G_GNUC_PRINTF(3, 4);

static void die(struct daemon *d, int status, const char *format, ...)
{
	va_list ap;
	char *message;

	va_start(ap, format);
	message = g_strdup_vprintf(format, ap);
	va_end(ap);
	g_printerr("fusemirrord: %s\n", message);
	g_free(message);
	if (d->record != NULL)
		runtime_record_remove(d->record);
	if (d->created_mountpoint != NULL)
		unlink(d->created_mountpoint);
	daemon_ready(d, (unsigned char)status);
	exit(status);
}

/* ---- The mountpoint ------------------------------------------------------------------------ */

/*
 * Whether path (absolute, canonical) is the mount point of some mount, and when type is not
 * NULL, of a mount of that file system type.
 */
static bool find_mount(const char *path, const char *type)
{
	g_autoptr(GPtrArray) mounts = runtime_read_mounts(NULL);

	for (guint i = 0; mounts != NULL && i < mounts->len; i++) {
		const struct runtime_mount *mount = g_ptr_array_index(mounts, i);

		if (strcmp(mount->point, path) == 0)
			return type == NULL || strcmp(mount->type, type) == 0;
	}
	return false;
}

static bool is_mount_point(const char *path)
{
	return find_mount(path, NULL);
}

static bool mount_type_is(const char *path, const char *type)
{
	return find_mount(path, type);
}

/*
 * A fusemirrord that was killed leaves its mount behind, dead ("Transport endpoint is not
 * connected"): detach it so that a restart can serve again.  Only a dead fusemirror mount is
 * touched.
 */
static void clear_dead_mount(const char *path)
{
	char *dir, *base, *canonical;
	struct statfs sfs;

	/* statfs, not stat: the kernel answers stat from its attribute cache for a second. */
	if (statfs(path, &sfs) == 0 || errno != ENOTCONN)
		return;
	dir = g_path_get_dirname(path);
	base = g_path_get_basename(path);
	canonical = realpath(dir, NULL);
	if (canonical != NULL) {
		char *full = g_build_filename(canonical, base, NULL);

		if (mount_type_is(full, "fuse.fusemirror")) {
			if (umount2(full, MNT_DETACH) == 0)
				g_message(
				    "detached the dead mount on %s left by a fusemirrord that "
				    "did not stop cleanly",
				    full);
			else
				g_warning("cannot detach the dead mount on %s: %s", full,
					  g_strerror(errno));
		}
		g_free(full);
	}
	free(canonical);
	g_free(dir);
	g_free(base);
}

/* Another live daemon serves (or is about to serve) mountpoint: refuse, naming it. */
static void refuse_served_mountpoint(struct daemon *d, const char *mountpoint)
{
	struct runtime_holder holder;
	char *name, *config;

	if (!runtime_find_mountpoint_holder(mountpoint, &holder))
		return;
	name = runtime_printable(holder.name);
	config = runtime_printable(holder.config);
	die(d, EXIT_IN_USE, "mountpoint %s is in use: mirror '%s' (pid %d, config %s) serves it",
	    mountpoint, name, (int)holder.pid, config);
}

/*
 * Make the mountpoint usable: create it as an empty file if it does not exist; refuse a
 * directory, anything but a regular file, a file something is already mounted on, and a leg.
 * Returns the canonical absolute path.
 */
static char *prepare_mountpoint(struct daemon *d, const char *path)
{
	char resolved[PATH_MAX];
	struct stat st, leg_st;
	unsigned int i;
	int fd;

	clear_dead_mount(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd >= 0) {
		close(fd);
		d->created_mountpoint = g_strdup(path);
		g_message("created the mountpoint %s", path);
	} else if (errno != EEXIST) {
		die(d, EXIT_RUNTIME, "cannot create the mountpoint %s: %s", path,
		    g_strerror(errno));
	}
	if (realpath(path, resolved) == NULL || stat(resolved, &st) < 0)
		die(d, EXIT_RUNTIME, "mountpoint %s: %s", path, g_strerror(errno));
	if (S_ISDIR(st.st_mode))
		die(d, EXIT_RUNTIME,
		    "mountpoint %s is a directory: fusemirror serves the mirror as one file; name "
		    "a "
		    "file (it is created if missing)",
		    path);
	if (!S_ISREG(st.st_mode))
		die(d, EXIT_RUNTIME, "mountpoint %s is not a regular file", path);
	refuse_served_mountpoint(d, resolved);
	if (is_mount_point(resolved))
		die(d, EXIT_IN_USE,
		    "mountpoint %s is in use: something is already mounted on it (another "
		    "fusemirrord?)",
		    resolved);
	for (i = 0; i < d->config->num_legs; i++) {
		const struct leg_config *leg = &d->config->legs[i];

		if (!dmio_path_is_uri(leg->path) && stat(leg->path, &leg_st) == 0 &&
		    leg_st.st_dev == st.st_dev && leg_st.st_ino == st.st_ino)
			die(d, EXIT_RUNTIME, "mountpoint %s is leg '%s' itself", path, leg->name);
	}
	return g_strdup(resolved);
}

/* ---- Restarting in place (takeover.h) ------------------------------------------------------ */

/*
 * The loop ended for the control command restart: answer what was taken, close the legs clean,
 * and re-execute with the live connection.  Returns only when that failed, and then stops: the
 * legs are closed already.
 */
static G_NORETURN void restart(struct daemon *d, struct frontend *fe, struct watchdog *watchdog,
			       const struct takeover_args *args)
{
	struct frontend_handover h;
	GError *error = NULL;
	char *state = g_strdup_printf("RELOADING=1\nMONOTONIC_USEC=%" G_GINT64_FORMAT,
				      g_get_monotonic_time());

	notify_systemd(state);
	g_free(state);
	g_message("mirror %s: restarting: finishing in-flight I/O, flushing the legs; the file "
		  "stays mounted",
		  mirror_name(d->mirror));
	frontend_drain(fe);
	watchdog_stop_io(watchdog);
	atomic_store(&d->record_live, false);
	mirror_close(d->mirror);
	runtime_record_remove(d->record);
	if (frontend_handover(fe, &h, &error) == 0)
		takeover_exec(args, &h, &error);
	g_warning("cannot restart: %s; stopping (the file is unmounted)", error->message);
	takeover_unstore();
	frontend_destroy(fe);
	exit(EXIT_RUNTIME);
}

/* ---- main ---------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct daemon d = {.ready_fd = -1};
	struct frontend_options fo = {0};
	struct frontend *fe = NULL;
	struct frontend_handover handover = {.fd = -1, .kept_fd = -1};
	struct watchdog *watchdog = NULL;
	GOptionContext *context;
	GError *error = NULL;
	const char *config_path, *mountpoint;
	char *fuse_opts = NULL, *abs_config, *abs_mountpoint;
	int status = 0, r;

	context = g_option_context_new("- serve a RAID1 mirror of files and block devices as one "
				       "file through FUSE");
	g_option_context_add_main_entries(context, options, NULL);
	g_option_context_set_description(
	    context, "Exit status: 0 clean stop, 1 runtime failure, 2 usage error, 3 a leg or the "
		     "mountpoint in use, 78 bad configuration.\nSee fusemirrord(8) and "
		     "fusemirror.conf(5).");
	if (!g_option_context_parse(context, &argc, &argv, &error)) {
		g_printerr("fusemirrord: %s\nTry 'fusemirrord --help'.\n", error->message);
		g_error_free(error);
		g_option_context_free(context);
		return EXIT_USAGE;
	}
	g_option_context_free(context);
	if (opt_version) {
		printf("fusemirrord %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (opt_args != NULL && g_strv_length(opt_args) > 1) {
		g_printerr("fusemirrord: one mountpoint only, got '%s' and '%s'\nTry 'fusemirrord "
			   "--help'.\n",
			   opt_args[0], opt_args[1]);
		return EXIT_USAGE;
	}
	if (opt_debug)
		opt_foreground = TRUE;
	/*
	 * libfuse installs its stop handlers only over the default action: a daemon started with
	 * '&' by a non-interactive shell inherits SIGINT ignored, and would not stop on it.
	 */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	log_setup("fusemirrord", opt_debug);
	g_mutex_init(&d.record_lock);
	g_mutex_init(&d.config_lock);

	config_path = opt_config != NULL ? opt_config : CONFIG_DEFAULT_PATH;
	d.config = config_load(config_path, &error);
	if (d.config == NULL || !config_check_on_event(d.config, &error)) {
		g_printerr("fusemirrord: %s\n", error->message);
		g_error_free(error);
		config_free(d.config);
		return EXIT_CONFIG;
	}
	d.config->force_source = g_steal_pointer(&opt_force_source);
	mountpoint = opt_args != NULL && opt_args[0] != NULL ? opt_args[0] : d.config->mountpoint;
	if (mountpoint == NULL) {
		g_printerr(
		    "fusemirrord: no mountpoint: give MOUNTPOINT or set 'mountpoint' in [mirror] "
		    "of %s\nTry 'fusemirrord --help'.\n",
		    config_path);
		config_free(d.config);
		return EXIT_USAGE;
	}
	if (opt_fuse != NULL)
		fuse_opts = g_strjoinv(",", opt_fuse);
	if (opt_takeover == NULL) {
		opt_takeover = takeover_from_listen_fds(&error);
		if (error != NULL) {
			g_printerr("fusemirrord: %s\n", error->message);
			g_error_free(error);
			config_free(d.config);
			return EXIT_RUNTIME;
		}
		if (opt_takeover != NULL)
			g_message("systemd passed the FUSE connection back: taking the mount over");
	}
	if (opt_takeover != NULL && !takeover_parse(opt_takeover, &handover, &error)) {
		g_printerr("fusemirrord: %s\n", error->message);
		g_error_free(error);
		config_free(d.config);
		return EXIT_USAGE;
	}

	/* Paths are resolved before a daemon changes directory to /. */
	abs_config = g_canonicalize_filename(config_path, NULL);
	d.abs_config = abs_config;
	daemon_config_file_init(&d.config_file, abs_config);
	if (opt_takeover != NULL) {
		/* Our own mount, live: not to be looked at (only we could answer). */
		abs_mountpoint = g_canonicalize_filename(mountpoint, NULL);
		if (!opt_foreground)
			log_use_syslog();
	} else {
		if (!opt_foreground)
			d.ready_fd = daemon_fork();
		abs_mountpoint = prepare_mountpoint(&d, mountpoint);
	}

	if (d.config->metadata == METADATA_NONE)
		g_warning(
		    "mirror %s: metadata = none: the legs carry no superblock or write-intent "
		    "bitmap, so after a crash they are not checked or resynced",
		    d.config->name);
	/* Our writes may be what frees memory (a loop device on the file): never throttle them. */
	if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) < 0)
		g_warning(
		    "PR_SET_IO_FLUSHER: %s; under memory pressure a loop device on the mirror "
		    "may deadlock",
		    g_strerror(errno));

	d.event_pool = g_thread_pool_new(run_event_program, NULL, 1, FALSE, NULL);
	d.config->wait_fn = on_assembly_wait;
	r = mirror_open(d.config, on_event, &d, &d.mirror, &error);
	if (r < 0)
		die(&d, r == -EBUSY ? EXIT_IN_USE : EXIT_RUNTIME, "%s: %s", abs_config,
		    error->message);
	/* The legs are ours: say so, for whoever is refused them. */
	d.record = runtime_record_new(d.config->name, abs_mountpoint, abs_config);
	write_record(&d, d.mirror);
	atomic_store(&d.record_live, true);

	fo.mountpoint = abs_mountpoint;
	fo.cache = d.config->cache;
	fo.transport = d.config->fuse_transport;
	/*
	 * auto: only where the kernel lends the payload's pages to the pipe.  A direct_io write
	 * (cache = none) has them copied into the pipe anyway (fs/fuse/dev.c, user pages), so the
	 * splice saves no copy there and costs a system call per request.
	 */
	fo.splice = d.config->splice == SPLICE_TRUE ||
		    (d.config->splice == SPLICE_AUTO && d.config->cache == CACHE_WRITEBACK);
	fo.allow_other = d.config->allow_other;
	fo.debug = opt_debug;
	fo.fuse_opts = fuse_opts;
	fo.stop_timeout = d.config->stop_timeout;
	fo.on_membership = on_membership;
	fo.on_reload = on_reload;
	fo.on_restart = on_restart;
	fo.on_connected = on_connected;
	fo.single_channel = takeover_store_enabled();
	fo.opaque = &d;
	fo.takeover = opt_takeover != NULL ? &handover : NULL;
	r = frontend_mount(d.mirror, &fo, &fe, &error);
	if (r < 0) {
		atomic_store(&d.record_live, false);
		mirror_close(d.mirror);
		die(&d, EXIT_RUNTIME, "%s", error->message);
	}

	g_message("mirror %s: serving %" G_GUINT64_FORMAT " bytes on %s from %u legs (%s)",
		  mirror_name(d.mirror), mirror_size(d.mirror), abs_mountpoint,
		  mirror_num_legs(d.mirror), mirror_state_name(mirror_state(d.mirror)));
	g_clear_pointer(&d.created_mountpoint, g_free);
	daemon_ready(&d, 0);
	notify_systemd("READY=1");
	update_status(d.mirror);
	watchdog = watchdog_start(d.mirror, abs_mountpoint);

	if (frontend_run(fe) < 0)
		status = EXIT_RUNTIME;
	if (frontend_restarting(fe))
		restart(&d, fe, watchdog,
			&(struct takeover_args){
			    .config = abs_config,
			    .mountpoint = abs_mountpoint,
			    .foreground = opt_foreground,
			    .debug = opt_debug,
			    .fuse_opts = opt_fuse,
			});
	notify_systemd("STOPPING=1");
	g_message("mirror %s: stopping: finishing in-flight I/O, flushing the legs",
		  mirror_name(d.mirror));
	/* From here the stop signals are ignored: a second one must not cut the flush short. */
	frontend_drain(fe);
	watchdog_stop_io(watchdog);
	atomic_store(&d.record_live, false);
	mirror_close(d.mirror);
	/* Only once the legs are let go: until then a refusal can still name us. */
	runtime_record_remove(d.record);
	runtime_record_free(d.record);
	/* Nothing to take over once unmounted, whatever the exit status. */
	takeover_unstore();
	/* Unmounted last: a mount that is gone is a mirror stopped clean (fusemirrorctl stop). */
	frontend_destroy(fe);
	watchdog_free(watchdog);
	g_thread_pool_free(d.event_pool, FALSE, TRUE);
	g_message("stopped; %s unmounted", abs_mountpoint);

	config_free(d.config);
	daemon_config_file_clear(&d.config_file);
	g_free(abs_config);
	g_free(abs_mountpoint);
	g_free(fuse_opts);
	g_strfreev(opt_fuse);
	g_strfreev(opt_args);
	g_free(opt_config);
	g_free(opt_takeover);
	g_free(handover.opens);
	return status;
}
