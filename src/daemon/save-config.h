/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The config file a daemon keeps true: after a leg is added or removed, its [leg NAME] groups are
 * rewritten from the mirror's slots (fusemirrord(8), THE CONFIG FILE).
 */
#ifndef FUSEMIRROR_SAVE_CONFIG_H
#define FUSEMIRROR_SAVE_CONFIG_H

#include <glib.h>
#include <stdbool.h>

#include "mirror/mirror.h"

struct daemon_config_file {
	char *path;   /* the file fusemirrord was started from, absolute */
	GMutex lock;  /* one save at a time; protects noticed */
	bool noticed; /* the notice that it may not be written was logged */
};

void daemon_config_file_init(struct daemon_config_file *file, const char *path);
void daemon_config_file_clear(struct daemon_config_file *file);

/*
 * Rewrite file's [leg NAME] groups to m's legs: every slot but the removed ones, by name, path
 * and write-mostly; a failed leg that the file does not name (one the operator left out) stays
 * out.  Logs what changed.  A file the daemon may not write (not a regular file, on a read-only
 * file system, without any write permission bit, or in a directory it cannot write) is left
 * alone with a notice, logged once.  May block on the file system: call it from a control
 * thread, never from an I/O completion.  Returns true when the file now names m's legs.
 */
bool daemon_save_config(struct daemon_config_file *file, struct mirror *m);

#endif /* FUSEMIRROR_SAVE_CONFIG_H */
