/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Logging: journald fields under systemd, one readable line on stderr otherwise. */
#ifndef FUSEMIRROR_LOG_H
#define FUSEMIRROR_LOG_H

#include <glib.h>
#include <stdbool.h>

/* Install the log writer (debug messages only when debug) and route libfuse's messages to it. */
void log_setup(const char *program, bool debug);

/* From now on log to syslog (a daemon whose stderr is gone, outside journald). */
void log_use_syslog(void);

#endif /* FUSEMIRROR_LOG_H */
