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

int ctl_leg_command(const char *verb, const char *file, const char *leg_arg, const char *options,
		    ctl_refusal_reason_fn reason, char **leg_name, unsigned int *leg_index)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *shown_file = ctl_printable(file);
	g_autofree char *shown_leg = ctl_printable(leg_arg);
	g_autofree char *context = g_strdup_printf("%s %s %s", verb, shown_file, shown_leg);
	g_autofree char *command = NULL;
	g_autofree char *quoted = NULL;
	g_autofree char *explanation = NULL;
	const struct ctl_leg_status *leg;
	struct ctl_status *st;
	int status = CTL_EXIT_FAILED, r;

	st = ctl_status_read(file, &error);
	if (st == NULL) {
		ctl_message("%s: %s", context, error->message);
		return CTL_EXIT_FAILED;
	}
	leg = ctl_status_find_leg(st, leg_arg);
	if (leg == NULL) {
		g_autofree char *name = ctl_printable(st->name);
		g_autofree char *choices = ctl_status_leg_choices(st);

		ctl_message("%s: mirror '%s' has no leg '%s'; its legs are: %s", context, name,
			    shown_leg, choices);
		goto out;
	}
	command = g_strdup_printf("%s %s%u", verb, options, leg->index);
	quoted = g_strdup_printf("'%s'", command);
	if (!ctl_check_live(st, context, quoted))
		goto out;
	r = ctl_send(file, command, &explanation);
	if (r < 0) {
		ctl_report_refusal(context, command, -r, explanation,
				   reason(-r, leg, strstr(options, "--force") != NULL));
		goto out;
	}
	*leg_name = ctl_printable(leg->name);
	*leg_index = leg->index;
	status = CTL_EXIT_OK;
out:
	ctl_status_free(st);
	return status;
}
