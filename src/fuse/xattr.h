/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mirror's extended attributes: status (user.fusemirror.*, read-only, for anyone who may read
 * the file) and control (trusted.fusemirror.ctl, root only).  See fusemirrorctl(8).
 */
#ifndef FUSEMIRROR_XATTR_H
#define FUSEMIRROR_XATTR_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mirror/mirror.h"

#ifdef __cplusplus
extern "C" {
#endif

#define XATTR_STATUS_PREFIX "user.fusemirror."
#define XATTR_CTL	    "trusted.fusemirror.ctl"

/*
 * The value of a status attribute (g_free it), or NULL when there is none (ENODATA).  caller
 * (the requesting process) picks whose last_error is answered.
 */
char *xattr_status_get(struct mirror *m, uint64_t caller, const char *name);

/*
 * user.fusemirror.restarts: how often the daemon serving the file was restarted without
 * unmounting (the front end sets it on a takeover; 0 until then).
 */
void xattr_set_restarts(unsigned int restarts);

/*
 * user.fusemirror.fuse_transport ("io_uring" or "dev") and fuse_requests.io_uring /
 * fuse_requests.dev (requests each carried): the front end's, asked of fn when read.  fn may
 * be NULL (then "dev", and 0 and 0).
 */
struct xattr_fuse_stats {
	bool ring; /* FUSE over io_uring serves the connection */
	uint64_t ring_requests, dev_requests;
};
void xattr_set_fuse_stats(void (*fn)(void *opaque, struct xattr_fuse_stats *out), void *opaque);

/* Every status attribute name, each followed by a NUL, as listxattr wants them (g_free it). */
char *xattr_status_list(struct mirror *m, size_t *length);

/*
 * Set an attribute.  XATTR_CTL runs a command ("fail N"); is_root says whether the caller may;
 * a refusal's reason becomes caller's user.fusemirror.last_error.  Returns 0 or -errno: -EPERM
 * (not root, or a read-only status attribute), -EINVAL (bad command or leg), -EBUSY (failing the
 * last in-sync leg, a replace while one runs), -EALREADY (the leg is not in sync), -ENOTSUP (any
 * other name).
 */
int xattr_set(struct mirror *m, uint64_t caller, const char *name, const char *value, size_t size,
	      bool is_root);

/* What the front end adds to the control commands; any member may be NULL. */
struct xattr_hooks {
	/*
	 * stop [--force]: 0 once the stop is decided (the command's reply still goes out), or
	 * -errno with *error: -EBUSY while the file is in use and !force, naming what holds it.
	 * Without it stop is -ENOTSUP.
	 */
	int (*stop)(void *opaque, bool force, GError **error);
	/*
	 * After a successful add or remove, and a replace's add; save is false with --no-save.
	 * Also when a replace has removed its old leg, then on the mirror's replace thread: the
	 * hooks must stay valid until the mirror is closed.
	 */
	void (*on_membership)(void *opaque, struct mirror *m, bool save);
	void *opaque;
	/*
	 * restart: 0 once the daemon decided to hand the mounted file over to a new process of
	 * itself (the command's reply still goes out), or -errno with *error (the configuration
	 * does not load: nothing changes).  Without it restart is -ENOTSUP.
	 */
	int (*restart)(void *opaque, GError **error);
};

/*
 * xattr_set with hooks (NULL: none).  Besides xattr_set's errors, -EBUSY from the stop hook and
 * -ENOTSUP for stop or restart without its hook.
 */
int xattr_set_hooked(struct mirror *m, const struct xattr_hooks *hooks, uint64_t caller,
		     const char *name, const char *value, size_t size, bool is_root);

#ifdef __cplusplus
}
#endif

#endif /* FUSEMIRROR_XATTR_H */
