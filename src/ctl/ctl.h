/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl, the admin CLI.  It talks to fusemirrord only through extended attributes on the
 * mirror file (fusemirrorctl(8) lists them): user.fusemirror.* to read the status, and
 * trusted.fusemirror.ctl to send a command.  Each subcommand is one struct ctl_command in its own
 * cmd-*.c, listed in the table of fusemirrorctl.c.
 */
#ifndef FUSEMIRROR_CTL_H
#define FUSEMIRROR_CTL_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* Exit statuses of every subcommand but status (fusemirrorctl(8), EXIT STATUS). */
#define CTL_EXIT_OK	0
#define CTL_EXIT_FAILED 1  /* the operation failed; the message says why */
#define CTL_EXIT_USAGE	2 /* bad command, option or argument: as fusemirrord's (and mdadm's) */

/* Exit statuses of status and wait: the state of the mirror, or that it could not be read. */
#define CTL_STATUS_CLEAN      0
#define CTL_STATUS_DEGRADED   1 /* also resyncing, checking and states this version does not know */
#define CTL_STATUS_FAILED     3 /* not 2: that is the usage error */
#define CTL_STATUS_UNREADABLE 4

#define CTL_XATTR_PREFIX "user.fusemirror."
#define CTL_XATTR_CTL	 "trusted.fusemirror.ctl"
/* The daemon's one-line explanation of the last command it refused. */
#define CTL_XATTR_LAST_ERROR "last_error"
#define CTL_MAX_LEGS	     64

struct ctl_command {
	const char *name;
	const char *parameters; /* positional arguments, as "fusemirrorctl NAME [OPTION…] FILE" */
	const char *summary;	/* one line, in the general --help and atop the command's own */
	const char *description; /* after the options in the command's --help; may be NULL */
	/* argv[0] is the command's name; returns the exit status. */
	int (*run)(const struct ctl_command *cmd, int argc, char **argv);
};

extern const struct ctl_command ctl_cmd_status;
extern const struct ctl_command ctl_cmd_fail;
extern const struct ctl_command ctl_cmd_create;
extern const struct ctl_command ctl_cmd_examine;
extern const struct ctl_command ctl_cmd_wait;
extern const struct ctl_command ctl_cmd_add;
extern const struct ctl_command ctl_cmd_remove;
extern const struct ctl_command ctl_cmd_replace;
extern const struct ctl_command ctl_cmd_resync;
extern const struct ctl_command ctl_cmd_check;
extern const struct ctl_command ctl_cmd_repair;
extern const struct ctl_command ctl_cmd_set;
extern const struct ctl_command ctl_cmd_stop;
extern const struct ctl_command ctl_cmd_restart;
extern const struct ctl_command ctl_cmd_scan;
extern const struct ctl_command ctl_cmd_list;
extern const struct ctl_command ctl_cmd_monitor;

/* ---- fusemirrorctl.c: messages and option parsing ------------------------------------------ */

/* "fusemirrorctl: MESSAGE" on stderr: errors, and what a command did (as mdadm does). */
void ctl_message(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/*
 * A usage error of cmd (NULL: of fusemirrorctl itself): the message and a hint to --help on
 * stderr.  Returns CTL_EXIT_USAGE, for "return ctl_usage_error(...)".
 */
int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/*
 * Parse the options of cmd with GOption, which also answers --help (and exits).  argv[0] is the
 * command's name.  On success the parsed options are removed from argc and argv, and the number of
 * positional arguments left (not counting argv[0]) is between min_args and max_args.  Returns
 * false after reporting a usage error.  entries may be NULL.
 */
bool ctl_parse_options(const struct ctl_command *cmd, const GOptionEntry *entries, int *argc,
		       char ***argv, int min_args, int max_args);

/* ---- status.c: the status of a mirror, from its extended attributes ------------------------ */

struct ctl_leg_status {
	unsigned int index; /* 0-based, in config order: the I of user.fusemirror.leg.I.* */
	char *name;
	char *path;
	char *state; /* in_sync, failed, ... as the daemon names it */
	uint64_t read_errors;
	uint64_t write_errors;
	/* Read errors corrected by a rewrite: false when the daemon does not say. */
	bool has_corrected;
	uint64_t corrected_errors;
	/* Of daemons that keep superblocks and resync: NULL when the daemon does not say. */
	char *uuid;   /* the leg's UUID, 36 characters; NULL also for an empty slot */
	char *resync; /* what the running resync does with it: none, source, bitmap, ... */
	char *io_timeout; /* seconds, as the daemon says it ("30", "2.5"; "0": none) */
	bool slow;	  /* its oldest outstanding I/O is past half its io-timeout */
	/* Writes answered before it had them that it still writes (write-behind); has_behind:
	 * the daemon says (leg.N.behind). */
	bool has_behind;
	uint64_t behind_writes;
	/* Its write-behind setting, in writes (0: none); has_write_behind: the daemon says
	 * (leg.N.write_behind). */
	bool has_write_behind;
	uint64_t write_behind;
	/* What its reconnect does ("idle", "waiting 4 s, try 3 of 60", ...); NULL when the
	 * daemon does not say. */
	char *reconnect;
};

struct ctl_status {
	char *file; /* as given on the command line */
	char *name;
	char *state; /* clean, degraded, failed, ... as the daemon names it */
	uint64_t size;
	unsigned int nlegs;
	struct ctl_leg_status *legs; /* nlegs of them */
	uint64_t events;
	uint64_t error_bits; /* bit i set: leg i failed the last failed request */
	/*
	 * Attributes of the daemons that keep superblocks and resync; each is NULL, or false,
	 * when the daemon does not report it.
	 */
	char *uuid; /* the array UUID of the superblocks, as 36 characters */
	bool has_resync;
	uint64_t resync_done;  /* bytes copied by the running (or last) resync */
	uint64_t resync_total; /* bytes it has to copy */
	uint64_t resync_rate;  /* bytes per second; 0 when none is running */
	int resync_source;     /* the leg copied from; -1: none runs, or the daemon does not say */
	/* The results of the running or last check/repair (mismatch_cnt, mismatches). */
	bool has_check;
	uint64_t mismatch_cnt; /* 512-byte sectors found different */
	char *mismatches;      /* "OFFSET+LENGTH ..." as the daemon gives it */
	/* The running replace: the leg being replaced and the new leg, -1 when none runs. */
	bool has_replace;
	int replace_leg, replace_by;
	bool has_rate_min, has_rate_max;
	uint64_t resync_rate_min, resync_rate_max; /* bytes per second; max 0: no limit */
	bool has_max_read_errors;
	uint64_t max_read_errors; /* the tunable max-read-errors; 0: legs never fail for them */
	/*
	 * The file is on a FUSE file system, as a mirror served by fusemirrord always is.  When it
	 * is not, its attributes are a copy (cp -a of the mirror file keeps them): no daemon is
	 * behind them to report the present or to take a command.
	 */
	bool live;
};

#define CTL_ERROR (ctl_error_quark())
GQuark ctl_error_quark(void);

enum ctl_error_code {
	CTL_ERROR_ACCESS,     /* the file cannot be reached: stat or getxattr failed */
	CTL_ERROR_NOT_MIRROR, /* a file without user.fusemirror.state */
	CTL_ERROR_VALUE,      /* an attribute is missing or malformed */
};

/*
 * Read the attribute CTL_XATTR_PREFIX attr of file into a new NUL-terminated string (free it).
 * Returns 0, or -errno (-ENODATA when there is no such attribute, -EILSEQ for a value with a
 * NUL byte).
 */
int ctl_read_attribute(const char *file, const char *attr, char **value);

/*
 * Read the status of the mirror whose file is file.  Returns a new ctl_status (free with
 * ctl_status_free()), or NULL and sets error to a message naming the attribute and the reason
 * (the caller names the file).
 */
struct ctl_status *ctl_status_read(const char *file, GError **error);
void ctl_status_free(struct ctl_status *status);

/*
 * The leg that leg designates: the one with that name, else (when leg is a decimal number) the
 * one with that index.  Returns the leg, or NULL when there is none.
 */
const struct ctl_leg_status *ctl_status_find_leg(const struct ctl_status *status, const char *leg);

/* "a (0), b (1)": the legs, for a message about a LEG that is not one of them. */
char *ctl_status_leg_choices(const struct ctl_status *status);

/* Whether a resync is running: the mirror's state is resyncing. */
bool ctl_status_resyncing(const struct ctl_status *status);

/* The exit status of the status command for this state: CTL_STATUS_CLEAN, _DEGRADED or _FAILED. */
int ctl_status_exit_code(const struct ctl_status *status);

/* ---- control.c: sending commands to the daemon ------------------------------------------- */

/*
 * Whether the daemon serves status->file (status->live).  When it does not, a message
 * "CONTEXT: not sending COMMANDS: ..." and false: root's setxattr on a plain file would store the
 * command and succeed, with nobody to run it.
 */
bool ctl_check_live(const struct ctl_status *status, const char *context, const char *commands);

/*
 * Send command (one line) to the daemon that serves file, through trusted.fusemirror.ctl.
 * Returns 0 once the daemon has done it, or -errno when it refused or the command could not be
 * sent; then *explanation is set to the daemon's user.fusemirror.last_error (free it), or to NULL
 * when it gave none.
 */
int ctl_send(const char *file, const char *command, char **explanation);

/*
 * Report a command that ctl_send() could not get done, on one line after "CONTEXT: ": the
 * daemon's explanation when it gave one; else the errno's text and reason (" (why)") when there
 * is one; else that the command could not be sent.
 */
void ctl_report_refusal(const char *context, const char *command, int err, const char *explanation,
			const char *reason);

/* The hint after the errno text of a refusal of a command on leg (NULL: none). */
typedef const char *(*ctl_refusal_reason_fn)(int err, const struct ctl_leg_status *leg, bool force);

/*
 * A command on one leg, as fail and remove send it: read the status of file, find leg_arg (a
 * name or an index), send "VERB OPTIONSI" (options: "" or words that each end in a space, such as
 * "--force ") and report a refusal on one line.  Returns
 * CTL_EXIT_OK with the leg's printable name (free it) and index, or CTL_EXIT_FAILED.
 */
int ctl_leg_command(const char *verb, const char *file, const char *leg_arg, const char *options,
		    ctl_refusal_reason_fn reason, char **leg_name, unsigned int *leg_index);

/* ---- signature.c: what a leg already holds ------------------------------------------------ */

struct superblock;
struct dmio_dev;

enum {
	CTL_SB_NONE,	/* no fusemirror superblock magic */
	CTL_SB_VALID,	/* a superblock that decodes */
	CTL_SB_DAMAGED, /* the magic, but a bad checksum, version or field */
};

/*
 * Look for a fusemirror superblock at the start of dev, through libdmio (started by the caller).
 * Returns CTL_SB_VALID and fills *sb; CTL_SB_DAMAGED and sets *why (free it); CTL_SB_NONE; or
 * -errno when the superblock cannot be read.
 */
int ctl_superblock_probe(struct dmio_dev *dev, struct superblock *sb, char **why);

/* "already belongs to fusemirror array 'NAME' (uuid UUID, leg index I of N)" (free it). */
char *ctl_superblock_owner(const struct superblock *sb);

/* "holds a damaged fusemirror superblock (WHY)" (free it). */
char *ctl_superblock_damaged(const char *why);

/*
 * Another signature on path that libblkid recognises (a file system, a partition table, RAID,
 * LVM or crypto metadata, swap): sets *what to "holds ..." (free it), or NULL when there is none.
 * Returns false and sets error when path cannot be probed.
 */
bool ctl_blkid_signature(const char *path, char **what, GError **error);

/*
 * A new leg's PATH (add, replace; newleg.c): *resolved (realpath, malloc'd) and *shown (for
 * messages, g_malloc'd) are set as far as it got; true when it is a regular file or block device
 * other than the mirror file and one control line can carry it.  Else false after a message.
 */
bool ctl_new_leg_path(const char *file, const char *path, const char *context, char **resolved,
		      char **shown);
/* False, after a message naming it, when another running mirror holds the leg. */
bool ctl_new_leg_unheld(const char *file, const char *resolved, const char *shown,
			const char *context);

/* ---- output.c: text, JSON and shell output ------------------------------------------------- */

/* Append s to out as a JSON string, quotes included; invalid UTF-8 becomes U+FFFD. */
void ctl_json_append_string(GString *out, const char *s);

/* A copy of s that a POSIX shell reads back as s: as is when it is safe, else single-quoted. */
char *ctl_shell_quote(const char *s);

/*
 * A copy of s with control characters and backslashes as C escapes, for one line of a report;
 * an NBD URI in it (and the rest of s after it) redacted by dmio_path_display(): no password
 * or key file's name of a URI is ever printed.
 */
char *ctl_printable(const char *s);

/* bytes in binary units with two decimals, "1.00 GiB" ("512 B" below 1 KiB). */
char *ctl_format_size(uint64_t bytes);

/* A duration: "3h05m", "4m02s", "12s". */
char *ctl_format_seconds(uint64_t seconds);

/* A rate in bytes per second as "50.00 MiB/s", or "unlimited" for 0 when zero_is_unlimited. */
char *ctl_format_rate(uint64_t bytes_per_second, bool zero_is_unlimited);

/* Write out to stdout and flush it.  Returns false (after a message) when that fails. */
bool ctl_write_stdout(const GString *out);

#endif /* FUSEMIRROR_CTL_H */
