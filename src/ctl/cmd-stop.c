/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl stop [--force] FILE: stop the daemon serving FILE, as mdadm --stop does, by
 * writing "stop" to trusted.fusemirror.ctl.  The daemon refuses (EBUSY) while the file is in use
 * (a loop device bound to it, a process with it open), naming what holds it, unless --force.
 * Once it accepts, it stops as on SIGTERM and unmounts the file last, after the legs are flushed
 * and their superblocks marked clean: so the command waits for the mount to go.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "config/runtime.h"
#include "ctl.h"

#define DEFAULT_WAIT 60 /* seconds */

static const char *refusal_reason(int err)
{
	switch (err) {
	case EBUSY:
		return " (the file is in use; --force stops anyway)";
	case EINVAL:
	case ENOTSUP:
		return " (this daemon does not know the command stop)";
	case EPERM:
		return " (only root may control a mirror)";
	default:
		return NULL;
	}
}

/* Whether path (absolute, canonical) is the mount point of a mount. */
static bool is_mounted(const char *path)
{
	g_autoptr(GPtrArray) mounts = runtime_read_mounts(NULL);

	for (guint i = 0; mounts != NULL && i < mounts->len; i++)
		if (strcmp(((struct runtime_mount *)g_ptr_array_index(mounts, i))->point, path) ==
		    0)
			return true;
	return false;
}

static int run_stop(const struct ctl_command *cmd, int argc, char **argv)
{
	gboolean force = FALSE;
	int wait = DEFAULT_WAIT;
	const GOptionEntry entries[] = {
	    {"force", 0, 0, G_OPTION_ARG_NONE, &force,
	     "Stop even while the file is in use (its users then get I/O errors)", NULL},
	    {"timeout", 0, 0, G_OPTION_ARG_INT, &wait,
	     "Wait at most SECONDS for the daemon to finish (default 60)", "SECONDS"},
	    G_OPTION_ENTRY_NULL,
	};
	g_autoptr(GError) error = NULL;
	g_autofree char *shown_file = NULL;
	g_autofree char *context = NULL;
	g_autofree char *explanation = NULL;
	g_autofree char *name = NULL;
	char canonical[PATH_MAX];
	const char *command;
	struct ctl_status *st;
	gint64 deadline;
	int status = CTL_EXIT_FAILED, r;

	if (!ctl_parse_options(cmd, entries, &argc, &argv, 1, 1))
		return CTL_EXIT_USAGE;
	if (wait < 0)
		return ctl_usage_error(cmd, "--timeout %d: not a number of seconds", wait);
	shown_file = ctl_printable(argv[1]);
	context = g_strdup_printf("stop %s", shown_file);
	command = force ? "stop --force" : "stop";

	st = ctl_status_read(argv[1], &error);
	if (st == NULL) {
		ctl_message("%s: %s", context, error->message);
		return CTL_EXIT_FAILED;
	}
	name = ctl_printable(st->name);
	if (!ctl_check_live(st, context, force ? "'stop --force'" : "'stop'"))
		goto out;
	if (realpath(argv[1], canonical) == NULL) {
		ctl_message("%s: %s", context, g_strerror(errno));
		goto out;
	}
	r = ctl_send(argv[1], command, &explanation);
	if (r < 0) {
		ctl_report_refusal(context, command, -r, explanation, refusal_reason(-r));
		goto out;
	}
	deadline = g_get_monotonic_time() + (gint64)wait * G_USEC_PER_SEC;
	while (is_mounted(canonical)) {
		if (g_get_monotonic_time() >= deadline) {
			ctl_message(
			    "%s: the daemon accepted stop, but %s is still mounted after %d "
			    "s (it may still be flushing the legs)",
			    context, shown_file, wait);
			goto out;
		}
		g_usleep(100 * 1000);
	}
	/* On stderr, as mdadm reports "mdadm: stopped /dev/md0". */
	ctl_message("stopped mirror '%s': %s is unmounted, its legs are clean", name, shown_file);
	status = CTL_EXIT_OK;
out:
	ctl_status_free(st);
	return status;
}

const struct ctl_command ctl_cmd_stop = {
    .name = "stop",
    .parameters = "FILE",
    .summary = "Stop the daemon serving FILE; refused while the file is in use",
    .description = "The daemon refuses while a loop device is bound to the file or a process\n"
		   "has it open, and names them; --force stops anyway.  Once it accepts, stop\n"
		   "waits until the daemon has flushed the legs, marked them clean and unmounted\n"
		   "the file.\n"
		   "Exit status: 0 stopped, 1 refused, failed or not done within --timeout,\n"
		   "2 usage error.",
    .run = run_stop,
};
