// SPDX-License-Identifier: GPL-2.0-or-later
// Keeping a config file true (config_rewrite_legs, config_save_legs): the [leg] groups follow the
// mirror's legs, and every other byte of the file stays as the operator wrote it.  Texts are
// compared whole.

#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/config.h"

namespace
{

struct Leg {
	const char *name;
	const char *path;
	bool write_mostly;
};

std::vector<leg_config> to_configs(const std::vector<Leg> &legs)
{
	std::vector<leg_config> out;

	for (const Leg &leg : legs)
		out.push_back(
		    {const_cast<char *>(leg.name), const_cast<char *>(leg.path), leg.write_mostly});
	return out;
}

std::string rewrite(const std::string &text, const std::vector<Leg> &legs)
{
	std::vector<leg_config> configs = to_configs(legs);
	GError *error = nullptr;
	char *out = config_rewrite_legs(text.data(), text.size(), "m.conf", configs.data(),
					configs.size(), &error);
	std::string result;

	EXPECT_NE(out, nullptr) << (error != nullptr ? error->message : "no error set");
	if (error != nullptr)
		g_error_free(error);
	if (out != nullptr)
		result = out;
	g_free(out);
	return result;
}

std::string rewrite_error(const std::string &text, const std::vector<Leg> &legs)
{
	std::vector<leg_config> configs = to_configs(legs);
	GError *error = nullptr;
	char *out = config_rewrite_legs(text.data(), text.size(), "m.conf", configs.data(),
					configs.size(), &error);
	std::string message;

	EXPECT_EQ(out, nullptr) << out;
	g_free(out);
	if (error == nullptr) {
		ADD_FAILURE() << "no error";
		return message;
	}
	EXPECT_EQ(error->domain, CONFIG_ERROR);
	message = error->message;
	g_error_free(error);
	return message;
}

const std::string head = "# The database mirror.\n"
			 "#   two SSDs and a disk\n"
			 "\n"
			 "[mirror]\n"
			 "name = db\n"
			 "# the file the database opens\n"
			 "mountpoint = /srv/db.img\n"
			 "read-policy=round-robin\n";
const std::string group_a = "\n"
			    "# the first SSD\n"
			    "[leg a]\n"
			    "path = /dev/sda\n"
			    "  # indented\n";
const std::string group_b = "\n"
			    "[leg b]\n"
			    "# the second SSD, slow\n"
			    "path   =   /dev/sdb\n"
			    "write-mostly = yes\n";
const std::string group_c = "\n"
			    "[leg c]\n"
			    "path = /dev/sdc\n";
const std::string tail = "\n"
			 "# a note at the end\n";
const std::string commented = head + group_a + group_b + group_c + tail;

const Leg a = {"a", "/dev/sda", false};
const Leg b = {"b", "/dev/sdb", true};
const Leg c = {"c", "/dev/sdc", false};

TEST(ConfigRewrite, NothingToChangeKeepsEveryByte)
{
	EXPECT_EQ(rewrite(commented, {a, b, c}), commented);
	// The order of the list is not the order of the file.
	EXPECT_EQ(rewrite(commented, {c, a, b}), commented);
}

TEST(ConfigRewrite, AddedLegGetsAGroupAtTheEnd)
{
	EXPECT_EQ(rewrite(commented, {a, b, c, {"d e", "/dev/disk/by-id/x y", true}}),
		  commented + "\n[leg d e]\npath = /dev/disk/by-id/x y\nwrite-mostly = true\n");
}

TEST(ConfigRewrite, RemovedLegGoesWithTheCommentsTouchingIt)
{
	EXPECT_EQ(rewrite(commented, {b, c}), head + group_b + group_c + tail);
	EXPECT_EQ(rewrite(commented, {a, c}), head + group_a + group_c + tail);
	EXPECT_EQ(rewrite(commented, {a, b}), head + group_a + group_b + tail);
	EXPECT_EQ(rewrite(commented, {c}), head + group_c + tail);
}

TEST(ConfigRewrite, AddAndRemoveAtOnce)
{
	EXPECT_EQ(rewrite(commented, {b, c, {"d", "/dev/sdd", false}}),
		  head + group_b + group_c + tail + "\n[leg d]\npath = /dev/sdd\n");
}

TEST(ConfigRewrite, ChangedValuesAreReplacedInPlace)
{
	EXPECT_EQ(rewrite(commented, {{"a", "/dev/sdx", true}, {"b", "/dev/sdb", false}, c}),
		  head +
		      "\n"
		      "# the first SSD\n"
		      "[leg a]\n"
		      "path = /dev/sdx\n"
		      "write-mostly = true\n"
		      "  # indented\n"
		      "\n"
		      "[leg b]\n"
		      "# the second SSD, slow\n"
		      "path   =   /dev/sdb\n"
		      "write-mostly = false\n" +
		      group_c + tail);
}

TEST(ConfigRewrite, NewKeyIsWrittenAsThePathLineIs)
{
	EXPECT_EQ(rewrite("[leg a]\n\tpath=/a\n[leg b]\npath = /b\n",
			  {{"a", "/a", true}, {"b", "/b", false}}),
		  "[leg a]\n\tpath=/a\n\twrite-mostly=true\n[leg b]\npath = /b\n");
}

TEST(ConfigRewrite, FirstGroupOfTheFileAndNoFinalNewline)
{
	EXPECT_EQ(rewrite("[leg a]\npath=/a\n\n[leg b]\npath=/b", {{"b", "/b", false}}),
		  "[leg b]\npath=/b");
	EXPECT_EQ(rewrite("[leg a]\npath=/a", {{"a", "/a", false}, {"b", "/b", false}}),
		  "[leg a]\npath=/a\n\n[leg b]\npath = /b\n");
}

TEST(ConfigRewrite, CrlfLinesStayCrlf)
{
	EXPECT_EQ(
	    rewrite("[mirror]\r\nname = m\r\n\r\n[leg a]\r\npath = /a\r\n", {{"a", "/b", false}}),
	    "[mirror]\r\nname = m\r\n\r\n[leg a]\r\npath = /b\r\n");
}

TEST(ConfigRewrite, ValuesAreEscapedAsGKeyFileReadsThem)
{
	std::string out =
	    rewrite("[leg a]\npath = /a\n", {{"a", "/a", false}, {"b", "/x\\y", false}});
	GError *error = nullptr;
	mirror_config *config = config_parse(out.data(), out.size(), "m.conf", &error);

	EXPECT_EQ(out, "[leg a]\npath = /a\n\n[leg b]\npath = /x\\\\y\n");
	ASSERT_NE(config, nullptr) << error->message;
	EXPECT_STREQ(config->legs[1].path, "/x\\y");
	config_free(config);
}

TEST(ConfigRewrite, RefusedWhenTheResultWouldNotBeValid)
{
	EXPECT_EQ(rewrite_error("[leg a]\npath = /a\n", {{"a", "/a", false}, {"b", "/a", false}}),
		  "not rewritten: the new legs would not make a valid config: m.conf:5: [leg b]: "
		  "path '/a' is also the path of leg 'a'");
	EXPECT_EQ(rewrite_error("[leg a]\npath = /a\n", {{"a b]", "/b", false}}),
		  "not rewritten: the new legs would not make a valid config: m.conf:1: syntax "
		  "error: '[leg a b]]' is not a group header: write [mirror] or [leg NAME]");
	EXPECT_EQ(rewrite_error("[leg a]\npath = /a\n", {}),
		  "not rewritten: the new legs would not make a valid config: m.conf: empty "
		  "config (no groups): a mirror needs at least one [leg NAME] group");
}

TEST(ConfigRewrite, RefusedWhenTheFileIsNotValid)
{
	EXPECT_EQ(rewrite_error("[leg a]\npath = /a\nspeed = 3\n", {{"a", "/a", false}}),
		  "not rewritten: m.conf:3: unknown key 'speed' in group [leg a]");
}

class ConfigSave : public ::testing::Test
{
      protected:
	void SetUp() override
	{
		char templ[] = "/tmp/config-save-test.XXXXXX";
		ASSERT_NE(mkdtemp(templ), nullptr);
		dir = templ;
		path = dir + "/m.conf";
	}
	void TearDown() override
	{
		if (mounted)
			umount2(dir.c_str(), MNT_DETACH);
		chmod(dir.c_str(), 0700);
		g_autoptr(GDir) d = g_dir_open(dir.c_str(), 0, nullptr);
		for (const char *name; d != nullptr && (name = g_dir_read_name(d)) != nullptr;)
			unlink((dir + "/" + name).c_str());
		rmdir(dir.c_str());
	}
	void write(const std::string &text)
	{
		ASSERT_TRUE(g_file_set_contents(path.c_str(), text.data(), text.size(), nullptr));
	}
	std::string read()
	{
		g_autofree char *data = nullptr;
		gsize length = 0;

		EXPECT_TRUE(g_file_get_contents(path.c_str(), &data, &length, nullptr));
		return std::string(data != nullptr ? data : "", length);
	}
	bool save(const std::vector<Leg> &legs, gboolean *changed, std::string *message)
	{
		std::vector<leg_config> configs = to_configs(legs);
		GError *error = nullptr;
		gboolean ok =
		    config_save_legs(path.c_str(), configs.data(), configs.size(), changed, &error);

		if (error != nullptr) {
			*message = error->message;
			EXPECT_EQ(error->code, CONFIG_ERROR_IO) << error->message;
			g_error_free(error);
		}
		EXPECT_EQ(ok, error == nullptr && message->empty());
		return ok;
	}
	// Files in the directory (the temporary file must not stay behind).
	unsigned int entries()
	{
		g_autoptr(GDir) d = g_dir_open(dir.c_str(), 0, nullptr);
		unsigned int n = 0;

		while (d != nullptr && g_dir_read_name(d) != nullptr)
			n++;
		return n;
	}

	std::string dir, path;
	bool mounted = false;
};

TEST_F(ConfigSave, ReplacesTheFileKeepingItsMode)
{
	struct stat before, after;
	gboolean changed = FALSE;
	std::string message;

	write(commented);
	ASSERT_EQ(chmod(path.c_str(), 0640), 0);
	ASSERT_EQ(stat(path.c_str(), &before), 0);
	ASSERT_TRUE(save({a, b}, &changed, &message)) << message;
	EXPECT_TRUE(changed);
	ASSERT_EQ(stat(path.c_str(), &after), 0);
	EXPECT_NE(before.st_ino, after.st_ino) << "written in place, not renamed over";
	EXPECT_EQ(after.st_mode & 07777, 0640u);
	EXPECT_EQ(read(), head + group_a + group_b + tail);
	EXPECT_EQ(entries(), 1u);
}

TEST_F(ConfigSave, NothingChangedWritesNothing)
{
	struct stat before, after;
	gboolean changed = TRUE;
	std::string message;

	write(commented);
	ASSERT_EQ(stat(path.c_str(), &before), 0);
	ASSERT_TRUE(save({a, b, c}, &changed, &message)) << message;
	EXPECT_FALSE(changed);
	ASSERT_EQ(stat(path.c_str(), &after), 0);
	EXPECT_EQ(before.st_ino, after.st_ino);
}

TEST_F(ConfigSave, ThroughASymlinkItsTargetIsRewritten)
{
	std::string link = dir + "/link.conf";
	struct stat st;
	std::string message;
	gboolean changed;

	write(commented);
	ASSERT_EQ(symlink(path.c_str(), link.c_str()), 0);
	std::string target = path;
	path = link;
	ASSERT_TRUE(save({b, c}, &changed, &message)) << message;
	ASSERT_EQ(lstat(link.c_str(), &st), 0);
	EXPECT_TRUE(S_ISLNK(st.st_mode));
	path = target;
	EXPECT_EQ(read(), head + group_b + group_c + tail);
}

// The directory refuses the temporary file: the old file stays, whole, and nothing is left.
TEST_F(ConfigSave, ReadOnlyDirectoryLeavesTheOldFile)
{
	std::string message;
	gboolean changed = TRUE;

	if (geteuid() == 0) {
		// Root writes into a mode 0555 directory: only a read-only mount stops it.
		ASSERT_EQ(mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=64k"), 0)
		    << strerror(errno);
		mounted = true;
		write(commented);
		ASSERT_EQ(mount(nullptr, dir.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr), 0)
		    << strerror(errno);
	} else {
		write(commented);
		ASSERT_EQ(chmod(dir.c_str(), 0555), 0);
	}
	EXPECT_FALSE(save({{"a", "/dev/sda", false}}, &changed, &message));
	EXPECT_FALSE(changed);
	EXPECT_EQ(message, path +
			       ": not rewritten: cannot create a temporary file in its "
			       "directory: " +
			       (geteuid() == 0 ? "Read-only file system" : "Permission denied"));
	EXPECT_EQ(read(), commented);
	EXPECT_EQ(entries(), 1u);
}

TEST_F(ConfigSave, MissingFile)
{
	std::string message;

	EXPECT_FALSE(save({{"a", "/dev/sda", false}}, nullptr, &message));
	EXPECT_EQ(message, path + ": not rewritten: cannot resolve it: No such file or directory");
}

} // namespace
