/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Restarting fusemirrord without unmounting (fusemirrord(8), RESTART): the old process, once its
 * FUSE loop ended, every request taken was answered and the legs were closed clean, re-executes
 * its binary (same pid: systemd keeps tracking it) with a hidden --takeover=TEXT, which carries
 * the live /dev/fuse descriptor's number and the rest of a struct frontend_handover; the new
 * process assembles the mirror again and serves the same connection (frontend.h).  Requests
 * that come meanwhile wait in the kernel's queue.
 *
 * TEXT is "fd=N;restarts=N;mode=OCTAL;uid=N;gid=N;init=HEX;kept=MEMFD:COUNT;opens=OPENS"
 * (frontend.h's struct frontend_handover, opens.h's export).
 */
#ifndef FUSEMIRROR_TAKEOVER_H
#define FUSEMIRROR_TAKEOVER_H

#include <glib.h>
#include <stdbool.h>

#include "fuse/frontend.h"

/* Parse --takeover's TEXT into *h (g_free h->opens); false with *error when malformed. */
bool takeover_parse(const char *text, struct frontend_handover *h, GError **error);

/* What the next process is started with (the paths absolute: the daemon may be in /). */
struct takeover_args {
	const char *config;
	const char *mountpoint;
	bool foreground;
	bool debug;
	char **fuse_opts; /* -o values, NULL-terminated, or NULL */
};

/*
 * Whether the binary this process runs was replaced on disk since it started (a package upgrade
 * renames a new file over it): /proc/self/exe is then "(deleted)", or its path names another
 * file.  A reload (SIGHUP) then goes on as a restart, into the new binary.
 */
bool takeover_binary_replaced(void);

/*
 * Execute the daemon's binary again (its path now, so that an upgrade runs the new one; else
 * /proc/self/exe) with a, and --takeover for h.  Returns only on failure, with *error.
 */
void takeover_exec(const struct takeover_args *a, const struct frontend_handover *h,
		   GError **error);

/*
 * systemd's file descriptor store (FDSTORE=1, FileDescriptorStoreMax= in the unit), for a
 * restart after a crash (Restart=on-failure): the connection's descriptor as TAKEOVER_FD_NAME
 * and a memfd with the rest of the hand-over's text (no fd=, no kept=) as TAKEOVER_INIT_NAME.
 */
#define TAKEOVER_FD_NAME   "fuse"
#define TAKEOVER_INIT_NAME "fuse-init"

/* Whether there is a NOTIFY_SOCKET to store descriptors with. */
bool takeover_store_enabled(void);

/* Store the connection (replacing what this unit stored before); a no-op without systemd. */
void takeover_store(int fuse_fd, const struct frontend_handover *h);

/* A clean stop: the connection ends with our unmount, nothing to take over. */
void takeover_unstore(void);

/*
 * The --takeover text for descriptors systemd passed back (LISTEN_PID, LISTEN_FDS,
 * LISTEN_FDNAMES, as sd_listen_fds(3); unset then), with resend=1: NULL when there are none
 * (a plain start), or NULL with *error when they are unusable.
 */
char *takeover_from_listen_fds(GError **error);

#endif /* FUSEMIRROR_TAKEOVER_H */
