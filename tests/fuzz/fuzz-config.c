/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: fusemirror.conf(5) through config_parse() (src/config/).  Any input either
 * parses into a consistent config or fails with one CONFIG_ERROR whose message is one clean line
 * naming the file; everything is freed (LeakSanitizer is on).
 */
#include <stdint.h>

#include <dmio.h>

#include "config/config.h"
#include "fuzz-util.h"

#define FUZZ_FILE "<fuzz>"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_glib_fatal();
	return 0;
}

static void check_config(const struct mirror_config *config)
{
	fuzz_assert(strcmp(config->file, FUZZ_FILE) == 0);
	fuzz_assert(config->name != NULL && *config->name != '\0');
	fuzz_assert(config->num_legs >= 1 && config->num_legs <= CONFIG_MAX_LEGS);
	fuzz_assert(config->mountpoint == NULL || config->mountpoint[0] == '/');
	fuzz_assert(config->on_event == NULL || config->on_event[0] == '/');
	fuzz_assert(strcmp(config_read_policy_name(config->read_policy), "unknown") != 0);
	fuzz_assert(strcmp(config_engine_name(config->engine), "unknown") != 0);
	fuzz_assert(strcmp(config_cache_name(config->cache), "unknown") != 0);
	fuzz_assert(strcmp(config_metadata_name(config->metadata), "unknown") != 0);
	fuzz_check_message("the mirror name", config->name);
	for (unsigned int i = 0; i < config->num_legs; i++) {
		const struct leg_config *leg = &config->legs[i];

		/*
		 * Absolute, a test leg of libdmio's fault-injecting kind (fault:/...), or an NBD
		 * URI that libdmio finds well formed.
		 */
		fuzz_assert(
		    leg->name != NULL && leg->path != NULL &&
		    (leg->path[0] == '/' || strncmp(leg->path, "fault:/", 7) == 0 ||
		     (dmio_path_is_uri(leg->path) && dmio_path_uri_problem(leg->path) == NULL)));
		fuzz_check_message("a leg name", leg->name);
		fuzz_check_message("a leg path", leg->path);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mirror_config *config;
	GError *error = NULL;

	config = config_parse((const char *)data, size, FUZZ_FILE, &error);
	if (config != NULL) {
		fuzz_assert(error == NULL);
		check_config(config);
		config_free(config);
		return 0;
	}
	fuzz_assert(error != NULL);
	fuzz_assert(error->domain == CONFIG_ERROR);
	fuzz_assert(g_str_has_prefix(error->message, FUZZ_FILE));
	fuzz_check_message("the error message", error->message);
	g_error_free(error);
	return 0;
}
