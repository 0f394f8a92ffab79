/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * SIGHUP: re-read the configuration file and apply its runtime tunables to the running mirror -
 * resync-rate-min/max, read-policy, max-read-errors, io-timeout ([mirror] and [leg]),
 * write-mostly, on-event - each change logged; what needs a restart (name, mountpoint, engine,
 * threads, cache, metadata, allow-other, stop-timeout) or a control command (a leg's path, a
 * [leg] group added or taken away) is refused with a message naming it and the running value
 * is kept.  A file that cannot be read or parsed changes nothing.
 */
#ifndef FUSEMIRROR_RELOAD_H
#define FUSEMIRROR_RELOAD_H

#include <glib.h>

#include "config/config.h"
#include "mirror/mirror.h"

/*
 * Reload path into m.  running is the config the daemon started with; what is applied is
 * copied into it (on_event under lock, which guards running->on_event for its readers).
 * Returns the number of tunables changed, or -1 when the file could not be read (logged).
 */
int reload_config(struct mirror *m, struct mirror_config *running, GMutex *lock,
		  const char *path);

#endif /* FUSEMIRROR_RELOAD_H */
