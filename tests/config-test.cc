// SPDX-License-Identifier: GPL-2.0-or-later
// The config layer, fusemirror.conf(5): every key, the defaults, and every error message with its
// file and line.  Messages are compared whole: they are the user interface of a bad config.

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/config.h"

namespace
{

struct ConfigDeleter {
	void operator()(mirror_config *config) const
	{
		config_free(config);
	}
};
using ConfigPtr = std::unique_ptr<mirror_config, ConfigDeleter>;

ConfigPtr parse_ok(const std::string &text, const char *file = "/etc/fusemirror/a.conf")
{
	GError *error = nullptr;
	ConfigPtr config(config_parse(text.data(), text.size(), file, &error));

	EXPECT_NE(config, nullptr) << (error != nullptr ? error->message : "no error set");
	if (error != nullptr)
		g_error_free(error);
	return config;
}

// Parses text, expects a failure with code, returns the message.
std::string parse_error(const std::string &text, int code, const char *file = "a.conf")
{
	GError *error = nullptr;
	mirror_config *config = config_parse(text.data(), text.size(), file, &error);
	std::string message;

	EXPECT_EQ(config, nullptr);
	config_free(config);
	if (error == nullptr) {
		ADD_FAILURE() << "no error for:\n" << text;
		return message;
	}
	message = error->message;
	EXPECT_EQ(error->domain, CONFIG_ERROR) << message;
	EXPECT_EQ(error->code, code) << message;
	EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
	g_error_free(error);
	return message;
}

const std::string one_leg = "[leg a]\npath = /srv/a.img\n";
const std::string two_legs = "[leg a]\npath = /srv/a.img\n[leg b]\npath = /srv/b.img\n";

std::string mirror_with(const std::string &line)
{
	return "[mirror]\n" + line + "\n" + two_legs;
}

} // namespace

TEST(ConfigParse, FullConfigSetsEveryKey)
{
	const std::string text = R"(# A mirror with every key.
[mirror]
name = db
mountpoint = /srv/db.img
read-policy = round-robin
engine = io_uring
threads = 8
cache = writeback
metadata = none
allow-other = true
on-event = /usr/local/bin/mirror-event

[leg fast]
path = /dev/nvme0n1
write-mostly = false

[leg slow]
path = /mnt/disk/db-copy.img
write-mostly = yes
)";
	ConfigPtr config = parse_ok(text);

	ASSERT_NE(config, nullptr);
	EXPECT_STREQ(config->file, "/etc/fusemirror/a.conf");
	EXPECT_STREQ(config->name, "db");
	EXPECT_STREQ(config->mountpoint, "/srv/db.img");
	EXPECT_EQ(config->read_policy, READ_POLICY_ROUND_ROBIN);
	EXPECT_EQ(config->engine, DMIO_ENGINE_IO_URING);
	EXPECT_EQ(config->threads, 8u);
	EXPECT_EQ(config->cache, CACHE_WRITEBACK);
	EXPECT_EQ(config->metadata, METADATA_NONE);
	EXPECT_TRUE(config->allow_other);
	EXPECT_STREQ(config->on_event, "/usr/local/bin/mirror-event");
	ASSERT_EQ(config->num_legs, 2u);
	EXPECT_STREQ(config->legs[0].name, "fast");
	EXPECT_STREQ(config->legs[0].path, "/dev/nvme0n1");
	EXPECT_FALSE(config->legs[0].write_mostly);
	EXPECT_STREQ(config->legs[1].name, "slow");
	EXPECT_STREQ(config->legs[1].path, "/mnt/disk/db-copy.img");
	EXPECT_TRUE(config->legs[1].write_mostly);
}

TEST(ConfigParse, Defaults)
{
	ConfigPtr config = parse_ok("[mirror]\n" + one_leg, "/etc/fusemirror/backup.conf");

	ASSERT_NE(config, nullptr);
	EXPECT_STREQ(config->name, "backup");
	EXPECT_EQ(config->mountpoint, nullptr);
	EXPECT_EQ(config->read_policy, READ_POLICY_LEAST_PENDING);
	EXPECT_EQ(config->engine, DMIO_ENGINE_THREADS);
	EXPECT_EQ(config->threads, 0u);
	EXPECT_EQ(config->cache, CACHE_NONE);
	EXPECT_EQ(config->metadata, METADATA_INTERNAL);
	EXPECT_FALSE(config->allow_other);
	EXPECT_EQ(config->on_event, nullptr);
	ASSERT_EQ(config->num_legs, 1u);
	EXPECT_STREQ(config->legs[0].name, "a");
	EXPECT_STREQ(config->legs[0].path, "/srv/a.img");
	EXPECT_FALSE(config->legs[0].write_mostly);
}

TEST(ConfigParse, MirrorGroupIsOptional)
{
	ConfigPtr config = parse_ok(one_leg, "/etc/fusemirror/x.conf");

	ASSERT_NE(config, nullptr);
	EXPECT_STREQ(config->name, "x");
	EXPECT_EQ(config->num_legs, 1u);
}

TEST(ConfigParse, DefaultNameComesFromTheFileName)
{
	ConfigPtr plain = parse_ok(one_leg, "mirror.ini");
	ConfigPtr relative = parse_ok(one_leg, "conf.d/web.conf");
	ConfigPtr unnamed = parse_ok(one_leg, nullptr);

	ASSERT_NE(plain, nullptr);
	ASSERT_NE(relative, nullptr);
	ASSERT_NE(unnamed, nullptr);
	EXPECT_STREQ(plain->name, "mirror.ini");
	EXPECT_STREQ(relative->name, "web");
	EXPECT_STREQ(unnamed->file, "<string>");
	EXPECT_STREQ(unnamed->name, "fusemirror");
}

TEST(ConfigParse, NameKeyOverridesTheFileName)
{
	ConfigPtr config = parse_ok("[mirror]\nname = other\n" + one_leg, "/etc/fusemirror/a.conf");

	ASSERT_NE(config, nullptr);
	EXPECT_STREQ(config->name, "other");
}

TEST(ConfigParse, LegsKeepFileOrder)
{
	ConfigPtr config =
	    parse_ok("[leg c]\npath=/c\n[mirror]\n[leg a]\npath=/a\n[leg b]\npath=/b\n");

	ASSERT_NE(config, nullptr);
	ASSERT_EQ(config->num_legs, 3u);
	EXPECT_STREQ(config->legs[0].name, "c");
	EXPECT_STREQ(config->legs[1].name, "a");
	EXPECT_STREQ(config->legs[2].name, "b");
	EXPECT_STREQ(config->legs[2].path, "/b");
}

TEST(ConfigParse, EveryEnumValue)
{
	const struct {
		const char *line;
		enum read_policy policy;
	} policies[] = {
	    {"read-policy = least-pending", READ_POLICY_LEAST_PENDING},
	    {"read-policy = round-robin", READ_POLICY_ROUND_ROBIN},
	    {"read-policy = primary", READ_POLICY_PRIMARY},
	};
	for (const auto &p : policies) {
		ConfigPtr config = parse_ok(mirror_with(p.line));
		ASSERT_NE(config, nullptr) << p.line;
		EXPECT_EQ(config->read_policy, p.policy) << p.line;
	}

	ConfigPtr threads = parse_ok(mirror_with("engine = threads"));
	ConfigPtr uring = parse_ok(mirror_with("engine = io_uring"));
	ConfigPtr none = parse_ok(mirror_with("cache = none"));
	ConfigPtr writeback = parse_ok(mirror_with("cache = writeback"));
	ConfigPtr metadata = parse_ok(mirror_with("metadata = none"));
	ASSERT_TRUE(threads && uring && none && writeback && metadata);
	EXPECT_EQ(threads->engine, DMIO_ENGINE_THREADS);
	EXPECT_EQ(uring->engine, DMIO_ENGINE_IO_URING);
	EXPECT_EQ(none->cache, CACHE_NONE);
	EXPECT_EQ(writeback->cache, CACHE_WRITEBACK);
	EXPECT_EQ(metadata->metadata, METADATA_NONE);
}

TEST(ConfigParse, BooleanSpellings)
{
	const struct {
		const char *text;
		bool value;
	} cases[] = {
	    {"true", true},   {"yes", true}, {"1", true},  {"TRUE", true},   {"Yes", true},
	    {"false", false}, {"no", false}, {"0", false}, {"False", false}, {"NO", false},
	};
	for (const auto &c : cases) {
		ConfigPtr config = parse_ok(std::string("[mirror]\nallow-other = ") + c.text +
					    "\n[leg a]\npath = /a\nwrite-mostly = " + c.text +
					    "\n[leg b]\npath = /b\n");
		ASSERT_NE(config, nullptr) << c.text;
		EXPECT_EQ(config->allow_other, c.value) << c.text;
		EXPECT_EQ(config->legs[0].write_mostly, c.value) << c.text;
	}
}

TEST(ConfigParse, ThreadsRange)
{
	const struct {
		const char *text;
		unsigned int value;
	} cases[] = {{"0", 0}, {"1", 1}, {"16", 16}, {"1024", 1024}, {"0008", 8}};
	for (const auto &c : cases) {
		ConfigPtr config = parse_ok(mirror_with(std::string("threads = ") + c.text));
		ASSERT_NE(config, nullptr) << c.text;
		EXPECT_EQ(config->threads, c.value) << c.text;
	}
}

TEST(ConfigParse, LayoutCommentsWhiteSpaceAndCrlf)
{
	const std::string text = "# comment\r\n"
				 "\r\n"
				 "   # indented comment\r\n"
				 "  [mirror]  \r\n"
				 "\tname\t=\tlayout   \r\n"
				 "threads=4\r\n"
				 "[leg a]\r\n"
				 "path =    /srv/a b.img  \t\r\n"
				 "[leg with spaces inside]\r\n"
				 "path=/srv/b.img"; // no final newline
	ConfigPtr config = parse_ok(text);

	ASSERT_NE(config, nullptr);
	EXPECT_STREQ(config->name, "layout");
	EXPECT_EQ(config->threads, 4u);
	ASSERT_EQ(config->num_legs, 2u);
	// Trailing white space and the \r of CRLF never reach a value; inner spaces do.
	EXPECT_STREQ(config->legs[0].path, "/srv/a b.img");
	EXPECT_STREQ(config->legs[1].name, "with spaces inside");
	EXPECT_STREQ(config->legs[1].path, "/srv/b.img");
}

TEST(ConfigParse, GKeyFileEscapes)
{
	ConfigPtr config = parse_ok("[leg a]\npath = /srv/\\sleading\\\\slash\\s\n");

	ASSERT_NE(config, nullptr);
	EXPECT_STREQ(config->legs[0].path, "/srv/ leading\\slash ");
}

TEST(ConfigParse, ReadsOnlyLengthBytes)
{
	const std::string text = one_leg + "[bogus]\n";
	GError *error = nullptr;
	ConfigPtr config(config_parse(text.data(), one_leg.size(), "a.conf", &error));

	ASSERT_NE(config, nullptr) << error->message;
	EXPECT_EQ(config->num_legs, 1u);
}

TEST(ConfigParse, SixtyFourLegsAreFine)
{
	std::string text;
	for (int i = 0; i < CONFIG_MAX_LEGS; i++)
		text += "[leg l" + std::to_string(i) + "]\npath = /srv/" + std::to_string(i) + "\n";
	ConfigPtr config = parse_ok(text);

	ASSERT_NE(config, nullptr);
	ASSERT_EQ(config->num_legs, 64u);
	EXPECT_STREQ(config->legs[63].name, "l63");
	EXPECT_STREQ(config->legs[63].path, "/srv/63");
}

TEST(ConfigParse, NamesOfSixtyFourBytes)
{
	const std::string name(64, 'n');
	ConfigPtr config = parse_ok("[mirror]\nname = " + name + "\n[leg " + name + "]\npath=/a\n");

	ASSERT_NE(config, nullptr);
	EXPECT_EQ(std::string(config->name), name);
	EXPECT_EQ(std::string(config->legs[0].name), name);
}

TEST(ConfigParse, SomeWriteMostlyLegsAreFine)
{
	ConfigPtr config = parse_ok("[leg a]\npath=/a\nwrite-mostly=true\n[leg b]\npath=/b\n");

	ASSERT_NE(config, nullptr);
	EXPECT_TRUE(config->legs[0].write_mostly);
	EXPECT_FALSE(config->legs[1].write_mostly);
}

// ---- Errors -------------------------------------------------------------------------------

TEST(ConfigErrors, UnknownGroup)
{
	EXPECT_EQ(parse_error("[mirror]\n\n[mirrors]\n" + one_leg, CONFIG_ERROR_UNKNOWN),
		  "a.conf:3: unknown group [mirrors]: expected [mirror] or [leg NAME]");
	EXPECT_EQ(parse_error(one_leg + "[Leg b]\npath=/b\n", CONFIG_ERROR_UNKNOWN),
		  "a.conf:3: unknown group [Leg b]: expected [mirror] or [leg NAME]");
	EXPECT_EQ(parse_error(one_leg + "[legs]\n", CONFIG_ERROR_UNKNOWN),
		  "a.conf:3: unknown group [legs]: expected [mirror] or [leg NAME]");
}

TEST(ConfigErrors, UnknownKeyWithItsLine)
{
	const std::string text = "# line 1\n"
				 "[mirror]\n"
				 "name = a\n"
				 "# line 4\n"
				 "threads = 4\n"
				 "\n"
				 "rate = 10M\n" +
				 one_leg;

	EXPECT_EQ(parse_error(text, CONFIG_ERROR_UNKNOWN, "/etc/fusemirror/a.conf"),
		  "/etc/fusemirror/a.conf:7: unknown key 'rate' in group [mirror]");
	EXPECT_EQ(parse_error(two_legs + "size = 1G\n", CONFIG_ERROR_UNKNOWN),
		  "a.conf:5: unknown key 'size' in group [leg b]");
	// A [mirror] key in a leg group and the other way round.
	EXPECT_EQ(parse_error("[leg a]\npath=/a\nthreads=2\n", CONFIG_ERROR_UNKNOWN),
		  "a.conf:3: unknown key 'threads' in group [leg a]");
	EXPECT_EQ(parse_error("[mirror]\npath=/a\n" + one_leg, CONFIG_ERROR_UNKNOWN),
		  "a.conf:2: unknown key 'path' in group [mirror]");
	// Keys are case-sensitive; GKeyFile's locale suffix is not ours.
	EXPECT_EQ(parse_error("[mirror]\nName=x\n" + one_leg, CONFIG_ERROR_UNKNOWN),
		  "a.conf:2: unknown key 'Name' in group [mirror]");
	EXPECT_EQ(parse_error("[mirror]\nname[de]=x\n" + one_leg, CONFIG_ERROR_UNKNOWN),
		  "a.conf:2: unknown key 'name[de]' in group [mirror]");
}

TEST(ConfigParse, FuseTransport)
{
	const struct {
		const char *line;
		enum fuse_transport_mode mode;
	} modes[] = {
	    {"fuse-transport = auto", FUSE_TRANSPORT_MODE_AUTO},
	    {"fuse-transport = io_uring", FUSE_TRANSPORT_MODE_IO_URING},
	    {"fuse-transport = dev", FUSE_TRANSPORT_MODE_DEV},
	};
	for (const auto &m : modes) {
		ConfigPtr config = parse_ok(mirror_with(m.line));
		ASSERT_NE(config, nullptr) << m.line;
		EXPECT_EQ(config->fuse_transport, m.mode) << m.line;
		EXPECT_STREQ(config_fuse_transport_name(m.mode), m.line + strlen("fuse-transport = "));
	}
	ConfigPtr fallback = parse_ok(mirror_with("cache = none"));
	ASSERT_NE(fallback, nullptr);
	EXPECT_EQ(fallback->fuse_transport, FUSE_TRANSPORT_MODE_AUTO) << "the default";
	EXPECT_EQ(parse_error(mirror_with("fuse-transport = uring"), CONFIG_ERROR_VALUE),
		  "a.conf:2: fuse-transport 'uring' is not one of auto, io_uring, dev");
	EXPECT_EQ(parse_error(mirror_with("fuse-transport = Dev"), CONFIG_ERROR_VALUE),
		  "a.conf:2: fuse-transport 'Dev' is not one of auto, io_uring, dev");
}

TEST(ConfigErrors, BadEnumValues)
{
	EXPECT_EQ(parse_error("[mirror]\n\nread-policy = fastest\n" + one_leg, CONFIG_ERROR_VALUE),
		  "a.conf:3: read-policy 'fastest' is not one of least-pending, round-robin, "
		  "primary");
	EXPECT_EQ(parse_error(mirror_with("read-policy = Primary"), CONFIG_ERROR_VALUE),
		  "a.conf:2: read-policy 'Primary' is not one of least-pending, round-robin, "
		  "primary");
	EXPECT_EQ(parse_error(mirror_with("engine = aio"), CONFIG_ERROR_VALUE),
		  "a.conf:2: engine 'aio' is not one of threads, io_uring");
	EXPECT_EQ(parse_error(mirror_with("cache = writethrough"), CONFIG_ERROR_VALUE),
		  "a.conf:2: cache 'writethrough' is not one of none, writeback");
	EXPECT_EQ(parse_error(mirror_with("metadata = external"), CONFIG_ERROR_VALUE),
		  "a.conf:2: metadata 'external' is not one of none, internal");
	EXPECT_EQ(parse_error(mirror_with("cache ="), CONFIG_ERROR_VALUE),
		  "a.conf:2: cache '' is not one of none, writeback");
}

TEST(ConfigMetadata, InternalAndItsKeys)
{
	ConfigPtr config = parse_ok(mirror_with("metadata = internal\nregion-size = 4M\n"
						"resync-rate-min = 8M\nresync-rate-max = 1G"));
	ASSERT_TRUE(config);
	EXPECT_EQ(config->metadata, METADATA_INTERNAL);
	EXPECT_EQ(config->region_size, 4ull << 20);
	EXPECT_EQ(config->resync_rate_min, 8ull << 20);
	EXPECT_EQ(config->resync_rate_max, 1ull << 30);

	ConfigPtr defaults = parse_ok(mirror_with("metadata = internal"));
	ASSERT_TRUE(defaults);
	EXPECT_EQ(defaults->region_size, 0u);
	EXPECT_EQ(defaults->resync_rate_min, 16ull << 20);
	EXPECT_EQ(defaults->resync_rate_max, 0u);
}

TEST(ConfigErrors, BadRegionSizeAndRates)
{
	EXPECT_EQ(parse_error(mirror_with("region-size = 3K"), CONFIG_ERROR_VALUE),
		  "a.conf:2: region-size '3K' is not a power of two from 4K to 1G (e.g. 512K, 4M)");
	EXPECT_EQ(parse_error(mirror_with("region-size = 2G"), CONFIG_ERROR_VALUE),
		  "a.conf:2: region-size '2G' is not a power of two from 4K to 1G (e.g. 512K, 4M)");
	EXPECT_EQ(parse_error(mirror_with("resync-rate-max = fast"), CONFIG_ERROR_VALUE),
		  "a.conf:2: resync-rate-max 'fast' is not a rate in bytes per second (e.g. 50M)");
}

/* The minimum is always granted, so it cannot be above the maximum (0: no maximum). */
TEST(ConfigErrors, RateMinimumAboveMaximum)
{
	EXPECT_EQ(parse_error(mirror_with("resync-rate-max = 10M\nresync-rate-min = 20M"),
			      CONFIG_ERROR_INVALID),
		  "a.conf:3: resync-rate-min (20.0 MiB/s) is above resync-rate-max (10.0 MiB/s): "
		  "lower the minimum or raise the maximum (0 = no maximum)");
	ConfigPtr equal = parse_ok(mirror_with("resync-rate-min = 10M\nresync-rate-max = 10M"));
	ASSERT_TRUE(equal);
	EXPECT_EQ(equal->resync_rate_min, 10ull << 20);
	ConfigPtr unlimited = parse_ok(mirror_with("resync-rate-min = 1G\nresync-rate-max = 0"));
	ASSERT_TRUE(unlimited);
	EXPECT_EQ(unlimited->resync_rate_min, 1ull << 30);
	/* The default minimum (16M) gives way to a lower maximum the file sets. */
	ConfigPtr slow = parse_ok(mirror_with("resync-rate-max = 1M"));
	ASSERT_TRUE(slow);
	EXPECT_EQ(slow->resync_rate_min, 1ull << 20);
	EXPECT_EQ(slow->resync_rate_max, 1ull << 20);
}

/* on-event is checked when the daemon starts: it exists, is a file, may be executed. */
TEST(ConfigErrors, OnEventMustBeRunnable)
{
	char *made = g_dir_make_tmp("config-test-XXXXXX", nullptr);
	ASSERT_NE(nullptr, made);
	std::string dir_path = made;
	g_free(made);
	std::string prog = dir_path + "/notify";
	/* Removed however the test ends. */
	std::unique_ptr<void, std::function<void(void *)>> cleanup((void *)1, [&](void *) {
		unlink(prog.c_str());
		rmdir(dir_path.c_str());
	});
	std::string text = mirror_with("on-event = " + prog);

	ConfigPtr config = parse_ok(text);
	ASSERT_TRUE(config) << "parsing does not look at the file system";
	GError *error = nullptr;
	EXPECT_FALSE(config_check_on_event(config.get(), &error));
	ASSERT_NE(nullptr, error);
	EXPECT_EQ(CONFIG_ERROR_VALUE, error->code);
	EXPECT_EQ("/etc/fusemirror/a.conf:2: on-event '" + prog +
		      "' cannot be run: No such file or directory",
		  std::string(error->message));
	g_clear_error(&error);

	ASSERT_TRUE(g_file_set_contents(prog.c_str(), "#!/bin/sh\n", -1, nullptr));
	ASSERT_EQ(0, chmod(prog.c_str(), 0644));
	/* access(X_OK) refuses a file with no x bit at all, to root too. */
	EXPECT_FALSE(config_check_on_event(config.get(), &error)) << "not executable";
	ASSERT_NE(nullptr, error);
	EXPECT_NE(std::string::npos, std::string(error->message).find("Permission denied"))
	    << error->message;
	g_clear_error(&error);

	ASSERT_EQ(0, chmod(prog.c_str(), 0755));
	EXPECT_TRUE(config_check_on_event(config.get(), &error));
	EXPECT_EQ(nullptr, error);

	ConfigPtr dir = parse_ok(mirror_with("on-event = " + dir_path));
	ASSERT_TRUE(dir);
	EXPECT_FALSE(config_check_on_event(dir.get(), &error));
	ASSERT_NE(nullptr, error);
	EXPECT_EQ("/etc/fusemirror/a.conf:2: on-event '" + dir_path +
		      "' is a directory, not a program",
		  std::string(error->message));
	g_clear_error(&error);

	ConfigPtr none = parse_ok(mirror_with("name = x"));
	ASSERT_TRUE(none);
	EXPECT_TRUE(config_check_on_event(none.get(), &error)) << "no on-event: nothing to check";
}

TEST(ConfigErrors, BadBoolean)
{
	EXPECT_EQ(parse_error(mirror_with("allow-other = maybe"), CONFIG_ERROR_VALUE),
		  "a.conf:2: allow-other 'maybe' is not a boolean (true, false, yes, no, 1 or 0)");
	EXPECT_EQ(parse_error(two_legs + "write-mostly = on\n", CONFIG_ERROR_VALUE),
		  "a.conf:5: [leg b]: write-mostly 'on' is not a boolean (true, false, yes, no, 1 "
		  "or 0)");
	EXPECT_EQ(parse_error(mirror_with("allow-other ="), CONFIG_ERROR_VALUE),
		  "a.conf:2: allow-other '' is not a boolean (true, false, yes, no, 1 or 0)");
}

TEST(ConfigParse, DirectPerLeg)
{
	ConfigPtr config = parse_ok("[leg a]\npath = /a\n[leg b]\npath = /b\ndirect = true\n"
				    "[leg c]\npath = /c\ndirect = false\n[leg d]\npath = /d\n"
				    "direct = auto\n[leg e]\npath = /e\ndirect = No\n"
				    "[leg f]\npath = nbd://host/x\ndirect = false\n");
	ASSERT_NE(config, nullptr);
	EXPECT_EQ(config->legs[0].direct, LEG_DIRECT_AUTO) << "the default";
	EXPECT_EQ(config->legs[1].direct, LEG_DIRECT_TRUE);
	EXPECT_EQ(config->legs[2].direct, LEG_DIRECT_FALSE);
	EXPECT_EQ(config->legs[3].direct, LEG_DIRECT_AUTO);
	EXPECT_EQ(config->legs[4].direct, LEG_DIRECT_FALSE) << "a boolean's spelling";
	EXPECT_EQ(config->legs[5].direct, LEG_DIRECT_FALSE) << "false on an NBD leg is harmless";
	EXPECT_STREQ(config_direct_name(LEG_DIRECT_TRUE), "true");
}

TEST(ConfigErrors, BadDirect)
{
	EXPECT_EQ(parse_error(two_legs + "direct = maybe\n", CONFIG_ERROR_VALUE),
		  "a.conf:5: [leg b]: direct 'maybe' is not one of auto, true, false");
	EXPECT_EQ(parse_error(mirror_with("direct = true"), CONFIG_ERROR_UNKNOWN),
		  "a.conf:2: unknown key 'direct' in group [mirror]");
	/* Whichever comes first in the group, path or direct. */
	EXPECT_EQ(parse_error("[leg a]\npath = /a\n[leg b]\ndirect = true\n"
			      "path = nbd://host/export\n",
			      CONFIG_ERROR_INVALID),
		  "a.conf:4: [leg b]: direct = true does not apply to an NBD export (it has no "
		  "page cache here): leave direct out or set it to auto");
}

TEST(ConfigErrors, ThreadsOutOfRange)
{
	const char *const bad[] = {"1025", "-1",	"+4",	"four",
				   "",	   "4 threads", "0x10", "99999999999999999999999"};

	for (const char *value : bad) {
		std::string line = std::string("threads = ") + value;
		std::string message = std::string("a.conf:2: threads '") + value +
				      "' is not a number from 1 to 1024 (or 0 for the default)";

		EXPECT_EQ(parse_error(mirror_with(line), CONFIG_ERROR_VALUE), message);
	}
}

TEST(ConfigErrors, MissingPath)
{
	EXPECT_EQ(
	    parse_error("[leg a]\npath = /a\n\n[leg b]\nwrite-mostly = no\n", CONFIG_ERROR_MISSING),
	    "a.conf:4: [leg b]: no path: add path = /absolute/path (a file or a block "
	    "device) or path = nbd://HOST/EXPORT (an NBD export)");
}

TEST(ConfigErrors, RelativePaths)
{
	std::string text = "[mirror]\n";
	for (int i = 2; i < 12; i++)
		text += "# padding\n";
	text += "[leg b]\npath = data/b.img\n";
	EXPECT_EQ(parse_error(text, CONFIG_ERROR_VALUE),
		  "a.conf:13: [leg b]: path 'data/b.img' is not absolute");
	EXPECT_EQ(parse_error(mirror_with("mountpoint = mnt/db.img"), CONFIG_ERROR_VALUE),
		  "a.conf:2: mountpoint 'mnt/db.img' is not absolute");
	EXPECT_EQ(parse_error(mirror_with("on-event = notify.sh"), CONFIG_ERROR_VALUE),
		  "a.conf:2: on-event 'notify.sh' is not absolute");
	EXPECT_EQ(parse_error("[leg a]\npath =\n", CONFIG_ERROR_VALUE),
		  "a.conf:2: [leg a]: path '' is not absolute");
}

TEST(ConfigErrors, NonPrintablePathIsShownEscaped)
{
	EXPECT_EQ(parse_error("[leg a]\npath = /srv/a\\tb\n", CONFIG_ERROR_VALUE),
		  "a.conf:2: [leg a]: path '/srv/a\\tb' contains a non-printable character");
	EXPECT_EQ(parse_error("[leg a]\npath = /srv/a\\nb\n", CONFIG_ERROR_VALUE),
		  "a.conf:2: [leg a]: path '/srv/a\\nb' contains a non-printable character");
}

TEST(ConfigErrors, TooLongPath)
{
	const std::string path = "/" + std::string(4095, 'p');

	EXPECT_EQ(parse_error("[leg a]\npath = " + path + "\n", CONFIG_ERROR_VALUE),
		  "a.conf:2: [leg a]: path '" + path + "' is longer than 4095 bytes");
	ConfigPtr config = parse_ok("[leg a]\npath = " + path.substr(0, 4095) + "\n");
	ASSERT_NE(config, nullptr);
}

TEST(ConfigErrors, BadEscape)
{
	EXPECT_EQ(parse_error("[leg a]\npath = /srv/a\\qb\n", CONFIG_ERROR_VALUE),
		  "a.conf:2: [leg a]: path: bad escape sequence: a backslash must be followed by "
		  "s, n, t, r or \\");
}

// Found by tests/fuzz/fuzz-config: glib 2.74's g_key_file_get_string() sets its error twice, with
// a glib warning ("GError set over the top of a previous GError"), for a bad escape followed by
// a backslash at the end of the value.  The parser refuses it with its own message, silently.
TEST(ConfigErrors, BadEscapeThenBackslashAtTheEnd)
{
	static unsigned int warnings;
	GLogFunc previous = g_log_set_default_handler(
	    [](const char *, GLogLevelFlags level, const char *, gpointer) {
		    if (level & (G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL))
			    warnings++;
	    },
	    nullptr);

	warnings = 0;
	for (const char *text : {"[leg a]\npath=\\k\\", "[leg a]\npath = /a\\q\\\n"})
		EXPECT_EQ(parse_error(text, CONFIG_ERROR_VALUE),
			  "a.conf:2: [leg a]: path: bad escape sequence: a backslash must be "
			  "followed by s, n, t, r or \\")
		    << text;
	EXPECT_EQ(parse_error("[leg a]\npath = /a\\\n", CONFIG_ERROR_VALUE),
		  "a.conf:2: [leg a]: path: bad escape sequence: a backslash must be followed by "
		  "s, n, t, r or \\");
	g_log_set_default_handler(previous, nullptr);
	EXPECT_EQ(warnings, 0u) << "glib warned while parsing";
}

TEST(ConfigErrors, DuplicateLegName)
{
	const std::string text = "[mirror]\n"
				 "[leg a]\n"
				 "path = /a\n"
				 "[leg b]\n"
				 "path = /b\n"
				 "\n"
				 "\n"
				 "\n"
				 "[leg a]\n"
				 "path = /c\n";

	EXPECT_EQ(parse_error(text, CONFIG_ERROR_INVALID), "a.conf:9: duplicate leg name 'a'");
}

TEST(ConfigErrors, DuplicateMirrorGroup)
{
	EXPECT_EQ(parse_error("[mirror]\nname=a\n" + one_leg + "[mirror]\nthreads=2\n",
			      CONFIG_ERROR_INVALID),
		  "a.conf:5: duplicate group [mirror] (first at line 1)");
}

TEST(ConfigErrors, DuplicateKey)
{
	EXPECT_EQ(parse_error("[mirror]\nthreads = 4\ncache = none\nthreads = 8\n" + one_leg,
			      CONFIG_ERROR_INVALID),
		  "a.conf:4: duplicate key 'threads' in group [mirror] (first at line 2)");
	EXPECT_EQ(parse_error("[leg a]\npath = /a\npath = /b\n", CONFIG_ERROR_INVALID),
		  "a.conf:3: duplicate key 'path' in group [leg a] (first at line 2)");
	// The same key spelled with other white space is the same key.
	EXPECT_EQ(parse_error("[leg a]\npath=/a\n  path   =  /a\n", CONFIG_ERROR_INVALID),
		  "a.conf:3: duplicate key 'path' in group [leg a] (first at line 2)");
}

TEST(ConfigErrors, DuplicatePath)
{
	EXPECT_EQ(parse_error("[leg a]\npath = /srv/a.img\n[leg b]\npath = /srv/a.img\n",
			      CONFIG_ERROR_INVALID),
		  "a.conf:4: [leg b]: path '/srv/a.img' is also the path of leg 'a'");
	// The same file spelled differently.
	EXPECT_EQ(parse_error("[leg a]\npath = /srv//a.img\n[leg b]\npath = /srv/./a.img/\n",
			      CONFIG_ERROR_INVALID),
		  "a.conf:4: [leg b]: path '/srv/./a.img/' is also the path of leg 'a'");
}

TEST(ConfigParse, NbdUriLegs)
{
	ConfigPtr config =
	    parse_ok("[leg a]\npath = /srv/a.img\n"
		     "[leg b]\npath = nbd://127.0.0.1:10810/exp\nwrite-mostly = yes\n"
		     "[leg c]\npath = nbd+unix:///exp?socket=/run/nbd.sock\n"
		     "[leg d]\npath = nbds://[::1]/exp?tls-psk-file=/etc/k.psk\n"
		     "[leg e]\npath = nbd://host.example\n");

	ASSERT_NE(config, nullptr);
	ASSERT_EQ(config->num_legs, 5u);
	EXPECT_STREQ(config->legs[1].path, "nbd://127.0.0.1:10810/exp");
	EXPECT_TRUE(config->legs[1].write_mostly);
	EXPECT_STREQ(config->legs[2].path, "nbd+unix:///exp?socket=/run/nbd.sock");
	// Kept whole: the secrets are the admin's, only messages redact them.
	EXPECT_STREQ(config->legs[3].path, "nbds://[::1]/exp?tls-psk-file=/etc/k.psk");
	EXPECT_STREQ(config->legs[4].path, "nbd://host.example");
}

TEST(ConfigErrors, MalformedNbdUris)
{
	EXPECT_EQ(parse_error("[leg a]\npath = nbd:///exp\n", CONFIG_ERROR_VALUE),
		  "a.conf:2: [leg a]: path 'nbd:///exp' names no host");
	EXPECT_EQ(parse_error("[leg a]\npath = nbd+unix:///exp\n", CONFIG_ERROR_VALUE),
		  "a.conf:2: [leg a]: path 'nbd+unix:///exp' names no socket: a unix URI is "
		  "nbd+unix:///EXPORT?socket=PATH");
	EXPECT_EQ(parse_error("[leg a]\npath = nbd+unix://h/exp?socket=/s\n", CONFIG_ERROR_VALUE),
		  "a.conf:2: [leg a]: path 'nbd+unix://h/exp?socket=/s' names a host: a unix URI "
		  "is nbd+unix:///EXPORT?socket=PATH");
	EXPECT_EQ(parse_error("[leg a]\npath = nbd://h:port/exp\n", CONFIG_ERROR_VALUE),
		  "a.conf:2: [leg a]: path 'nbd://h:port/exp' is not a well-formed URI");
	EXPECT_EQ(parse_error("[leg a]\npath = nbd://h/e%zz\n", CONFIG_ERROR_VALUE),
		  "a.conf:2: [leg a]: path 'nbd://h/e%zz' is not a well-formed URI");
	EXPECT_EQ(parse_error("[leg a]\npath = nbd://h/a b\n", CONFIG_ERROR_VALUE),
		  "a.conf:2: [leg a]: path 'nbd://h/a b' contains a blank or a control character");
	EXPECT_EQ(parse_error("[leg a]\npath = nbd+vsock://x/e\n", CONFIG_ERROR_VALUE),
		  "a.conf:2: [leg a]: path 'nbd+vsock://x/e' names a vsock host that is not a "
		  "number (a CID)");
	EXPECT_EQ(parse_error("[leg a]\npath = nbd://h/e?socket=/s\n", CONFIG_ERROR_VALUE),
		  "a.conf:2: [leg a]: path 'nbd://h/e?socket=/s' has a socket= parameter, which "
		  "only a unix URI (nbd+unix://) takes");
	// Not a URI scheme of libnbd's: a relative path.
	EXPECT_EQ(parse_error("[leg a]\npath = nbdx://h/e\n", CONFIG_ERROR_VALUE),
		  "a.conf:2: [leg a]: path 'nbdx://h/e' is not absolute");
}

TEST(ConfigErrors, NbdUriSecretsAreRedacted)
{
	std::string message = parse_error("[leg a]\npath = nbd+unix:///e?password=hunter2&x=%zz\n",
					  CONFIG_ERROR_VALUE);
	EXPECT_EQ(message, "a.conf:2: [leg a]: path 'nbd+unix:///e?password=***&x=%zz' is not a "
			   "well-formed URI");
	message = parse_error("[leg a]\npath = nbds://alice:hunter2@h/e\n"
			      "[leg b]\npath = nbds://alice:hunter2@H:10809/e\n",
			      CONFIG_ERROR_INVALID);
	EXPECT_EQ(message, "a.conf:4: [leg b]: path 'nbds://***@H:10809/e' is also the path of "
			   "leg 'a'");
	EXPECT_EQ(message.find("hunter2"), std::string::npos);
}

TEST(ConfigErrors, DuplicateNbdUri)
{
	// One export spelled twice: scheme and host case, the default port, an empty export.
	EXPECT_EQ(parse_error("[leg a]\npath = nbd://Host\n[leg b]\npath = nbd://HOST:10809/\n",
			      CONFIG_ERROR_INVALID),
		  "a.conf:4: [leg b]: path 'nbd://HOST:10809/' is also the path of leg 'a'");
	EXPECT_EQ(parse_error("[leg a]\npath = nbd+unix:///e?socket=/s\n"
			      "[leg b]\npath = nbd+unix:///e?socket=/s\n",
			      CONFIG_ERROR_INVALID),
		  "a.conf:4: [leg b]: path 'nbd+unix:///e?socket=/s' is also the path of leg 'a'");
	// Other ports or exports are other legs.
	ConfigPtr config = parse_ok("[leg a]\npath = nbd://h/e\n[leg b]\npath = nbd://h:10810/e\n"
				    "[leg c]\npath = nbd://h/f\n");
	ASSERT_NE(config, nullptr);
}

TEST(ConfigErrors, MountpointOnALeg)
{
	EXPECT_EQ(
	    parse_error("[mirror]\nmountpoint = /srv/b.img\n" + two_legs, CONFIG_ERROR_INVALID),
	    "a.conf:2: mountpoint '/srv/b.img' is also the path of leg 'b'");
}

TEST(ConfigErrors, NoLegs)
{
	EXPECT_EQ(parse_error("[mirror]\nname = a\n", CONFIG_ERROR_MISSING),
		  "a.conf: no [leg NAME] group: a mirror needs at least one leg");
}

TEST(ConfigErrors, SixtyFiveLegs)
{
	std::string text = "[mirror]\n";
	for (int i = 0; i <= CONFIG_MAX_LEGS; i++)
		text += "[leg l" + std::to_string(i) + "]\npath = /srv/" + std::to_string(i) + "\n";

	// [mirror] is line 1, leg i's header line 2 + 2 * i.
	EXPECT_EQ(parse_error(text, CONFIG_ERROR_INVALID),
		  "a.conf:130: [leg l64]: too many legs: a mirror has at most 64");
}

TEST(ConfigErrors, AllLegsWriteMostly)
{
	const std::string text = "[leg a]\npath = /a\nwrite-mostly = true\n"
				 "[leg b]\npath = /b\nwrite-mostly = yes\n";

	EXPECT_EQ(
	    parse_error(text, CONFIG_ERROR_INVALID),
	    "a.conf: every leg is write-mostly: set write-mostly = false on at least one leg, "
	    "to serve reads");
}

TEST(ConfigErrors, BadLegNames)
{
	EXPECT_EQ(parse_error("[leg]\npath=/a\n", CONFIG_ERROR_VALUE),
		  "a.conf:1: leg name '' is empty: write [leg NAME]");
	EXPECT_EQ(parse_error("[leg ]\npath=/a\n", CONFIG_ERROR_VALUE),
		  "a.conf:1: leg name '' is empty: write [leg NAME]");
	EXPECT_EQ(parse_error(one_leg + "[leg  b]\npath=/b\n", CONFIG_ERROR_VALUE),
		  "a.conf:3: leg name ' b' has white space around it: write [leg NAME]");
	EXPECT_EQ(parse_error(one_leg + "[leg b ]\npath=/b\n", CONFIG_ERROR_VALUE),
		  "a.conf:3: leg name 'b ' has white space around it: write [leg NAME]");
	EXPECT_EQ(parse_error("[leg " + std::string(65, 'x') + "]\npath=/a\n", CONFIG_ERROR_VALUE),
		  "a.conf:1: leg name '" + std::string(65, 'x') +
		      "' is longer than 64 bytes: write [leg NAME]");
	// U+200B ZERO WIDTH SPACE: valid UTF-8, invisible in a message.
	EXPECT_EQ(parse_error("[leg a\u200bb]\npath=/a\n", CONFIG_ERROR_VALUE),
		  "a.conf:1: leg name 'a\\u200bb' contains a non-printable character: write [leg "
		  "NAME]");
}

TEST(ConfigErrors, BadMirrorNames)
{
	EXPECT_EQ(parse_error(mirror_with("name = a/b"), CONFIG_ERROR_VALUE),
		  "a.conf:2: name 'a/b' contains '/'");
	EXPECT_EQ(parse_error(mirror_with("name ="), CONFIG_ERROR_VALUE),
		  "a.conf:2: name '' is empty");
	EXPECT_EQ(parse_error(mirror_with("name = .."), CONFIG_ERROR_VALUE),
		  "a.conf:2: name '..' is '.' or '..'");
	EXPECT_EQ(parse_error(mirror_with("name = " + std::string(65, 'n')), CONFIG_ERROR_VALUE),
		  "a.conf:2: name '" + std::string(65, 'n') + "' is longer than 64 bytes");
	EXPECT_EQ(parse_error(mirror_with("name = a\\tb"), CONFIG_ERROR_VALUE),
		  "a.conf:2: name 'a\\tb' contains a non-printable character");
}

TEST(ConfigErrors, BadNameFromTheFileName)
{
	EXPECT_EQ(parse_error(one_leg, CONFIG_ERROR_VALUE, "/etc/fusemirror/.conf"),
		  "/etc/fusemirror/.conf: mirror name '' (from the file name) is empty: set name = "
		  "NAME in [mirror]");
	// With name set, the file name does not matter.
	ConfigPtr config = parse_ok("[mirror]\nname = ok\n" + one_leg, "/etc/fusemirror/.conf");
	ASSERT_NE(config, nullptr);
}

TEST(ConfigErrors, SyntaxErrorsHaveTheirLine)
{
	EXPECT_EQ(
	    parse_error("[mirror]\nname = a\nthis is not a key\n" + one_leg, CONFIG_ERROR_SYNTAX),
	    "a.conf:3: syntax error: 'this is not a key' is not a [group] header, a key = "
	    "value line or a # comment");
	EXPECT_EQ(parse_error("[mirror]\n; old-style comment\n" + one_leg, CONFIG_ERROR_SYNTAX),
		  "a.conf:2: syntax error: '; old-style comment' is not a [group] header, a key = "
		  "value line or a # comment");
	EXPECT_EQ(parse_error("# c\n[mirror\n" + one_leg, CONFIG_ERROR_SYNTAX),
		  "a.conf:2: syntax error: '[mirror' is not a group header: write [mirror] or [leg "
		  "NAME]");
	EXPECT_EQ(parse_error(one_leg + "[leg [b]]\n", CONFIG_ERROR_SYNTAX),
		  "a.conf:3: syntax error: '[leg [b]]' is not a group header: write [mirror] or "
		  "[leg NAME]");
	EXPECT_EQ(parse_error(one_leg + "[]\n", CONFIG_ERROR_SYNTAX),
		  "a.conf:3: syntax error: '[]' is not a group header: write [mirror] or [leg "
		  "NAME]");
	EXPECT_EQ(parse_error(one_leg + "[mirror] # trailing\n", CONFIG_ERROR_SYNTAX),
		  "a.conf:3: syntax error: '[mirror] # trailing' is not a group header: write "
		  "[mirror] or [leg NAME]");
	EXPECT_EQ(parse_error("[leg a]\n = /a\n", CONFIG_ERROR_SYNTAX),
		  "a.conf:2: syntax error: '= /a' has no key before '='");
	EXPECT_EQ(parse_error("\nname = a\n" + one_leg, CONFIG_ERROR_SYNTAX),
		  "a.conf:2: key 'name' is outside any group: put it in [mirror] or [leg NAME]");
}

TEST(ConfigErrors, LongSyntaxLineIsCut)
{
	const std::string junk(200, 'j');

	EXPECT_EQ(parse_error(one_leg + junk + "\n", CONFIG_ERROR_SYNTAX),
		  "a.conf:3: syntax error: '" + std::string(60, 'j') +
		      "...' is not a [group] header, a key = value line or a # comment");
}

TEST(ConfigErrors, NotText)
{
	EXPECT_EQ(parse_error(one_leg + "name = \xff\xfe\n", CONFIG_ERROR_SYNTAX),
		  "a.conf:3: syntax error: the line is not valid UTF-8");
	EXPECT_EQ(parse_error(one_leg + std::string("x\0y\n", 4), CONFIG_ERROR_SYNTAX),
		  "a.conf:3: syntax error: NUL byte (is this a text file?)");
}

TEST(ConfigErrors, EmptyFile)
{
	EXPECT_EQ(parse_error("", CONFIG_ERROR_MISSING),
		  "a.conf: empty config (no groups): a mirror needs at least one [leg NAME] group");
	EXPECT_EQ(parse_error("# only a comment\n\n   \n", CONFIG_ERROR_MISSING),
		  "a.conf: empty config (no groups): a mirror needs at least one [leg NAME] group");

	GError *error = nullptr;
	EXPECT_EQ(config_parse(nullptr, 0, "a.conf", &error), nullptr);
	ASSERT_NE(error, nullptr);
	EXPECT_EQ(error->code, CONFIG_ERROR_MISSING);
	g_error_free(error);
}

TEST(ConfigErrors, FirstErrorInFileOrder)
{
	// Two bad values: the first one in the file is reported.
	EXPECT_EQ(
	    parse_error("[leg a]\npath = rel\n[mirror]\nthreads = 9999\n", CONFIG_ERROR_VALUE),
	    "a.conf:2: [leg a]: path 'rel' is not absolute");
}

TEST(ConfigErrors, QuotedFileName)
{
	EXPECT_EQ(parse_error("[x]\n", CONFIG_ERROR_UNKNOWN, "bad\nname.conf"),
		  "bad\\nname.conf:1: unknown group [x]: expected [mirror] or [leg NAME]");
}

TEST(ConfigErrors, NullErrorPointerIsFine)
{
	const std::string text = "[bogus]\n";

	EXPECT_EQ(config_parse(text.data(), text.size(), "a.conf", nullptr), nullptr);
}

// ---- config_load ----------------------------------------------------------------------------

class ConfigLoad : public ::testing::Test
{
      protected:
	void SetUp() override
	{
		char templ[] = "/tmp/config-test.XXXXXX";
		ASSERT_NE(mkdtemp(templ), nullptr);
		dir = templ;
	}
	void TearDown() override
	{
		for (const auto &f : files)
			unlink(f.c_str());
		rmdir(dir.c_str());
	}
	std::string write(const std::string &name, const std::string &text)
	{
		std::string path = dir + "/" + name;
		EXPECT_TRUE(g_file_set_contents(path.c_str(), text.data(), text.size(), nullptr));
		files.push_back(path);
		return path;
	}
	std::string load_error(const std::string &path, int code)
	{
		GError *error = nullptr;
		mirror_config *config = config_load(path.c_str(), &error);
		std::string message;

		EXPECT_EQ(config, nullptr);
		config_free(config);
		if (error == nullptr) {
			ADD_FAILURE() << "no error for " << path;
			return message;
		}
		EXPECT_EQ(error->domain, CONFIG_ERROR);
		EXPECT_EQ(error->code, code) << error->message;
		message = error->message;
		g_error_free(error);
		return message;
	}

	std::string dir;
	std::vector<std::string> files;
};

TEST_F(ConfigLoad, ReadsAFile)
{
	std::string path = write("db.conf", "[mirror]\nthreads = 3\n" + one_leg);
	GError *error = nullptr;
	ConfigPtr config(config_load(path.c_str(), &error));

	ASSERT_NE(config, nullptr) << error->message;
	EXPECT_STREQ(config->file, path.c_str());
	EXPECT_STREQ(config->name, "db");
	EXPECT_EQ(config->threads, 3u);
}

TEST_F(ConfigLoad, MessagesNameThePath)
{
	std::string path = write("db.conf", "[mirror]\nspeed = 3\n" + one_leg);

	EXPECT_EQ(load_error(path, CONFIG_ERROR_UNKNOWN),
		  path + ":2: unknown key 'speed' in group [mirror]");
}

TEST_F(ConfigLoad, MissingFile)
{
	std::string path = dir + "/missing.conf";

	EXPECT_EQ(load_error(path, CONFIG_ERROR_IO),
		  path + ": cannot read: No such file or directory");
}

TEST_F(ConfigLoad, Directory)
{
	EXPECT_EQ(load_error(dir, CONFIG_ERROR_IO), dir + ": cannot read: Is a directory");
}

TEST_F(ConfigLoad, UnreadableFile)
{
	std::string path = write("secret.conf", one_leg);

	ASSERT_EQ(chmod(path.c_str(), 0), 0);
	if (access(path.c_str(), R_OK) == 0)
		GTEST_SKIP() << "running with CAP_DAC_OVERRIDE (root): mode 000 is readable";
	EXPECT_EQ(load_error(path, CONFIG_ERROR_IO), path + ": cannot read: Permission denied");
}

TEST_F(ConfigLoad, HugeFile)
{
	std::string path = write("huge.conf", one_leg + std::string(2 * 1024 * 1024, '#'));

	EXPECT_EQ(load_error(path, CONFIG_ERROR_IO),
		  path + ": cannot read: larger than 1 MiB, not a config file");
}

TEST_F(ConfigLoad, EmptyFile)
{
	std::string path = write("empty.conf", "");

	EXPECT_EQ(load_error(path, CONFIG_ERROR_MISSING),
		  path +
		      ": empty config (no groups): a mirror needs at least one [leg NAME] group");
}

// ---- Sizes ----------------------------------------------------------------------------------

TEST(ConfigSize, Good)
{
	const struct {
		const char *text;
		uint64_t value;
	} cases[] = {
	    {"0", 0},
	    {"4096", 4096},
	    {"007", 7},
	    {"512B", 512},
	    {"4k", 4096},
	    {"4K", 4096},
	    {"4KB", 4096},
	    {"4KiB", 4096},
	    {"1M", 1ull << 20},
	    {"64MiB", 64ull << 20},
	    {"64 MiB", 64ull << 20},
	    {"2G", 2ull << 30},
	    {"2g", 2ull << 30},
	    {"1GiB", 1ull << 30},
	    {"3T", 3ull << 40},
	    {"3TiB", 3ull << 40},
	    {"16777215T", 16777215ull << 40},
	    {"18446744073709551615", UINT64_MAX},
	};
	for (const auto &c : cases) {
		uint64_t out = 12345;
		EXPECT_TRUE(config_parse_size(c.text, &out)) << c.text;
		EXPECT_EQ(out, c.value) << c.text;
	}
}

TEST(ConfigSize, Bad)
{
	for (const char *text : {"",
				 " ",
				 "-1",
				 "+1",
				 " 1",
				 "1 ",
				 "1.5G",
				 "0x10",
				 "K",
				 "MiB",
				 "1P",
				 "1KiBx",
				 "1Q",
				 "1 K B",
				 "1KK",
				 "1Bi",
				 "12abc",
				 "18446744073709551616",
				 "16777216T",
				 "17179869184G",
				 "99999999999999999999999999"}) {
		uint64_t out = 12345;
		EXPECT_FALSE(config_parse_size(text, &out)) << "'" << text << "'";
		EXPECT_EQ(out, 12345u) << "*out changed for '" << text << "'";
	}
	uint64_t out = 0;
	EXPECT_FALSE(config_parse_size(nullptr, &out));
}

// ---- Names ----------------------------------------------------------------------------------

TEST(ConfigNames, MatchTheFile)
{
	EXPECT_STREQ(config_read_policy_name(READ_POLICY_LEAST_PENDING), "least-pending");
	EXPECT_STREQ(config_read_policy_name(READ_POLICY_ROUND_ROBIN), "round-robin");
	EXPECT_STREQ(config_read_policy_name(READ_POLICY_PRIMARY), "primary");
	EXPECT_STREQ(config_engine_name(DMIO_ENGINE_THREADS), "threads");
	EXPECT_STREQ(config_engine_name(DMIO_ENGINE_IO_URING), "io_uring");
	EXPECT_STREQ(config_cache_name(CACHE_NONE), "none");
	EXPECT_STREQ(config_cache_name(CACHE_WRITEBACK), "writeback");
	EXPECT_STREQ(config_metadata_name(METADATA_NONE), "none");
	EXPECT_STREQ(config_metadata_name(METADATA_INTERNAL), "internal");
	// 3 is still a value of the enum's type in C++ (its range is 0-3).
	EXPECT_STREQ(config_read_policy_name(static_cast<enum read_policy>(3)), "unknown");
}

TEST(ConfigNames, RoundTripThroughTheParser)
{
	for (auto policy :
	     {READ_POLICY_LEAST_PENDING, READ_POLICY_ROUND_ROBIN, READ_POLICY_PRIMARY}) {
		ConfigPtr config = parse_ok(
		    mirror_with(std::string("read-policy = ") + config_read_policy_name(policy)));
		ASSERT_NE(config, nullptr);
		EXPECT_EQ(config->read_policy, policy);
	}
}

// ---- max-read-errors ------------------------------------------------------------------------

TEST(ConfigMaxReadErrors, DefaultRangeAndErrors)
{
	ConfigPtr config = parse_ok("[mirror]\n" + two_legs);
	ASSERT_NE(config, nullptr);
	EXPECT_EQ(config->max_read_errors, 20u) << "the default, md's";
	for (unsigned v : {0u, 1u, 20u, 1000000u}) {
		config = parse_ok(mirror_with("max-read-errors = " + std::to_string(v)));
		ASSERT_NE(config, nullptr);
		EXPECT_EQ(config->max_read_errors, v);
	}
	for (const char *bad : {"1000001", "-1", "+2", "20x", "1.5", "many"})
		EXPECT_EQ(parse_error(mirror_with(std::string("max-read-errors = ") + bad),
				      CONFIG_ERROR_VALUE),
			  std::string("a.conf:2: max-read-errors '") + bad +
			      "' is not a number of errors from 0 to 1000000 (0 = never fail a leg "
			      "for corrected errors)");
}

// ---- write-behind ---------------------------------------------------------------------------

TEST(ConfigWriteBehind, OnWriteMostlyLegsWithTheBitmap)
{
	ConfigPtr config = parse_ok(two_legs);
	ASSERT_NE(config, nullptr);
	EXPECT_EQ(config->legs[1].write_behind, 0u) << "off by default";
	for (unsigned v : {0u, 1u, 256u, 16383u}) {
		/* Either order of the two keys. */
		config = parse_ok(two_legs + "write-behind = " + std::to_string(v) +
				  "\nwrite-mostly = true\n");
		ASSERT_NE(config, nullptr);
		EXPECT_EQ(config->legs[1].write_behind, v);
		EXPECT_EQ(config->legs[0].write_behind, 0u);
	}
	for (const char *bad : {"16384", "-1", "+2", "4k", "1.5", "many", ""})
		EXPECT_EQ(parse_error(two_legs + "write-mostly = true\nwrite-behind = " + bad,
				      CONFIG_ERROR_VALUE),
			  std::string("a.conf:6: [leg b]: write-behind '") + bad +
			      "' is not a number of writes from 0 to 16383 (0 = none)");
}

TEST(ConfigWriteBehind, RefusedOnALegThatIsNotWriteMostlyOrWithoutTheBitmap)
{
	EXPECT_EQ(parse_error(two_legs + "write-behind = 4\n", CONFIG_ERROR_INVALID),
		  "a.conf:5: [leg b]: write-behind needs write-mostly = true on this leg");
	EXPECT_EQ(parse_error(two_legs + "write-mostly = false\nwrite-behind = 4\n",
			      CONFIG_ERROR_INVALID),
		  "a.conf:6: [leg b]: write-behind needs write-mostly = true on this leg");
	EXPECT_NE(parse_ok(two_legs + "write-mostly = true\nwrite-behind = 0\n"), nullptr);
	EXPECT_EQ(parse_error("[mirror]\nmetadata = none\n" + two_legs +
				  "write-mostly = true\nwrite-behind = 4\n",
			      CONFIG_ERROR_INVALID),
		  "a.conf: [leg b]: write-behind needs metadata = internal (the write-intent "
		  "bitmap)");
	/* 0 is no write-behind: fine anywhere. */
	EXPECT_NE(parse_ok("[mirror]\nmetadata = none\n" + two_legs + "write-behind = 0\n"),
		  nullptr);
}

// ---- stop-timeout ---------------------------------------------------------------------------

TEST(ConfigStopTimeout, DefaultRangeAndErrors)
{
	ConfigPtr config = parse_ok("[mirror]\n" + two_legs);
	ASSERT_NE(config, nullptr);
	EXPECT_EQ(config->stop_timeout, 5u) << "the default";
	for (unsigned v : {0u, 2u, 3600u}) {
		config = parse_ok(mirror_with("stop-timeout = " + std::to_string(v)));
		ASSERT_NE(config, nullptr);
		EXPECT_EQ(config->stop_timeout, v);
	}
	for (const char *bad : {"3601", "-1", "+2", "2s", "1.5"})
		EXPECT_EQ(parse_error(mirror_with(std::string("stop-timeout = ") + bad),
				      CONFIG_ERROR_VALUE),
			  std::string("a.conf:2: stop-timeout '") + bad +
			      "' is not a number of seconds from 0 to 3600");
}

// ---- reconnect-delay, reconnect-max ---------------------------------------------------------

TEST(ConfigReconnect, DefaultsRangeAndErrors)
{
	ConfigPtr config = parse_ok("[mirror]\n" + two_legs);
	ASSERT_NE(config, nullptr);
	EXPECT_EQ(config->reconnect_delay_ms, 1000u) << "1 s, doubling";
	EXPECT_EQ(config->reconnect_max, 60u) << "about half an hour";
	EXPECT_EQ(config->legs[0].reconnect_delay_ms, -1) << "the mirror's";
	EXPECT_EQ(config->legs[0].reconnect_max, -1) << "the mirror's";
	config = parse_ok(mirror_with("reconnect-delay = 0.25\nreconnect-max = 0"));
	ASSERT_NE(config, nullptr);
	EXPECT_EQ(config->reconnect_delay_ms, 250u);
	EXPECT_EQ(config->reconnect_max, 0u) << "never";
	config = parse_ok("[mirror]\n[leg a]\npath = /srv/a.img\n[leg b]\npath = /srv/b.img\n"
			  "reconnect-delay = 5\nreconnect-max = 1000000\n");
	ASSERT_NE(config, nullptr);
	EXPECT_EQ(config->legs[1].reconnect_delay_ms, 5000);
	EXPECT_EQ(config->legs[1].reconnect_max, 1000000);
	EXPECT_EQ(config->legs[0].reconnect_max, -1);
	for (const char *bad : {"0", "-1", "3601", "1x", "soon"})
		EXPECT_EQ(parse_error(mirror_with(std::string("reconnect-delay = ") + bad),
				      CONFIG_ERROR_VALUE),
			  std::string("a.conf:2: reconnect-delay '") + bad +
			      "' is not a number of seconds from 0.001 to 3600 (decimals allowed)");
	for (const char *bad : {"1000001", "-1", "+2", "1.5", "forever"})
		EXPECT_EQ(parse_error(mirror_with(std::string("reconnect-max = ") + bad),
				      CONFIG_ERROR_VALUE),
			  std::string("a.conf:2: reconnect-max '") + bad +
			      "' is not a number of tries from 0 to 1000000 (0 = never "
			      "reconnect)");
}
