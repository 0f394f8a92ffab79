/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Replace (src/mirror/replace.c) on real leg files through mirror_open, metadata = internal:
 *   - a replace while a writer thread writes: the in-sync count, sampled all along, never drops
 *     below the start; the old leg is removed only once the new one is in sync; afterwards the
 *     new leg's data area equals the survivor's and what the writer wrote;
 *   - the new leg failed mid-way (by the operator, or by a full file system under its resync):
 *     ReplaceAborted, the old leg stays in sync, nothing is removed;
 *   - the old leg failed mid-way: aborted, nothing removed;
 *   - mirror_close stops a replace at once (its thread wakes from its wait);
 *   - the refusals: no such leg, a leg not in sync, PATH already a leg, PATH too small, a second
 *     replace while one runs; each with its errno and message, the mirror unchanged.
 */
#include "mirror-util.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <random>

using namespace mirror_test;

namespace
{

constexpr uint64_t kData = 4 * MiB;		  /* the mirror's data area */
constexpr uint64_t kLeg = kData + SB_DATA_OFFSET; /* a leg's size */

/* The done callback's one call. */
struct Ended {
	std::mutex lock;
	std::condition_variable cond;
	int calls = 0;
	bool replaced = false;

	static void done(void *opaque, struct mirror *, bool replaced)
	{
		auto *e = static_cast<Ended *>(opaque);
		std::lock_guard<std::mutex> g(e->lock);
		e->calls++;
		e->replaced = replaced;
		e->cond.notify_all();
	}
	bool wait(std::chrono::milliseconds timeout = std::chrono::seconds(30))
	{
		std::unique_lock<std::mutex> g(lock);
		return cond.wait_for(g, timeout, [this] { return calls > 0; });
	}
};

class Replace : public MirrorTest
{
      protected:
	/* Legs a and b, formatted and opened, holding a pattern; c, the new leg, not a leg yet. */
	void open_two(uint64_t new_size = kLeg, const std::string &new_dir = "")
	{
		name_ = "rp";
		add_leg("a", kLeg);
		add_leg("b", kLeg);
		ASSERT_NO_FATAL_FAILURE(format_legs());
		ASSERT_NO_FATAL_FAILURE(open_ok());
		data_ = pattern(kData, 5);
		ASSERT_EQ((ssize_t)kData, write(data_, 0));
		new_path_ = (new_dir.empty() ? tmp_.path() : new_dir) + "/c.img";
		dmio_test::create_sparse(new_path_, new_size);
	}
	unsigned in_sync()
	{
		unsigned n = 0;
		for (unsigned i = 0; i < mirror_num_legs(m_); i++)
			n += state_of(i) == LEG_IN_SYNC;
		return n;
	}
	replace_status running()
	{
		replace_status rs;
		mirror_replace_status(m_, &rs);
		return rs;
	}
	/* Start replacing leg with new_path_; the new leg's index. */
	int start(unsigned leg, Ended *ended)
	{
		g_autoptr(GError) error = nullptr;
		int by = mirror_replace_leg(m_, leg, new_path_.c_str(), Ended::done, ended, &error);
		EXPECT_GE(by, 0) << (error ? error->message : "");
		return by;
	}
	/* The refusal of replacing leg by path: its errno, and *message its text. */
	int refused(unsigned leg, const std::string &path, std::string *message)
	{
		g_autoptr(GError) error = nullptr;
		Ended never;
		int r = mirror_replace_leg(m_, leg, path.c_str(), Ended::done, &never, &error);
		*message = error != nullptr ? error->message : "";
		EXPECT_EQ(0, never.calls) << "done was called for a refused replace";
		return r;
	}
	std::vector<uint8_t> data_;
	std::string new_path_;
};

TEST_F(Replace, UnderWritesNeverFewerInSyncLegsAndTheNewLegEqualsTheOthers)
{
	ASSERT_NO_FATAL_FAILURE(open_two());
	/* About a second of copying, during which the writer and the sampler run. */
	mirror_set_resync_rate(m_, 4 * MiB, 4 * MiB);
	std::atomic<bool> stop{false};
	std::atomic<unsigned> min_in_sync{in_sync()}, samples{0}, writes{0};
	std::atomic<int> write_errors{0};
	const unsigned start_in_sync = in_sync();
	ASSERT_EQ(2u, start_in_sync);

	std::thread writer([&] {
		std::mt19937 rng(7);
		std::vector<uint8_t> block(16 * KiB);
		while (!stop) {
			uint64_t off = (rng() % (kData / block.size())) * block.size();
			for (auto &byte : block)
				byte = (uint8_t)rng();
			if (mirror_write_wait(m_, block.data(), block.size(), off, 0) !=
			    (ssize_t)block.size())
				write_errors++;
			std::copy(block.begin(), block.end(), data_.begin() + (ptrdiff_t)off);
			writes++;
		}
	});
	std::thread sampler([&] {
		while (!stop) {
			unsigned n = in_sync();
			unsigned prev = min_in_sync;
			while (n < prev && !min_in_sync.compare_exchange_weak(prev, n))
				;
			samples++;
			std::this_thread::sleep_for(std::chrono::microseconds(200));
		}
	});

	Ended ended;
	int by = start(1, &ended);
	ASSERT_GE(by, 0);
	EXPECT_EQ(2, by);
	/* Returned at once: the copy is still to do, and the status shows the replace. */
	replace_status rs = running();
	EXPECT_EQ(1, rs.leg);
	EXPECT_EQ(2, rs.by);
	EXPECT_EQ(LEG_IN_SYNC, state_of(1)) << "the old leg serves on";
	EXPECT_NE(LEG_IN_SYNC, state_of(2));
	bool finished = ended.wait();
	stop = true;
	writer.join();
	sampler.join();
	ASSERT_TRUE(finished) << "the replace did not end\n" << dump_events();

	EXPECT_EQ(1, ended.calls);
	EXPECT_TRUE(ended.replaced) << dump_events();
	EXPECT_GE(min_in_sync.load(), start_in_sync) << "in-sync legs dropped during the replace";
	EXPECT_GT(samples.load(), 100u);
	EXPECT_GT(writes.load(), 10u) << "the writer did not write during the replace";
	EXPECT_EQ(0, write_errors.load());
	/* The new leg took the old one's slot, as md's replacement does: no hole is left. */
	EXPECT_EQ(2u, mirror_num_legs(m_));
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_EQ(new_path_, leg(1).path);
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));
	rs = running();
	EXPECT_EQ(-1, rs.leg);
	EXPECT_EQ(-1, rs.by);
	EXPECT_EQ(1u, count_events("LegReplaced", 1)) << dump_events();
	EXPECT_EQ(0u, count_events("ReplaceAborted", 1)) << dump_events();
	EXPECT_EQ(1u, LogCapture::get().count("LegReplaced", {"leg 1 (b, " + legs_[1].path +
							      ") of mirror rp replaced by leg "
							      "1 (c.img, " +
							      new_path_ + ")"}))
	    << LogCapture::get().dump();
	/* The superblocks say so: a reassembly finds the new leg in slot 1, in sync. */
	close_mirror();
	ASSERT_TRUE(read_at(new_path_, SB_DATA_OFFSET, kData) == data_);
	legs_[1].path = new_path_;
	legs_[1].name = "c.img";
	ASSERT_NO_FATAL_FAILURE(open_ok());
	EXPECT_EQ(2u, mirror_num_legs(m_));
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
	EXPECT_EQ(new_path_, leg(1).path);
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));
	EXPECT_EQ(0u, count_events("StaleLegRejected", 1)) << dump_events();
	close_mirror();
	EXPECT_TRUE(read_at(new_path_, SB_DATA_OFFSET, kData) == data_)
	    << "the new leg's data area differs from what was written";
	EXPECT_TRUE(read_at(legs_[0].path, SB_DATA_OFFSET, kData) == data_)
	    << "leg a's data area differs from what was written";
}

TEST_F(Replace, TheNewLegFailedMidwayKeepsTheOldLeg)
{
	ASSERT_NO_FATAL_FAILURE(open_two());
	mirror_set_resync_rate(m_, 1 * MiB, 1 * MiB); /* about 4 s */
	Ended ended;
	int by = start(1, &ended);
	ASSERT_GE(by, 0);
	std::this_thread::sleep_for(std::chrono::milliseconds(300));
	ASSERT_EQ(0, mirror_fail_leg(m_, (unsigned)by, nullptr));
	ASSERT_TRUE(ended.wait(std::chrono::seconds(5))) << dump_events();
	EXPECT_FALSE(ended.replaced);
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_EQ(LEG_IN_SYNC, state_of(1)) << "the old leg went although its replace failed";
	EXPECT_EQ(LEG_FAILED, state_of((unsigned)by));
	EXPECT_EQ(-1, running().leg);
	EXPECT_EQ(1u, count_events("ReplaceAborted", 1)) << dump_events();
	EXPECT_EQ(0u, count_events("LegReplaced", by)) << dump_events();
	EXPECT_EQ(1u, LogCapture::get().count("ReplaceAborted", {"the new leg 2 (" + new_path_ +
								 ") is failed; leg 1 is kept"}))
	    << LogCapture::get().dump();
}

TEST_F(Replace, ANewLegThatFillsUpKeepsTheOldLeg)
{
	std::string dir = tmp_.path() + "/small";
	DMIO_REQUIRE_TMPFS(new_mount(), dir, "3M");
	/* A sparse file big enough on paper, on a file system that fills up half-way. */
	ASSERT_NO_FATAL_FAILURE(open_two(kLeg, dir));
	Ended ended;
	int by = start(0, &ended);
	ASSERT_GE(by, 0);
	ASSERT_TRUE(ended.wait()) << dump_events();
	EXPECT_FALSE(ended.replaced);
	EXPECT_EQ(LEG_IN_SYNC, state_of(0)) << "the old leg went although its replace failed";
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
	EXPECT_EQ(LEG_FAILED, state_of((unsigned)by));
	EXPECT_EQ(1u, count_events("ReplaceAborted", 0)) << dump_events();
	EXPECT_EQ(2u, in_sync());
	close_mirror();
	EXPECT_TRUE(read_at(legs_[0].path, SB_DATA_OFFSET, kData) == data_);
}

TEST_F(Replace, TheOldLegFailedMidwayAborts)
{
	ASSERT_NO_FATAL_FAILURE(open_two());
	mirror_set_resync_rate(m_, 1 * MiB, 1 * MiB);
	Ended ended;
	int by = start(1, &ended);
	ASSERT_GE(by, 0);
	std::this_thread::sleep_for(std::chrono::milliseconds(200));
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, nullptr));
	ASSERT_TRUE(ended.wait(std::chrono::seconds(5))) << dump_events();
	EXPECT_FALSE(ended.replaced);
	EXPECT_EQ(LEG_FAILED, state_of(1)) << "failed by the operator, not removed";
	EXPECT_EQ(1u, LogCapture::get().count("ReplaceAborted", {"leg 1 (b) is failed, no longer "
								 "in sync"}))
	    << LogCapture::get().dump();
}

TEST_F(Replace, CloseStopsTheReplaceAtOnce)
{
	ASSERT_NO_FATAL_FAILURE(open_two());
	mirror_set_resync_rate(m_, 64 * KiB, 64 * KiB); /* a minute */
	Ended ended;
	ASSERT_GE(start(1, &ended), 0);
	std::this_thread::sleep_for(std::chrono::milliseconds(100));
	auto t0 = std::chrono::steady_clock::now();
	close_mirror();
	auto took = std::chrono::steady_clock::now() - t0;
	EXPECT_LT(took, std::chrono::seconds(3)) << "mirror_close waited for the replace";
	EXPECT_EQ(1, ended.calls);
	EXPECT_FALSE(ended.replaced);
	EXPECT_EQ(1u, count_events("ReplaceAborted", 1)) << dump_events();
	EXPECT_EQ(1u, LogCapture::get().count("ReplaceAborted", {"is closing"}));
}

/*
 * Not a replace, but where it was found: a leg added under a slow resync and removed at once
 * (--force) leaves a mirror that reads clean (the stopped resync said resyncing for good).
 */
TEST_F(Replace, ALegRemovedWhileItIsCopiedLeavesTheMirrorClean)
{
	ASSERT_NO_FATAL_FAILURE(open_two());
	mirror_set_resync_rate(m_, 1 * MiB, 1 * MiB);
	g_autoptr(GError) error = nullptr;
	int by = mirror_add_leg(m_, new_path_.c_str(), false, &error);
	ASSERT_GE(by, 0) << (error ? error->message : "");
	EXPECT_EQ(MIRROR_RESYNCING, mirror_state(m_));
	/* remove --force stops the resync that copies it, mid-way. */
	ASSERT_EQ(0, mirror_remove_leg(m_, (unsigned)by, true, &error))
	    << (error ? error->message : "");
	EXPECT_EQ(2u, mirror_num_legs(m_));
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));
}

TEST_F(Replace, Refusals)
{
	ASSERT_NO_FATAL_FAILURE(open_two());
	std::string message;

	EXPECT_EQ(-EINVAL, refused(5, new_path_, &message));
	EXPECT_EQ("mirror rp has no leg 5", message);

	EXPECT_EQ(-EEXIST, refused(0, legs_[1].path, &message));
	EXPECT_EQ(legs_[1].path + " is already leg 1 (b) of mirror rp", message);

	std::string small = tmp_.path() + "/small.img";
	dmio_test::create_sparse(small, kLeg - 4096);
	EXPECT_EQ(-ENOSPC, refused(0, small, &message));
	EXPECT_NE(std::string::npos, message.find("a leg of mirror rp needs at least")) << message;

	std::string missing = tmp_.path() + "/nothing.img";
	EXPECT_EQ(-ENOENT, refused(0, missing, &message));
	EXPECT_NE(std::string::npos, message.find("cannot open " + missing)) << message;

	EXPECT_EQ(2u, mirror_num_legs(m_)) << "a refused replace changed the legs";

	/* One at a time. */
	mirror_set_resync_rate(m_, 256 * KiB, 256 * KiB);
	Ended ended;
	ASSERT_EQ(2, start(1, &ended));
	std::string other = tmp_.path() + "/d.img";
	dmio_test::create_sparse(other, kLeg);
	EXPECT_EQ(-EBUSY, refused(0, other, &message));
	EXPECT_EQ("a replace of leg 1 (b) by leg 2 (" + new_path_ +
		      ") is running on mirror rp: one at a time",
		  message);
	EXPECT_EQ(3u, mirror_num_legs(m_)) << "the refused replace added its leg";
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
	close_mirror();
	EXPECT_EQ(1, ended.calls);

	/* A leg that is not in sync is no leg to replace from. */
	legs_.resize(2);
	ASSERT_NO_FATAL_FAILURE(open_ok());
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, nullptr));
	EXPECT_EQ(-EINVAL, refused(1, other, &message));
	EXPECT_EQ("leg 1 (b) is failed: replace copies from a leg while it serves, so it needs an "
		  "in-sync one (add the new leg and remove this one instead)",
		  message);
}

} // namespace
