/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirrorctl set FILE NAME=VALUE...: change a setting of a running mirror, as writing to
 * md's sync_speed_min does: "set NAME VALUE" to trusted.fusemirror.ctl for each one, then the
 * values read back from user.fusemirror.resync.rate_min, .rate_max and .max_read_errors (the
 * per-leg ones, io-timeout and reconnect-*, status shows).  A rate takes the size suffixes of
 * fusemirror.conf(5) (K, M, G, T: powers of 1024), parsed by the same code; max-read-errors,
 * reconnect-max and write-behind are plain counts.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "config/config.h"
#include "ctl.h"

/* What set can change: the keys of fusemirror.conf(5) of the same name. */
static const struct {
	const char *name;
	bool zero_is_unlimited;
	bool seconds; /* VALUE is seconds (io-timeout, reconnect-delay of every leg), not a rate */
	bool count;   /* a count, not a rate */
	bool per_leg; /* of every leg: status shows each leg's, print_settings does not */
	const char *syntax; /* seconds and counts: what VALUE must be */
	guint64 max;	    /* counts: the largest VALUE (0: 1000000) */
} settings[] = {
    {"resync-rate-min", false, false, false, false, NULL, 0},
    {"resync-rate-max", true, false, false, false, NULL, 0},
    {"io-timeout", false, true, false, true,
     "a number of seconds from 0 to 3600 (decimals allowed, 0: none)", 0},
    {"max-read-errors", false, false, true, false,
     "a number of read errors from 0 to 1000000 (0: never fail a leg for corrected read errors)",
     0},
    {"reconnect-delay", false, true, false, true,
     "a number of seconds from 0.001 to 3600 (decimals allowed)", 0},
    {"reconnect-max", false, false, true, true,
     "a number of tries from 0 to 1000000 (0: never reconnect)", 0},
    {"write-behind", false, false, true, true, "a number of writes from 0 to 16383 (0: none)",
     CONFIG_MAX_WRITE_BEHIND},
};

/* write-behind's syntax text says the largest value. */
G_STATIC_ASSERT(CONFIG_MAX_WRITE_BEHIND == 16383);

struct assignment {
	unsigned int setting; /* index in settings[] */
	uint64_t value;
	char *command; /* "set NAME BYTES" */
};

/* Why the daemon may say no, after the errno's own text (fusemirrorctl(8) lists them). */
static const char *refusal_reason(int err)
{
	switch (err) {
	case EINVAL:
		return " (it does not accept this name or value)";
	case EPERM:
		return " (only root may control a mirror)";
	default:
		return NULL;
	}
}

static char *setting_names(void)
{
	GString *text = g_string_new(NULL);

	for (size_t i = 0; i < G_N_ELEMENTS(settings); i++)
		g_string_append_printf(text, "%s%s", i > 0 ? ", " : "", settings[i].name);
	return g_string_free(text, FALSE);
}

/* Parse NAME=VALUE into a.  Returns false after a usage error. */
static bool parse_assignment(const struct ctl_command *cmd, const char *arg, bool *given,
			     struct assignment *a)
{
	const char *equals = strchr(arg, '=');
	g_autofree char *name = NULL;
	g_autofree char *shown = ctl_printable(arg);
	size_t i;

	if (equals == NULL) {
		ctl_usage_error(cmd, "'%s' is not NAME=VALUE", shown);
		return false;
	}
	name = g_strndup(arg, equals - arg);
	for (i = 0; i < G_N_ELEMENTS(settings); i++)
		if (strcmp(settings[i].name, name) == 0)
			break;
	if (i == G_N_ELEMENTS(settings)) {
		g_autofree char *shown_name = ctl_printable(name);
		g_autofree char *names = setting_names();

		ctl_usage_error(cmd, "unknown setting '%s': it is one of %s", shown_name, names);
		return false;
	}
	if (given[i]) {
		ctl_usage_error(cmd, "%s is given twice", settings[i].name);
		return false;
	}
	if (settings[i].seconds) {
		unsigned int ms;

		if (!config_parse_seconds(equals + 1, &ms) ||
		    (ms == 0 && strcmp(settings[i].name, "reconnect-delay") == 0)) {
			ctl_usage_error(cmd, "'%s': not %s", shown, settings[i].syntax);
			return false;
		}
		given[i] = true;
		a->setting = (unsigned int)i;
		a->value = ms;
		a->command = g_strdup_printf("set %s %s", settings[i].name, equals + 1);
		return true;
	}
	if (settings[i].count) {
		guint64 v;

		if (strspn(equals + 1, "0123456789") != strlen(equals + 1) ||
		    !g_ascii_string_to_unsigned(equals + 1, 10, 0,
						settings[i].max != 0 ? settings[i].max : 1000000,
						&v, NULL)) {
			ctl_usage_error(cmd, "'%s': not %s", shown, settings[i].syntax);
			return false;
		}
		a->value = v;
	} else if (!g_ascii_isdigit(equals[1]) || !config_parse_size(equals + 1, &a->value)) {
		/* config_parse_size() takes white space and a sign that a rate cannot have. */
		ctl_usage_error(cmd,
				"'%s': not a rate in bytes per second, such as 50M (K, M, G: "
				"powers of 1024)",
				shown);
		return false;
	}
	given[i] = true;
	a->setting = (unsigned int)i;
	a->command =
	    g_strdup_printf("set %s %" G_GUINT64_FORMAT, settings[i].name, (guint64)a->value);
	return true;
}

/* "NAME = BYTES (HUMAN)" for each setting, as the daemon now reports it. */
static bool print_settings(const char *file)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) out = g_string_new(NULL);
	struct ctl_status *st = ctl_status_read(file, &error);
	bool ok;

	if (st == NULL) {
		g_autofree char *shown = ctl_printable(file);

		ctl_message("set %s: cannot read the settings back: %s", shown, error->message);
		return false;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(settings); i++) {
		bool present = i == 0	? st->has_rate_min
			       : i == 1 ? st->has_rate_max
					: st->has_max_read_errors;
		uint64_t value = i == 0	  ? st->resync_rate_min
				 : i == 1 ? st->resync_rate_max
					  : st->max_read_errors;

		/* Per leg: status shows each leg's. */
		if (settings[i].per_leg)
			continue;
		g_autofree char *human = NULL;

		if (!present) {
			g_string_append_printf(out, "%s = ? (the daemon does not report it)\n",
					       settings[i].name);
			continue;
		}
		if (settings[i].count) {
			g_string_append_printf(out, "%s = %" G_GUINT64_FORMAT "%s\n",
					       settings[i].name, (guint64)value,
					       value == 0 ? " (never fail a leg for them)" : "");
			continue;
		}
		human = ctl_format_rate(value, settings[i].zero_is_unlimited);
		g_string_append_printf(out, "%s = %" G_GUINT64_FORMAT " (%s)\n", settings[i].name,
				       (guint64)value, human);
	}
	ctl_status_free(st);
	ok = ctl_write_stdout(out);
	return ok;
}

static int run_set(const struct ctl_command *cmd, int argc, char **argv)
{
	bool given[G_N_ELEMENTS(settings)] = {false};
	struct assignment assignments[G_N_ELEMENTS(settings)] = {{0}};
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) commands = g_string_new(NULL);
	g_autofree char *shown_file = NULL;
	g_autofree char *context = NULL;
	struct ctl_status *st = NULL;
	unsigned int n = 0, sent = 0;
	int status = CTL_EXIT_FAILED;

	if (!ctl_parse_options(cmd, NULL, &argc, &argv, 2, 1 + G_N_ELEMENTS(settings)))
		return CTL_EXIT_USAGE;
	for (int i = 2; i < argc; i++) {
		if (!parse_assignment(cmd, argv[i], given, &assignments[n])) {
			status = CTL_EXIT_USAGE;
			goto out;
		}
		g_string_append_printf(commands, "%s'%s'", n > 0 ? " and " : "",
				       assignments[n].command);
		n++;
	}
	shown_file = ctl_printable(argv[1]);
	context = g_strdup_printf("set %s", shown_file);

	st = ctl_status_read(argv[1], &error);
	if (st == NULL) {
		ctl_message("%s: %s", context, error->message);
		goto out;
	}
	if (!ctl_check_live(st, context, commands->str))
		goto out;
	for (sent = 0; sent < n; sent++) {
		g_autofree char *explanation = NULL;
		int r = ctl_send(argv[1], assignments[sent].command, &explanation);

		if (r < 0) {
			ctl_report_refusal(context, assignments[sent].command, -r, explanation,
					   refusal_reason(-r));
			break;
		}
	}
	if (sent > 0 && sent < n)
		ctl_message("%s: %s was set all the same", context,
			    settings[assignments[0].setting].name);
	if (!print_settings(argv[1]))
		sent = 0;
	if (sent == n)
		status = CTL_EXIT_OK;
out:
	for (unsigned int i = 0; i < n; i++)
		g_free(assignments[i].command);
	ctl_status_free(st);
	return status;
}

const struct ctl_command ctl_cmd_set = {
    .name = "set",
    .parameters = "FILE NAME=VALUE...",
    .summary = "Change the resync rate limits, io-timeout, max-read-errors, reconnect settings or "
	       "write-behind of a running mirror",
    .description =
	"NAME is one of resync-rate-min, resync-rate-max, max-read-errors, io-timeout,\n"
	"reconnect-delay, reconnect-max and write-behind.\n"
	"The rates take bytes per second with an optional K, M or G suffix (powers of 1024);\n"
	"resync-rate-max=0 lifts the limit.  max-read-errors takes a number of read errors (0:\n"
	"legs are never failed for corrected read errors); io-timeout=SECONDS sets every leg's\n"
	"io-timeout (decimals allowed, 0: none); reconnect-delay=SECONDS and\n"
	"reconnect-max=TRIES set every leg's (0 tries: a remote leg that loses its server is\n"
	"never reconnected); write-behind=WRITES sets that of every write-mostly leg (0: none;\n"
	"refused when no leg is write-mostly).  The new values are printed as the daemon\n"
	"reports them.\n"
	"Exit status: 0 set, 1 refused or failed, 2 usage error.",
    .run = run_set,
};
