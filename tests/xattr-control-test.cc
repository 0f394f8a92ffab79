/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Control commands through the control attribute (src/fuse/xattr.c over control.c), on a real
 * mirror without FUSE: last_error keeps the precise reason, set refuses min above max in either
 * order, control characters are refused and logged escaped, and the front end's hooks (stop,
 * membership) are called as documented, a replace's membership hook also at its end.
 */
#include "mirror-util.h"

#include "fuse/xattr.h"

using namespace mirror_test;

namespace
{

constexpr uint64_t kCaller = 777;

struct Hooks {
	int stop_calls = 0;
	bool stop_force = false;
	int stop_result = 0;
	std::vector<bool> saves; /* one per on_membership call, under lock (a replace's end
				  * calls it from the mirror's thread) */
	std::mutex lock;

	static int stop(void *opaque, bool force, GError **error)
	{
		Hooks *h = static_cast<Hooks *>(opaque);
		h->stop_calls++;
		h->stop_force = force;
		if (h->stop_result < 0)
			g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
					    "/m is in use: loop device /dev/loop9 is bound to it");
		return h->stop_result;
	}
	static void membership(void *opaque, struct mirror *m, bool save)
	{
		Hooks *h = static_cast<Hooks *>(opaque);
		std::lock_guard<std::mutex> g(h->lock);
		h->saves.push_back(save);
	}
	std::vector<bool> saved()
	{
		std::lock_guard<std::mutex> g(lock);
		return saves;
	}
};

class XattrControl : public MirrorTest
{
      protected:
	void open_legs(unsigned n, bool formatted = false)
	{
		name_ = "xc";
		for (unsigned i = 0; i < n; i++)
			add_leg("leg" + std::to_string(i), 4 * MiB);
		if (formatted) {
			ASSERT_NO_FATAL_FAILURE(format_legs());
		}
		ASSERT_NO_FATAL_FAILURE(open_ok());
	}
	int ctl(const std::string &command)
	{
		/* The fixture's: a replace's end calls them after the command returned. */
		hooks_table_ = {Hooks::stop, Hooks::membership, &hooks_};
		return xattr_set_hooked(m_, &hooks_table_, kCaller, XATTR_CTL, command.data(),
					command.size(), true);
	}
	std::string get(const char *name)
	{
		return status(name);
	}
	std::string status(const std::string &name)
	{
		char *v = xattr_status_get(m_, kCaller, name.c_str());
		std::string s = v != nullptr ? v : "<none>";
		g_free(v);
		return s;
	}
	std::string last_error()
	{
		char *v = xattr_status_get(m_, kCaller, "user.fusemirror.last_error");
		std::string s = v != nullptr ? v : "<none>";
		g_free(v);
		return s;
	}
	/* The command is refused with err and last_error is exactly want. */
	void refused(const std::string &command, int err, const std::string &want)
	{
		EXPECT_EQ(-err, ctl(command)) << "'" << command << "'";
		EXPECT_EQ(want, last_error()) << "'" << command << "'";
	}
	Hooks hooks_;
	xattr_hooks hooks_table_{};
};

TEST_F(XattrControl, LastErrorIsThePreciseReason)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(2));
	refused("fail 999", EINVAL, "no leg 999 (the mirror has legs 0 to 1)");
	refused("remove 2", EINVAL, "no leg 2 (the mirror has legs 0 to 1)");
	refused("add dev/sdc", EINVAL, "add needs an absolute path or an NBD URI, got 'dev/sdc'");
	refused("frob", EINVAL,
		"unknown command 'frob' (there are: fail, remove, add, resync, set, stop, check, "
		"repair, replace, restart)");
	refused("fail 01", EINVAL,
		"'01' is not a leg index (a decimal number, 0 for the first leg)");
	refused("", EINVAL, "empty control command");
	refused(std::string(5000, 'x'), EINVAL, "the command is longer than 4096 bytes");
	EXPECT_EQ(0, ctl("fail 1"));
	EXPECT_EQ("", last_error()) << "a command that succeeds clears the caller's reason";
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_EQ(LEG_FAILED, state_of(1));
}

TEST_F(XattrControl, SetRefusesMinAboveMaxInEitherOrder)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(2));
	uint64_t min, max;
	ASSERT_EQ(0, ctl("set resync-rate-max 1000"));
	refused("set resync-rate-min 9000000", EINVAL,
		"resync-rate-min 9000000 is above resync-rate-max 1000");
	mirror_get_resync_rate(m_, &min, &max);
	EXPECT_EQ(0u, min) << "the refused value was not applied";
	EXPECT_EQ(1000u, max);

	ASSERT_EQ(0, ctl("set resync-rate-max 0")); /* unlimited: any min */
	ASSERT_EQ(0, ctl("set resync-rate-min 9000000"));
	refused("set resync-rate-max 1000", EINVAL,
		"resync-rate-max 1000 is below resync-rate-min 9000000");
	mirror_get_resync_rate(m_, &min, &max);
	EXPECT_EQ(9000000u, min);
	EXPECT_EQ(0u, max) << "the refused value was not applied";

	EXPECT_EQ(0, ctl("set resync-rate-max 9000000")) << "equal is fine";
	refused("set resync-rate-min 50M", EINVAL,
		"resync-rate-min needs a decimal number of bytes per second, got '50M'");
}

TEST_F(XattrControl, SetMaxReadErrors)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(2));
	EXPECT_EQ(20u, mirror_get_max_read_errors(m_)) << "the fixture's, the config default";
	EXPECT_EQ("20", get("user.fusemirror.max_read_errors"));
	ASSERT_EQ(0, ctl("set max-read-errors 3"));
	EXPECT_EQ(3u, mirror_get_max_read_errors(m_));
	EXPECT_EQ("3", get("user.fusemirror.max_read_errors"));
	ASSERT_EQ(0, ctl("set max-read-errors 0"));
	EXPECT_EQ("0", get("user.fusemirror.max_read_errors"));
	refused("set max-read-errors -1", EINVAL,
		"max-read-errors needs a decimal number of read errors from 0 to 1000000 (0: never "
		"fail a leg for them), got '-1'");
	EXPECT_EQ(0u, mirror_get_max_read_errors(m_)) << "the refused value was not applied";
}

TEST_F(XattrControl, SetReconnect)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(2));
	EXPECT_EQ("idle", get("user.fusemirror.leg.1.reconnect"));
	EXPECT_EQ("1", get("user.fusemirror.leg.1.reconnect_delay")) << "the default";
	ASSERT_EQ(0, ctl("set reconnect-delay 0.25"));
	ASSERT_EQ(0, ctl("set reconnect-max 1 7"));
	EXPECT_EQ("0.25", get("user.fusemirror.leg.0.reconnect_delay"));
	EXPECT_EQ("0.25", get("user.fusemirror.leg.1.reconnect_delay"));
	EXPECT_EQ("7", get("user.fusemirror.leg.1.reconnect_max"));
	EXPECT_NE("7", get("user.fusemirror.leg.0.reconnect_max")) << "one leg only";
	refused("set reconnect-max 2 7", EINVAL, "no leg 2 (the mirror has 2)");
	refused("set reconnect-delay 0", EINVAL,
		"reconnect-delay needs seconds from 0.001 to 3600, up to three decimals, got '0'");
}

TEST_F(XattrControl, ControlCharactersAreRefusedAndLoggedEscaped)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(2, true));
	LogCapture::get().clear();
	const std::string path = tmp_.path() + "/new\x1b[31m\nLegFailed: forged";
	refused("add " + path, EINVAL, "the path contains control character 0x1b");
	EXPECT_EQ(2u, mirror_num_legs(m_)) << "nothing was added";
	EXPECT_TRUE(hooks_.saves.empty());

	bool logged = false;
	for (const LogLine &l : LogCapture::get().lines()) {
		for (unsigned char c : l.message)
			EXPECT_FALSE(c < 0x20 || c == 0x7f)
			    << "a raw control character in the log: " << l.message;
		if (l.message.find("refused: the path contains control character 0x1b") !=
		    std::string::npos) {
			logged = true;
			EXPECT_NE(std::string::npos,
				  l.message.find("new\\033[31m\\nLegFailed: forged"))
			    << l.message;
		}
	}
	EXPECT_TRUE(logged) << LogCapture::get().dump();
}

TEST_F(XattrControl, MembershipHookAfterAddAndRemoveOnly)
{
	/* Three legs: a removed middle slot stays (a removed last one would go). */
	ASSERT_NO_FATAL_FAILURE(open_legs(3, true));
	ASSERT_EQ(0, ctl("fail 1"));
	EXPECT_TRUE(hooks_.saves.empty()) << "fail does not change the membership";
	ASSERT_EQ(0, ctl("remove --no-save 1"));
	ASSERT_EQ(1u, hooks_.saves.size());
	EXPECT_FALSE(hooks_.saves[0]) << "--no-save";
	EXPECT_EQ(-EALREADY, ctl("remove 1"));
	EXPECT_EQ(1u, hooks_.saves.size()) << "no hook after a refusal";
	ASSERT_EQ(0, ctl("add " + legs_[1].path)) << last_error();
	ASSERT_EQ(2u, hooks_.saves.size());
	EXPECT_TRUE(hooks_.saves[1]);
	EXPECT_EQ(-EEXIST, ctl("add " + legs_[1].path));
	EXPECT_EQ(2u, hooks_.saves.size());
}

TEST_F(XattrControl, ReplaceSavesAtTheAddAndAtTheEnd)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(2, true));
	std::string c = tmp_.path() + "/c.img", d = tmp_.path() + "/d.img";
	dmio_test::create_sparse(c, 4 * MiB);
	dmio_test::create_sparse(d, 4 * MiB);
	refused("replace 9 " + c, EINVAL, "no leg 9 (the mirror has legs 0 to 1)");
	refused("replace 0 " + legs_[1].path, EEXIST,
		legs_[1].path + " is already leg 1 (leg1) of mirror xc");
	EXPECT_TRUE(hooks_.saved().empty()) << "no hook after a refusal";

	mirror_set_resync_rate(m_, 4 * MiB, 4 * MiB); /* the copy lasts about 0.75 s */
	EXPECT_EQ(0, ctl("replace 1 " + c));
	EXPECT_EQ("1", status("user.fusemirror.replace.leg"));
	EXPECT_EQ("2", status("user.fusemirror.replace.by"));
	EXPECT_EQ(std::vector<bool>{true}, hooks_.saved()) << "the add is saved at once";
	refused("replace 0 " + d, EBUSY,
		"a replace of leg 1 (leg1) by leg 2 (" + c +
		    ") is running on mirror xc: one at a time");
	for (int i = 0; i < 1000 && status("user.fusemirror.replace.leg") != "none"; i++)
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	ASSERT_EQ("none", status("user.fusemirror.replace.leg"));
	EXPECT_EQ("none", status("user.fusemirror.replace.by"));
	EXPECT_EQ((std::vector<bool>{true, true}), hooks_.saved())
	    << "saved again once the old leg went, before the status says none";
	/* The new leg took the old one's slot. */
	EXPECT_EQ("in_sync", status("user.fusemirror.leg.1.state"));
	EXPECT_EQ(c, status("user.fusemirror.leg.1.path"));
	EXPECT_EQ("2", status("user.fusemirror.legs"));

	mirror_set_resync_rate(m_, 0, 0);
	EXPECT_EQ(0, ctl("replace --no-save 0 " + d));
	for (int i = 0; i < 1000 && status("user.fusemirror.replace.leg") != "none"; i++)
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	EXPECT_EQ((std::vector<bool>{true, true, false, false}), hooks_.saved());
	EXPECT_EQ("in_sync", status("user.fusemirror.leg.0.state"));
	EXPECT_EQ(d, status("user.fusemirror.leg.0.path"));
}

TEST_F(XattrControl, StopGoesToTheHook)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(2));
	EXPECT_EQ(0, ctl("stop"));
	EXPECT_EQ(1, hooks_.stop_calls);
	EXPECT_FALSE(hooks_.stop_force);
	EXPECT_EQ(0, ctl("stop --force"));
	EXPECT_EQ(2, hooks_.stop_calls);
	EXPECT_TRUE(hooks_.stop_force);
	hooks_.stop_result = -EBUSY;
	refused("stop", EBUSY, "/m is in use: loop device /dev/loop9 is bound to it");

	/* Without hooks (xattr_set) stop is not supported. */
	const std::string stop = "stop";
	EXPECT_EQ(-ENOTSUP, xattr_set(m_, kCaller, XATTR_CTL, stop.data(), stop.size(), true));
	EXPECT_EQ("this mirror is not served by a daemon that can stop", last_error());
	EXPECT_EQ(3, hooks_.stop_calls);
	/* Nor restart, with or without hooks, unless the front end gives its hook. */
	const std::string restart = "restart";
	EXPECT_EQ(-ENOTSUP,
		  xattr_set(m_, kCaller, XATTR_CTL, restart.data(), restart.size(), true));
	EXPECT_EQ("this mirror is not served by a daemon that can restart", last_error());
	EXPECT_EQ(-ENOTSUP, ctl("restart"));
	EXPECT_EQ(-EPERM, xattr_set_hooked(m_, nullptr, kCaller, XATTR_CTL, stop.data(),
					   stop.size(), false))
	    << "root only";
}

} // namespace
