/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mirror layer with metadata = internal, without FUSE: the leg-state table and its one
 * door, overlapping writers, the durable order of a leg's failure (recorded before the write
 * that caused it is acknowledged), resync onto a re-added and a new leg while writers run, and
 * control commands racing each other.  These are the paths a race lives in (resync, hot add),
 * here in one process so that ThreadSanitizer (make check-tsan) watches them.
 */
/* mirror/atomics.h names the C11 atomic types for C++. */
#include "mirror-util.h"

extern "C" {
#include "mirror/mirror-internal.h"
}

#include <fcntl.h>
#include <linux/falloc.h>

#include <atomic>
#include <future>
#include <random>

using namespace mirror_test;

namespace
{

constexpr uint64_t kLegSize = 1 * MiB + 4 * MiB; /* metadata + 4 MiB of data */
constexpr uint64_t kData = 4 * MiB;

class MirrorMetadata : public MirrorTest
{
      protected:
	/* n legs leg0.. of kLegSize, formatted, opened. */
	void open_formatted(unsigned n, uint64_t region_size = 64 * KiB)
	{
		for (unsigned i = 0; i < n; i++)
			add_leg("leg" + std::to_string(i), kLegSize);
		ASSERT_NO_FATAL_FAILURE(format_legs(region_size));
		ASSERT_NO_FATAL_FAILURE(open_ok());
		ASSERT_EQ(kData, mirror_size(m_));
	}

	/* Writers: threads writing random patterns to [0, span) until stop, with mixed sizes. */
	struct Writers {
		std::atomic<bool> stop{false};
		std::atomic<uint64_t> writes{0};
		std::atomic<int> errors{0};
		std::vector<std::thread> threads;
		void join()
		{
			stop = true;
			for (auto &t : threads)
				t.join();
		}
	};
	void start_writers(Writers &w, unsigned n, uint64_t span, bool unaligned = true)
	{
		for (unsigned t = 0; t < n; t++) {
			w.threads.emplace_back([this, &w, t, span, unaligned] {
				std::mt19937_64 rng(77 + t);
				std::vector<uint8_t> buf(64 * KiB);
				while (!w.stop) {
					static const uint64_t sizes[] = {512, 4 * KiB, 16 * KiB,
									 64 * KiB};
					uint64_t len = sizes[rng() % 4];
					uint64_t off = (rng() % (span - len + 1)) & ~511ull;
					if (unaligned && rng() % 8 == 0) {
						len = 1 + rng() % 1500; /* read-modify-write */
						off = rng() % (span - len);
					}
					memset(buf.data(), (int)(rng() & 0xff), len);
					if (mirror_write_wait(m_, buf.data(), len, off, 0) !=
					    (ssize_t)len)
						w.errors++;
					w.writes++;
				}
			});
		}
	}
};

/* ---- The table of moves --------------------------------------------------------------------- */

TEST(LegStateTable, AllowedMovesAndNoOthers)
{
	const enum leg_state all[] = {LEG_IN_SYNC,   LEG_FAILED,  LEG_STALE,
				      LEG_RESYNCING, LEG_REMOVED, LEG_SPARE};
	/* from, to, while serving, at assembly */
	struct Move {
		enum leg_state from, to;
		bool serving, assembly;
	};
	const Move allowed[] = {
	    {LEG_IN_SYNC, LEG_FAILED, true, true},   {LEG_FAILED, LEG_STALE, true, true},
	    {LEG_FAILED, LEG_REMOVED, true, true},   {LEG_STALE, LEG_FAILED, true, true},
	    {LEG_STALE, LEG_RESYNCING, true, true},  {LEG_RESYNCING, LEG_IN_SYNC, true, true},
	    {LEG_RESYNCING, LEG_FAILED, true, true}, {LEG_REMOVED, LEG_SPARE, true, true},
	    {LEG_REMOVED, LEG_IN_SYNC, false, true}, {LEG_REMOVED, LEG_FAILED, false, true},
	    {LEG_REMOVED, LEG_STALE, false, true},   {LEG_SPARE, LEG_FAILED, true, true},
	    {LEG_SPARE, LEG_RESYNCING, true, true},  {LEG_SPARE, LEG_REMOVED, true, true},
	};
	for (enum leg_state from : all) {
		for (enum leg_state to : all) {
			SCOPED_TRACE(std::string(leg_state_name(from)) + " -> " +
				     leg_state_name(to));
			bool serving = false, assembly = false;
			for (const Move &mv : allowed)
				if (mv.from == from && mv.to == to) {
					serving = mv.serving;
					assembly = mv.assembly;
				}
			EXPECT_EQ(serving, leg_move_allowed(from, to, false));
			EXPECT_EQ(assembly, leg_move_allowed(from, to, true));
		}
	}
	/* What matters most: nothing but a finished resync makes a leg in sync while serving. */
	for (enum leg_state from : all)
		EXPECT_EQ(from == LEG_RESYNCING, leg_move_allowed(from, LEG_IN_SYNC, false))
		    << leg_state_name(from);
}

TEST_F(MirrorMetadata, TheDoorRefusesAnIllegalMoveAndSaysSo)
{
	ASSERT_NO_FATAL_FAILURE(open_formatted(2));
	struct leg *l1 = &m_->legs[1];
	uint64_t events = mirror_events(m_);

	EXPECT_EQ(-EPERM, leg_set_state(m_, l1, LEG_IN_SYNC, LEG_STALE));
	EXPECT_EQ(1u, LogCapture::get().count_level(G_LOG_LEVEL_CRITICAL))
	    << LogCapture::get().dump();
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
	EXPECT_EQ(-EPERM, leg_set_state(m_, l1, LEG_IN_SYNC, LEG_FAILED))
	    << "a failure must go through leg_fail";
	EXPECT_EQ(-EAGAIN, leg_set_state(m_, l1, LEG_RESYNCING, LEG_IN_SYNC))
	    << "a leg no longer in `from` is not moved";
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));

	/* The legal path of a leg through failure and back. */
	EXPECT_EQ(0, leg_fail(m_, l1, "test", 0));
	EXPECT_EQ(-EALREADY, leg_fail(m_, l1, "test", 0));
	EXPECT_EQ(-EBUSY, leg_fail(m_, &m_->legs[0], "test", 0)) << "the last in-sync leg";
	EXPECT_EQ(0, leg_set_state(m_, l1, LEG_FAILED, LEG_STALE));
	EXPECT_EQ(0, leg_set_state(m_, l1, LEG_STALE, LEG_RESYNCING));
	EXPECT_EQ(0, leg_set_state(m_, l1, LEG_RESYNCING, LEG_IN_SYNC));
	EXPECT_EQ(0, metadata_sync(m_));
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
	EXPECT_GT(mirror_events(m_), events) << "moves bump events";
	LogCapture::get().clear(); /* the expected critical line */
}

/* ---- Overlapping writes ---------------------------------------------------------------------- */

/*
 * Several threads write the same 256 KiB with mixed sizes (and unaligned writes that need a
 * read-modify-write) at once: the legs must end byte-identical.  Without the range lock, two
 * writes to one sector reach the legs in either order.
 */
TEST_F(MirrorMetadata, OverlappingWritersLeaveIdenticalLegs)
{
	ASSERT_NO_FATAL_FAILURE(open_formatted(3));
	for (int round = 0; round < 3; round++) {
		SCOPED_TRACE("round " + std::to_string(round));
		Writers w;
		start_writers(w, 4, 256 * KiB);
		std::this_thread::sleep_for(std::chrono::milliseconds(400));
		w.join();
		EXPECT_EQ(0, w.errors.load());
		EXPECT_GT(w.writes.load(), 100u);
		EXPECT_TRUE(data_areas_equal(0, 1, 256 * KiB));
		EXPECT_TRUE(data_areas_equal(0, 2, 256 * KiB));
	}
}

/* ---- A failure is durable before the write that caused it is acknowledged ------------------- */

TEST_F(MirrorMetadata, WriteIsAcknowledgedOnlyOnceTheFailureIsRecorded)
{
	const std::string dir = tmp_.path() + "/small";
	ASSERT_EQ(0, mkdir(dir.c_str(), 0755));
	DMIO_REQUIRE_TMPFS(new_mount(), dir, "3M");
	add_leg("a", kLegSize);
	add_leg("b", kLegSize, dir); /* sparse: its writes fill the tmpfs */
	ASSERT_NO_FATAL_FAILURE(format_legs(64 * KiB));
	ASSERT_NO_FATAL_FAILURE(open_ok());
	superblock before = read_superblock(0);

	std::vector<uint8_t> data = pattern(1 * MiB, 3);
	bool failed = false;
	for (uint64_t off = 0; off + data.size() <= kData && !failed; off += data.size()) {
		ASSERT_EQ((ssize_t)data.size(), write(data, off)) << "leg a took it";
		if (state_of(1) != LEG_FAILED)
			continue;
		failed = true;
		/* Read at once, before anything else: the ack must have waited for this. */
		superblock sb = read_superblock(0);
		EXPECT_EQ((uint32_t)SB_ROLE_FAILED, sb.roles[1].role)
		    << "leg a's superblock does not say leg b failed when the write that failed it "
		       "returned";
		EXPECT_GT(sb.events, before.events);
	}
	ASSERT_TRUE(failed) << "leg b never filled up";
}

/* ---- Resync and hot add ---------------------------------------------------------------------- */

/* A failed leg re-added catches up from the bitmap while writers run; the legs end identical. */
TEST_F(MirrorMetadata, ReaddedLegCatchesUpWhileWritersRun)
{
	ASSERT_NO_FATAL_FAILURE(open_formatted(2));
	std::vector<uint8_t> data = pattern(kData, 5);
	ASSERT_EQ((ssize_t)kData, write(data, 0));
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, nullptr));
	ASSERT_EQ((ssize_t)(64 * KiB), write(pattern(64 * KiB, 6), 1 * MiB));

	Writers w;
	start_writers(w, 2, kData);
	GError *error = nullptr;
	EXPECT_EQ(1, mirror_add_leg(m_, legs_[1].path.c_str(), false, &error))
	    << (error ? error->message : "");
	g_clear_error(&error);
	ASSERT_TRUE(wait_resync());
	w.join();
	EXPECT_EQ(0, w.errors.load());
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
	EXPECT_TRUE(data_areas_equal(0, 1, kData));
	EXPECT_EQ(1u, count_events("LegAdded", 1)) << dump_events();
	EXPECT_EQ(1u, count_events("ResyncFinished", -1)) << dump_events();
}

/* A new leg (no superblock) goes in as a spare, is copied in full, and ends in sync. */
TEST_F(MirrorMetadata, NewLegIsCopiedInFullWhileWritersRun)
{
	ASSERT_NO_FATAL_FAILURE(open_formatted(2));
	ASSERT_EQ((ssize_t)kData, write(pattern(kData, 8), 0));
	std::string path = tmp_.path() + "/new.img";
	dmio_test::create_sparse(path, kLegSize);

	Writers w;
	start_writers(w, 2, kData);
	GError *error = nullptr;
	int slot = mirror_add_leg(m_, path.c_str(), false, &error);
	ASSERT_EQ(2, slot) << (error ? error->message : "");
	legs_.push_back({"new", path, false});
	ASSERT_TRUE(wait_resync());
	w.join();
	EXPECT_EQ(LEG_IN_SYNC, state_of(2));
	EXPECT_TRUE(data_areas_equal(0, 2, kData));
	EXPECT_TRUE(data_areas_equal(0, 1, kData));
	superblock sb = read_superblock(2);
	EXPECT_EQ((uint32_t)SB_ROLE_IN_SYNC, sb.roles[2].role);
	EXPECT_EQ(SB_RECOVERY_DONE, sb.recovery_offset);
}

/*
 * Control commands at once: two adds of two new legs take two slots, never the same one; a
 * resync request racing them is refused or runs, never joins another's thread.
 */
TEST_F(MirrorMetadata, ControlCommandsRacingEachOtherAreSerialised)
{
	ASSERT_NO_FATAL_FAILURE(open_formatted(2));
	std::string p1 = tmp_.path() + "/n1.img", p2 = tmp_.path() + "/n2.img";
	dmio_test::create_sparse(p1, kLegSize);
	dmio_test::create_sparse(p2, kLegSize);
	std::atomic<int> go{0};
	auto add = [&](const std::string &p) {
		while (go.load() == 0)
			;
		GError *error = nullptr;
		int r = mirror_add_leg(m_, p.c_str(), false, &error);
		g_clear_error(&error);
		return r;
	};
	auto resync = [&] {
		while (go.load() == 0)
			;
		GError *error = nullptr;
		int r = mirror_resync(m_, false, &error);
		g_clear_error(&error);
		return r;
	};
	auto a1 = std::async(std::launch::async, add, p1);
	auto a2 = std::async(std::launch::async, add, p2);
	auto r1 = std::async(std::launch::async, resync);
	go = 1;
	int s1 = a1.get(), s2 = a2.get(), rr = r1.get();
	EXPECT_TRUE((s1 == 2 && s2 == 3) || (s1 == 3 && s2 == 2)) << s1 << " " << s2;
	EXPECT_TRUE(rr == 0 || rr == -EALREADY) << rr;
	ASSERT_TRUE(wait_resync());
	EXPECT_EQ(4u, mirror_num_legs(m_));
	EXPECT_EQ(LEG_IN_SYNC, state_of(2));
	EXPECT_EQ(LEG_IN_SYNC, state_of(3));
}

/* The last error of one caller is never another's. */
TEST_F(MirrorMetadata, LastErrorIsPerCaller)
{
	ASSERT_NO_FATAL_FAILURE(open_formatted(2));
	mirror_set_last_error(m_, 1, "one");
	mirror_set_last_error(m_, 2, "two");
	char *a = mirror_last_error(m_, 1), *b = mirror_last_error(m_, 2),
	     *c = mirror_last_error(m_, 3);
	EXPECT_STREQ("one", a);
	EXPECT_STREQ("two", b);
	EXPECT_STREQ("", c);
	g_free(a);
	g_free(b);
	g_free(c);
	for (uint64_t i = 0; i < MIRROR_LAST_ERRORS + 5; i++)
		mirror_set_last_error(m_, 100 + i, "x");
	a = mirror_last_error(m_, 1);
	EXPECT_STREQ("", a) << "the oldest callers are forgotten";
	g_free(a);
}

/*
 * A bitmap write that fails (leg 1's bitmap blocks punched out of a full tmpfs): the leg is
 * failed, and the IOError line says the leg, the leg offset of the bitmap block, its length
 * and errno; the write that needed the bit still succeeds on leg 0.
 */
TEST_F(MirrorMetadata, BitmapWriteErrorIsLoggedWithLegOffsetAndErrno)
{
	std::string full = tmp_ / "full";
	DMIO_REQUIRE_TMPFS(new_mount(), full, "8M");
	add_leg("leg0", kLegSize);
	add_leg("leg1", kLegSize, full);
	ASSERT_NO_FATAL_FAILURE(format_legs());
	ASSERT_NO_FATAL_FAILURE(open_ok());
	int fd = ::open(legs_[1].path.c_str(), O_RDWR);
	ASSERT_GE(fd, 0);
	EXPECT_EQ(0, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, SB_BITMAP_OFFSET,
			       SB_DATA_OFFSET - SB_BITMAP_OFFSET));
	::close(fd);
	ASSERT_NO_FATAL_FAILURE(fill_filesystem(full));
	LogCapture::get().clear();

	std::vector<uint8_t> data = pattern(64 * KiB, 5);
	ASSERT_EQ((ssize_t)data.size(), write(data, 0));
	EXPECT_EQ(LEG_FAILED, state_of(1));
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_GE(
	    LogCapture::get().count("IOError", {"bitmap write error on leg 1 (leg1, " +
						    legs_[1].path + ") at leg offset 4096 length",
						"No space left on device (errno 28"}),
	    1u)
	    << LogCapture::get().dump();
	EXPECT_GE(LogCapture::get().count("LegFailed", {"cannot write the write-intent bitmap at "
							"leg offset 4096 length"}),
		  1u)
	    << LogCapture::get().dump();
}

/* A full resync on request with writers running: every leg identical at the end. */
TEST_F(MirrorMetadata, FullResyncWhileWritersRun)
{
	ASSERT_NO_FATAL_FAILURE(open_formatted(3));
	ASSERT_EQ((ssize_t)kData, write(pattern(kData, 9), 0));
	Writers w;
	start_writers(w, 3, kData);
	GError *error = nullptr;
	EXPECT_EQ(0, mirror_resync(m_, true, &error)) << (error ? error->message : "");
	g_clear_error(&error);
	ASSERT_TRUE(wait_resync());
	w.join();
	EXPECT_TRUE(data_areas_equal(0, 1, kData));
	EXPECT_TRUE(data_areas_equal(0, 2, kData));
}

/* Remove of a failed leg while writers run, then the mirror closes clean. */
TEST_F(MirrorMetadata, RemoveWhileWritersRunThenCleanStop)
{
	ASSERT_NO_FATAL_FAILURE(open_formatted(3));
	Writers w;
	start_writers(w, 2, kData);
	ASSERT_EQ(0, mirror_fail_leg(m_, 2, nullptr));
	GError *error = nullptr;
	EXPECT_EQ(0, mirror_remove_leg(m_, 2, false, &error)) << (error ? error->message : "");
	g_clear_error(&error);
	w.join();
	EXPECT_EQ(2u, mirror_num_legs(m_)) << "the removed last slot goes";
	close_mirror();
	superblock sb = read_superblock(0);
	EXPECT_TRUE(sb.flags & SB_FLAG_CLEAN);
	EXPECT_EQ(2u, sb.num_legs);
	EXPECT_TRUE(data_areas_equal(0, 1, kData));
}

} // namespace
