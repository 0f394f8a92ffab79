/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fusemirror.conf(5): reading and checking a mirror's config.
 *
 * Three passes, each stopping at the first error: the raw-text scan (scan.c) for syntax and line
 * numbers; the structure (known groups and keys, no duplicates, leg names, the number of legs);
 * then GKeyFile loads the text and each value is parsed in file order, followed by the checks
 * that involve several values.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dmio.h>

#include "config/config.h"
#include "config-internal.h"

#define MAX_ASSEMBLE_TIMEOUT	 3600u
#define DEFAULT_ASSEMBLE_TIMEOUT 10u
/*
 * SIGTERM's wait for the last close: enough for a consumer stopped at the same time (its umount
 * or losetup -d in flight) to let go, short enough not to hold up a shutdown, and far below
 * systemd's stop timeout (90 s by default, 5 min in our unit).
 */
#define MAX_STOP_TIMEOUT     3600u
#define DEFAULT_STOP_TIMEOUT 5u
/* Like the kernel's SCSI and NVMe command timeouts: no healthy device takes this long. */
#define DEFAULT_IO_TIMEOUT_MS 30000u
/* md's default (max_corrected_read_errors); a leg failing more often than that is dying. */
#define DEFAULT_MAX_READ_ERRORS 20u
#define MAX_MAX_READ_ERRORS	1000000u
#define MIRROR_GROUP		 "mirror"
#define LEG_GROUP_PREFIX	 "leg "
#define MAX_NAME_BYTES		 64
#define MAX_THREADS		 1024
#define MAX_PATH_BYTES		 4095
/* Bigger than any sensible config; stops -c /dev/zero from eating the memory. */
#define MAX_FILE_BYTES (1024 * 1024)

/* In the order of the enums of config.h and dmio.h. */
static const char *const read_policy_names[] = {"least-pending", "round-robin", "primary"};
static const char *const engine_names[] = {"threads", "io_uring"};
static const char *const cache_names[] = {"none", "writeback"};
static const char *const metadata_names[] = {"none", "internal"};
static const char *const fuse_transport_names[] = {"auto", "io_uring", "dev"};
static const char *const splice_names[] = {"auto", "true", "false"};

static const char *name_of(const char *const *names, size_t count, unsigned int value)
{
	return value < count ? names[value] : "unknown";
}

const char *config_read_policy_name(enum read_policy policy)
{
	return name_of(read_policy_names, G_N_ELEMENTS(read_policy_names), policy);
}

const char *config_cache_name(enum cache_mode cache)
{
	return name_of(cache_names, G_N_ELEMENTS(cache_names), cache);
}

const char *config_fuse_transport_name(enum fuse_transport_mode transport)
{
	return name_of(fuse_transport_names, G_N_ELEMENTS(fuse_transport_names), transport);
}

const char *config_splice_name(enum splice_mode splice)
{
	return name_of(splice_names, G_N_ELEMENTS(splice_names), splice);
}

const char *config_metadata_name(enum metadata_mode metadata)
{
	return name_of(metadata_names, G_N_ELEMENTS(metadata_names), metadata);
}

const char *config_engine_name(enum dmio_engine engine)
{
	return name_of(engine_names, G_N_ELEMENTS(engine_names), engine);
}

void config_free(struct mirror_config *config)
{
	if (config == NULL)
		return;
	for (unsigned int i = 0; i < config->num_legs; i++) {
		g_free(config->legs[i].name);
		g_free(config->legs[i].path);
	}
	g_free(config->legs);
	g_free(config->file);
	g_free(config->name);
	g_free(config->mountpoint);
	g_free(config->on_event);
	g_free(config->force_source);
	g_free(config);
}

/* State of one parse, shared by the passes. */
struct parser {
	struct config_ctx ctx;
	struct config_scan scan;
	struct mirror_config *config;
	GKeyFile *keyfile;
	const char *where;	/* "" or "[leg NAME]: ", the prefix of value messages */
	struct leg_config *leg; /* the leg being parsed, or NULL in [mirror] */
	unsigned int mountpoint_line;
	unsigned int rate_min_line, rate_max_line; /* 0: not in the file */
	unsigned int write_behind_line;		   /* of the leg being parsed; 0: none */
	unsigned int direct_line;		   /* of the leg being parsed; 0: none */
	GHashTable *leg_paths; /* normalized path -> leg name */
};

/* Each key's value is parsed by one of these; FALSE with *error set on a bad value. */
typedef gboolean parse_fn(struct parser *p, const char *key, const char *value, unsigned int line,
			  GError **error);

struct key_parser {
	const char *key;
	parse_fn *parse;
};

static gboolean bad_value(struct parser *p, GError **error, unsigned int line, const char *key,
			  const char *value, const char *problem)
{
	config_set_error(&p->ctx, error, CONFIG_ERROR_VALUE, line, "%s%s '%s' %s", p->where, key,
			 config_quote(&p->ctx, value, 0), problem);
	return FALSE;
}

static gboolean parse_enum(struct parser *p, const char *key, const char *value, unsigned int line,
			   const char *const *names, size_t count, unsigned int *out,
			   GError **error)
{
	g_autoptr(GString) problem = g_string_new("is not one of ");

	for (size_t i = 0; i < count; i++) {
		if (strcmp(value, names[i]) == 0) {
			*out = i;
			return TRUE;
		}
		g_string_append_printf(problem, "%s%s", i > 0 ? ", " : "", names[i]);
	}
	return bad_value(p, error, line, key, value, problem->str);
}

static gboolean parse_boolean(struct parser *p, const char *key, const char *value,
			      unsigned int line, bool *out, GError **error)
{
	static const char *const yes[] = {"true", "yes", "1"};
	static const char *const no[] = {"false", "no", "0"};

	for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
		if (g_ascii_strcasecmp(value, yes[i]) == 0) {
			*out = true;
			return TRUE;
		}
		if (g_ascii_strcasecmp(value, no[i]) == 0) {
			*out = false;
			return TRUE;
		}
	}
	return bad_value(p, error, line, key, value,
			 "is not a boolean (true, false, yes, no, 1 or 0)");
}

/* An absolute path that can be shown in a log line and an xattr. */
static gboolean parse_path(struct parser *p, const char *key, const char *value, unsigned int line,
			   char **out, GError **error)
{
	if (value[0] != '/')
		return bad_value(p, error, line, key, value, "is not absolute");
	if (strlen(value) > MAX_PATH_BYTES)
		return bad_value(p, error, line, key, value, "is longer than 4095 bytes");
	for (const char *c = value; *c != '\0'; c = g_utf8_next_char(c))
		if (!g_unichar_isprint(g_utf8_get_char(c)))
			return bad_value(p, error, line, key, value,
					 "contains a non-printable character");
	g_free(*out);
	*out = g_strdup(value);
	return TRUE;
}

/*
 * The same file spelled differently ("/a//b", "/a/./b/") must count as a duplicate; ".." is
 * left alone since it cannot be resolved without the file system (symlinks).
 */
static char *normalize_path(const char *path)
{
	g_auto(GStrv) parts = g_strsplit(path, "/", -1);
	GString *out = g_string_new(NULL);

	for (char **part = parts; *part != NULL; part++) {
		if (**part == '\0' || strcmp(*part, ".") == 0)
			continue;
		g_string_append_printf(out, "/%s", *part);
	}
	if (out->len == 0)
		g_string_append_c(out, '/');
	return g_string_free(out, FALSE);
}

/* Why name cannot name a leg or a mirror, or NULL when it can. */
static const char *name_problem(const char *name, bool is_mirror)
{
	const char *last;

	if (*name == '\0')
		return "is empty";
	if (strlen(name) > MAX_NAME_BYTES)
		return "is longer than 64 bytes";
	for (const char *c = name; *c != '\0'; c = g_utf8_next_char(c))
		if (!g_unichar_isprint(g_utf8_get_char(c)))
			return "contains a non-printable character";
	if (is_mirror) {
		/* The name becomes a file name (systemd instance, run directory). */
		if (strchr(name, '/') != NULL)
			return "contains '/'";
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			return "is '.' or '..'";
		return NULL;
	}
	last = g_utf8_prev_char(name + strlen(name));
	if (g_unichar_isspace(g_utf8_get_char(name)) || g_unichar_isspace(g_utf8_get_char(last)))
		return "has white space around it";
	return NULL;
}

const char *config_leg_name_problem(const char *name)
{
	if (!g_utf8_validate(name, -1, NULL))
		return "is not UTF-8";
	if (strpbrk(name, "[]") != NULL)
		return "contains '[' or ']'";
	return name_problem(name, false);
}

static gboolean parse_name(struct parser *p, const char *key, const char *value, unsigned int line,
			   GError **error)
{
	const char *problem = name_problem(value, true);

	if (problem != NULL)
		return bad_value(p, error, line, key, value, problem);
	p->config->name = g_strdup(value);
	return TRUE;
}

static gboolean parse_mountpoint(struct parser *p, const char *key, const char *value,
				 unsigned int line, GError **error)
{
	p->mountpoint_line = line;
	return parse_path(p, key, value, line, &p->config->mountpoint, error);
}

static gboolean parse_read_policy(struct parser *p, const char *key, const char *value,
				  unsigned int line, GError **error)
{
	unsigned int v;

	if (!parse_enum(p, key, value, line, read_policy_names, G_N_ELEMENTS(read_policy_names), &v,
			error))
		return FALSE;
	p->config->read_policy = v;
	return TRUE;
}

static gboolean parse_engine(struct parser *p, const char *key, const char *value,
			     unsigned int line, GError **error)
{
	unsigned int v;

	if (!parse_enum(p, key, value, line, engine_names, G_N_ELEMENTS(engine_names), &v, error))
		return FALSE;
	p->config->engine = v;
	return TRUE;
}

static gboolean parse_threads(struct parser *p, const char *key, const char *value,
			      unsigned int line, GError **error)
{
	guint64 v;

	/* g_ascii_string_to_unsigned() alone would take "+4"; only digits are a count. */
	if (strspn(value, "0123456789") != strlen(value) ||
	    !g_ascii_string_to_unsigned(value, 10, 0, MAX_THREADS, &v, NULL))
		return bad_value(p, error, line, key, value,
				 "is not a number from 1 to 1024 (or 0 for the default)");
	p->config->threads = v;
	return TRUE;
}

static gboolean parse_assemble_timeout(struct parser *p, const char *key, const char *value,
				       unsigned int line, GError **error)
{
	guint64 v;

	if (strspn(value, "0123456789") != strlen(value) ||
	    !g_ascii_string_to_unsigned(value, 10, 0, MAX_ASSEMBLE_TIMEOUT, &v, NULL))
		return bad_value(p, error, line, key, value,
				 "is not a number of seconds from 0 to 3600");
	p->config->assemble_timeout = (unsigned int)v;
	return TRUE;
}

static gboolean parse_stop_timeout(struct parser *p, const char *key, const char *value,
				   unsigned int line, GError **error)
{
	guint64 v;

	if (strspn(value, "0123456789") != strlen(value) ||
	    !g_ascii_string_to_unsigned(value, 10, 0, MAX_STOP_TIMEOUT, &v, NULL))
		return bad_value(p, error, line, key, value,
				 "is not a number of seconds from 0 to 3600");
	p->config->stop_timeout = (unsigned int)v;
	return TRUE;
}

static gboolean parse_max_read_errors(struct parser *p, const char *key, const char *value,
				      unsigned int line, GError **error)
{
	guint64 v;

	if (strspn(value, "0123456789") != strlen(value) ||
	    !g_ascii_string_to_unsigned(value, 10, 0, MAX_MAX_READ_ERRORS, &v, NULL))
		return bad_value(p, error, line, key, value,
				 "is not a number of errors from 0 to 1000000 (0 = never fail a "
				 "leg for corrected errors)");
	p->config->max_read_errors = (unsigned int)v;
	return TRUE;
}

static gboolean parse_cache(struct parser *p, const char *key, const char *value, unsigned int line,
			    GError **error)
{
	unsigned int v;

	if (!parse_enum(p, key, value, line, cache_names, G_N_ELEMENTS(cache_names), &v, error))
		return FALSE;
	p->config->cache = v;
	return TRUE;
}

static gboolean parse_fuse_transport(struct parser *p, const char *key, const char *value,
				     unsigned int line, GError **error)
{
	unsigned int v;

	if (!parse_enum(p, key, value, line, fuse_transport_names,
			G_N_ELEMENTS(fuse_transport_names), &v, error))
		return FALSE;
	p->config->fuse_transport = v;
	return TRUE;
}

static gboolean parse_splice(struct parser *p, const char *key, const char *value,
			     unsigned int line, GError **error)
{
	unsigned int v;

	if (!parse_enum(p, key, value, line, splice_names, G_N_ELEMENTS(splice_names), &v, error))
		return FALSE;
	p->config->splice = v;
	return TRUE;
}

static gboolean parse_metadata(struct parser *p, const char *key, const char *value,
			       unsigned int line, GError **error)
{
	unsigned int v;

	if (!parse_enum(p, key, value, line, metadata_names, G_N_ELEMENTS(metadata_names), &v,
			error))
		return FALSE;
	p->config->metadata = v;
	return TRUE;
}

static gboolean parse_region_size(struct parser *p, const char *key, const char *value,
				  unsigned int line, GError **error)
{
	uint64_t v;

	if (!config_parse_size(value, &v) || v < 4096 || v > (1ull << 30) || (v & (v - 1)) != 0)
		return bad_value(p, error, line, key, value,
				 "is not a power of two from 4K to 1G (e.g. 512K, 4M)");
	p->config->region_size = v;
	return TRUE;
}

/* A rate in bytes per second: a size (K, M, G suffixes) per second; 0 means no limit. */
static gboolean parse_rate(struct parser *p, const char *key, const char *value, unsigned int line,
			   uint64_t *out, GError **error)
{
	if (!config_parse_size(value, out))
		return bad_value(p, error, line, key, value,
				 "is not a rate in bytes per second (e.g. 50M)");
	return TRUE;
}

static gboolean parse_resync_rate_min(struct parser *p, const char *key, const char *value,
				      unsigned int line, GError **error)
{
	p->rate_min_line = line;
	return parse_rate(p, key, value, line, &p->config->resync_rate_min, error);
}

static gboolean parse_resync_rate_max(struct parser *p, const char *key, const char *value,
				      unsigned int line, GError **error)
{
	p->rate_max_line = line;
	return parse_rate(p, key, value, line, &p->config->resync_rate_max, error);
}

static gboolean parse_allow_other(struct parser *p, const char *key, const char *value,
				  unsigned int line, GError **error)
{
	return parse_boolean(p, key, value, line, &p->config->allow_other, error);
}

static gboolean parse_on_event(struct parser *p, const char *key, const char *value,
			       unsigned int line, GError **error)
{
	p->config->on_event_line = line;
	return parse_path(p, key, value, line, &p->config->on_event, error);
}

/*
 * A leg's NBD URI (libdmio(3), NBD exports), checked without connecting.  Messages show it
 * redacted (dmio_path_display): a URI may carry a password or a key file's name.
 */
static gboolean parse_uri(struct parser *p, const char *key, const char *value, unsigned int line,
			  char **out, GError **error)
{
	g_autofree char *shown = dmio_path_display(value);
	const char *problem = dmio_path_uri_problem(value);

	if (strlen(value) > MAX_PATH_BYTES)
		problem = "is longer than 4095 bytes";
	if (problem != NULL)
		return bad_value(p, error, line, key, shown, problem);
	g_free(*out);
	*out = g_strdup(value);
	return TRUE;
}

static gboolean parse_leg_path(struct parser *p, const char *key, const char *value,
			       unsigned int line, GError **error)
{
	/* A test leg behind libdmio's fault-injecting kind (libdmio(3)): the file is after it. */
	const char *file = g_str_has_prefix(value, "fault:") ? value + strlen("fault:") : value;
	bool is_uri = dmio_path_is_uri(value);
	g_autofree char *normal = NULL;
	const char *other;

	if (is_uri ? !parse_uri(p, key, value, line, &p->leg->path, error)
		   : !parse_path(p, key, file, line, &p->leg->path, error))
		return FALSE;
	if (file != value) {
		g_free(p->leg->path);
		p->leg->path = g_strdup(value);
	}
	normal = is_uri ? dmio_path_normalize(value) : normalize_path(value);
	other = g_hash_table_lookup(p->leg_paths, normal);
	if (other != NULL) {
		g_autofree char *shown = dmio_path_display(value);

		config_set_error(&p->ctx, error, CONFIG_ERROR_INVALID, line,
				 "%spath '%s' is also the path of leg '%s'", p->where,
				 config_quote(&p->ctx, shown, 0), config_quote(&p->ctx, other, 0));
		return FALSE;
	}
	g_hash_table_insert(p->leg_paths, g_steal_pointer(&normal), p->leg->name);
	return TRUE;
}

static gboolean parse_io_timeout(struct parser *p, const char *key, const char *value,
				 unsigned int line, GError **error)
{
	unsigned int ms;

	if (!config_parse_seconds(value, &ms))
		return bad_value(p, error, line, key, value,
				 "is not a number of seconds from 0 to 3600 (decimals allowed, "
				 "0: none)");
	if (p->leg != NULL)
		p->leg->io_timeout_ms = (int)ms;
	else
		p->config->io_timeout_ms = ms;
	return TRUE;
}

static gboolean parse_reconnect_delay(struct parser *p, const char *key, const char *value,
				      unsigned int line, GError **error)
{
	unsigned int ms;

	if (!config_parse_seconds(value, &ms) || ms == 0)
		return bad_value(p, error, line, key, value,
				 "is not a number of seconds from 0.001 to 3600 (decimals "
				 "allowed)");
	if (p->leg != NULL)
		p->leg->reconnect_delay_ms = (int)ms;
	else
		p->config->reconnect_delay_ms = ms;
	return TRUE;
}

static gboolean parse_reconnect_max(struct parser *p, const char *key, const char *value,
				    unsigned int line, GError **error)
{
	guint64 v;

	if (strspn(value, "0123456789") != strlen(value) ||
	    !g_ascii_string_to_unsigned(value, 10, 0, CONFIG_MAX_RECONNECT_MAX, &v, NULL))
		return bad_value(p, error, line, key, value,
				 "is not a number of tries from 0 to 1000000 (0 = never "
				 "reconnect)");
	if (p->leg != NULL)
		p->leg->reconnect_max = (int)v;
	else
		p->config->reconnect_max = (unsigned int)v;
	return TRUE;
}

static gboolean parse_write_mostly(struct parser *p, const char *key, const char *value,
				   unsigned int line, GError **error)
{
	return parse_boolean(p, key, value, line, &p->leg->write_mostly, error);
}

static gboolean parse_direct(struct parser *p, const char *key, const char *value,
			     unsigned int line, GError **error)
{
	if (!config_parse_direct(value, &p->leg->direct))
		return bad_value(p, error, line, key, value, "is not one of auto, true, false");
	p->direct_line = line;
	return TRUE;
}

static gboolean parse_write_behind(struct parser *p, const char *key, const char *value,
				   unsigned int line, GError **error)
{
	guint64 v;

	if (strspn(value, "0123456789") != strlen(value) ||
	    !g_ascii_string_to_unsigned(value, 10, 0, CONFIG_MAX_WRITE_BEHIND, &v, NULL))
		return bad_value(p, error, line, key, value,
				 "is not a number of writes from 0 to 16383 (0 = none)");
	p->leg->write_behind = (unsigned int)v;
	p->write_behind_line = line;
	return TRUE;
}

/* The keys of each group: anything else is an unknown key. */
/* clang-format off */
static const struct key_parser mirror_keys[] = {
	{ "name", parse_name },
	{ "mountpoint", parse_mountpoint },
	{ "read-policy", parse_read_policy },
	{ "engine", parse_engine },
	{ "threads", parse_threads },
	{ "cache", parse_cache },
	{ "fuse-transport", parse_fuse_transport },
	{ "splice", parse_splice },
	{ "metadata", parse_metadata },
	{ "region-size", parse_region_size },
	{ "resync-rate-min", parse_resync_rate_min },
	{ "resync-rate-max", parse_resync_rate_max },
	{ "allow-other", parse_allow_other },
	{ "on-event", parse_on_event },
	{ "assemble-timeout", parse_assemble_timeout },
	{ "stop-timeout", parse_stop_timeout },
	{ "io-timeout", parse_io_timeout },
	{ "max-read-errors", parse_max_read_errors },
	{ "reconnect-delay", parse_reconnect_delay },
	{ "reconnect-max", parse_reconnect_max },
	{ NULL, NULL },
};

static const struct key_parser leg_keys[] = {
	{ "path", parse_leg_path },
	{ "write-mostly", parse_write_mostly },
	{ "io-timeout", parse_io_timeout },
	{ "write-behind", parse_write_behind },
	{ "direct", parse_direct },
	{ "reconnect-delay", parse_reconnect_delay },
	{ "reconnect-max", parse_reconnect_max },
	{ NULL, NULL },
};
/* clang-format on */

static parse_fn *key_parser(const struct key_parser *keys, const char *key)
{
	for (; keys->key != NULL; keys++)
		if (strcmp(keys->key, key) == 0)
			return keys->parse;
	return NULL;
}

static const struct key_parser *group_keys(const char *group)
{
	return strcmp(group, MIRROR_GROUP) == 0 ? mirror_keys : leg_keys;
}

static gboolean is_leg_group(const char *group)
{
	return g_str_has_prefix(group, LEG_GROUP_PREFIX) || strcmp(group, "leg") == 0;
}

/* "[leg NAME]": is NAME usable and new?  Counts the legs in *num_legs. */
static gboolean check_leg_group(struct parser *p, const struct config_scan_group *group,
				GHashTable *legs, unsigned int *num_legs, GError **error)
{
	struct config_ctx *ctx = &p->ctx;
	const char *name = group->name + strlen("leg");
	const char *problem;

	if (*name == ' ')
		name++;
	problem = name_problem(name, false);
	if (problem != NULL) {
		config_set_error(ctx, error, CONFIG_ERROR_VALUE, group->line,
				 "leg name '%s' %s: write [leg NAME]", config_quote(ctx, name, 0),
				 problem);
		return FALSE;
	}
	if (g_hash_table_contains(legs, name)) {
		config_set_error(ctx, error, CONFIG_ERROR_INVALID, group->line,
				 "duplicate leg name '%s'", config_quote(ctx, name, 0));
		return FALSE;
	}
	if (++*num_legs > CONFIG_MAX_LEGS) {
		config_set_error(ctx, error, CONFIG_ERROR_INVALID, group->line,
				 "[leg %s]: too many legs: a mirror has at most %d",
				 config_quote(ctx, name, 0), CONFIG_MAX_LEGS);
		return FALSE;
	}
	g_hash_table_add(legs, (gpointer)name);
	return TRUE;
}

/* Every key of the group known, none twice. */
static gboolean check_keys(struct parser *p, const struct config_scan_group *group, GError **error)
{
	struct config_ctx *ctx = &p->ctx;
	g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
	const char *name = config_quote(ctx, group->name, 0);
	gpointer first;

	for (unsigned int i = 0; i < group->keys->len; i++) {
		const struct config_scan_key *key = g_ptr_array_index(group->keys, i);

		if (key_parser(group_keys(group->name), key->name) == NULL) {
			config_set_error(ctx, error, CONFIG_ERROR_UNKNOWN, key->line,
					 "unknown key '%s' in group [%s]",
					 config_quote(ctx, key->name, 0), name);
			return FALSE;
		}
		if (g_hash_table_lookup_extended(seen, key->name, NULL, &first)) {
			config_set_error(ctx, error, CONFIG_ERROR_INVALID, key->line,
					 "duplicate key '%s' in group [%s] (first at line %u)",
					 key->name, name, GPOINTER_TO_UINT(first));
			return FALSE;
		}
		g_hash_table_insert(seen, key->name, GUINT_TO_POINTER(key->line));
	}
	return TRUE;
}

/* The second pass: known groups and keys, no duplicates, valid leg names, 1-64 legs. */
static gboolean check_structure(struct parser *p, GError **error)
{
	struct config_ctx *ctx = &p->ctx;
	g_autoptr(GHashTable) legs = g_hash_table_new(g_str_hash, g_str_equal);
	unsigned int mirror_line = 0, num_legs = 0;

	if (p->scan.groups->len == 0) {
		config_set_error(ctx, error, CONFIG_ERROR_MISSING, 0,
				 "empty config (no groups): a mirror needs at least one "
				 "[leg NAME] group");
		return FALSE;
	}
	for (unsigned int i = 0; i < p->scan.groups->len; i++) {
		const struct config_scan_group *group = g_ptr_array_index(p->scan.groups, i);

		if (strcmp(group->name, MIRROR_GROUP) == 0) {
			if (mirror_line > 0) {
				config_set_error(ctx, error, CONFIG_ERROR_INVALID, group->line,
						 "duplicate group [mirror] (first at line %u)",
						 mirror_line);
				return FALSE;
			}
			mirror_line = group->line;
		} else if (is_leg_group(group->name)) {
			if (!check_leg_group(p, group, legs, &num_legs, error))
				return FALSE;
		} else {
			config_set_error(ctx, error, CONFIG_ERROR_UNKNOWN, group->line,
					 "unknown group [%s]: expected [mirror] or [leg NAME]",
					 config_quote(ctx, group->name, 0));
			return FALSE;
		}
		if (!check_keys(p, group, error))
			return FALSE;
	}
	if (num_legs == 0) {
		config_set_error(ctx, error, CONFIG_ERROR_MISSING, 0,
				 "no [leg NAME] group: a mirror needs at least one leg");
		return FALSE;
	}
	p->config->legs = g_new0(struct leg_config, num_legs);
	return TRUE;
}

/*
 * Only GKeyFile's escapes: \s, \n, \t, \r and \\.  Checked before g_key_file_get_string(), which
 * (glib 2.74) sets its error twice, with a glib warning, for a bad escape followed by a
 * backslash at the end of the value ("\k\"; found by tests/fuzz/fuzz-config).
 */
static bool escapes_valid(const char *raw)
{
	for (const char *c = raw; *c != '\0'; c++)
		if (*c == '\\' && (*++c == '\0' || strchr("sntr\\", *c) == NULL))
			return false;
	return true;
}

static gboolean parse_group(struct parser *p, const struct config_scan_group *group, GError **error)
{
	for (unsigned int i = 0; i < group->keys->len; i++) {
		const struct config_scan_key *key = g_ptr_array_index(group->keys, i);
		parse_fn *parse = key_parser(group_keys(group->name), key->name);
		g_autoptr(GError) local = NULL;
		g_autofree char *raw = NULL;
		g_autofree char *value = NULL;

		/*
		 * GKeyFile's unescaping: \s, \n, \t, \r and \\.  On a bad escape it sets the
		 * error but may still return the text.
		 */
		raw = g_key_file_get_value(p->keyfile, group->name, key->name, NULL);
		if (raw != NULL && escapes_valid(raw))
			value = g_key_file_get_string(p->keyfile, group->name, key->name, &local);
		if (value == NULL || local != NULL) {
			config_set_error(&p->ctx, error, CONFIG_ERROR_VALUE, key->line,
					 "%s%s: bad escape sequence: a backslash must be followed "
					 "by s, n, t, r or \\",
					 p->where, key->name);
			return FALSE;
		}
		if (!parse(p, key->name, value, key->line, error))
			return FALSE;
	}
	return TRUE;
}

/* The third pass: every value, in file order. */
static gboolean parse_values(struct parser *p, GError **error)
{
	struct mirror_config *config = p->config;

	for (unsigned int i = 0; i < p->scan.groups->len; i++) {
		const struct config_scan_group *group = g_ptr_array_index(p->scan.groups, i);
		g_autofree char *where = NULL;

		p->where = "";
		p->leg = NULL;
		if (strcmp(group->name, MIRROR_GROUP) == 0) {
			if (!parse_group(p, group, error))
				return FALSE;
			continue;
		}
		p->leg = &config->legs[config->num_legs++];
		p->leg->name = g_strdup(group->name + strlen(LEG_GROUP_PREFIX));
		p->leg->io_timeout_ms = -1;
		p->write_behind_line = 0;
		p->direct_line = 0;
		p->leg->reconnect_delay_ms = -1;
		p->leg->reconnect_max = -1;
		where = g_strdup_printf("[%s]: ", config_quote(&p->ctx, group->name, 0));
		p->where = where;
		if (!parse_group(p, group, error))
			return FALSE;
		/* Only a write-mostly leg is left behind: the others serve reads. */
		if (p->leg->write_behind > 0 && !p->leg->write_mostly) {
			config_set_error(&p->ctx, error, CONFIG_ERROR_INVALID, p->write_behind_line,
					 "%swrite-behind needs write-mostly = true on this leg",
					 where);
			return FALSE;
		}
		if (p->leg->path == NULL) {
			config_set_error(&p->ctx, error, CONFIG_ERROR_MISSING, group->line,
					 "%sno path: add path = /absolute/path (a file or a block "
					 "device) or path = nbd://HOST/EXPORT (an NBD export)",
					 where);
			return FALSE;
		}
		/* Asked for explicitly, O_DIRECT is never dropped without a word. */
		if (p->leg->direct == LEG_DIRECT_TRUE && dmio_path_is_uri(p->leg->path)) {
			config_set_error(&p->ctx, error, CONFIG_ERROR_INVALID, p->direct_line,
					 "%sdirect = true does not apply to an NBD export (it has "
					 "no page cache here): leave direct out or set it to auto",
					 where);
			return FALSE;
		}
	}
	p->where = "";
	return TRUE;
}

/* "/etc/fusemirror/a.conf" -> "a"; parsed data without a file name: "fusemirror". */
static char *default_name(const char *filename)
{
	char *base = g_path_get_basename(filename != NULL ? filename : CONFIG_DEFAULT_PATH);

	if (g_str_has_suffix(base, ".conf"))
		base[strlen(base) - strlen(".conf")] = '\0';
	return base;
}

/* The checks that involve several values. */
/* "20.0 MiB", "512 B": plain spaces and a dot under every locale (g_format_size has neither). */
static char *format_bytes(uint64_t bytes)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	char number[G_ASCII_DTOSTR_BUF_SIZE];
	double value = (double)bytes / 1024;
	size_t unit = 0;

	if (bytes < 1024)
		return g_strdup_printf("%" G_GUINT64_FORMAT " B", (guint64)bytes);
	while (value >= 1024 && unit + 1 < G_N_ELEMENTS(units)) {
		value /= 1024;
		unit++;
	}
	g_ascii_formatd(number, sizeof(number), "%.1f", value);
	return g_strdup_printf("%s %s", number, units[unit]);
}

static gboolean check_config(struct parser *p, const char *filename, GError **error)
{
	struct mirror_config *config = p->config;
	struct config_ctx *ctx = &p->ctx;
	unsigned int write_mostly = 0;

	if (config->name == NULL) {
		const char *problem;

		config->name = default_name(filename);
		problem = name_problem(config->name, true);
		if (problem != NULL) {
			config_set_error(ctx, error, CONFIG_ERROR_VALUE, 0,
					 "mirror name '%s' (from the file name) %s: set name = "
					 "NAME in [mirror]",
					 config_quote(ctx, config->name, 0), problem);
			return FALSE;
		}
	}
	if (config->mountpoint != NULL) {
		g_autofree char *normal = normalize_path(config->mountpoint);
		const char *leg = g_hash_table_lookup(p->leg_paths, normal);

		/* Mounting over a leg would hide it from the daemon that writes to it. */
		if (leg != NULL) {
			config_set_error(ctx, error, CONFIG_ERROR_INVALID, p->mountpoint_line,
					 "mountpoint '%s' is also the path of leg '%s'",
					 config_quote(ctx, config->mountpoint, 0),
					 config_quote(ctx, leg, 0));
			return FALSE;
		}
	}
	/*
	 * The minimum is always granted: above the maximum, the maximum would mean nothing.  The
	 * default minimum gives way to a lower maximum; a minimum the file sets does not.
	 */
	if (p->rate_min_line == 0 && config->resync_rate_max != 0 &&
	    config->resync_rate_min > config->resync_rate_max)
		config->resync_rate_min = config->resync_rate_max;
	if (config->resync_rate_max != 0 && config->resync_rate_min > config->resync_rate_max) {
		g_autofree char *min = format_bytes(config->resync_rate_min);
		g_autofree char *max = format_bytes(config->resync_rate_max);

		config_set_error(ctx, error, CONFIG_ERROR_INVALID, p->rate_min_line,
				 "resync-rate-min (%s/s) is above resync-rate-max (%s/s): lower "
				 "the minimum or raise the maximum (0 = no maximum)",
				 min, max);
		return FALSE;
	}
	for (unsigned int i = 0; i < config->num_legs; i++) {
		write_mostly += config->legs[i].write_mostly;
		/* What a leg left behind lacks is known from the write-intent bitmap alone. */
		if (config->legs[i].write_behind > 0 && config->metadata != METADATA_INTERNAL) {
			config_set_error(ctx, error, CONFIG_ERROR_INVALID, 0,
					 "[leg %s]: write-behind needs metadata = internal (the "
					 "write-intent bitmap)",
					 config_quote(ctx, config->legs[i].name, 0));
			return FALSE;
		}
	}
	if (write_mostly == config->num_legs) {
		config_set_error(ctx, error, CONFIG_ERROR_INVALID, 0,
				 "every leg is write-mostly: set write-mostly = false on at "
				 "least one leg, to serve reads");
		return FALSE;
	}
	return TRUE;
}

struct mirror_config *config_parse(const char *data, gsize length, const char *filename,
				   GError **error)
{
	struct parser p = {0};
	struct mirror_config *config = NULL;
	g_autoptr(GError) local = NULL;
	bool ok;

	g_return_val_if_fail(data != NULL || length == 0, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	config_ctx_init(&p.ctx, filename != NULL ? filename : "<string>");
	p.config = g_new0(struct mirror_config, 1);
	p.config->file = g_strdup(filename != NULL ? filename : "<string>");
	p.config->resync_rate_min = 16ull << 20;
	p.config->assemble_timeout = DEFAULT_ASSEMBLE_TIMEOUT;
	p.config->stop_timeout = DEFAULT_STOP_TIMEOUT;
	p.config->io_timeout_ms = DEFAULT_IO_TIMEOUT_MS;
	p.config->max_read_errors = DEFAULT_MAX_READ_ERRORS;
	p.config->reconnect_delay_ms = CONFIG_DEFAULT_RECONNECT_DELAY_MS;
	p.config->reconnect_max = CONFIG_DEFAULT_RECONNECT_MAX;
	p.config->metadata = METADATA_INTERNAL;
	p.keyfile = g_key_file_new();
	p.leg_paths = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

	ok = config_scan(&p.ctx, data, length, &p.scan, error) && check_structure(&p, error);
	if (ok && !g_key_file_load_from_data(p.keyfile, p.scan.text->str, p.scan.text->len,
					     G_KEY_FILE_NONE, &local)) {
		/* Not expected: the scan follows GKeyFile's grammar and is stricter. */
		config_set_error(&p.ctx, error, CONFIG_ERROR_SYNTAX, 0, "%s", local->message);
		ok = false;
	}
	ok = ok && parse_values(&p, error) && check_config(&p, filename, error);

	if (ok)
		config = g_steal_pointer(&p.config);
	config_free(p.config);
	g_hash_table_unref(p.leg_paths);
	g_key_file_free(p.keyfile);
	config_scan_clear(&p.scan);
	config_ctx_clear(&p.ctx);
	return config;
}

gboolean config_check_on_event(const struct mirror_config *config, GError **error)
{
	struct config_ctx ctx;
	struct stat st;
	const char *problem = NULL;
	int err = 0;

	if (config->on_event == NULL)
		return TRUE;
	if (stat(config->on_event, &st) < 0)
		err = errno;
	else if (S_ISDIR(st.st_mode))
		problem = "is a directory, not a program";
	else if (!S_ISREG(st.st_mode))
		problem = "is not a regular file";
	else if (access(config->on_event, X_OK) < 0)
		err = errno;
	if (err == 0 && problem == NULL)
		return TRUE;
	config_ctx_init(&ctx, config->file);
	config_set_error(
	    &ctx, error, CONFIG_ERROR_VALUE, config->on_event_line, "on-event '%s' %s%s",
	    config_quote(&ctx, config->on_event, 0),
	    problem != NULL ? problem : "cannot be run: ", problem != NULL ? "" : g_strerror(err));
	config_ctx_clear(&ctx);
	return FALSE;
}

/* Read all of path; pipes too (-c <(...)), so st_size is not trusted. */
static char *read_file(const char *path, gsize *length, int *err)
{
	GString *data = g_string_new(NULL);
	char buffer[65536];
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*err = errno;
		goto fail;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		*err = EISDIR;
		goto fail;
	}
	for (;;) {
		ssize_t n = read(fd, buffer, sizeof(buffer));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*err = errno;
			goto fail;
		}
		if (n == 0)
			break;
		if (data->len + n > MAX_FILE_BYTES) {
			*err = EFBIG;
			goto fail;
		}
		g_string_append_len(data, buffer, n);
	}
	close(fd);
	*length = data->len;
	return g_string_free(data, FALSE);

fail:
	if (fd >= 0)
		close(fd);
	g_string_free(data, TRUE);
	return NULL;
}

struct mirror_config *config_load(const char *path, GError **error)
{
	g_autofree char *data = NULL;
	struct config_ctx ctx;
	gsize length = 0;
	int err = 0;

	g_return_val_if_fail(path != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	data = read_file(path, &length, &err);
	if (data != NULL)
		return config_parse(data, length, path, error);

	config_ctx_init(&ctx, path);
	if (err == EFBIG)
		config_set_error(&ctx, error, CONFIG_ERROR_IO, 0,
				 "cannot read: larger than 1 MiB, not a config file");
	else
		config_set_error(&ctx, error, CONFIG_ERROR_IO, 0, "cannot read: %s",
				 g_strerror(err));
	config_ctx_clear(&ctx);
	return NULL;
}
