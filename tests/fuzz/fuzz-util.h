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

/* A g_warning or g_critical (a g_return_if_fail included) is a bug found. */
static inline void fuzz_glib_fatal(void)
{
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
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
