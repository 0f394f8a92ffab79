/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mirror configuration: fusemirror.conf(5), a GKeyFile with one [mirror] group and one
 * [leg NAME] group per leg.  Parsing is strict: unknown groups and keys, bad values, duplicate
 * names or paths are errors that name the file, the line and what is wrong.
 */
#ifndef FUSEMIRROR_CONFIG_H
#define FUSEMIRROR_CONFIG_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "dmio.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CONFIG_DEFAULT_PATH "/etc/fusemirror/fusemirror.conf"
#define CONFIG_MAX_LEGS	    64
/* reconnect-delay and reconnect-max (fusemirror.conf(5)): 1 s doubling up to 30 s, 60 tries
 * (about half an hour: a remote machine's reboot, a network outage), then the leg stays failed. */
#define CONFIG_DEFAULT_RECONNECT_DELAY_MS 1000u
#define CONFIG_DEFAULT_RECONNECT_MAX	  60u
#define CONFIG_MAX_RECONNECT_MAX	  1000000u

#define CONFIG_ERROR (config_error_quark())
GQuark config_error_quark(void);

enum config_error {
	CONFIG_ERROR_IO,      /* the file cannot be read */
	CONFIG_ERROR_SYNTAX,  /* not a key file */
	CONFIG_ERROR_UNKNOWN, /* unknown group or key */
	CONFIG_ERROR_VALUE,   /* a value that does not parse or is out of range */
	CONFIG_ERROR_MISSING, /* a required group or key is missing */
	CONFIG_ERROR_INVALID, /* values that contradict each other (duplicate leg, ...) */
};

enum read_policy {
	READ_POLICY_LEAST_PENDING = 0, /* default */
	READ_POLICY_ROUND_ROBIN,
	READ_POLICY_PRIMARY,
};

enum cache_mode {
	CACHE_NONE = 0,	 /* default: FUSE direct_io, writes reach the legs before they return */
	CACHE_WRITEBACK, /* the kernel's page cache in front of the mirror */
};

/* fuse-transport: how the kernel's requests reach the daemon. */
enum fuse_transport_mode {
	FUSE_TRANSPORT_MODE_AUTO = 0, /* default: FUSE over io_uring when the kernel offers it */
	FUSE_TRANSPORT_MODE_IO_URING, /* FUSE over io_uring, or refuse to start */
	FUSE_TRANSPORT_MODE_DEV,      /* /dev/fuse only */
};

enum splice_mode {
	SPLICE_AUTO = 0, /* default: where it saves a copy (see fusemirror.conf(5)) */
	SPLICE_TRUE,	 /* FUSE_CAP_SPLICE_READ: large writes spliced from FUSE to the legs */
	SPLICE_FALSE,	 /* every request read into memory */
};

enum metadata_mode {
	METADATA_NONE = 0, /* nothing on the legs: full trust in them at every start */
	METADATA_INTERNAL, /* superblock + write-intent bitmap on each leg (the default) */
};

/*
 * direct = of a leg: O_DIRECT or the page cache.  auto: O_DIRECT on a block device and on a file
 * whose file system takes it, never on tmpfs; true: O_DIRECT or the leg is refused; false: the
 * page cache.  An NBD leg has neither (auto and false are the same there; true is refused).
 */
enum leg_direct {
	LEG_DIRECT_AUTO = 0, /* default */
	LEG_DIRECT_TRUE,
	LEG_DIRECT_FALSE,
};

struct leg_config {
	char *name; /* from the group name "[leg NAME]" */
	char *path;
	bool write_mostly;
	enum leg_direct direct;
	int io_timeout_ms; /* io-timeout of this leg; -1: the [mirror] group's */
	unsigned int write_behind; /* writes answered before this write-mostly leg has them; 0 */
	int reconnect_delay_ms; /* reconnect-delay of this leg; -1 (or 0): the [mirror] group's */
	int reconnect_max;	/* reconnect-max of this leg; -1: the [mirror] group's */
};

/* The most writes write-behind may keep behind on a leg (md's limit). */
#define CONFIG_MAX_WRITE_BEHIND 16383u

/*
 * Told while assembly waits for a missing leg (about once a second): which leg, its path (shown
 * redacted, dmio_path_display: it goes to systemd's STATUS=), and
 * how long it has waited of the assemble-timeout.  On the thread that runs mirror_open().
 */
typedef void (*mirror_wait_fn)(void *opaque, const char *leg, const char *path,
			       unsigned int waited_s, unsigned int timeout_s);

struct mirror_config {
	char *file; /* the path the config was read from ("<string>" for parsed data) */
	char *name;
	char *mountpoint; /* may be NULL: then the command line must name it */
	enum read_policy read_policy;
	enum dmio_engine engine;
	unsigned int threads; /* 0 = libdmio's default */
	enum cache_mode cache;
	enum fuse_transport_mode fuse_transport;
	enum splice_mode splice;
	enum metadata_mode metadata;
	bool allow_other;
	char *on_event;		  /* program run on each event, or NULL */
	unsigned int on_event_line; /* its line in the file, for messages */
	uint64_t region_size;	  /* bytes per bitmap bit for fusemirrorctl create; 0 = default */
	uint64_t resync_rate_min; /* bytes/s a resync always gets */
	uint64_t resync_rate_max; /* bytes/s a resync gets at most; 0 = unlimited */
	unsigned int assemble_timeout; /* seconds to wait for a missing leg at start */
	unsigned int stop_timeout;     /* seconds SIGTERM waits for the file's last close */
	unsigned int io_timeout_ms;    /* io-timeout of the legs that set none; 0 = none */
	unsigned int max_read_errors;  /* recent corrected read errors a leg may have; 0: any */
	unsigned int reconnect_delay_ms; /* before a remote leg's first try (0: the default) */
	unsigned int reconnect_max;	 /* tries to reconnect a remote leg; 0: never */
	char *force_source;	       /* not in the file: fusemirrord --force-source LEG */
	mirror_wait_fn wait_fn;	       /* not in the file: the caller's, may be NULL */
	void *wait_opaque;
	unsigned int num_legs;
	struct leg_config *legs; /* in the order of the file */
};

/*
 * Read and check a config file.  Returns the config, or NULL with *error set (CONFIG_ERROR)
 * whose message names the file, the line when there is one, and the problem, e.g.
 * "/etc/fusemirror/a.conf:7: unknown key 'rate' in group [mirror]".
 */
struct mirror_config *config_load(const char *path, GError **error);

/* The same from a string; filename is used in messages. */
struct mirror_config *config_parse(const char *data, gsize length, const char *filename,
				   GError **error);

void config_free(struct mirror_config *config);

/*
 * Whether the on-event program can be run (it exists, is a regular file, and this process may
 * execute it): checked when the daemon starts, not at parse time (a config may be read on
 * another machine).  Returns TRUE, or FALSE with *error (CONFIG_ERROR_VALUE) naming the file,
 * the line and the program.
 */
gboolean config_check_on_event(const struct mirror_config *config, GError **error);

/* Names of the enum values, as in the file ("least-pending", "writeback", ...). */
const char *config_read_policy_name(enum read_policy policy);
const char *config_cache_name(enum cache_mode cache);
const char *config_fuse_transport_name(enum fuse_transport_mode transport);
const char *config_metadata_name(enum metadata_mode metadata);
/* "auto", "true", "false". */
const char *config_direct_name(enum leg_direct direct);
/* Parse a direct = value ("auto", "true", "false"); FALSE when it is none of them. */
gboolean config_parse_direct(const char *text, enum leg_direct *out);
const char *config_splice_name(enum splice_mode splice);
const char *config_engine_name(enum dmio_engine engine);

/*
 * Parse a size with an optional K, M, G or T suffix (powers of 1024; "KiB", "MiB", ... and a
 * trailing "B" are accepted too).  Returns TRUE and sets *out, or FALSE on a bad or overflowing
 * value.
 */
gboolean config_parse_size(const char *text, uint64_t *out);

/* Seconds with up to three decimals ("30", "2.5", "0.25"), at most CONFIG_MAX_SECONDS, in ms. */
#define CONFIG_MAX_SECONDS 3600u
gboolean config_parse_seconds(const char *text, unsigned int *ms);

/* Why name cannot be the NAME of a "[leg NAME]" group (a phrase: "is empty"), or NULL. */
const char *config_leg_name_problem(const char *name);

/* ---- save.c: keeping the file true ----------------------------------------------------------- */

/* The leg named name among legs[0..num_legs), or NULL. */
const struct leg_config *config_find_leg(const struct leg_config *legs, unsigned int num_legs,
					const char *name);

/*
 * The text of the config data (read from filename, which names it in messages) with its
 * [leg NAME] groups rewritten to legs: a group of a leg that stays keeps its place, comments and
 * other keys, with its path and write-mostly changed in place when they differ; the group of a
 * leg not in legs goes, with the comment lines right above its header; a new leg's group is
 * appended.  Every other line is kept byte for byte.  Returns the new text (g_free it), or NULL
 * with *error (CONFIG_ERROR) when data is not a valid config or the result would not be one
 * (duplicate names or paths, a bad name...).
 */
char *config_rewrite_legs(const char *data, gsize length, const char *filename,
			  const struct leg_config *legs, unsigned int num_legs, GError **error);

/*
 * Rewrite the file at path (through a symbolic link: its target) with config_rewrite_legs(),
 * atomically: a temporary file in the same directory with the file's mode and owner, fsync,
 * rename over the file, fsync of the directory.  Nothing is written when nothing changes;
 * *changed (may be NULL) says whether the file was replaced.  Returns TRUE, or FALSE with *error
 * (CONFIG_ERROR_IO when the file cannot be read or written: it is then left as it was).
 */
gboolean config_save_legs(const char *path, const struct leg_config *legs, unsigned int num_legs,
			  gboolean *changed, GError **error);

/* value as GKeyFile writes it after "key = " (a leading space as \s, \ as \\); g_free it. */
char *config_escape_value(const char *value);

#ifdef __cplusplus
}
#endif

#endif /* FUSEMIRROR_CONFIG_H */
