/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the fuzz targets share (tests/fuzz/README.md): glib warnings and criticals abort, so that
 * libFuzzer saves the input as a crash, and the checks of the messages a user would read.
 */
#ifndef FUSEMIRROR_FUZZ_UTIL_H
#define FUSEMIRROR_FUZZ_UTIL_H

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test is broken: say which, and abort (libFuzzer saves a crash). */
#define fuzz_assert(cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n", __FILE__, __LINE__,  \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define FUZZ_FATAL_LEVELS (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)

static inline void fuzz_log_handler(const char *domain, GLogLevelFlags level, const char *message,
				    gpointer data)
{
	if (level & FUZZ_FATAL_LEVELS) {
		fprintf(stderr, "fuzz: %s%sa glib %s: %s\n", domain != NULL ? domain : "",
			domain != NULL ? ": " : "",
			level & G_LOG_LEVEL_WARNING ? "warning" : "critical or error", message);
		abort();
	}
}

static inline GLogWriterOutput fuzz_log_writer(GLogLevelFlags level, const GLogField *fields,
					       gsize n_fields, gpointer data)
{
	const char *message = "";

	for (gsize i = 0; i < n_fields; i++)
		if (strcmp(fields[i].key, "MESSAGE") == 0 && fields[i].length < 0)
			message = fields[i].value;
	fuzz_log_handler(NULL, level, message, NULL);
	return G_LOG_WRITER_HANDLED;
}

/*
 * A g_warning or g_critical (a g_return_if_fail included), ours or glib's, is a bug found.  It
 * aborts here: glib's own fatal path would raise SIGTRAP, which libFuzzer does not catch, and no
 * reproducer would be written.
 */
static inline void fuzz_glib_fatal(void)
{
	g_log_set_default_handler(fuzz_log_handler, NULL);
	g_log_set_writer_func(fuzz_log_writer, NULL, NULL);
}

/*
 * A message for a user (an error, a reason): one line of valid UTF-8 with no control characters,
 * so that it can be logged, stored in an xattr and printed without forging or breaking lines.
 */
static inline void fuzz_check_message(const char *what, const char *message)
{
	const char *c;

	if (message == NULL || *message == '\0') {
		fprintf(stderr, "fuzz: %s is empty\n", what);
		abort();
	}
	if (!g_utf8_validate(message, -1, NULL)) {
		fprintf(stderr, "fuzz: %s is not valid UTF-8: %s\n", what, message);
		abort();
	}
	for (c = message; *c != '\0'; c = g_utf8_next_char(c)) {
		if (g_unichar_iscntrl(g_utf8_get_char(c))) {
			fprintf(stderr, "fuzz: %s has control character U+%04X at byte %d: %s\n",
				what, (unsigned int)g_utf8_get_char(c), (int)(c - message),
				message);
			abort();
		}
	}
}

#endif /* FUSEMIRROR_FUZZ_UTIL_H */
