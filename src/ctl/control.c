/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Sending a command to fusemirrord: root sets trusted.fusemirror.ctl on the mirror file to one
 * line, and setxattr() returns once the daemon has run it, or fails with the errno of its refusal.
 * The daemon then explains the refusal in user.fusemirror.last_error.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/xattr.h>

#include "ctl.h"

bool ctl_check_live(const struct ctl_status *status, const char *context, const char *commands)
{
	if (status->live)
		return true;
	ctl_message("%s: not sending %s: the file is not on a FUSE file system, so no "
		    "fusemirrord serves it (its %s* attributes are a copy)",
		    context, commands, CTL_XATTR_PREFIX);
	return false;
}

int ctl_send(const char *file, const char *command, char **explanation)
{
	g_autofree char *text = NULL;
	int err;

	*explanation = NULL;
	if (setxattr(file, CTL_XATTR_CTL, command, strlen(command), 0) == 0)
		return 0;
	err = errno;
	/*
	 * EPERM: the kernel refuses trusted.* to anyone but root before the daemon sees the
	 * command, so last_error, if any, is about an earlier one.
	 */
	if (err != EPERM && ctl_read_attribute(file, CTL_XATTR_LAST_ERROR, &text) == 0) {
		g_strstrip(text);
		if (*text != '\0')
			*explanation = g_steal_pointer(&text);
	}
	return -err;
}

void ctl_report_refusal(const char *context, const char *command, int err, const char *explanation,
			const char *reason)
{
	g_autofree char *shown_command = ctl_printable(command);

	if (explanation != NULL) {
		g_autofree char *shown = ctl_printable(explanation);

		ctl_message("%s: the daemon refused '%s': %s", context, shown_command, shown);
	} else if (reason != NULL) {
		ctl_message("%s: the daemon refused '%s': %s%s", context, shown_command,
			    g_strerror(err), reason);
	} else {
		ctl_message("%s: cannot send '%s' through %s: %s", context, shown_command,
			    CTL_XATTR_CTL, g_strerror(err));
	}
}
