/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mirror's extended attributes (src/fuse/xattr.c) without FUSE: the status attributes and
 * their values through real state changes (an operator fail, a read error, a write error on a
 * full tmpfs), the names that have no value, listxattr listing exactly what getxattr answers, and
 * the control attribute's commands and errors.
 */
#include "mirror-util.h"

#include "fuse/xattr.h"

#include <set>

using namespace mirror_test;

namespace
{

/* The process asking, as the front end passes it: last_error is its own. */
constexpr uint64_t kCaller = 4242;

class Xattr : public MirrorTest
{
      protected:
	/* Open a mirror "xm" over n legs named leg0, leg1, ... */
	void open_legs(unsigned n)
	{
		name_ = "xm";
		for (unsigned i = 0; i < n; i++)
			add_leg("leg" + std::to_string(i), 1 * MiB);
		open_ok();
	}

	/* The value of name, or "<none>" for NULL. */
	std::string get(const std::string &name)
	{
		char *v = xattr_status_get(m_, kCaller, name.c_str());
		if (v == nullptr)
			return "<none>";
		std::string s = v;
		g_free(v);
		return s;
	}
	std::string get_leg(unsigned i, const std::string &field)
	{
		return get(XATTR_STATUS_PREFIX "leg." + std::to_string(i) + "." + field);
	}

	std::vector<std::string> list()
	{
		size_t length = 12345;
		char *names = xattr_status_list(m_, &length);
		std::vector<std::string> v;
		EXPECT_NE(nullptr, names);
		if (names == nullptr)
			return v;
		EXPECT_GT(length, 0u);
		EXPECT_EQ('\0', names[length - 1]) << "the list does not end with a NUL";
		for (size_t i = 0; i < length;) {
			std::string n(names + i);
			EXPECT_FALSE(n.empty()) << "an empty name at " << i;
			v.push_back(n);
			i += n.size() + 1;
		}
		g_free(names);
		return v;
	}

	int set(const std::string &name, const std::string &value, bool root = true)
	{
		return xattr_set(m_, kCaller, name.c_str(), value.data(), value.size(), root);
	}
	int ctl(const std::string &value, bool root = true)
	{
		return set(XATTR_CTL, value, root);
	}
};

const char *const kMirrorKeys[] = {
    "name",	   "state",	   "legs",	  "error_bits",	   "events",
    "resync.done", "resync.total", "resync.rate", "resync.source", "resync.rate_min",
    "uuid",	   "mismatch_cnt", "mismatches",  "replace.leg",   "replace.by",
    "max_read_errors", "event_log", "last_error", "resync.rate_max", "restarts",
    "fuse_transport", "fuse_requests.io_uring", "fuse_requests.dev", "splice.spliced",
    "splice.copied"};
const char *const kLegFields[] = {"name",	     "path",		"state",
				  "read_errors",     "write_errors",	"corrected_errors",
				  "uuid",	     "resync",		"io_timeout",
				  "busy",	     "slow",		"write_mostly",
				  "reconnect",	     "reconnect_delay", "reconnect_max",
				  "write_behind",    "behind",		"behind_answered",
				  "direct"};

TEST_F(Xattr, StatusOfACleanMirror)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(2));
	EXPECT_EQ("xm", get("user.fusemirror.name"));
	EXPECT_EQ("clean", get("user.fusemirror.state"));
	EXPECT_EQ("2", get("user.fusemirror.legs"));
	EXPECT_EQ("0x0", get("user.fusemirror.error_bits"));
	EXPECT_EQ("0", get("user.fusemirror.events"));
	for (unsigned i = 0; i < 2; i++) {
		SCOPED_TRACE("leg " + std::to_string(i));
		EXPECT_EQ("leg" + std::to_string(i), get_leg(i, "name"));
		EXPECT_EQ(legs_[i].path, get_leg(i, "path"));
		EXPECT_EQ("in_sync", get_leg(i, "state"));
		EXPECT_EQ("0", get_leg(i, "read_errors"));
		EXPECT_EQ("0", get_leg(i, "write_errors"));
		EXPECT_EQ("0", get_leg(i, "corrected_errors"));
		EXPECT_EQ("", get_leg(i, "uuid")) << "metadata = none: no superblock, no UUID";
		EXPECT_EQ("none", get_leg(i, "resync"));
	}
	EXPECT_EQ("", get("user.fusemirror.uuid"));
	EXPECT_EQ("", get("user.fusemirror.resync.source")) << "no resync runs";
}

/* The UUIDs are those of the superblocks: the array's, and each leg's own. */
TEST_F(Xattr, UuidsAreTheSuperblocks)
{
	name_ = "xm";
	for (unsigned i = 0; i < 2; i++)
		add_leg("leg" + std::to_string(i), 2 * MiB);
	ASSERT_NO_FATAL_FAILURE(format_legs());
	ASSERT_NO_FATAL_FAILURE(open_ok());
	for (unsigned i = 0; i < 2; i++) {
		superblock sb = read_superblock(i);
		char array[37], leg[37];
		uuid_format(sb.array_uuid, array);
		uuid_format(sb.leg_uuid, leg);
		EXPECT_EQ(array, get("user.fusemirror.uuid"));
		EXPECT_EQ(leg, get_leg(i, "uuid")) << "leg " << i;
	}
	EXPECT_NE(get_leg(0, "uuid"), get_leg(1, "uuid"));
	EXPECT_EQ(36u, get_leg(1, "uuid").size());
}

/*
 * During a throttled resync --full: the source is said, the in-sync legs being rewritten say
 * "rewrite" (they stay in_sync: they hold every acknowledged write, as md's members do), and
 * done grows towards total; after it, nothing is said to run.  A new leg then copies in full.
 */
TEST_F(Xattr, ResyncSaysWhatItCopiesWhereTo)
{
	name_ = "xm";
	for (unsigned i = 0; i < 3; i++)
		add_leg("leg" + std::to_string(i), 2 * MiB);
	ASSERT_NO_FATAL_FAILURE(format_legs());
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_EQ((ssize_t)(1 * MiB), write(pattern(1 * MiB, 3), 0));
	mirror_set_resync_rate(m_, 0, 512 * KiB); /* 1 MiB: about 2 s */
	ASSERT_EQ(0, ctl("resync --full"));

	EXPECT_EQ("resyncing", get("user.fusemirror.state"));
	EXPECT_EQ("0", get("user.fusemirror.resync.source"));
	EXPECT_EQ("source", get_leg(0, "resync"));
	for (unsigned i = 1; i < 3; i++) {
		EXPECT_EQ("rewrite", get_leg(i, "resync")) << "leg " << i;
		EXPECT_EQ("in_sync", get_leg(i, "state")) << "leg " << i;
	}
	EXPECT_EQ(std::to_string(1 * MiB), get("user.fusemirror.resync.total"));
	std::this_thread::sleep_for(std::chrono::milliseconds(700));
	uint64_t done = std::stoull(get("user.fusemirror.resync.done"));
	EXPECT_GT(done, 0u);
	EXPECT_LT(done, 1 * MiB) << "the rate limit makes it last";
	EXPECT_GT(std::stoull(get("user.fusemirror.resync.rate")), 0u);

	ASSERT_TRUE(wait_resync());
	EXPECT_EQ("clean", get("user.fusemirror.state"));
	EXPECT_EQ("", get("user.fusemirror.resync.source"));
	EXPECT_EQ(std::to_string(1 * MiB), get("user.fusemirror.resync.done"));
	for (unsigned i = 0; i < 3; i++)
		EXPECT_EQ("none", get_leg(i, "resync")) << "leg " << i;

	/* A new leg: a spare, then resyncing, copied in full. */
	ASSERT_EQ(0, ctl("fail 2"));
	ASSERT_EQ(0, ctl("remove 2"));
	std::string path = tmp_ / "new.img";
	dmio_test::create_sparse(path, 2 * MiB);
	ASSERT_EQ(0, ctl("add " + path));
	legs_.push_back({"new", path, false});
	EXPECT_EQ("resyncing", get_leg(2, "state"));
	EXPECT_EQ("full", get_leg(2, "resync"));
	EXPECT_EQ("none", get_leg(1, "resync")) << "an in-sync leg is not rewritten for a new one";
	EXPECT_EQ(36u, get_leg(2, "uuid").size()) << "a new leg gets a UUID";
	ASSERT_TRUE(wait_resync());
	EXPECT_EQ("in_sync", get_leg(2, "state"));
	EXPECT_EQ("none", get_leg(2, "resync"));
}

TEST_F(Xattr, StatusFollowsAnOperatorFail)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(3));
	ASSERT_EQ(0, ctl("fail 2"));
	EXPECT_EQ("degraded", get("user.fusemirror.state"));
	EXPECT_EQ("1", get("user.fusemirror.events"));
	EXPECT_EQ("failed", get_leg(2, "state"));
	EXPECT_EQ("in_sync", get_leg(0, "state"));
	EXPECT_EQ("in_sync", get_leg(1, "state"));
	EXPECT_EQ("0x0", get("user.fusemirror.error_bits")) << "no request failed";
	EXPECT_EQ("3", get("user.fusemirror.legs"));
	EXPECT_EQ("leg2", get_leg(2, "name")) << "a failed leg keeps its name";
}

/* The event log holds the events, numbered, oldest first, one tab-separated line each. */
TEST_F(Xattr, EventLogFollowsTheEvents)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(3));
	std::string before = get("user.fusemirror.event_log");
	ASSERT_EQ(0, ctl("fail 2"));
	std::string log = get("user.fusemirror.event_log");
	ASSERT_GT(log.size(), before.size());
	std::vector<std::string> lines;
	for (size_t at = 0, nl; (nl = log.find('\n', at)) != std::string::npos; at = nl + 1)
		lines.push_back(log.substr(at, nl - at));
	ASSERT_GE(lines.size(), 2u);
	uint64_t seq = 0;
	bool failed = false, degraded = false;
	for (const std::string &line : lines) {
		std::vector<std::string> f;
		for (size_t at = 0;;) {
			size_t tab = line.find('\t', at);
			f.push_back(line.substr(at, tab == std::string::npos ? tab : tab - at));
			if (tab == std::string::npos)
				break;
			at = tab + 1;
		}
		ASSERT_EQ(6u, f.size()) << line;
		EXPECT_EQ(seq + 1, std::stoull(f[0])) << "numbered in order: " << line;
		seq = std::stoull(f[0]);
		EXPECT_GT(std::stoll(f[1]), 1700000000000000LL) << "microseconds since the epoch";
		if (f[3] == "LegFailed") {
			failed = true;
			EXPECT_EQ("warning", f[2]);
			EXPECT_EQ("leg2", f[4]);
		}
		if (f[3] == "DegradedArray") {
			degraded = true;
			EXPECT_EQ("-", f[4]) << "the whole mirror";
		}
	}
	EXPECT_TRUE(failed) << log;
	EXPECT_TRUE(degraded) << log;
}

/* A read error (leg 0's file truncated under the mirror) shows in the counters and bits. */
TEST_F(Xattr, StatusAfterAReadError)
{
	policy_ = READ_POLICY_PRIMARY;
	ASSERT_NO_FATAL_FAILURE(open_legs(2));
	std::vector<uint8_t> data = pattern(1 * MiB, 1);
	ASSERT_EQ((ssize_t)data.size(), write(data, 0));
	ASSERT_NO_FATAL_FAILURE(truncate_file(legs_[0].path, 4096));
	ssize_t r;
	std::vector<uint8_t> got = read(4096, 512 * KiB, &r);
	EXPECT_EQ(4096, r) << "the read is retried on leg 1";
	EXPECT_TRUE(same_bytes(
	    std::vector<uint8_t>(data.begin() + 512 * KiB, data.begin() + 516 * KiB), got));
	EXPECT_EQ("1", get_leg(0, "read_errors"));
	EXPECT_EQ("0", get_leg(0, "write_errors"));
	EXPECT_EQ("failed", get_leg(0, "state"));
	EXPECT_EQ("0", get_leg(1, "read_errors"));
	EXPECT_EQ("in_sync", get_leg(1, "state"));
	EXPECT_EQ("0x1", get("user.fusemirror.error_bits"));
	EXPECT_EQ("degraded", get("user.fusemirror.state"));
	EXPECT_EQ("1", get("user.fusemirror.events"));
}

/* A write error (leg 1 on a full tmpfs). */
TEST_F(Xattr, StatusAfterAWriteError)
{
	std::string full = tmp_ / "full";
	DMIO_REQUIRE_TMPFS(new_mount(), full, "1M");
	name_ = "xm";
	add_leg("leg0", 4 * MiB);
	add_leg("leg1", 4 * MiB, full);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_NO_FATAL_FAILURE(fill_filesystem(full));
	std::vector<uint8_t> data = pattern(64 * KiB, 2);
	ASSERT_EQ((ssize_t)data.size(), write(data, 0));
	EXPECT_EQ("0", get_leg(1, "read_errors"));
	EXPECT_EQ("1", get_leg(1, "write_errors"));
	EXPECT_EQ("failed", get_leg(1, "state"));
	EXPECT_EQ("0", get_leg(0, "write_errors"));
	EXPECT_EQ("0x2", get("user.fusemirror.error_bits"));
	EXPECT_EQ("degraded", get("user.fusemirror.state"));
	EXPECT_EQ("1", get("user.fusemirror.events"));
}

TEST_F(Xattr, NamesWithoutAValue)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(2));
	for (const char *name : {
		 "user.fusemirror.leg.2.name",			  /* out of range */
		 "user.fusemirror.leg.99.state",		  /* out of range */
		 "user.fusemirror.leg.4294967296.name",		  /* 2^32: no truncation to 0 */
		 "user.fusemirror.leg.18446744073709551616.name", /* overflows */
		 "user.fusemirror.leg.01.name",			  /* not canonical */
		 "user.fusemirror.leg.00.name",
		 "user.fusemirror.leg.-1.name",
		 "user.fusemirror.leg.+1.name",
		 "user.fusemirror.leg. 1.name",
		 "user.fusemirror.leg.1x.name",
		 "user.fusemirror.leg.1",
		 "user.fusemirror.leg.1.",
		 "user.fusemirror.leg.1.bogus",
		 "user.fusemirror.leg.1.name.x",
		 "user.fusemirror.leg..name",
		 "user.fusemirror.leg.",
		 "user.fusemirror.leg",
		 "user.fusemirror.",
		 "user.fusemirror",
		 "user.fusemirror.State",
		 "user.fusemirror.states",
		 "user.fusemirror.state.",
		 "user.fusemirror.bogus",
		 "user.fusemirrorstate",
		 "user.state",
		 "state",
		 "leg.0.name",
		 "",
		 "trusted.fusemirror.ctl",
		 "trusted.fusemirror.state",
		 "security.capability",
		 "system.posix_acl_access",
	     }) {
		EXPECT_EQ("<none>", get(name)) << "'" << name << "'";
	}
	EXPECT_EQ("leg1", get("user.fusemirror.leg.1.name")) << "the canonical form works";
	EXPECT_EQ("leg0", get("user.fusemirror.leg.0.name"));
}

/* listxattr lists exactly what getxattr answers, for 1, 2 and 3 legs. */
TEST_F(Xattr, ListIsExactlyWhatGetAnswers)
{
	for (unsigned n = 1; n <= 3; n++) {
		SCOPED_TRACE(std::to_string(n) + " legs");
		close_mirror();
		legs_.clear();
		ASSERT_NO_FATAL_FAILURE(open_legs(n));
		if (n == 3) {
			ASSERT_EQ(0, ctl("fail 1")); /* failed legs are listed too */
		}

		std::vector<std::string> names = list();
		EXPECT_EQ(G_N_ELEMENTS(kMirrorKeys) + G_N_ELEMENTS(kLegFields) * n, names.size());
		std::set<std::string> listed(names.begin(), names.end());
		EXPECT_EQ(names.size(), listed.size()) << "duplicate names";
		for (const std::string &name : names) {
			EXPECT_EQ(0u,
				  name.compare(0, strlen(XATTR_STATUS_PREFIX), XATTR_STATUS_PREFIX))
			    << name;
			EXPECT_NE("<none>", get(name)) << "listed but not answered: " << name;
		}

		/* Every name of the families the attributes come from: answered iff listed. */
		std::vector<std::string> candidates;
		for (const char *k : kMirrorKeys)
			candidates.push_back(std::string(XATTR_STATUS_PREFIX) + k);
		for (unsigned i = 0; i <= n + 1; i++)
			for (const char *f : kLegFields)
				candidates.push_back(std::string(XATTR_STATUS_PREFIX) + "leg." +
						     std::to_string(i) + "." + f);
		for (const std::string &name : candidates)
			EXPECT_EQ(listed.count(name) == 1, get(name) != "<none>") << name;
		for (const std::string &name : candidates) {
			if (name.find(".leg.") == std::string::npos ||
			    std::stoul(name.substr(name.find(".leg.") + 5)) < n) {
				EXPECT_EQ(1u, listed.count(name)) << "not listed: " << name;
			}
		}
	}
}

TEST_F(Xattr, CtlFailFailsTheLeg)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(2));
	EXPECT_EQ(0, ctl("fail 1"));
	EXPECT_EQ(LEG_FAILED, state_of(1));
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_EQ(MIRROR_DEGRADED, mirror_state(m_));
	EXPECT_EQ(1u, count_events("LegFailed", 1)) << dump_events();
	EXPECT_EQ(-EALREADY, ctl("fail 1"));
	EXPECT_EQ(-EBUSY, ctl("fail 0")) << "the last in-sync leg";
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
}

TEST_F(Xattr, CtlAcceptsTrailingNewlineAndBlanks)
{
	for (const char *command : {"fail 1\n", "fail  1", " fail 1", "fail\t1", "fail 1 \n"}) {
		SCOPED_TRACE(std::string("'") + command + "'");
		close_mirror();
		legs_.clear();
		ASSERT_NO_FATAL_FAILURE(open_legs(2));
		EXPECT_EQ(0, ctl(command));
		EXPECT_EQ(LEG_FAILED, state_of(1));
	}
}

/* The value is size bytes, not a C string: what follows it is not read. */
TEST_F(Xattr, CtlValueIsNotNulTerminated)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(3));
	const char value[] = "fail 12345";
	EXPECT_EQ(0, xattr_set(m_, kCaller, XATTR_CTL, value, 6, true)); /* "fail 1" */
	EXPECT_EQ(LEG_FAILED, state_of(1));
	EXPECT_EQ(LEG_IN_SYNC, state_of(2));
}

TEST_F(Xattr, CtlBadCommandsAreEINVAL)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(2));
	for (const char *command : {
		 "fail 9",
		 "fail 2",
		 "bogus",
		 "",
		 "\n",
		 "fail",
		 "fail ",
		 "fail 1 2",
		 "fail -1",
		 "fail +1",
		 "fail 0x1",
		 "fail 1x",
		 "fail one",
		 "FAIL 1",
		 "fails 1",
		 "fail 99999999999999999999999",
		 "fail 4294967296",
		 "fail 18446744073709551617",
	     }) {
		EXPECT_EQ(-EINVAL, ctl(command)) << "'" << command << "'";
	}
	std::string huge = "fail 1" + std::string(8192, ' ');
	EXPECT_EQ(-EINVAL, ctl(huge)) << "an 8 KiB value";
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));
	EXPECT_EQ(0u, mirror_events(m_));
}

TEST_F(Xattr, CtlOnASingleLegIsEBUSY)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(1));
	EXPECT_EQ(-EBUSY, ctl("fail 0"));
	EXPECT_EQ("clean", get("user.fusemirror.state"));
}

TEST_F(Xattr, CtlNeedsRoot)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(2));
	EXPECT_EQ(-EPERM, ctl("fail 1", false));
	EXPECT_EQ(-EPERM, ctl("bogus", false));
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));
}

TEST_F(Xattr, StatusAttributesAreReadOnly)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(2));
	for (const char *name : {"user.fusemirror.state", "user.fusemirror.leg.1.state",
				 "user.fusemirror.events", "user.fusemirror.bogus"}) {
		EXPECT_EQ(-EPERM, set(name, "failed")) << name;
		EXPECT_EQ(-EPERM, set(name, "failed", false)) << name << " (not root)";
	}
	EXPECT_EQ("clean", get("user.fusemirror.state"));
	EXPECT_EQ("in_sync", get_leg(1, "state"));
}

TEST_F(Xattr, OtherNamesAreNotSupported)
{
	ASSERT_NO_FATAL_FAILURE(open_legs(2));
	for (const char *name : {"user.other", "trusted.fusemirror.ctl2", "trusted.fusemirror",
				 "security.capability", "user.fusemirror", "", "fail 1"}) {
		EXPECT_EQ(-ENOTSUP, set(name, "fail 1")) << "'" << name << "'";
	}
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));
}

} // namespace
