/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's log writer.  Events come from g_log_structured with FUSEMIRROR_* fields: under
 * journald they are kept as fields; on a terminal or a file each becomes one line
 * "fusemirrord: <level>: <message>".
 */
#include "config.h"

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)

#include <fuse_log.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "daemon/log.h"

static const char *log_program = "fusemirrord";
static bool log_debug;
static bool log_journald;
static bool log_syslog;

static int syslog_priority(GLogLevelFlags level)
{
	if (level & G_LOG_LEVEL_ERROR)
		return LOG_ERR;
	if (level & G_LOG_LEVEL_CRITICAL)
		return LOG_CRIT;
	if (level & G_LOG_LEVEL_WARNING)
		return LOG_WARNING;
	if (level & G_LOG_LEVEL_MESSAGE)
		return LOG_NOTICE;
	if (level & G_LOG_LEVEL_INFO)
		return LOG_INFO;
	return LOG_DEBUG;
}

static const char *level_name(GLogLevelFlags level)
{
	if (level & G_LOG_LEVEL_ERROR)
		return "error";
	if (level & G_LOG_LEVEL_CRITICAL)
		return "critical";
	if (level & G_LOG_LEVEL_WARNING)
		return "warning";
	if (level & G_LOG_LEVEL_MESSAGE)
		return "notice";
	if (level & G_LOG_LEVEL_INFO)
		return "info";
	return "debug";
}

static GLogWriterOutput writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields,
			       gpointer user_data)
{
	const char *message = NULL;
	gsize i;

	if ((level & G_LOG_LEVEL_DEBUG) && !log_debug)
		return G_LOG_WRITER_HANDLED;
	if (log_journald &&
	    g_log_writer_journald(level, fields, n_fields, user_data) == G_LOG_WRITER_HANDLED)
		return G_LOG_WRITER_HANDLED;
	for (i = 0; i < n_fields; i++)
		if (strcmp(fields[i].key, "MESSAGE") == 0)
			message = fields[i].value;
	if (message == NULL)
		return G_LOG_WRITER_UNHANDLED;
	if (log_syslog) {
		syslog(syslog_priority(level), "%s", message);
		return G_LOG_WRITER_HANDLED;
	}
	fprintf(stderr, "%s: %s: %s\n", log_program, level_name(level), message);
	fflush(stderr);
	return G_LOG_WRITER_HANDLED;
}

/* libfuse builds one message from several calls: gather them until the newline. */
static __thread GString *fuse_line;

static void fuse_logger(enum fuse_log_level level, const char *fmt, va_list ap)
{
	GLogLevelFlags glevel;
	char *message;

	if (fuse_line == NULL)
		fuse_line = g_string_new(NULL);
	g_string_append_vprintf(fuse_line, fmt, ap);
	if (fuse_line->len == 0 || fuse_line->str[fuse_line->len - 1] != '\n')
		return;
	message = g_string_free(fuse_line, FALSE);
	fuse_line = NULL;

	switch (level) {
	case FUSE_LOG_EMERG:
	case FUSE_LOG_ALERT:
	case FUSE_LOG_CRIT:
	case FUSE_LOG_ERR:
		glevel = G_LOG_LEVEL_CRITICAL;
		break;
	case FUSE_LOG_WARNING:
		glevel = G_LOG_LEVEL_WARNING;
		break;
	case FUSE_LOG_NOTICE:
		glevel = G_LOG_LEVEL_MESSAGE;
		break;
	case FUSE_LOG_INFO:
		glevel = G_LOG_LEVEL_INFO;
		break;
	default:
		glevel = G_LOG_LEVEL_DEBUG;
		break;
	}
	g_strchomp(message);
	g_log_structured("libfuse", glevel, "MESSAGE", "libfuse: %s", message);
	g_free(message);
}

void log_setup(const char *program, bool debug)
{
	log_program = program;
	log_debug = debug;
	/* Under systemd stderr is a journald stream: keep the FUSEMIRROR_* fields. */
	log_journald = g_log_writer_is_journald(fileno(stderr));
	g_log_set_writer_func(writer, NULL, NULL);
	fuse_set_log_func(fuse_logger);
}

void log_use_syslog(void)
{
	if (log_journald)
		return;
	openlog(log_program, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_syslog = true;
}
