/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Assembly's decision (src/mirror/assemble.c) over superblocks built by hand: which leg is
 * authoritative, which legs are stale and how each is resynced (bitmap, or in full from where),
 * which are missing, whether the array was shut down cleanly - and every refusal, each with its
 * error code and a message that names the leg (no superblock, corrupt, foreign, duplicate,
 * truncated, split brain, a --force-source that names no usable leg, nothing present, nothing
 * complete).  No I/O: assemble_decide() is a pure function.
 */
#include <gtest/gtest.h>

#include "mirror/assemble.h"
#include "mirror/superblock.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace
{

/* Substring checks that print the whole message when they fail (no gmock in GTEST_LIBS). */
::testing::AssertionResult contains(const char *hay_expr, const char *needle_expr,
				    const std::string &hay, const std::string &needle)
{
	if (hay.find(needle) != std::string::npos)
		return ::testing::AssertionSuccess();
	return ::testing::AssertionFailure() << hay_expr << " does not contain " << needle_expr
					     << " (\"" << needle << "\"): \"" << hay << "\"";
}

::testing::AssertionResult lacks(const char *hay_expr, const char *needle_expr,
				 const std::string &hay, const std::string &needle)
{
	if (hay.find(needle) == std::string::npos)
		return ::testing::AssertionSuccess();
	return ::testing::AssertionFailure() << hay_expr << " contains " << needle_expr << " (\""
					     << needle << "\"): \"" << hay << "\"";
}

#define EXPECT_CONTAINS(hay, needle) EXPECT_PRED_FORMAT2(contains, hay, needle)
#define EXPECT_LACKS(hay, needle)    EXPECT_PRED_FORMAT2(lacks, hay, needle)

constexpr uint64_t KiB = 1024, MiB = 1024 * KiB;
constexpr uint64_t kDataSize = 64 * MiB;
constexpr uint64_t kRegion = 512 * KiB;

/*
 * N legs of one array as a clean shutdown leaves them: one array UUID, distinct leg UUIDs, every
 * leg's roles table listing every leg in sync, equal events, big enough devices.  The legs are
 * named "leg0", "leg1", ... at "/dev/fm-test-0", ...; the helpers change one thing at a time.
 */
class Legs
{
      public:
	explicit Legs(unsigned int n, uint64_t events = 10, bool clean = true)
	    : names_(n), paths_(n), in_(n)
	{
		uint8_t array_uuid[16];

		uuid_generate_random_v4(array_uuid);
		for (unsigned int i = 0; i < n; i++) {
			names_[i] = "leg" + std::to_string(i);
			paths_[i] = "/dev/fm-test-" + std::to_string(i);
			struct assemble_input &l = in_[i];
			l = {};
			l.name = names_[i].c_str();
			l.path = paths_[i].c_str();
			l.present = true;
			l.sb_error = SB_ERROR_NONE;
			l.sb_why = nullptr;
			struct superblock &sb = l.sb;
			sb.version = SB_VERSION;
			memcpy(sb.array_uuid, array_uuid, 16);
			uuid_generate_random_v4(sb.leg_uuid);
			sb.leg_index = i;
			sb.num_legs = n;
			sb.data_offset = SB_DATA_OFFSET;
			sb.data_size = kDataSize;
			sb.region_size = kRegion;
			sb.events = events;
			sb.events_cleared = 1;
			sb.flags = clean ? SB_FLAG_CLEAN : 0;
			sb.recovery_offset = SB_RECOVERY_DONE;
			sb.bitmap_offset = SB_BITMAP_OFFSET;
			sb.bitmap_bytes = (kDataSize / kRegion + 7) / 8;
			sb.ctime = 1700000000;
			sb.utime = 1700000000;
			strcpy(sb.name, "md-test");
			l.dev_bytes = sb.data_offset + sb.data_size;
		}
		/* Every leg's table lists every leg, in sync. */
		for (unsigned int i = 0; i < n; i++)
			for (unsigned int j = 0; j < n; j++) {
				memcpy(in_[i].sb.roles[j].uuid, in_[j].sb.leg_uuid, 16);
				in_[i].sb.roles[j].role = SB_ROLE_IN_SYNC;
			}
	}

	struct assemble_input &operator[](unsigned int i)
	{
		return in_[i];
	}
	struct superblock &sb(unsigned int i)
	{
		return in_[i].sb;
	}
	unsigned int size() const
	{
		return (unsigned int)in_.size();
	}
	const std::string &name(unsigned int i) const
	{
		return names_[i];
	}
	const std::string &path(unsigned int i) const
	{
		return paths_[i];
	}

	/* What leg `whose` records about leg `about`. */
	void set_role(unsigned int whose, unsigned int about, enum sb_role role)
	{
		in_[whose].sb.roles[about].role = role;
	}
	/* The same, in the table of every leg but `about` itself (what the survivors wrote). */
	void set_role_seen_by_others(unsigned int about, enum sb_role role)
	{
		for (unsigned int i = 0; i < size(); i++)
			if (i != about)
				set_role(i, about, role);
	}
	void set_events(unsigned int i, uint64_t events)
	{
		in_[i].sb.events = events;
	}
	/* events_cleared in every leg's superblock. */
	void set_events_cleared(uint64_t events_cleared)
	{
		for (auto &l : in_)
			l.sb.events_cleared = events_cleared;
	}

	/*
	 * The config lists the legs in another order: input i becomes the leg that was at
	 * order[i] (its name, path and superblock go with it).
	 */
	void reorder(const std::vector<unsigned int> &order)
	{
		std::vector<struct assemble_input> in;
		std::vector<std::string> names, paths;

		for (unsigned int k : order) {
			in.push_back(in_[k]);
			names.push_back(names_[k]);
			paths.push_back(paths_[k]);
		}
		in_ = in;
		names_ = names;
		paths_ = paths;
		relink();
	}
	/* The config leaves leg i out (its group deleted). */
	void drop(unsigned int i)
	{
		in_.erase(in_.begin() + i);
		names_.erase(names_.begin() + i);
		paths_.erase(paths_.begin() + i);
		relink();
	}
	/* Rename leg i in the config (its group renamed), or move it to another path. */
	void rename(unsigned int i, const std::string &name)
	{
		names_[i] = name;
		relink();
	}
	void move(unsigned int i, const std::string &path)
	{
		paths_[i] = path;
		relink();
	}
	/* Every superblock records slot j's name and path as leg j's now. */
	void record_names()
	{
		for (auto &l : in_)
			for (unsigned int j = 0; j < size(); j++) {
				unsigned int slot = in_[j].sb.leg_index;
				strcpy(l.sb.roles[slot].name, names_[j].c_str());
				strcpy(l.sb.roles[slot].path, paths_[j].c_str());
			}
	}

	/* Decide; on failure the error is kept in error() and the result is FALSE. */
	bool decide(int force_source = -1)
	{
		g_clear_error(&error_);
		memset(&out_, 0xa5, sizeof(out_)); /* assemble_decide must fill every field */
		return assemble_decide(in_.data(), size(), force_source, &out_, &error_) != FALSE;
	}
	const struct assemble_result &out() const
	{
		return out_;
	}
	const GError *error() const
	{
		return error_;
	}
	std::string message() const
	{
		return error_ != nullptr ? error_->message : "";
	}

	~Legs()
	{
		g_clear_error(&error_);
	}
	Legs(const Legs &) = delete;
	Legs &operator=(const Legs &) = delete;

      private:
	void relink()
	{
		for (unsigned int i = 0; i < size(); i++) {
			in_[i].name = names_[i].c_str();
			in_[i].path = paths_[i].c_str();
		}
	}

	std::vector<std::string> names_, paths_;
	std::vector<struct assemble_input> in_;
	struct assemble_result out_ = {};
	GError *error_ = nullptr;
};

/* Expect a successful decision; print the error otherwise. */
#define EXPECT_DECIDES(legs, ...)                                                                  \
	do {                                                                                       \
		bool ok_ = (legs).decide(__VA_ARGS__);                                             \
		ASSERT_TRUE(ok_) << (legs).message();                                              \
		EXPECT_EQ((legs).error(), nullptr);                                                \
	} while (0)

/* Expect a refusal with this code; the message is then checked by the caller. */
#define EXPECT_REFUSES(legs, want, ...)                                                            \
	do {                                                                                       \
		bool ok_ = (legs).decide(__VA_ARGS__);                                             \
		ASSERT_FALSE(ok_) << "assembled although it should refuse with " #want;            \
		ASSERT_NE((legs).error(), nullptr);                                                \
		EXPECT_TRUE(g_error_matches((legs).error(), ASSEMBLE_ERROR, (want)))               \
		    << "code " << (legs).error()->code << ": " << (legs).message();                \
	} while (0)

std::string uuid_str(const uint8_t uuid[16])
{
	char out[37];

	uuid_format(uuid, out);
	return out;
}

void expect_leg(const struct assemble_result &out, unsigned int i, enum assemble_role role,
		enum assemble_resync resync, uint64_t recovery_offset = 0)
{
	SCOPED_TRACE("leg " + std::to_string(i));
	EXPECT_EQ(out.legs[i].role, role);
	EXPECT_EQ(out.legs[i].resync, resync);
	if (resync == RESYNC_FULL) {
		EXPECT_EQ(out.legs[i].recovery_offset, recovery_offset);
	}
}

/* The result's array superblock is leg i's. */
void expect_array_is(Legs &legs, unsigned int i)
{
	const struct superblock &a = legs.out().array, &sb = legs.sb(i);

	EXPECT_EQ(legs.out().authority, i);
	EXPECT_EQ(memcmp(a.array_uuid, sb.array_uuid, 16), 0);
	EXPECT_EQ(memcmp(a.leg_uuid, sb.leg_uuid, 16), 0);
	EXPECT_EQ(a.leg_index, sb.leg_index);
	EXPECT_EQ(a.events, sb.events);
	EXPECT_EQ(a.events_cleared, sb.events_cleared);
	EXPECT_EQ(a.flags, sb.flags);
	EXPECT_EQ(a.data_offset, sb.data_offset);
	EXPECT_EQ(a.data_size, sb.data_size);
	EXPECT_EQ(a.region_size, sb.region_size);
	EXPECT_EQ(a.num_legs, sb.num_legs);
	EXPECT_STREQ(a.name, sb.name);
	for (unsigned int j = 0; j < sb.num_legs; j++) {
		EXPECT_EQ(memcmp(a.roles[j].uuid, sb.roles[j].uuid, 16), 0) << "slot " << j;
		EXPECT_EQ(a.roles[j].role, sb.roles[j].role) << "slot " << j;
	}
}

/* The message names leg i by its name and its path. */
void expect_names_leg(Legs &legs, unsigned int i)
{
	EXPECT_CONTAINS(legs.message(), "'" + legs.name(i) + "'");
	EXPECT_CONTAINS(legs.message(), legs.path(i));
}

/* ---- Healthy arrays ------------------------------------------------------------------------- */

TEST(AssembleHealthy, AllEqualAndCleanAreAllInSync)
{
	for (unsigned int n : {1u, 2u, 3u, 8u}) {
		SCOPED_TRACE(std::to_string(n) + " legs");
		Legs legs(n);

		EXPECT_DECIDES(legs);
		EXPECT_FALSE(legs.out().unclean);
		EXPECT_EQ(legs.out().missing, 0u);
		for (unsigned int i = 0; i < n; i++)
			expect_leg(legs.out(), i, ASSEMBLE_IN_SYNC, RESYNC_NONE);
		/* Equal events: any leg may speak for the array; the first does. */
		expect_array_is(legs, 0);
	}
}

TEST(AssembleHealthy, DirtyFlagMeansUnclean)
{
	Legs legs(3, 10, /*clean=*/false);

	EXPECT_DECIDES(legs);
	EXPECT_TRUE(legs.out().unclean);
	EXPECT_EQ(legs.out().missing, 0u);
	for (unsigned int i = 0; i < 3; i++)
		expect_leg(legs.out(), i, ASSEMBLE_IN_SYNC, RESYNC_NONE);
}

TEST(AssembleHealthy, CleanlinessIsTheAuthoritysFlag)
{
	/* The authority (highest events) went down dirty; an older leg had been clean. */
	Legs dirty(2);
	dirty.set_events(1, 11);
	dirty.sb(1).flags = 0;
	EXPECT_DECIDES(dirty);
	EXPECT_EQ(dirty.out().authority, 1u);
	EXPECT_TRUE(dirty.out().unclean);

	/* The authority went down clean; the stale leg's dirty flag is history. */
	Legs clean(2);
	clean.set_events(1, 11);
	clean.sb(0).flags = 0;
	EXPECT_DECIDES(clean);
	EXPECT_EQ(clean.out().authority, 1u);
	EXPECT_FALSE(clean.out().unclean);
}

TEST(AssembleHealthy, DeviceExactlyAsBigAsTheDataAreaIsEnough)
{
	Legs legs(2);
	legs[1].dev_bytes = legs.sb(1).data_offset + legs.sb(1).data_size;
	legs[0].dev_bytes = legs.sb(0).data_offset + legs.sb(0).data_size + 1234567;

	EXPECT_DECIDES(legs);
	expect_leg(legs.out(), 0, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_IN_SYNC, RESYNC_NONE);
}

/* ---- Authority and stale legs --------------------------------------------------------------- */

TEST(AssembleStale, AuthorityIsTheHighestEventsNotTheFirst)
{
	Legs legs(3);
	legs.set_events(0, 7);
	legs.set_events(1, 9);
	legs.set_events(2, 8);
	legs.set_role_seen_by_others(0, SB_ROLE_FAILED);
	legs.set_role(2, 0, SB_ROLE_FAILED); /* already done, but explicit */
	legs.set_role(1, 2, SB_ROLE_FAILED); /* one behind, and the newest says it failed */

	EXPECT_DECIDES(legs);
	expect_array_is(legs, 1);
	expect_leg(legs.out(), 1, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	/* events_cleared is 1: both older legs are covered by the bitmap. */
	expect_leg(legs.out(), 0, ASSEMBLE_STALE, RESYNC_BITMAP);
	expect_leg(legs.out(), 2, ASSEMBLE_STALE, RESYNC_BITMAP);
	EXPECT_EQ(legs.out().missing, 0u);
}

TEST(AssembleStale, AuthorityIsTheHighestEventsWhereverItIs)
{
	for (unsigned int newest = 0; newest < 4; newest++) {
		SCOPED_TRACE("newest leg " + std::to_string(newest));
		Legs legs(4);

		legs.set_events(newest, 12);
		EXPECT_DECIDES(legs);
		expect_array_is(legs, newest);
		for (unsigned int i = 0; i < 4; i++) {
			if (i == newest)
				expect_leg(legs.out(), i, ASSEMBLE_IN_SYNC, RESYNC_NONE);
			else
				expect_leg(legs.out(), i, ASSEMBLE_STALE, RESYNC_BITMAP);
		}
	}
}

TEST(AssembleStale, FailedLegWithinTheBitmapIsResyncedFromTheBitmap)
{
	/* Leg 1 failed at events 10; the survivor bumped to 11 and kept every bit since. */
	Legs legs(2);
	legs.set_events_cleared(10);
	legs.set_events(0, 11);
	legs.set_role(0, 1, SB_ROLE_FAILED);

	EXPECT_DECIDES(legs);
	expect_array_is(legs, 0);
	expect_leg(legs.out(), 0, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_STALE, RESYNC_BITMAP);
	EXPECT_EQ(legs.out().missing, 0u);
}

TEST(AssembleStale, EventsEqualToEventsClearedStillUseTheBitmap)
{
	Legs legs(2);
	legs.set_events(0, 20);
	legs.sb(0).events_cleared = 15;
	legs.set_events(1, 15);

	EXPECT_DECIDES(legs);
	expect_leg(legs.out(), 1, ASSEMBLE_STALE, RESYNC_BITMAP);
}

TEST(AssembleStale, OlderThanTheLastClearIsResyncedInFull)
{
	/* Bits were cleared at events 15: a leg left at 14 may miss regions no bit records. */
	Legs legs(2);
	legs.set_events(0, 20);
	legs.sb(0).events_cleared = 15;
	legs.set_events(1, 14);
	legs.sb(1).recovery_offset = SB_RECOVERY_DONE;

	EXPECT_DECIDES(legs);
	expect_array_is(legs, 0);
	expect_leg(legs.out(), 0, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_STALE, RESYNC_FULL, 0);
}

TEST(AssembleStale, TheAuthoritysEventsClearedDecidesNotTheStaleLegs)
{
	/* The stale leg's own superblock predates the clear; only the authority knows of it. */
	Legs legs(2);
	legs.set_events(0, 20);
	legs.sb(0).events_cleared = 15;
	legs.set_events(1, 14);
	legs.sb(1).events_cleared = 1;

	EXPECT_DECIDES(legs);
	expect_leg(legs.out(), 1, ASSEMBLE_STALE, RESYNC_FULL, 0);
}

TEST(AssembleStale, BehindAndUnfinishedRebuildIsResyncedInFullFromZero)
{
	/* Leg 1 was being rebuilt (recovery offset 8 MiB) and then fell behind too. */
	Legs legs(2);
	legs.set_events(0, 12);
	legs.set_events(1, 11);
	legs.sb(1).recovery_offset = 8 * MiB;

	EXPECT_DECIDES(legs);
	expect_leg(legs.out(), 0, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_STALE, RESYNC_FULL, 0);
}

TEST(AssembleStale, ResyncingLegGoesOnFromItsRecoveryOffset)
{
	/* A rebuild the daemon's stop (or a crash) cut short at 8 MiB: equal events. */
	Legs legs(3);
	legs.set_role_seen_by_others(2, SB_ROLE_RESYNCING);
	legs.set_role(2, 2, SB_ROLE_RESYNCING);
	legs.sb(2).recovery_offset = 8 * MiB;

	EXPECT_DECIDES(legs);
	EXPECT_NE(legs.out().authority, 2u);
	expect_leg(legs.out(), 0, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 2, ASSEMBLE_STALE, RESYNC_FULL, 8 * MiB);
	EXPECT_EQ(legs.out().missing, 0u);
}

TEST(AssembleStale, ResyncingLegThatNeverStartedGoesFromZero)
{
	/* A new array's initial sync, not begun: recovery offset 0. */
	Legs legs(2);
	legs.set_role(0, 1, SB_ROLE_RESYNCING);
	legs.set_role(1, 1, SB_ROLE_RESYNCING);
	legs.sb(1).recovery_offset = 0;

	EXPECT_DECIDES(legs);
	expect_leg(legs.out(), 0, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_STALE, RESYNC_FULL, 0);
}

TEST(AssembleStale, TheAuthoritysTableDecidesTheRole)
{
	/* Leg 1 believes itself in sync, but the (equal-events) table of leg 0 says resyncing. */
	Legs legs(2);
	legs.set_role(0, 1, SB_ROLE_RESYNCING);
	legs.sb(1).recovery_offset = 4 * MiB;

	EXPECT_DECIDES(legs);
	EXPECT_EQ(legs.out().authority, 0u);
	expect_leg(legs.out(), 0, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_STALE, RESYNC_FULL, 4 * MiB);
}

TEST(AssembleMembership, LegTheArrayDoesNotListIsRefused)
{
	/* The authority (more events) no longer lists leg 1's UUID: it was replaced since. */
	Legs legs(2);
	uuid_generate_random_v4(legs.sb(0).roles[1].uuid);
	legs.set_events(0, 11);

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_NOT_MEMBER);
	expect_names_leg(legs, 1);
	EXPECT_CONTAINS(legs.message(),
			"does not list its leg uuid " + uuid_str(legs.sb(1).leg_uuid));
	EXPECT_CONTAINS(legs.message(), "removed or replaced since");
}

TEST(AssembleMembership, RemovedLegIsRefused)
{
	/* fusemirrorctl remove empties the slot: the leg, put back in the config, is no member. */
	Legs legs(3);
	for (unsigned int i : {0u, 1u}) {
		memset(&legs.sb(i).roles[2], 0, sizeof(legs.sb(i).roles[2]));
		legs.set_events(i, 12);
	}

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_NOT_MEMBER);
	expect_names_leg(legs, 2);
}

TEST(AssembleStale, SpareIsResyncedInFull)
{
	Legs legs(2);
	legs.set_role(0, 1, SB_ROLE_SPARE);
	legs.set_role(1, 1, SB_ROLE_SPARE);

	EXPECT_DECIDES(legs);
	expect_leg(legs.out(), 0, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_STALE, RESYNC_FULL, 0);
}

TEST(AssembleStale, StaleLegsAreNeverInSync)
{
	/* Whatever the stale leg's own table says about itself, two commits behind is stale. */
	Legs legs(3);
	legs.set_events(0, 30);
	legs.set_events(1, 30);
	legs.set_events(2, 28);

	EXPECT_DECIDES(legs);
	EXPECT_LT(legs.out().authority, 2u);
	expect_leg(legs.out(), 0, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 2, ASSEMBLE_STALE, RESYNC_BITMAP);
}

/*
 * A power cut between the legs' superblock writes of one commit leaves some legs one event
 * behind the others.  When the newest superblock still counts such a leg in sync, it is (md's
 * and mdadm's margin of one event): had it missed a write, the commit acknowledging that write
 * would have recorded it failed.  A power cut must never leave a mirror that refuses to start.
 */
TEST(AssembleStale, OneCommitBehindAndCountedInSyncIsInSync)
{
	Legs legs(3);
	legs.set_events(0, 31); /* the first leg the commit reached: a re-added leg 2 */
	legs.set_role(0, 2, SB_ROLE_RESYNCING);
	legs.set_events(1, 30);
	legs.set_events(2, 29);
	legs.set_role(1, 2, SB_ROLE_FAILED);
	legs.set_role(2, 2, SB_ROLE_IN_SYNC);

	EXPECT_DECIDES(legs);
	expect_array_is(legs, 0);
	expect_leg(legs.out(), 0, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	/* Two behind, and resyncing in the newest table. */
	expect_leg(legs.out(), 2, ASSEMBLE_STALE, RESYNC_BITMAP);
}

/* One behind is stale when the newest table says it failed, or it was not whole itself. */
TEST(AssembleStale, OneCommitBehindButFailedOrIncompleteIsStale)
{
	Legs failed(2);
	failed.set_events(0, 31);
	failed.set_events(1, 30);
	failed.set_role(0, 1, SB_ROLE_FAILED);
	EXPECT_DECIDES(failed);
	expect_leg(failed.out(), 1, ASSEMBLE_STALE, RESYNC_BITMAP);

	Legs rebuilding(2);
	rebuilding.set_events(0, 31);
	rebuilding.set_events(1, 30);
	rebuilding.set_role(1, 1, SB_ROLE_RESYNCING);
	rebuilding.sb(1).recovery_offset = kDataSize / 2;
	EXPECT_DECIDES(rebuilding);
	expect_leg(rebuilding.out(), 1, ASSEMBLE_STALE, RESYNC_FULL);
}

/* ---- Missing legs --------------------------------------------------------------------------- */

TEST(AssembleMissing, AbsentLegIsMissingAndCounted)
{
	Legs legs(3);
	legs[1].present = false;
	/* Whatever an absent leg's (unread) superblock holds must not matter. */
	memset(&legs.sb(1), 0xff, sizeof(legs.sb(1)));
	legs[1].sb_error = SB_ERROR_CRC;
	legs[1].dev_bytes = 0;

	EXPECT_DECIDES(legs);
	EXPECT_EQ(legs.out().missing, 1u);
	expect_leg(legs.out(), 0, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_MISSING, RESYNC_NONE);
	expect_leg(legs.out(), 2, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	EXPECT_NE(legs.out().authority, 1u);
}

TEST(AssembleMissing, MissingFirstLegAndAStaleOne)
{
	Legs legs(4);
	legs[0].present = false;
	legs[3].present = false;
	legs.set_events(2, 8);

	EXPECT_DECIDES(legs);
	EXPECT_EQ(legs.out().missing, 2u);
	expect_array_is(legs, 1);
	expect_leg(legs.out(), 0, ASSEMBLE_MISSING, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 2, ASSEMBLE_STALE, RESYNC_BITMAP);
	expect_leg(legs.out(), 3, ASSEMBLE_MISSING, RESYNC_NONE);
}

TEST(AssembleMissing, SingleSurvivorAssemblesDegraded)
{
	Legs legs(2);
	legs[0].present = false;

	EXPECT_DECIDES(legs);
	EXPECT_EQ(legs.out().missing, 1u);
	expect_array_is(legs, 1);
	expect_leg(legs.out(), 1, ASSEMBLE_IN_SYNC, RESYNC_NONE);
}

TEST(AssembleMissing, NoLegPresentRefuses)
{
	Legs legs(3);
	for (unsigned int i = 0; i < 3; i++)
		legs[i].present = false;

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_NO_LEG);
	EXPECT_CONTAINS(legs.message(), "no leg");
}

TEST(AssembleMissing, OnlyAResyncingLegPresentRefuses)
{
	/* Leg 0 (in sync) is gone; leg 1 was being rebuilt and holds half a copy. */
	Legs legs(2);
	legs.set_role(0, 1, SB_ROLE_RESYNCING);
	legs.set_role(1, 1, SB_ROLE_RESYNCING);
	legs.sb(1).recovery_offset = 16 * MiB;
	legs[0].present = false;

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_NO_LEG);
	EXPECT_CONTAINS(legs.message(), "no leg holds a complete copy");
	EXPECT_CONTAINS(legs.message(), "'" + legs.name(1) + "'");
}

TEST(AssembleMissing, OnlyStaleLegsPresentRefuses)
{
	/* Leg 1 (the one that has every write) is gone; leg 0 is the resyncing one. */
	Legs legs(3);
	legs.set_role_seen_by_others(0, SB_ROLE_RESYNCING);
	legs.set_role(0, 0, SB_ROLE_RESYNCING);
	legs.sb(0).recovery_offset = 1 * MiB;
	legs[1].present = false;
	legs[2].present = false;

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_NO_LEG);
	EXPECT_CONTAINS(legs.message(), "no leg holds a complete copy");
}

/* ---- Refusals: what is on the legs ---------------------------------------------------------- */

TEST(AssembleRefuses, LegWithoutSuperblock)
{
	for (unsigned int bad = 0; bad < 3; bad++) {
		SCOPED_TRACE("bad leg " + std::to_string(bad));
		Legs legs(3);
		legs[bad].sb_error = SB_ERROR_MAGIC;
		memset(&legs.sb(bad), 0, sizeof(legs.sb(bad)));

		EXPECT_REFUSES(legs, ASSEMBLE_ERROR_NO_SUPERBLOCK);
		expect_names_leg(legs, bad);
		EXPECT_CONTAINS(legs.message(), "no fusemirror superblock");
		EXPECT_CONTAINS(legs.message(), "fusemirrorctl create");
	}
}

TEST(AssembleRefuses, CorruptSuperblockIncludesTheReason)
{
	const struct {
		enum sb_error error;
		const char *why;
	} cases[] = {
	    {SB_ERROR_CRC, "checksum mismatch: stored 0x12345678, computed 0x9abcdef0"},
	    {SB_ERROR_VERSION, "format version 7, this build knows 1"},
	    {SB_ERROR_FIELD, "region size 1000 is not a power of two"},
	};

	for (const auto &c : cases) {
		SCOPED_TRACE(c.why);
		Legs legs(3);
		legs[2].sb_error = c.error;
		legs[2].sb_why = c.why;

		EXPECT_REFUSES(legs, ASSEMBLE_ERROR_CORRUPT);
		expect_names_leg(legs, 2);
		EXPECT_CONTAINS(legs.message(), c.why);
		EXPECT_LACKS(legs.message(), "'" + legs.name(0) + "'");
	}
}

TEST(AssembleRefuses, CorruptSuperblockWithoutReasonStillNamesTheLeg)
{
	Legs legs(2);
	legs[0].sb_error = SB_ERROR_CRC;
	legs[0].sb_why = nullptr;

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_CORRUPT);
	expect_names_leg(legs, 0);
	EXPECT_LACKS(legs.message(), "(null)");
}

TEST(AssembleRefuses, CorruptMissingLegIsIgnored)
{
	/* A leg that is not there cannot be judged by whatever its buffer holds. */
	Legs legs(2);
	legs[1].present = false;
	legs[1].sb_error = SB_ERROR_MAGIC;

	EXPECT_DECIDES(legs);
	EXPECT_EQ(legs.out().missing, 1u);
}

TEST(AssembleRefuses, ForeignLegAmongThreeTheMajorityWins)
{
	for (unsigned int odd = 0; odd < 3; odd++) {
		SCOPED_TRACE("odd leg " + std::to_string(odd));
		Legs legs(3);
		uint8_t majority[16];

		memcpy(majority, legs.sb(0).array_uuid, 16);
		uuid_generate_random_v4(legs.sb(odd).array_uuid);
		strcpy(legs.sb(odd).name, "other-array");

		EXPECT_REFUSES(legs, ASSEMBLE_ERROR_FOREIGN);
		expect_names_leg(legs, odd);
		for (unsigned int i = 0; i < 3; i++) {
			if (i != odd) {
				EXPECT_LACKS(legs.message(), "'" + legs.name(i) + "'");
			}
		}
		/* Both UUIDs, so that the operator can tell which array the leg is from. */
		EXPECT_CONTAINS(legs.message(), uuid_str(legs.sb(odd).array_uuid));
		EXPECT_CONTAINS(legs.message(), uuid_str(majority));
		EXPECT_CONTAINS(legs.message(), "other-array");
	}
}

TEST(AssembleRefuses, ForeignLegOfTwoNamesTheSecond)
{
	/* A tie: the first configured leg's array is taken as this one. */
	Legs legs(2);
	uuid_generate_random_v4(legs.sb(1).array_uuid);

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_FOREIGN);
	expect_names_leg(legs, 1);
	EXPECT_LACKS(legs.message(), "'" + legs.name(0) + "'");
}

TEST(AssembleRefuses, ForeignLegMajorityCountsOnlyPresentLegs)
{
	/* Two legs of array X absent; the present two agree: no refusal. */
	Legs legs(4);
	uint8_t other[16];

	uuid_generate_random_v4(other);
	memcpy(legs.sb(0).array_uuid, other, 16);
	memcpy(legs.sb(1).array_uuid, other, 16);
	legs[0].present = false;
	legs[1].present = false;

	EXPECT_DECIDES(legs);
	EXPECT_EQ(legs.out().missing, 2u);
	expect_leg(legs.out(), 2, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 3, ASSEMBLE_IN_SYNC, RESYNC_NONE);
}

TEST(AssembleRefuses, DuplicateLegUuidNamesBothLegs)
{
	/* Leg 2 is a dd copy of leg 0: same leg UUID (and everything else). */
	Legs legs(3);
	legs.sb(2) = legs.sb(0);

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_DUPLICATE);
	expect_names_leg(legs, 0);
	expect_names_leg(legs, 2);
	EXPECT_LACKS(legs.message(), "'" + legs.name(1) + "'");
}

TEST(AssembleRefuses, DuplicateLegUuidWithDifferentEvents)
{
	/* A copy taken earlier: its events are lower, but it is still the same leg twice. */
	Legs legs(2);
	legs.sb(1) = legs.sb(0);
	legs.sb(1).events = legs.sb(0).events - 3;

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_DUPLICATE);
	expect_names_leg(legs, 0);
	expect_names_leg(legs, 1);
}

TEST(AssembleRefuses, TruncatedLeg)
{
	Legs legs(3);
	const uint64_t end = legs.sb(1).data_offset + legs.sb(1).data_size;
	legs[1].dev_bytes = end - 1;

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_TOO_SMALL);
	expect_names_leg(legs, 1);
	EXPECT_CONTAINS(legs.message(), std::to_string(end - 1));
	EXPECT_CONTAINS(legs.message(), std::to_string(end));
	EXPECT_LACKS(legs.message(), "'" + legs.name(0) + "'");
}

TEST(AssembleRefuses, TruncatedToNothingBeyondTheSuperblock)
{
	Legs legs(2);
	legs[0].dev_bytes = SB_SIZE;

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_TOO_SMALL);
	expect_names_leg(legs, 0);
}

TEST(AssembleRefuses, TruncatedStaleLegStillRefuses)
{
	/* Even a leg that would be rebuilt anyway must hold the data area. */
	Legs legs(2);
	legs.set_events(0, 50);
	legs[1].dev_bytes = legs.sb(1).data_offset + legs.sb(1).data_size / 2;

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_TOO_SMALL);
	expect_names_leg(legs, 1);
}

/* ---- Split brain and --force-source --------------------------------------------------------- */

/* Two legs that each failed the other and went on alone: A at 15, B at 14. */
void split_brain(Legs &legs, unsigned int a, unsigned int b)
{
	legs.set_events(a, 15);
	legs.set_events(b, 14);
	legs.set_role(a, b, SB_ROLE_FAILED);
	legs.set_role(b, a, SB_ROLE_FAILED);
}

TEST(AssembleSplitBrain, RefusesNamingBothLegs)
{
	Legs legs(2);
	split_brain(legs, 0, 1);

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_SPLIT_BRAIN);
	EXPECT_CONTAINS(legs.message(), "split brain");
	EXPECT_CONTAINS(legs.message(), "'" + legs.name(0) + "'");
	EXPECT_CONTAINS(legs.message(), "'" + legs.name(1) + "'");
	EXPECT_CONTAINS(legs.message(), "--force-source");
	/* The events of each, so that the operator can tell which went further. */
	EXPECT_CONTAINS(legs.message(), "15");
	EXPECT_CONTAINS(legs.message(), "14");
}

TEST(AssembleSplitBrain, EqualEventsIsStillSplitBrain)
{
	Legs legs(2);
	split_brain(legs, 0, 1);
	legs.set_events(1, 15);

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_SPLIT_BRAIN);
}

TEST(AssembleSplitBrain, AmongThreeLegs)
{
	Legs legs(3);
	split_brain(legs, 2, 1);
	legs.set_events(0, 15);

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_SPLIT_BRAIN);
	EXPECT_CONTAINS(legs.message(), "'" + legs.name(1) + "'");
	EXPECT_CONTAINS(legs.message(), "'" + legs.name(2) + "'");
	EXPECT_LACKS(legs.message(), "'" + legs.name(0) + "'");
}

TEST(AssembleSplitBrain, OneSidedFailureIsNotSplitBrain)
{
	/* A failed B and went on; B never saw A fail: B is merely stale. */
	Legs legs(2);
	legs.set_events(0, 15);
	legs.set_events(1, 14);
	legs.set_role(0, 1, SB_ROLE_FAILED);

	EXPECT_DECIDES(legs);
	expect_leg(legs.out(), 0, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_STALE, RESYNC_BITMAP);
}

TEST(AssembleSplitBrain, WithOneSideMissingThereIsNothingToSettle)
{
	Legs legs(2);
	split_brain(legs, 0, 1);
	legs[0].present = false;

	EXPECT_DECIDES(legs);
	EXPECT_EQ(legs.out().missing, 1u);
	expect_array_is(legs, 1);
	expect_leg(legs.out(), 1, ASSEMBLE_IN_SYNC, RESYNC_NONE);
}

TEST(AssembleSplitBrain, ForceSourceTheOlderSide)
{
	/* The operator keeps B (fewer events): B is authoritative, A is rebuilt in full. */
	Legs legs(2);
	split_brain(legs, 0, 1);

	EXPECT_DECIDES(legs, 1);
	expect_array_is(legs, 1);
	expect_leg(legs.out(), 1, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 0, ASSEMBLE_STALE, RESYNC_FULL, 0);
	EXPECT_EQ(legs.out().missing, 0u);
}

TEST(AssembleSplitBrain, ForceSourceTheNewerSide)
{
	Legs legs(2);
	split_brain(legs, 0, 1);
	/* Even within the bitmap's reach, the other side's own writes are unknown: full copy. */
	legs.set_events_cleared(1);

	EXPECT_DECIDES(legs, 0);
	expect_array_is(legs, 0);
	expect_leg(legs.out(), 0, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_STALE, RESYNC_FULL, 0);
}

TEST(AssembleSplitBrain, ForceSourceRebuildsEveryOtherLegFromZero)
{
	Legs legs(3);
	split_brain(legs, 0, 1);
	legs.set_events(2, 15);
	legs.sb(2).recovery_offset = SB_RECOVERY_DONE;

	EXPECT_DECIDES(legs, 1);
	expect_array_is(legs, 1);
	expect_leg(legs.out(), 0, ASSEMBLE_STALE, RESYNC_FULL, 0);
	expect_leg(legs.out(), 1, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 2, ASSEMBLE_STALE, RESYNC_FULL, 0);
}

TEST(AssembleSplitBrain, ForceSourceKeepsMissingLegsMissing)
{
	Legs legs(3);
	split_brain(legs, 0, 1);
	legs[2].present = false;

	EXPECT_DECIDES(legs, 0);
	EXPECT_EQ(legs.out().missing, 1u);
	expect_leg(legs.out(), 0, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_STALE, RESYNC_FULL, 0);
	expect_leg(legs.out(), 2, ASSEMBLE_MISSING, RESYNC_NONE);
}

TEST(AssembleSplitBrain, ForceSourceMissingLegRefuses)
{
	Legs legs(3);
	split_brain(legs, 0, 1);
	legs[2].present = false;

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_FORCE_SOURCE, 2);
}

TEST(AssembleSplitBrain, ForceSourceOutOfRangeRefuses)
{
	Legs legs(2);
	split_brain(legs, 0, 1);

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_FORCE_SOURCE, 2);
	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_FORCE_SOURCE, 1000);
}

TEST(AssembleSplitBrain, ForceSourceStillRefusesBadLegs)
{
	/* --force-source settles a split brain, not a foreign or truncated leg. */
	Legs foreign(3);
	split_brain(foreign, 0, 1);
	uuid_generate_random_v4(foreign.sb(2).array_uuid);
	EXPECT_REFUSES(foreign, ASSEMBLE_ERROR_FOREIGN, 0);
	expect_names_leg(foreign, 2);

	Legs truncated(2);
	split_brain(truncated, 0, 1);
	truncated[1].dev_bytes = 4096;
	EXPECT_REFUSES(truncated, ASSEMBLE_ERROR_TOO_SMALL, 0);
	expect_names_leg(truncated, 1);
}

TEST(AssembleSplitBrain, ForceSourceWithoutSplitBrainRebuildsTheOthers)
{
	Legs legs(2);

	EXPECT_DECIDES(legs, 1);
	expect_array_is(legs, 1);
	expect_leg(legs.out(), 1, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 0, ASSEMBLE_STALE, RESYNC_FULL, 0);
}

} // namespace

/* ---- Identity: a leg takes the slot its superblock names ------------------------------------ */

namespace
{

/* Input i (a configured leg) took slot `slot`, and slot `slot` holds input i. */
void expect_slot(const struct assemble_result &out, unsigned int i, int slot)
{
	SCOPED_TRACE("input " + std::to_string(i));
	EXPECT_EQ(out.legs[i].slot, slot);
	if (slot >= 0) {
		EXPECT_EQ(out.slot_leg[slot], (int)i);
	}
}

} // namespace

TEST(AssembleIdentity, ConfigOrderNeverRenumbers)
{
	/* The config lists c, a, b: each still takes its own slot. */
	Legs legs(3);
	legs.reorder({2, 0, 1});

	EXPECT_DECIDES(legs);
	expect_slot(legs.out(), 0, 2);
	expect_slot(legs.out(), 1, 0);
	expect_slot(legs.out(), 2, 1);
	EXPECT_EQ(legs.out().missing, 0u);
	for (unsigned int i = 0; i < 3; i++)
		expect_leg(legs.out(), i, ASSEMBLE_IN_SYNC, RESYNC_NONE);
}

TEST(AssembleIdentity, LeftOutMiddleLegIsMissingInItsOwnSlot)
{
	/* The [leg b] group deleted: c stays in slot 2, slot 1 is missing, nobody has slot 1. */
	Legs legs(3);
	legs.drop(1);

	EXPECT_DECIDES(legs);
	EXPECT_EQ(legs.out().array.num_legs, 3u);
	expect_slot(legs.out(), 0, 0);
	expect_slot(legs.out(), 1, 2);
	EXPECT_EQ(legs.out().slot_leg[1], -1);
	EXPECT_EQ(legs.out().missing, 1u);
}

TEST(AssembleIdentity, LeftOutLegBackInAnotherOrderIsStaleInItsSlot)
{
	/* b was left out while a and c went on (events 10 -> 14, b failed in their tables). */
	Legs legs(3);
	legs.set_role_seen_by_others(1, SB_ROLE_FAILED);
	legs.set_events(0, 14);
	legs.set_events(2, 14);
	legs.set_events_cleared(1);
	legs.reorder({2, 1, 0});

	EXPECT_DECIDES(legs);
	expect_slot(legs.out(), 0, 2);
	expect_slot(legs.out(), 1, 1);
	expect_slot(legs.out(), 2, 0);
	expect_leg(legs.out(), 0, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	expect_leg(legs.out(), 1, ASSEMBLE_STALE, RESYNC_BITMAP);
	expect_leg(legs.out(), 2, ASSEMBLE_IN_SYNC, RESYNC_NONE);
	EXPECT_EQ(legs.out().missing, 0u);
}

TEST(AssembleIdentity, AbsentLegFindsItsSlotByRecordedName)
{
	Legs legs(3);
	legs.record_names();
	legs.reorder({1, 2, 0});
	legs[0].present = false; /* leg1 (slot 1) is configured but its device is gone */

	EXPECT_DECIDES(legs);
	expect_slot(legs.out(), 0, 1);
	expect_slot(legs.out(), 1, 2);
	expect_slot(legs.out(), 2, 0);
	expect_leg(legs.out(), 0, ASSEMBLE_MISSING, RESYNC_NONE);
	EXPECT_EQ(legs.out().missing, 1u);
}

TEST(AssembleIdentity, AbsentLegFindsItsSlotByPathWhenRenamed)
{
	Legs legs(3);
	legs.record_names();
	legs.rename(1, "renamed");
	legs[1].present = false;

	EXPECT_DECIDES(legs);
	expect_slot(legs.out(), 1, 1);

	/* Neither its name nor its path recorded anywhere: no slot, and slot 1 is still missing. */
	legs.move(1, "/dev/elsewhere");
	EXPECT_DECIDES(legs);
	EXPECT_EQ(legs.out().legs[1].slot, -1);
	EXPECT_EQ(legs.out().slot_leg[1], -1);
	EXPECT_EQ(legs.out().missing, 1u);
}

TEST(AssembleIdentity, AbsentLegNeverTakesAFilledSlot)
{
	/* The absent leg's config name is the one slot 0's present leg had: it gets no slot. */
	Legs legs(2);
	legs.record_names();
	legs.rename(0, "newname");
	legs.rename(1, "leg0");
	legs[1].present = false;

	EXPECT_DECIDES(legs);
	expect_slot(legs.out(), 0, 0);
	/* Not by name (slot 0 is filled); by its path it is slot 1 still. */
	expect_slot(legs.out(), 1, 1);
}

TEST(AssembleIdentity, RenamedPresentLegKeepsItsSlot)
{
	Legs legs(2);
	legs.record_names();
	legs.rename(0, "leg1");
	legs.rename(1, "leg0");

	EXPECT_DECIDES(legs);
	expect_slot(legs.out(), 0, 0);
	expect_slot(legs.out(), 1, 1);
}

TEST(AssembleIdentity, OwnIndexMustAgreeWithTheAuthority)
{
	/* Leg 1's superblock says slot 1, the authority lists its UUID in slot 2. */
	Legs legs(3);
	for (unsigned int i = 0; i < 3; i++) {
		std::swap(legs.sb(i).roles[1], legs.sb(i).roles[2]);
		legs.sb(i).roles[1].role = SB_ROLE_IN_SYNC;
	}
	legs.sb(2).leg_index = 1; /* leg 2's own index now matches its (swapped) slot */
	legs.set_events(0, 11);

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_SLOT);
	EXPECT_CONTAINS(legs.message(), "says it is slot 1 (leg_index)");
	EXPECT_CONTAINS(legs.message(), "lists it in slot 2");
}

/* ---- Geometry: one layout for every leg ------------------------------------------------------ */

struct GeometryCase {
	const char *field;
	void (*edit)(struct superblock &sb);
	const char *values; /* "<authority's> and <the other's>" */
};

void PrintTo(const GeometryCase &c, std::ostream *os)
{
	*os << c.field;
}

class AssembleGeometry : public ::testing::TestWithParam<GeometryCase>
{
};

TEST_P(AssembleGeometry, DisagreementIsRefusedNamingTheFieldAndBothValues)
{
	const GeometryCase &c = GetParam();
	/* Leg 1 has the other layout and more events: it must not become the authority. */
	Legs legs(3);
	c.edit(legs.sb(1));
	legs.set_events(1, 11);
	legs[1].dev_bytes = 256 * MiB; /* room for any layout: only the geometry differs */

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_GEOMETRY);
	EXPECT_CONTAINS(legs.message(), std::string(c.field) + " " + c.values);
	EXPECT_CONTAINS(legs.message(), "'" + legs.name(1) + "' (" + legs.path(1));
	EXPECT_CONTAINS(legs.message(), "'" + legs.name(0) + "' (" + legs.path(0));

	/* The same from a stale leg. */
	Legs stale(2);
	c.edit(stale.sb(1));
	stale[1].dev_bytes = 256 * MiB;
	stale.set_events(1, 9);
	EXPECT_REFUSES(stale, ASSEMBLE_ERROR_GEOMETRY);
	EXPECT_CONTAINS(stale.message(), c.field);
}

INSTANTIATE_TEST_SUITE_P(
    Fields, AssembleGeometry,
    ::testing::Values(
	GeometryCase{"data_offset", [](struct superblock &sb) { sb.data_offset = 2 * MiB; },
		     "2097152 and 1048576"},
	GeometryCase{"data_size", [](struct superblock &sb) { sb.data_size = 32 * MiB; },
		     "33554432 and 67108864"},
	GeometryCase{"region_size",
		     [](struct superblock &sb) {
			     sb.region_size = 1 * MiB;
			     sb.bitmap_bytes = (kDataSize / MiB + 7) / 8;
		     },
		     "1048576 and 524288"},
	GeometryCase{"bitmap_offset", [](struct superblock &sb) { sb.bitmap_offset = 8192; },
		     "8192 and 4096"},
	GeometryCase{"bitmap_bytes", [](struct superblock &sb) { sb.bitmap_bytes = 1; },
		     "1 and 16"}),
    [](const ::testing::TestParamInfo<GeometryCase> &info) {
	    return std::string(info.param.field);
    });

TEST(AssembleGeometrySlots, EqualEventsMustAgreeOnTheNumberOfSlots)
{
	Legs legs(2);
	legs.sb(1).num_legs = 3;
	legs.sb(1).roles[2].role = SB_ROLE_SPARE;
	uuid_generate_random_v4(legs.sb(1).roles[2].uuid);

	EXPECT_REFUSES(legs, ASSEMBLE_ERROR_GEOMETRY);
	EXPECT_CONTAINS(legs.message(), "num_legs (slots) at equal events");
}

TEST(AssembleGeometrySlots, LegThatMissedAHotAddHasFewerSlots)
{
	/* Legs 0 and 1 took a hot add into slot 2 (events 12); leg 1 was failed before it. */
	Legs legs(3);
	legs.set_events(0, 12);
	legs.set_events(2, 12);
	legs.set_role_seen_by_others(1, SB_ROLE_FAILED);
	legs.sb(1).num_legs = 2;
	memset(&legs.sb(1).roles[2], 0, sizeof(legs.sb(1).roles[2]));
	legs.set_events(1, 9);

	EXPECT_DECIDES(legs);
	expect_leg(legs.out(), 1, ASSEMBLE_STALE, RESYNC_BITMAP);
	EXPECT_EQ(legs.out().array.num_legs, 3u);
}

TEST(AssembleGeometrySlots, LegThatMissedARemoveHasMoreSlots)
{
	/* Slot 2 was removed (num_legs 3 -> 2) while leg 1 was out. */
	Legs legs(3);
	legs.drop(2);
	legs.sb(0).num_legs = 2;
	memset(&legs.sb(0).roles[2], 0, sizeof(legs.sb(0).roles[2]));
	legs.sb(0).roles[1].role = SB_ROLE_FAILED;
	legs.set_events(0, 13);

	EXPECT_DECIDES(legs);
	expect_leg(legs.out(), 1, ASSEMBLE_STALE, RESYNC_BITMAP);
	EXPECT_EQ(legs.out().array.num_legs, 2u);
}

/* ---- The events counter never wraps ------------------------------------------------------------
 */

TEST(AssembleEvents, TooCloseToTheLimitIsRefused)
{
	for (uint64_t events : {UINT64_MAX, UINT64_MAX - 1, (uint64_t)SB_EVENTS_LIMIT + 1}) {
		Legs legs(2, events);
		EXPECT_REFUSES(legs, ASSEMBLE_ERROR_EVENTS);
		EXPECT_CONTAINS(legs.message(), "events " + std::to_string(events));
		EXPECT_CONTAINS(legs.message(), "2^64-1");
		expect_names_leg(legs, 0);
	}
	/* Only one leg near the limit (it would be the authority): refused, named. */
	Legs one(2);
	one.set_events(1, UINT64_MAX - 1);
	EXPECT_REFUSES(one, ASSEMBLE_ERROR_EVENTS);
	expect_names_leg(one, 1);
}

TEST(AssembleEvents, AtTheLimitStillStarts)
{
	Legs legs(2, SB_EVENTS_LIMIT);
	EXPECT_DECIDES(legs);
}
