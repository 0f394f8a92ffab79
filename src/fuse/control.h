/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control commands that root writes to trusted.fusemirror.ctl (fusemirrorctl(8), CONTROL
 * COMMANDS), parsed without a mirror and without I/O: whether leg 7 exists, or whether a rate
 * fits the other one, is for whoever runs the command (xattr.c) to say.
 *
 *   fail N | remove [--force] [--no-save] N | add [--force] [--no-save] [--direct=D] PATH |
 *   resync [--full] | set NAME VALUE | stop [--force] | restart | check | repair [--source N] |
 *   replace [--no-save] [--direct=D] N PATH
 *
 * Words are separated by blanks (spaces, tabs); options come before the arguments.  add's and
 * replace's PATH is the rest of the line, so it may hold spaces.  No part of a command may hold a
 * control character (C0, DEL or C1): a command is logged, and its path becomes a leg's path.
 */
#ifndef FUSEMIRROR_CONTROL_H
#define FUSEMIRROR_CONTROL_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum control_verb {
	CONTROL_FAIL,
	CONTROL_REMOVE,
	CONTROL_ADD,
	CONTROL_RESYNC,
	CONTROL_SET,
	CONTROL_STOP,
	CONTROL_CHECK,
	CONTROL_REPAIR,
	CONTROL_REPLACE,
	CONTROL_RESTART,
};

/* The runtime tunables of "set" (control.c has their names and value syntax). */
enum control_tunable {
	CONTROL_RESYNC_RATE_MIN, /* bytes/s a resync always gets */
	CONTROL_RESYNC_RATE_MAX, /* bytes/s a resync gets at most; 0 = unlimited */
	CONTROL_IO_TIMEOUT,	 /* ms (given in seconds); 0 = none; of one leg (has_leg) or all */
	CONTROL_MAX_READ_ERRORS, /* recent corrected read errors a leg may have; 0 = any */
	CONTROL_WRITE_BEHIND,	 /* writes; 0 = none; of one write-mostly leg (has_leg) or all */
	CONTROL_RECONNECT_DELAY, /* ms (given in seconds, > 0); of one leg (has_leg) or all */
	CONTROL_RECONNECT_MAX,	 /* tries to reconnect a remote leg; 0 = never; one leg or all */
};

struct control_command {
	enum control_verb verb;
	bool force;	  /* remove, add, stop: --force */
	bool no_save;	  /* remove, add, replace: --no-save (the config file is not rewritten) */
	bool full;	  /* resync: --full */
	unsigned int leg; /* fail, remove, replace, repair --source: the index as given, not
			   * checked against any mirror */
	bool has_source;  /* repair: --source N was given (N in leg) */
	bool has_leg;	  /* set io-timeout LEG SECONDS: for leg only */
	/* add, replace: --direct=auto|true|false, an enum leg_direct (config.h); 0 = auto. */
	unsigned int direct;
	char *path; /* add, replace: an absolute path or an NBD URI (owned; control_command_clear
		     * frees it) */
	enum control_tunable tunable; /* set */
	const char *tunable_name;     /* set: static, as in the command ("resync-rate-min") */
	uint64_t value;		      /* set */
};

/*
 * Parse one command (a NUL-terminated line; a trailing newline is the caller's to strip).
 * Returns 0 and fills *out (clear it with control_command_clear), or -EINVAL with *error
 * saying precisely what is wrong ("unknown command 'frob'", "add needs an absolute path",
 * "the path contains control character 0x1b"); *out is then cleared.  Messages never hold a
 * control character.
 */
int control_parse(const char *text, struct control_command *out, GError **error);

/* Free what *command owns and zero it; a zeroed or cleared command may be cleared again. */
void control_command_clear(struct control_command *command);

/* The verb's name as in a command ("fail", ...). */
const char *control_verb_name(enum control_verb verb);

/*
 * A copy of text fit for one log line (g_free it): control characters, backslashes, quotes and
 * bytes above 0x7e as C escapes, so that no text of a command can forge or hide a log line;
 * an NBD URI in it redacted (dmio_path_display), so that no password reaches the log.
 */
char *control_escape(const char *text);

#ifdef __cplusplus
}
#endif

#endif /* FUSEMIRROR_CONTROL_H */
