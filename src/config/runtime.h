/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The runtime records of running daemons: one small key file per fusemirrord under
 * RUNTIME_DIR (/run/fusemirror, or $FUSEMIRROR_RUNTIME_DIR), "PID.record", written atomically once
 * the daemon holds its legs and removed when it exits.  It names the mirror, its mountpoint, the
 * daemon's pid and config, and the legs with their identity (st_rdev of a block device, st_dev and
 * st_ino of a file), so that a refused claim can say who holds a leg (fusemirrord(8), CLAIM).
 *
 * A record is only believed while its pid runs the same process that wrote it (its start time in
 * /proc/PID/stat matches); the records of dead daemons are ignored and removed by any lookup that
 * may remove them.  The records say who holds what; the claim itself is the exclusive open
 * (DMIO_DEV_EXCLUSIVE): a daemon that cannot write its record still holds its legs.
 */
#ifndef FUSEMIRROR_RUNTIME_H
#define FUSEMIRROR_RUNTIME_H

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RUNTIME_DIR	   "/run/fusemirror"
#define RUNTIME_DIR_ENV	   "FUSEMIRROR_RUNTIME_DIR"
#define RUNTIME_RECORD_EXT ".record"

/* The directory of the records: $FUSEMIRROR_RUNTIME_DIR when set, else RUNTIME_DIR. */
const char *runtime_dir(void);

/* ---- A daemon's own record --------------------------------------------------------------- */

struct runtime_record;

/* A record for this process (getpid()); mountpoint and config should be absolute. */
struct runtime_record *runtime_record_new(const char *name, const char *mountpoint,
					  const char *config);

/* Forget the legs, before they are listed again. */
void runtime_record_clear_legs(struct runtime_record *rec);

/* List a leg: its identity is taken from path now; a path that cannot be stat'ed is skipped. */
void runtime_record_add_leg(struct runtime_record *rec, const char *name, const char *path);

/*
 * Write the record (creating the directory, mode 0755), atomically: a temporary file renamed
 * over the last one.  Returns true, or false with *error (the record is then not there, or the
 * previous one is).  Thread-safe against runtime_record_remove().
 */
bool runtime_record_write(struct runtime_record *rec, GError **error);

/* Remove the record's file (when it was written); the record stays usable. */
void runtime_record_remove(struct runtime_record *rec);

/* Free it (without removing its file).  NULL is ignored. */
void runtime_record_free(struct runtime_record *rec);

/* ---- Lookups --------------------------------------------------------------------------------- */

struct runtime_holder {
	pid_t pid;
	char *name;	  /* the mirror's name */
	char *mountpoint; /* where it is served */
	char *config;	  /* its config file */
	char *leg;	  /* the leg's name in that mirror (leg lookups only) */
};

/* Free the strings of a holder filled by a lookup. */
void runtime_holder_clear(struct runtime_holder *holder);

/* One line of /proc/self/mountinfo, unescaped (\040 is a space). */
struct runtime_mount {
	dev_t dev;    /* field 3: the mounted file system's device */
	char *point;  /* field 5: the mount point */
	char *type;   /* after the "-" that ends the optional fields: the file system type */
	char *source; /* and the source (fsname) */
};

/*
 * The mounts of this mount namespace, in mountinfo's order: a GPtrArray of struct runtime_mount
 * that frees them, or NULL with *error when mountinfo cannot be read.
 */
GPtrArray *runtime_read_mounts(GError **error);

/*
 * The live daemon, other than this process, whose record lists path as a leg: the same block
 * device (st_rdev) or the same file (st_dev, st_ino).  Fills *holder and returns true; false when
 * none (or path cannot be stat'ed).
 */
bool runtime_find_leg_holder(const char *path, struct runtime_holder *holder);

/* The live daemon, other than this process, whose record names mountpoint (canonical). */
bool runtime_find_mountpoint_holder(const char *mountpoint, struct runtime_holder *holder);

/*
 * Who holds path, for a refusal after an exclusive open failed with EBUSY: "is held by mirror
 * 'data' at /srv/data (pid 1234)", "is mounted on /mnt" (a block device), else "is held by
 * another program (opened exclusively)" or "(locked)" for a file, with the pid of a classic
 * fcntl lock when there is one.  Names and paths are escaped (no control characters).
 * Free with g_free.
 */
char *runtime_describe_holder(const char *path);

/* text with control characters as \xNN, for one-line messages; free with g_free. */
char *runtime_printable(const char *text);

#ifdef __cplusplus
}
#endif

#endif /* FUSEMIRROR_RUNTIME_H */
