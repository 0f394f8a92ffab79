/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl list [--json]: every mirror served on this machine, from the mount table.  A
 * fusemirrord mounts its file with fsname=fusemirror:NAME and subtype=fusemirror, so its lines
 * of /proc/self/mountinfo have the type fuse.fusemirror; the name, state and size come from the
 * file's attributes, as status reads them.
 *
 * A mount whose daemon died answers ENOTCONN at once; a daemon that is stopped (SIGSTOP) or
 * stuck answers nothing, and a read of its file would wait for ever.  So each mirror is read
 * by a thread of its own, and list waits for them until a deadline: a mirror that has not
 * answered by then is listed as not responding, and its thread is left behind (the process
 * exits past it, with _exit).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "config/runtime.h"
#include "ctl.h"

#define FUSEMIRROR_FS "fuse.fusemirror"
#define FSNAME_PREFIX "fusemirror:"
/* How long a mirror may take to answer. */
#define ANSWER_SECONDS 5

enum answer {
	ANSWER_PENDING,
	ANSWER_OK,	   /* status holds the mirror's status */
	ANSWER_DEAD,	   /* ENOTCONN: the daemon is gone, the mount left behind */
	ANSWER_UNREADABLE, /* another error: error says which */
};

/* One mount, shared by list and the thread that reads it (refs). */
struct probe {
	gatomicrefcount refs;
	char *mountpoint;
	char *name; /* from the fsname, for a mirror that does not answer */
	GMutex *lock;
	GCond *cond;
	/* Protected by lock: */
	enum answer answer;
	struct ctl_status *status;
	char *error;
};

/* Shared by every probe: list waits on one condition for all of them. */
static GMutex probes_lock;
static GCond probes_cond;

static struct probe *probe_ref(struct probe *p)
{
	g_atomic_ref_count_inc(&p->refs);
	return p;
}

static void probe_unref(struct probe *p)
{
	if (!g_atomic_ref_count_dec(&p->refs))
		return;
	ctl_status_free(p->status);
	g_free(p->error);
	g_free(p->mountpoint);
	g_free(p->name);
	g_free(p);
}

static gpointer probe_thread(gpointer data)
{
	struct probe *p = data;
	g_autoptr(GError) error = NULL;
	struct ctl_status *status = NULL;
	enum answer answer = ANSWER_OK;
	char *message = NULL;
	struct statfs fs;

	/* statfs, not stat: the kernel may answer stat from its cache for a dead mount. */
	if (statfs(p->mountpoint, &fs) < 0) {
		answer = errno == ENOTCONN ? ANSWER_DEAD : ANSWER_UNREADABLE;
		message = g_strdup(g_strerror(errno));
	} else {
		status = ctl_status_read(p->mountpoint, &error);
		if (status == NULL) {
			answer = ANSWER_UNREADABLE;
			message = g_strdup(error->message);
		}
	}
	g_mutex_lock(p->lock);
	p->answer = answer;
	p->status = status;
	p->error = message;
	g_cond_broadcast(p->cond);
	g_mutex_unlock(p->lock);
	probe_unref(p);
	return NULL;
}

/*
 * The fusemirror mounts of mountinfo: field 5 is the mount point; after the optional fields and
 * "-", the type and the source.  Mount points and sources are octal-escaped (\040 for a space).
 */
static GPtrArray *find_mounts(GError **error)
{
	g_autoptr(GPtrArray) mounts = runtime_read_mounts(error);
	GPtrArray *probes;

	if (mounts == NULL)
		return NULL;
	probes = g_ptr_array_new();
	for (guint i = 0; i < mounts->len; i++) {
		const struct runtime_mount *mount = g_ptr_array_index(mounts, i);
		const char *name = mount->source;
		struct probe *p;

		if (strcmp(mount->type, FUSEMIRROR_FS) != 0 || *name == '\0')
			continue;
		if (g_str_has_prefix(name, FSNAME_PREFIX))
			name += strlen(FSNAME_PREFIX);
		p = g_new0(struct probe, 1);
		g_atomic_ref_count_init(&p->refs);
		p->mountpoint = g_strdup(mount->point);
		p->name = g_strdup(name);
		p->lock = &probes_lock;
		p->cond = &probes_cond;
		g_ptr_array_add(probes, p);
	}
	return probes;
}

static const char *answer_state(const struct probe *p)
{
	switch (p->answer) {
	case ANSWER_OK:
		return p->status->state;
	case ANSWER_DEAD:
		return "dead";
	case ANSWER_PENDING:
		return "not-responding";
	default:
		return "unreadable";
	}
}

/* Why a mirror has no status, for the text and the JSON (NULL when it has one). */
static const char *answer_problem(const struct probe *p)
{
	switch (p->answer) {
	case ANSWER_OK:
		return NULL;
	case ANSWER_DEAD:
		return "its daemon is gone (the mount is left behind: umount it, or start "
		       "fusemirrord again)";
	case ANSWER_PENDING:
		return "no answer within 5 s (the daemon is stopped or stuck)";
	default:
		return p->error;
	}
}

static void append_json(GString *out, GPtrArray *probes)
{
	g_string_append_c(out, '[');
	for (unsigned int i = 0; i < probes->len; i++) {
		const struct probe *p = g_ptr_array_index(probes, i);
		const struct ctl_status *st = p->status;

		g_string_append(out, i > 0 ? ",{\"name\":" : "{\"name\":");
		ctl_json_append_string(out, p->answer == ANSWER_OK ? st->name : p->name);
		g_string_append(out, ",\"state\":");
		ctl_json_append_string(out, answer_state(p));
		if (p->answer == ANSWER_OK) {
			g_string_append_printf(out, ",\"size\":%" G_GUINT64_FORMAT ",\"legs\":%u",
					       (guint64)st->size, st->nlegs);
			g_string_append(out, ",\"uuid\":");
			if (st->uuid != NULL)
				ctl_json_append_string(out, st->uuid);
			else
				g_string_append(out, "null");
		} else {
			g_string_append(out, ",\"size\":null,\"legs\":null,\"uuid\":null");
		}
		g_string_append(out, ",\"mountpoint\":");
		ctl_json_append_string(out, p->mountpoint);
		g_string_append(out, ",\"error\":");
		if (answer_problem(p) != NULL)
			ctl_json_append_string(out, answer_problem(p));
		else
			g_string_append(out, "null");
		g_string_append_c(out, '}');
	}
	g_string_append(out, "]\n");
}

static void append_text(GString *out, GPtrArray *probes)
{
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GPtrArray) sizes = g_ptr_array_new_with_free_func(g_free);
	int name_width = 4, state_width = 5, size_width = 4;

	/* Nothing at all when no mirror is served, as ls prints nothing for an empty directory. */
	if (probes->len == 0)
		return;

	for (unsigned int i = 0; i < probes->len; i++) {
		const struct probe *p = g_ptr_array_index(probes, i);
		char *name = ctl_printable(p->answer == ANSWER_OK ? p->status->name : p->name);
		char *size =
		    p->answer == ANSWER_OK ? ctl_format_size(p->status->size) : g_strdup("-");

		name_width = MAX(name_width, (int)g_utf8_strlen(name, -1));
		state_width = MAX(state_width, (int)strlen(answer_state(p)));
		size_width = MAX(size_width, (int)strlen(size));
		g_ptr_array_add(names, name);
		g_ptr_array_add(sizes, size);
	}
	g_string_append_printf(out, "%-*s  %-*s  %*s  %s\n", name_width, "NAME", state_width,
			       "STATE", size_width, "SIZE", "MOUNTPOINT");
	for (unsigned int i = 0; i < probes->len; i++) {
		const struct probe *p = g_ptr_array_index(probes, i);
		const char *name = g_ptr_array_index(names, i);
		g_autofree char *mountpoint = ctl_printable(p->mountpoint);
		int pad = name_width - (int)g_utf8_strlen(name, -1);

		g_string_append_printf(out, "%s%*s  %-*s  %*s  %s\n", name, pad, "", state_width,
				       answer_state(p), size_width,
				       (const char *)g_ptr_array_index(sizes, i), mountpoint);
	}
}

static int run_list(const struct ctl_command *cmd, int argc, char **argv)
{
	gboolean json = FALSE;
	const GOptionEntry entries[] = {
	    {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON array", NULL},
	    G_OPTION_ENTRY_NULL,
	};
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) out = g_string_new(NULL);
	GPtrArray *probes;
	gint64 deadline;
	bool all_answered = true, left_behind = false;

	if (!ctl_parse_options(cmd, entries, &argc, &argv, 0, 0))
		return CTL_EXIT_USAGE;
	probes = find_mounts(&error);
	if (probes == NULL) {
		ctl_message("list: cannot read the mount table: %s", error->message);
		return CTL_EXIT_FAILED;
	}

	for (unsigned int i = 0; i < probes->len; i++) {
		struct probe *p = g_ptr_array_index(probes, i);
		GThread *thread;

		thread = g_thread_try_new("list", probe_thread, probe_ref(p), &error);
		if (thread == NULL) {
			ctl_message("list: cannot start a thread: %s", error->message);
			probe_unref(p);
			return CTL_EXIT_FAILED;
		}
		/* Never joined: one that does not answer is left behind. */
		g_thread_unref(thread);
	}
	deadline = g_get_monotonic_time() + ANSWER_SECONDS * G_TIME_SPAN_SECOND;
	g_mutex_lock(&probes_lock);
	for (unsigned int i = 0; i < probes->len; i++) {
		struct probe *p = g_ptr_array_index(probes, i);

		while (p->answer == ANSWER_PENDING)
			if (!g_cond_wait_until(&probes_cond, &probes_lock, deadline))
				break;
	}
	/* From here on the answers are read under the lock: a late one changes nothing. */
	for (unsigned int i = 0; i < probes->len; i++) {
		enum answer answer = ((struct probe *)g_ptr_array_index(probes, i))->answer;

		all_answered = all_answered && answer == ANSWER_OK;
		left_behind = left_behind || answer == ANSWER_PENDING;
	}
	if (json)
		append_json(out, probes);
	else
		append_text(out, probes);
	g_mutex_unlock(&probes_lock);

	if (!ctl_write_stdout(out))
		return CTL_EXIT_FAILED;
	/* The threads still waiting hold their own references. */
	for (unsigned int i = 0; i < probes->len; i++) {
		struct probe *p = g_ptr_array_index(probes, i);

		if (p->answer != ANSWER_OK) {
			g_autofree char *shown = ctl_printable(p->mountpoint);

			ctl_message("list: %s: %s", shown, answer_problem(p));
		}
	}
	if (left_behind) {
		/*
		 * A thread in a FUSE request that the daemon never answers cannot be joined, and
		 * what runs at exit may wait for it (LeakSanitizer stops every thread): leave now.
		 * The kernel ends the request with the process.
		 */
		fflush(NULL);
		_exit(CTL_EXIT_FAILED);
	}
	for (unsigned int i = 0; i < probes->len; i++)
		probe_unref(g_ptr_array_index(probes, i));
	g_ptr_array_unref(probes);
	return all_answered ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}

const struct ctl_command ctl_cmd_list = {
    .name = "list",
    .parameters = "",
    .summary = "List the mirrors served on this machine (from the mount table)",
    .description = "One line per mirror: its name, state, size and mountpoint (the mirror\n"
		   "file); --json prints a JSON array of objects.  A mirror whose daemon is\n"
		   "gone is listed as dead, one that does not answer within 5 s as\n"
		   "not-responding.\n"
		   "Exit status: 0 every mirror answered (also when there is none), 1 one did\n"
		   "not or the mount table cannot be read, 2 usage error.",
    .run = run_list,
};
