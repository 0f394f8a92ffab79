/* SPDX-License-Identifier: GPL-2.0-or-later */
/* systemd's notification protocol (sd_notify(3)) without libsystemd: a datagram to $NOTIFY_SOCKET.
 */
#ifndef FUSEMIRROR_NOTIFY_H
#define FUSEMIRROR_NOTIFY_H

/* Send "READY=1", "STATUS=...", "STOPPING=1" (newline-separated) if run under systemd. */
void notify_systemd(const char *state);

#endif /* FUSEMIRROR_NOTIFY_H */
