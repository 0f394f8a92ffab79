/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The checks of a new leg's PATH that add and replace share (ctl.h): what the daemon will open,
 * and whether another running mirror holds it.  An NBD URI is checked for form only: it names
 * no local file, and no other mirror can be found holding it.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/runtime.h"
#include "ctl.h"
#include "dmio.h"

/* One line of the control attribute carries it: no control character, no trailing blank. */
static bool path_sendable(const char *path)
{
	size_t len = strlen(path);

	for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return len > 0 && !g_ascii_isspace(path[len - 1]);
}

/*
 * An NBD URI goes as given (the daemon opens it through libdmio): checked for form, not stat'ed
 * nor resolved; whether it answers is found by reading its superblock next.
 */
static bool new_leg_uri(const char *path, const char *context, char **resolved, char **shown)
{
	const char *problem = dmio_path_uri_problem(path);

	*resolved = g_strdup(path);
	*shown = ctl_printable(path); /* redacted */
	if (problem != NULL) {
		ctl_message("%s: NBD URI '%s' %s", context, *shown, problem);
		return false;
	}
	if (!path_sendable(path)) {
		ctl_message("%s: NBD URI '%s' ends with a blank, which one line of %s cannot carry",
			    context, *shown, CTL_XATTR_CTL);
		return false;
	}
	return true;
}

bool ctl_new_leg_path(const char *file, const char *path, const char *context, char **resolved,
		      char **shown)
{
	struct stat st, mirror;

	if (dmio_path_is_uri(path))
		return new_leg_uri(path, context, resolved, shown);
	*resolved = realpath(path, NULL);
	if (*resolved == NULL) {
		int err = errno;

		ctl_message("%s: %s", context, g_strerror(err));
		return false;
	}
	*shown = ctl_printable(*resolved);
	if (stat(*resolved, &st) < 0) {
		int err = errno;

		ctl_message("%s: %s", context, g_strerror(err));
		return false;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		ctl_message("%s: not a regular file or a block device", context);
		return false;
	}
	/* The mirror as its own leg: every write would wait for itself. */
	if (stat(file, &mirror) == 0 && S_ISREG(st.st_mode) && st.st_dev == mirror.st_dev &&
	    st.st_ino == mirror.st_ino) {
		ctl_message("%s: that is the mirror file itself, not a leg", context);
		return false;
	}
	if (!path_sendable(*resolved)) {
		ctl_message("%s: the path '%s' has a control character or ends with a blank, which "
			    "one line of %s cannot carry: use a symbolic link without them",
			    context, *shown, CTL_XATTR_CTL);
		return false;
	}
	return true;
}

bool ctl_new_leg_unheld(const char *file, const char *resolved, const char *shown,
			const char *context)
{
	struct runtime_holder holder;
	g_autofree char *mirror = NULL;
	bool ok;

	/* No claim on a remote export: the runtime records hold only local files and devices. */
	if (dmio_path_is_uri(resolved))
		return true;
	mirror = realpath(file, NULL);
	if (!runtime_find_leg_holder(resolved, &holder))
		return true;
	/* This very mirror: the daemon knows what to do with its own leg. */
	ok = mirror != NULL && strcmp(mirror, holder.mountpoint) == 0;
	if (!ok) {
		g_autofree char *name = ctl_printable(holder.name);
		g_autofree char *where = ctl_printable(holder.mountpoint);

		ctl_message("%s: %s is held by mirror '%s' at %s (pid %d)", context, shown, name,
			    where, (int)holder.pid);
	}
	runtime_holder_clear(&holder);
	return ok;
}
