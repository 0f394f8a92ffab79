/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The control-command parser (control.h).  Pure: no mirror, no I/O, no global state. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include <dmio.h>

#include "config/config.h"
#include "fuse/control.h"

/* Options a verb may take, before its arguments. */
enum {
	OPT_FORCE = 1u << 0,
	OPT_NO_SAVE = 1u << 1,
	OPT_FULL = 1u << 2,
	OPT_SOURCE = 1u << 3, /* takes a leg index */
	OPT_DIRECT = 1u << 4, /* --direct=auto|true|false, one word */
};

static const struct {
	const char *name;
	unsigned int bit;
} option_names[] = {
    {"--force", OPT_FORCE},
    {"--no-save", OPT_NO_SAVE},
    {"--full", OPT_FULL},
    {"--source", OPT_SOURCE},
};

static const struct verb {
	const char *name;
	enum control_verb verb;
	unsigned int options;
} verbs[] = {
    {"fail", CONTROL_FAIL, 0},
    {"remove", CONTROL_REMOVE, OPT_FORCE | OPT_NO_SAVE},
    {"add", CONTROL_ADD, OPT_FORCE | OPT_NO_SAVE | OPT_DIRECT},
    {"resync", CONTROL_RESYNC, OPT_FULL},
    {"set", CONTROL_SET, 0},
    {"stop", CONTROL_STOP, OPT_FORCE},
    {"check", CONTROL_CHECK, 0},
    {"repair", CONTROL_REPAIR, OPT_SOURCE},
    {"replace", CONTROL_REPLACE, OPT_NO_SAVE | OPT_DIRECT},
    {"restart", CONTROL_RESTART, 0},
};

/* A decimal number of bytes per second: digits only, no sign, no suffix. */
static bool parse_rate(const char *word, uint64_t *out)
{
	guint64 v;

	if (*word == '\0' || strspn(word, "0123456789") != strlen(word) ||
	    !g_ascii_string_to_unsigned(word, 10, 0, G_MAXUINT64, &v, NULL))
		return false;
	*out = v;
	return true;
}

static bool parse_seconds(const char *word, uint64_t *out)
{
	unsigned int ms;

	if (!config_parse_seconds(word, &ms))
		return false;
	*out = ms;
	return true;
}

/* Seconds as parse_seconds, but not 0 (a delay between tries). */
static bool parse_delay(const char *word, uint64_t *out)
{
	return parse_seconds(word, out) && *out > 0;
}

/* A decimal count of read errors, up to a million (as max-read-errors in fusemirror.conf(5)). */
static bool parse_count(const char *word, uint64_t *out)
{
	guint64 v;

	if (*word == '\0' || strspn(word, "0123456789") != strlen(word) ||
	    !g_ascii_string_to_unsigned(word, 10, 0, 1000000, &v, NULL))
		return false;
	*out = v;
	return true;
}

/* A decimal count of writes, as write-behind in fusemirror.conf(5). */
static bool parse_writes(const char *word, uint64_t *out)
{
	guint64 v;

	if (*word == '\0' || strspn(word, "0123456789") != strlen(word) ||
	    !g_ascii_string_to_unsigned(word, 10, 0, CONFIG_MAX_WRITE_BEHIND, &v, NULL))
		return false;
	*out = v;
	return true;
}

/* The tunables of "set": a new one is one line here and its case in xattr.c. */
static const struct tunable {
	const char *name;
	enum control_tunable tunable;
	bool (*parse)(const char *word, uint64_t *out);
	const char *syntax; /* what parse accepts, for "NAME needs SYNTAX, got 'WORD'" */
	bool per_leg;	    /* "set NAME [LEG] VALUE": of one leg, or of every leg */
} tunables[] = {
    {"resync-rate-min", CONTROL_RESYNC_RATE_MIN, parse_rate,
     "a decimal number of bytes per second", false},
    {"resync-rate-max", CONTROL_RESYNC_RATE_MAX, parse_rate,
     "a decimal number of bytes per second (0: unlimited)", false},
    {"io-timeout", CONTROL_IO_TIMEOUT, parse_seconds,
     "seconds from 0 to 3600, up to three decimals (0: none)", true},
    {"max-read-errors", CONTROL_MAX_READ_ERRORS, parse_count,
     "a decimal number of read errors from 0 to 1000000 (0: never fail a leg for them)", false},
    {"write-behind", CONTROL_WRITE_BEHIND, parse_writes,
     "a decimal number of writes from 0 to 16383 (0: none)", true},
    {"reconnect-delay", CONTROL_RECONNECT_DELAY, parse_delay,
     "seconds from 0.001 to 3600, up to three decimals", true},
    {"reconnect-max", CONTROL_RECONNECT_MAX, parse_count,
     "a decimal number of tries from 0 to 1000000 (0: never reconnect)", true},
};

const char *control_verb_name(enum control_verb verb)
{
	for (size_t i = 0; i < G_N_ELEMENTS(verbs); i++)
		if (verbs[i].verb == verb)
			return verbs[i].name;
	return "?";
}

char *control_escape(const char *text)
{
	/* add's and replace's path is the rest of the line: from an NBD URI on, redact it. */
	for (const char *p = text; *p != '\0'; p++) {
		if ((p == text || p[-1] == ' ' || p[-1] == '\t') && dmio_path_is_uri(p)) {
			g_autofree char *head = g_strndup(text, (gsize)(p - text));
			g_autofree char *tail = dmio_path_display(p);
			g_autofree char *line = g_strconcat(head, tail, NULL);

			return g_strescape(line, NULL);
		}
	}
	return g_strescape(text, NULL);
}

void control_command_clear(struct control_command *command)
{
	g_free(command->path);
	memset(command, 0, sizeof(*command));
}

static int parse_error(GError **error, const char *format, ...) G_GNUC_PRINTF(2, 3);

static int parse_error(GError **error, const char *format, ...)
{
	va_list ap;
	char *message;

	va_start(ap, format);
	message = g_strdup_vprintf(format, ap);
	va_end(ap);
	g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, message);
	g_free(message);
	return -EINVAL;
}

/*
 * Refuse text holding a control character: C0 (tab too: inside a word or a path it is not a
 * separator), DEL, or C1 in UTF-8 (U+0080 to U+009F: terminals take U+009B as CSI).  what names
 * the part ("the path").
 */
static int check_text(const char *text, const char *what, GError **error)
{
	const char *bad;

	/* Messages quote the text: it must be a string a log line and an xattr can carry. */
	if (!g_utf8_validate(text, -1, &bad))
		return parse_error(error, "%s is not UTF-8 (byte %d is 0x%02x)", what,
				   (int)(bad - text), (unsigned char)*bad);
	for (const unsigned char *c = (const unsigned char *)text; *c != '\0'; c++) {
		if (*c < 0x20 || *c == 0x7f)
			return parse_error(error, "%s contains control character 0x%02x", what, *c);
		if (*c == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f)
			return parse_error(error, "%s contains control character U+%04X", what,
					   c[1]);
	}
	return 0;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static const char *skip_blanks(const char *p)
{
	while (is_blank(*p))
		p++;
	return p;
}

/* The next word at *p (a new string), or NULL at the end; *p moves past it and its blanks. */
static char *next_word(const char **p)
{
	const char *start = skip_blanks(*p);
	const char *end = start;
	char *word;

	if (*start == '\0') {
		*p = start;
		return NULL;
	}
	while (*end != '\0' && !is_blank(*end))
		end++;
	word = g_strndup(start, (gsize)(end - start));
	*p = skip_blanks(end);
	return word;
}

/* A leg index in canonical decimal ("01", "+1" and "0x1" are not). */
static int parse_leg(const char *word, unsigned int *out, GError **error)
{
	guint64 v;

	if (*word == '\0' || strspn(word, "0123456789") != strlen(word) ||
	    (word[0] == '0' && word[1] != '\0') ||
	    !g_ascii_string_to_unsigned(word, 10, 0, UINT_MAX, &v, NULL))
		return parse_error(
		    error, "'%s' is not a leg index (a decimal number, 0 for the first leg)", word);
	*out = (unsigned int)v;
	return 0;
}

/* The options at *p that v takes, into out; stops at the first word not starting with "--". */
static int parse_options(const struct verb *v, const char **p, struct control_command *out,
			 GError **error)
{
	for (;;) {
		const char *start = skip_blanks(*p);
		g_autofree char *word = NULL;
		unsigned int bit = 0;
		int r;

		if (strncmp(start, "--", 2) != 0)
			return 0;
		word = next_word(p);
		r = check_text(word, "the command", error);
		if (r < 0)
			return r;
		for (size_t i = 0; i < G_N_ELEMENTS(option_names); i++)
			if (strcmp(word, option_names[i].name) == 0)
				bit = option_names[i].bit;
		if (strncmp(word, "--direct=", strlen("--direct=")) == 0)
			bit = OPT_DIRECT;
		if ((bit & v->options) == 0) {
			if (v->options == 0)
				return parse_error(error, "%s takes no options, got '%s'", v->name,
						   word);
			return parse_error(error, "%s has no option '%s'", v->name, word);
		}
		out->force |= bit == OPT_FORCE;
		out->no_save |= bit == OPT_NO_SAVE;
		out->full |= bit == OPT_FULL;
		if (bit == OPT_DIRECT) {
			enum leg_direct direct;

			if (!config_parse_direct(word + strlen("--direct="), &direct))
				return parse_error(
				    error, "%s --direct takes auto, true or false, got '%s'",
				    v->name, word + strlen("--direct="));
			out->direct = (unsigned int)direct;
		}
		if (bit == OPT_SOURCE) {
			g_autofree char *leg = next_word(p);

			if (leg == NULL || strncmp(leg, "--", 2) == 0)
				return parse_error(error, "%s --source needs a leg index", v->name);
			r = check_text(leg, "the leg index", error);
			if (r < 0)
				return r;
			r = parse_leg(leg, &out->leg, error);
			if (r < 0)
				return r;
			out->has_source = true;
		}
	}
}

/* Nothing may follow the arguments. */
static int expect_end(const struct verb *v, const char *p, GError **error)
{
	g_autofree char *word = next_word(&p);
	int r;

	if (word == NULL)
		return 0;
	r = check_text(word, "the command", error);
	if (r < 0)
		return r;
	return parse_error(error, "unexpected argument '%s' after %s's arguments", word, v->name);
}

static int parse_leg_argument(const struct verb *v, const char **p, struct control_command *out,
			      GError **error)
{
	g_autofree char *word = next_word(p);
	int r;

	if (word == NULL)
		return parse_error(error, "%s needs a leg index", v->name);
	r = check_text(word, "the leg index", error);
	if (r < 0)
		return r;
	r = parse_leg(word, &out->leg, error);
	return r < 0 ? r : expect_end(v, *p, error);
}

/* add's and replace's path: the rest of the line, blanks at its end excepted. */
static int parse_path_argument(const struct verb *v, const char *p, struct control_command *out,
			       GError **error)
{
	size_t len = strlen(p);
	int r;

	while (len > 0 && is_blank(p[len - 1]))
		len--;
	if (len == 0)
		return parse_error(error, "%s needs the path of the new leg", v->name);
	out->path = g_strndup(p, len);
	r = check_text(out->path, "the path", error);
	if (r < 0)
		return r;
	if (dmio_path_is_uri(out->path)) {
		const char *problem = dmio_path_uri_problem(out->path);
		g_autofree char *shown = NULL;

		if (problem == NULL)
			return 0;
		/* The URI may carry a password: the message shows it redacted. */
		shown = dmio_path_display(out->path);
		return parse_error(error, "%s: NBD URI '%s' %s", v->name, shown, problem);
	}
	if (out->path[0] != '/')
		return parse_error(error, "%s needs an absolute path or an NBD URI, got '%s'",
				   v->name, out->path);
	return 0;
}

/* replace's leg index, then its path. */
static int parse_replace(const struct verb *v, const char **p, struct control_command *out,
			 GError **error)
{
	g_autofree char *word = next_word(p);
	int r;

	if (word == NULL)
		return parse_error(error, "replace needs a leg index and the path of the new leg");
	r = check_text(word, "the leg index", error);
	if (r < 0)
		return r;
	r = parse_leg(word, &out->leg, error);
	return r < 0 ? r : parse_path_argument(v, *p, out, error);
}

static int parse_set(const struct verb *v, const char **p, struct control_command *out,
		     GError **error)
{
	g_autofree char *name = next_word(p);
	g_autofree char *value = NULL;
	const struct tunable *t = NULL;
	int r;

	if (name == NULL)
		return parse_error(error,
				   "set needs a tunable and a value (resync-rate-min or "
				   "resync-rate-max, then bytes per second; io-timeout [LEG], "
				   "then seconds; max-read-errors, then a count; reconnect-delay "
				   "[LEG], then seconds; reconnect-max [LEG], then a count; write-behind "
				   "[LEG], then writes)");
	r = check_text(name, "the tunable name", error);
	if (r < 0)
		return r;
	for (size_t i = 0; i < G_N_ELEMENTS(tunables); i++)
		if (strcmp(name, tunables[i].name) == 0)
			t = &tunables[i];
	if (t == NULL) {
		GString *names = g_string_new(NULL);

		for (size_t i = 0; i < G_N_ELEMENTS(tunables); i++)
			g_string_append_printf(names, "%s%s", i > 0 ? ", " : "", tunables[i].name);
		r = parse_error(error, "unknown tunable '%s' (there are: %s)", name, names->str);
		g_string_free(names, TRUE);
		return r;
	}
	value = next_word(p);
	if (value == NULL)
		return parse_error(error, "set %s needs a value: %s", t->name, t->syntax);
	r = check_text(value, "the value", error);
	if (r < 0)
		return r;
	/* "set io-timeout 1 2.5" (or reconnect-delay, reconnect-max): the first word was the leg. */
	if (t->per_leg) {
		g_autofree char *second = next_word(p);

		if (second != NULL) {
			r = check_text(second, "the value", error);
			if (r < 0)
				return r;
			r = parse_leg(value, &out->leg, error);
			if (r < 0)
				return r;
			out->has_leg = true;
			g_free(value);
			value = g_steal_pointer(&second);
		}
	}
	if (!t->parse(value, &out->value))
		return parse_error(error, "%s needs %s, got '%s'", t->name, t->syntax, value);
	out->tunable = t->tunable;
	out->tunable_name = t->name;
	return expect_end(v, *p, error);
}

int control_parse(const char *text, struct control_command *out, GError **error)
{
	const char *p = text;
	g_autofree char *word = NULL;
	const struct verb *v = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	word = next_word(&p);
	if (word == NULL)
		return parse_error(error, "empty control command");
	r = check_text(word, "the command", error);
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < G_N_ELEMENTS(verbs); i++)
		if (strcmp(word, verbs[i].name) == 0)
			v = &verbs[i];
	if (v == NULL) {
		r = parse_error(error,
				"unknown command '%s' (there are: fail, remove, add, resync, "
				"set, stop, check, repair, replace, restart)",
				word);
		goto fail;
	}
	out->verb = v->verb;
	r = parse_options(v, &p, out, error);
	if (r < 0)
		goto fail;
	switch (v->verb) {
	case CONTROL_FAIL:
	case CONTROL_REMOVE:
		r = parse_leg_argument(v, &p, out, error);
		break;
	case CONTROL_ADD:
		r = parse_path_argument(v, p, out, error);
		break;
	case CONTROL_REPLACE:
		r = parse_replace(v, &p, out, error);
		break;
	case CONTROL_SET:
		r = parse_set(v, &p, out, error);
		break;
	case CONTROL_RESYNC:
	case CONTROL_STOP:
	case CONTROL_RESTART:
	case CONTROL_CHECK:
	case CONTROL_REPAIR:
		r = expect_end(v, p, error);
		break;
	}
	if (r == 0)
		return 0;
fail:
	control_command_clear(out);
	return r;
}
