/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * systemd's watchdog (sd_watchdog_enabled(3), without libsystemd): when the service manager set
 * WATCHDOG_USEC (and WATCHDOG_PID is ours or unset), a thread sends WATCHDOG=1 every half of it,
 * but only after both checks of a round answered: a 4 KiB read through the mirror (the engine and
 * the legs' answers, bounded by io-timeout) and a getxattr on the mounted file (the kernel's
 * round trip through the FUSE loop).  A stuck engine or loop stops the pings; systemd then kills
 * and restarts the daemon (WatchdogSec= in the unit).
 */
#ifndef FUSEMIRROR_WATCHDOG_H
#define FUSEMIRROR_WATCHDOG_H

#include "mirror/mirror.h"

struct watchdog;

/* Start pinging for m served on mountpoint; NULL when systemd asked for no watchdog. */
struct watchdog *watchdog_start(struct mirror *m, const char *mountpoint);

/*
 * No read of the mirror from now on: returns once the one in progress, if any, is done.  Call
 * before mirror_close().  NULL is ignored.
 */
void watchdog_stop_io(struct watchdog *w);

/* Join and free, once the file is unmounted (a getxattr in progress has returned).  NULL ok. */
void watchdog_free(struct watchdog *w);

#endif /* FUSEMIRROR_WATCHDOG_H */
