/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: the control-command parser (src/fuse/control.h), the text written to the
 * trusted.fusemirror.ctl xattr (fusemirrorctl(8), CONTROL COMMANDS).  As xattr_set() does, the
 * value is at most 4096 bytes and a C string.  A command either parses (0, no error) or is
 * refused (-errno) with a reason that is one clean line: it becomes last_error and a log line.
 * control_command_clear() is called after a refusal too, on the zeroed command.
 */
#include <stdint.h>

#include <dmio.h>

#include "fuse/control.h"
#include "fuzz-util.h"

#define CONTROL_MAX 4096

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_glib_fatal();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct control_command command;
	GError *error = NULL;
	char *text;
	int r;

	if (size > CONTROL_MAX)
		return -1; /* the xattr layer refuses it: not worth keeping in the corpus */
	text = g_strndup((const char *)data, size);
	memset(&command, 0, sizeof(command));
	r = control_parse(text, &command, &error);
	if (r == 0) {
		fuzz_assert(error == NULL);
		/* add's and replace's path: absolute, or a well-formed NBD URI. */
		fuzz_assert(command.path == NULL || command.path[0] == '/' ||
			    (dmio_path_is_uri(command.path) &&
			     dmio_path_uri_problem(command.path) == NULL));
	} else {
		fuzz_assert(r < 0);
		fuzz_assert(error != NULL);
		fuzz_check_message("the refusal", error->message);
		g_error_free(error);
	}
	control_command_clear(&command);
	g_free(text);
	return 0;
}
