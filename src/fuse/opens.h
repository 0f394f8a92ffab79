/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Who holds the mirror file: the front end counts its opens (op_open, op_release) and remembers
 * each opener's pid and command name, so that stop can refuse while the file is in use and say
 * what uses it.  Once a stop is decided the table refuses new opens.
 */
#ifndef FUSEMIRROR_OPENS_H
#define FUSEMIRROR_OPENS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct opens;

/* A table for the file at path (absolute and canonical, as /proc shows it).  NULL on error. */
struct opens *opens_new(const char *path, GError **error);
void opens_free(struct opens *opens); /* NULL is ignored */

/*
 * An open by process pid: returns its id (never 0) for op_release, or 0 when the file is
 * stopping and takes no new opens.
 */
uint64_t opens_add(struct opens *opens, pid_t pid);

/* The open id ended (op_release); an unknown id is ignored. */
void opens_remove(struct opens *opens, uint64_t id);

/*
 * The table as text, for the next process of a restart: "NEXT_ID,ID:PID,ID:PID..." (g_free it).
 * The kernel keeps the open ids (FUSE file handles) across the restart, so their releases
 * must still find them.
 */
char *opens_export(struct opens *opens);

/* Load an opens_export text into a new table; false when it is malformed (nothing loaded). */
bool opens_restore(struct opens *opens, const char *text);

/* The number of opens now. */
unsigned int opens_count(struct opens *opens);

/*
 * Decide to stop: returns 0 and refuses every open from now on, when the file has no open or
 * force; else -EBUSY with *error "PATH is in use: HOLDERS".  Atomic with opens_add: an open
 * either comes before the decision (and makes it fail) or is refused.
 */
int opens_begin_stop(struct opens *opens, bool force, GError **error);

/* Whether a stop was decided (opens_begin_stop succeeded). */
bool opens_stopping(struct opens *opens);

/* A file descriptor (eventfd) that becomes readable each time the count drops to 0. */
int opens_idle_fd(struct opens *opens);

/*
 * What holds the file, for a message (g_free it): the loop devices bound to it ("loop device
 * /dev/loop3 is bound to it"), the processes that have it open ("process 1234 (sleep) has it
 * open"), else the count and the first openers ("2 opens, by process 99 (losetup)").  Reads
 * /sys/block and /proc: not for a hot path.
 */
char *opens_describe(struct opens *opens);

/* The loop devices (/dev/loopN) whose backing file is path, NULL-terminated (g_strfreev it). */
char **opens_find_loop_devices(const char *path);

/* The processes other than this one with an fd on path, as "PID (COMM)" (g_strfreev it). */
char **opens_find_processes(const char *path);

#ifdef __cplusplus
}
#endif

#endif /* FUSEMIRROR_OPENS_H */
