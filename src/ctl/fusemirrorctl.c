/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl: the table of subcommands, the global options, and the helpers every subcommand
 * shares to parse its options and report errors.
 */
#include "config.h"

#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* In the order the general --help and fusemirrorctl(8) list them, one per line. */
/* clang-format off */
static const struct ctl_command *const commands[] = {
    &ctl_cmd_create,
    &ctl_cmd_examine,
    &ctl_cmd_scan,
    &ctl_cmd_status,
    &ctl_cmd_list,
    &ctl_cmd_wait,
    &ctl_cmd_fail,
    &ctl_cmd_add,
    &ctl_cmd_remove,
    &ctl_cmd_replace,
    &ctl_cmd_resync,
    &ctl_cmd_check,
    &ctl_cmd_repair,
    &ctl_cmd_set,
    &ctl_cmd_stop,
    &ctl_cmd_restart,
    &ctl_cmd_monitor,
};
/* clang-format on */

void ctl_message(const char *fmt, ...)
{
	va_list ap;

	/* Flush first so that a message and a partial report are not interleaved. */
	fflush(stdout);
	fputs("fusemirrorctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...)
{
	va_list ap;
	g_autofree char *message = NULL;

	va_start(ap, fmt);
	message = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (cmd != NULL) {
		ctl_message("%s: %s", cmd->name, message);
		fprintf(stderr, "Try 'fusemirrorctl %s --help'.\n", cmd->name);
	} else {
		ctl_message("%s", message);
		fputs("Try 'fusemirrorctl --help'.\n", stderr);
	}
	return CTL_EXIT_USAGE;
}

bool ctl_parse_options(const struct ctl_command *cmd, const GOptionEntry *entries, int *argc,
		       char ***argv, int min_args, int max_args)
{
	g_autoptr(GOptionContext) context = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *prgname = g_strdup_printf("fusemirrorctl %s", cmd->name);
	int nargs;

	/* GOption's usage line is "PRGNAME [OPTION…] PARAMETERS". */
	g_set_prgname(prgname);
	context = g_option_context_new(cmd->parameters);
	g_option_context_set_summary(context, cmd->summary);
	if (cmd->description != NULL)
		g_option_context_set_description(context, cmd->description);
	if (entries != NULL)
		g_option_context_add_main_entries(context, entries, NULL);
	if (!g_option_context_parse(context, argc, argv, &error)) {
		ctl_usage_error(cmd, "%s", error->message);
		return false;
	}

	nargs = *argc - 1;
	if (nargs < min_args) {
		/* Name what is missing: the parameters from the first one not given. */
		g_auto(GStrv) parameters = g_strsplit(cmd->parameters, " ", -1);
		g_autofree char *missing = NULL;

		if (nargs < (int)g_strv_length(parameters))
			missing = g_strjoinv(" ", parameters + nargs);
		else
			missing = g_strdup(cmd->parameters);
		ctl_usage_error(cmd, "missing %s", missing);
		return false;
	}
	if (nargs > max_args) {
		ctl_usage_error(cmd, "unexpected argument '%s'", (*argv)[max_args + 1]);
		return false;
	}
	return true;
}

static const struct ctl_command *find_command(const char *name)
{
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
		if (strcmp(commands[i]->name, name) == 0)
			return commands[i];
	return NULL;
}

/* The list of commands and the exit statuses, below the options of the general --help. */
static char *general_description(void)
{
	GString *text = g_string_new("Commands:\n");
	size_t width = 0;

	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
		size_t len = strlen(commands[i]->name) + 1 + strlen(commands[i]->parameters);

		width = MAX(width, len);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
		g_autofree char *usage =
		    g_strdup_printf("%s %s", commands[i]->name, commands[i]->parameters);

		g_string_append_printf(text, "  %-*s  %s\n", (int)width, usage,
				       commands[i]->summary);
	}
	g_string_append(text,
			"\n"
			"Run 'fusemirrorctl COMMAND --help' for the options of a command.\n"
			"\n"
			"Exit status: 0 success, 1 the operation failed, 2 usage error;\n"
			"status and wait exit 0 clean, 1 degraded, 3 failed, 4 the status cannot\n"
			"be read.\n"
			"See fusemirrorctl(8).");
	return g_string_free(text, FALSE);
}

int main(int argc, char **argv)
{
	gboolean version = FALSE;
	const GOptionEntry entries[] = {
	    {"version", 'V', 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL},
	    G_OPTION_ENTRY_NULL,
	};
	g_autoptr(GOptionContext) context = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *description = NULL;
	const struct ctl_command *cmd;

	setlocale(LC_ALL, "");

	context = g_option_context_new("COMMAND [ARGUMENT…]");
	g_option_context_set_summary(context,
				     "Create, inspect and administer a fusemirror mirror.");
	description = general_description();
	g_option_context_set_description(context, description);
	g_option_context_add_main_entries(context, entries, NULL);
	/* Stop at the command: what follows it is the command's to parse. */
	g_option_context_set_strict_posix(context, TRUE);
	if (!g_option_context_parse(context, &argc, &argv, &error))
		return ctl_usage_error(NULL, "%s", error->message);

	if (version) {
		printf("fusemirrorctl (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
		return CTL_EXIT_OK;
	}
	if (argc < 2)
		return ctl_usage_error(NULL, "no command given");
	cmd = find_command(argv[1]);
	if (cmd == NULL)
		return ctl_usage_error(NULL, "unknown command '%s'", argv[1]);
	return cmd->run(cmd, argc - 1, argv + 1);
}
