/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Write-behind (src/mirror/io.c; fusemirror.conf(5) write-behind): a local leg file and a slow
 * write-mostly leg, a real nbdkit on a unix socket behind its delay filter, opened through its
 * NBD URI.  With write-behind on, a write is answered in the local leg's time while the slow leg
 * catches up; off, it waits for the slow leg.  At most N writes are behind; a later overlapping
 * write waits for the slow leg (it ends with the last one); a read that only the slow leg can
 * serve waits for the behind write; the region stays dirty until the slow leg has it; a failed
 * behind write fails the slow leg; close drains the writes behind.  Skipped only when nbdkit (or
 * libdmio's NBD kind) is missing.
 */
#include "mirror-util.h"

#include "dmio/dev-fault.h"

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdlib>

extern "C" long cleaner_clean(struct mirror *m, bool all);

using namespace mirror_test;
using dmio_test::have_nbdkit;
using dmio_test::NbdKit;
using Clock = std::chrono::steady_clock;

namespace
{

constexpr uint64_t kSize = 8 * MiB;
constexpr size_t kLen = 64 * KiB;

const bool kTestDevicesAllowed = setenv("FUSEMIRROR_TEST_DEVICES", "1", 1) == 0;

double ms_since(Clock::time_point t)
{
	return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}


class WriteBehind : public MirrorTest
{
      protected:
	void SetUp() override
	{
		MirrorTest::SetUp();
		ASSERT_TRUE(kTestDevicesAllowed);
		if (!have_nbdkit())
			GTEST_SKIP() << "nbdkit is not installed";
		/* Leg 0: local, behind the fault kind (a read error on demand). */
		local_ = add_leg("local", kSize);
		legs_.back().path = "fault:" + local_;
		export_ = tmp_.path() + "/remote.img";
		dmio_test::create_sparse(export_, kSize);
		sock_ = tmp_.path() + "/nbd.sock";
	}
	void TearDown() override
	{
		dmio_fault_clear(local_.c_str());
		close_mirror();
		server_.stop(SIGTERM);
		MirrorTest::TearDown();
	}

	/*
	 * Serve the export with nbdkit's delay filter (write_delay, e.g. "20ms") and extra
	 * filter arguments before the plugin, make it leg 1 (write-mostly), format both legs and
	 * open the mirror with write-behind n on leg 1.
	 */
	void open_with(const std::string &write_delay, unsigned n,
		       const std::vector<std::string> &filters = {},
		       const std::vector<std::string> &params = {})
	{
		std::vector<std::string> args = {"--filter=delay"};
		args.insert(args.end(), filters.begin(), filters.end());
		args.push_back("file");
		args.push_back(export_);
		args.push_back("delay-write=" + write_delay);
		args.insert(args.end(), params.begin(), params.end());
		ASSERT_EQ(0, server_.start(sock_, args)) << "start nbdkit";
		legs_.push_back({"remote", "nbd+unix:///?socket=" + sock_, true});
		dmio_dev *probe = nullptr;
		int r = dmio_dev_open(legs_.back().path.c_str(), 0, &probe);
		if (r == -ENOTSUP || r == -EPROTONOSUPPORT)
			GTEST_SKIP() << "libdmio has no NBD kind";
		ASSERT_EQ(0, r) << legs_.back().path;
		dmio_dev_close(probe);
		/* 1 MiB regions: a test warms a region (its bit on every leg) before it times. */
		ASSERT_NO_FATAL_FAILURE(format_legs(1 * MiB));
		ASSERT_NO_FATAL_FAILURE(open_ok());
		ASSERT_EQ(0, mirror_set_write_behind(m_, 1, n));
		EXPECT_EQ(-EPERM, mirror_set_write_behind(m_, 0, n)) << "leg 0 is not write-mostly";
		EXPECT_EQ(-EINVAL, mirror_set_write_behind(m_, 2, n));
	}

	/* A write from this thread, its answer's latency in ms. */
	double timed_write(const std::vector<uint8_t> &data, uint64_t offset)
	{
		auto t = Clock::now();
		EXPECT_EQ((ssize_t)data.size(), write(data, offset)) << "write at " << offset;
		return ms_since(t);
	}

	/*
	 * The first write to a clean region waits for its bitmap bit on every leg, the slow one
	 * too: make the region of offset dirty first, and wait until the slow leg has it.
	 */
	void warm(uint64_t offset)
	{
		ASSERT_EQ((ssize_t)DMIO_SECTOR_SIZE,
			  write(pattern(DMIO_SECTOR_SIZE, 3), offset / MiB * MiB + MiB - 4096));
		ASSERT_TRUE(wait_caught_up());
	}

	/* Wait until no write is behind on leg 1; false after the timeout. */
	bool wait_caught_up(std::chrono::milliseconds timeout = std::chrono::seconds(20))
	{
		auto until = Clock::now() + timeout;
		while (leg(1).behind_writes > 0 || leg(1).behind_bytes > 0) {
			if (Clock::now() > until)
				return false;
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
		}
		return true;
	}

	/* The data areas of the local leg and of the export hold the same bytes. */
	::testing::AssertionResult legs_equal()
	{
		std::vector<uint8_t> a = read_at(local_, SB_DATA_OFFSET, mirror_size(m_));
		std::vector<uint8_t> b = read_at(export_, SB_DATA_OFFSET, mirror_size(m_));
		for (size_t k = 0; k < a.size(); k++)
			if (a[k] != b[k])
				return ::testing::AssertionFailure()
				       << "the legs differ from data offset " << k;
		return ::testing::AssertionSuccess();
	}
	std::vector<uint8_t> remote_at(uint64_t offset, size_t len)
	{
		return read_at(export_, SB_DATA_OFFSET + offset, len);
	}

	std::string local_, export_, sock_;
	NbdKit server_;
};

double median(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

TEST_F(WriteBehind, WritesAreAnsweredAtTheLocalLegsSpeedAndWaitWithoutIt)
{
	ASSERT_NO_FATAL_FAILURE(open_with("20ms", 16));
	if (IsSkipped())
		return;
	std::vector<double> on, off;
	ASSERT_NO_FATAL_FAILURE(warm(0));
	ASSERT_NO_FATAL_FAILURE(warm(1 * MiB));
	for (unsigned i = 0; i < 8; i++)
		on.push_back(timed_write(pattern(kLen, 10 + i), i * kLen));
	EXPECT_LT(median(on), 10.0) << "write-behind: answered in the local leg's time";
	ASSERT_TRUE(wait_caught_up());
	EXPECT_GE(leg(1).behind_answered, 6u) << "writes answered before the slow leg had them";
	EXPECT_EQ(0u, leg(1).behind_bytes);

	/* Off: protocol C, every write waits for the slow leg. */
	ASSERT_EQ(0, mirror_set_write_behind(m_, 1, 0));
	uint64_t early = leg(1).behind_answered;
	for (unsigned i = 0; i < 4; i++)
		off.push_back(timed_write(pattern(kLen, 30 + i), (16 + i) * kLen));
	EXPECT_GE(*std::min_element(off.begin(), off.end()), 19.0)
	    << "without write-behind a write waits for the slow leg";
	EXPECT_EQ(early, leg(1).behind_answered);
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
	EXPECT_TRUE(legs_equal());
}

TEST_F(WriteBehind, AtMostNWritesAreBehindAndTheLegsEndIdentical)
{
	constexpr unsigned kN = 2, kWrites = 12;
	ASSERT_NO_FATAL_FAILURE(open_with("20ms", kN));
	if (IsSkipped())
		return;
	ASSERT_NO_FATAL_FAILURE(warm(0));
	std::atomic<bool> done{false};
	unsigned most = 0;
	std::thread watcher([&] {
		while (!done) {
			most = std::max(most, leg(1).behind_writes);
			std::this_thread::yield();
		}
	});
	std::vector<std::vector<uint8_t>> data;
	for (unsigned i = 0; i < kWrites; i++)
		data.push_back(pattern(kLen, 50 + i));
	std::vector<std::thread> writers;
	for (unsigned t = 0; t < 4; t++)
		writers.emplace_back([&, t] {
			for (unsigned i = t; i < kWrites; i += 4)
				EXPECT_EQ((ssize_t)kLen,
					  mirror_write_wait(m_, data[i].data(), kLen, i * kLen, 0));
		});
	for (auto &w : writers)
		w.join();
	ASSERT_TRUE(wait_caught_up());
	done = true;
	watcher.join();
	EXPECT_LE(most, kN) << "never more than write-behind writes behind";
	EXPECT_GE(most, 1u) << "writes were behind";
	for (unsigned i = 0; i < kWrites; i++)
		EXPECT_TRUE(same_bytes(data[i], remote_at(i * kLen, kLen))) << "write " << i;
	EXPECT_TRUE(legs_equal());
	/* Caught up and idle: the cleaner clears every bit. */
	EXPECT_GT(cleaner_clean(m_, true), 0);
	EXPECT_EQ(0, cleaner_clean(m_, true));
}

TEST_F(WriteBehind, TheRegionStaysDirtyUntilTheSlowLegHasIt)
{
	ASSERT_NO_FATAL_FAILURE(open_with("400ms", 4));
	if (IsSkipped())
		return;
	std::vector<uint8_t> a = pattern(kLen, 71);
	ASSERT_NO_FATAL_FAILURE(warm(3 * MiB));
	ASSERT_EQ(1, cleaner_clean(m_, true)) << "the warm-up's region";
	/* Clean again: the write waits for its bit, and is answered before the slow leg has it. */
	auto t = Clock::now();
	ASSERT_EQ((ssize_t)kLen, write(a, 3 * MiB));
	ASSERT_LT(ms_since(t), 750.0) << "answered before the slow leg has it";
	ASSERT_EQ(1u, leg(1).behind_writes);
	EXPECT_EQ(kLen, leg(1).behind_bytes);
	/* Every leg flushed and the region idle: its bit must stay while the write is behind. */
	EXPECT_EQ(0, cleaner_clean(m_, true)) << "a bit was cleared under a write behind";
	ASSERT_TRUE(wait_caught_up());
	EXPECT_TRUE(same_bytes(a, remote_at(3 * MiB, kLen)));
	EXPECT_EQ(1, cleaner_clean(m_, true));
}

TEST_F(WriteBehind, AnOverlappingWriteDoesNotOvertakeTheBehindOne)
{
	ASSERT_NO_FATAL_FAILURE(open_with("300ms", 4));
	if (IsSkipped())
		return;
	std::vector<uint8_t> a = pattern(kLen, 81), b = pattern(kLen, 82);
	ASSERT_NO_FATAL_FAILURE(warm(1 * MiB));
	auto t = Clock::now();
	ASSERT_EQ((ssize_t)kLen, write(a, 1 * MiB));
	double a_ms = ms_since(t);
	/* B overlaps half of A: it waits until the slow leg has A. */
	ASSERT_EQ((ssize_t)kLen, write(b, 1 * MiB + kLen / 2));
	double b_ms = ms_since(t);
	EXPECT_LT(a_ms, 150.0);
	EXPECT_GE(b_ms, 290.0) << "B went on before the slow leg had A";
	ASSERT_TRUE(wait_caught_up());
	std::vector<uint8_t> want(a.begin(), a.begin() + kLen / 2);
	want.insert(want.end(), b.begin(), b.end());
	EXPECT_TRUE(same_bytes(want, remote_at(1 * MiB, kLen + kLen / 2)));
	EXPECT_TRUE(legs_equal());
}

TEST_F(WriteBehind, AReadOnlyTheSlowLegCanServeWaitsForTheBehindWrite)
{
	ASSERT_NO_FATAL_FAILURE(open_with("300ms", 4));
	if (IsSkipped())
		return;
	std::vector<uint8_t> a = pattern(kLen, 91);
	ASSERT_NO_FATAL_FAILURE(warm(2 * MiB));
	auto t = Clock::now();
	ASSERT_EQ((ssize_t)kLen, write(a, 2 * MiB));
	ASSERT_LT(ms_since(t), 150.0);
	ASSERT_EQ(1u, leg(1).behind_writes);
	/* The local leg fails the read once: the retry can only go to the slow leg. */
	dmio_fault_rule rule = {};
	rule.ops = DMIO_FAULT_READ;
	rule.action = DMIO_FAULT_FAIL;
	rule.error = EIO;
	rule.times = 1;
	int id = dmio_fault_add(local_.c_str(), &rule);
	ASSERT_GT(id, 0);
	std::vector<uint8_t> got = read(kLen, 2 * MiB);
	EXPECT_EQ(1u, dmio_fault_fired(id));
	EXPECT_TRUE(same_bytes(a, got)) << "the read overtook the write behind on the slow leg";
	ASSERT_TRUE(wait_caught_up());
	EXPECT_TRUE(legs_equal());
}

TEST_F(WriteBehind, AFailedBehindWriteFailsTheSlowLegAndTheRegionStaysDirty)
{
	std::string trigger = tmp_.path() + "/fail-writes";
	ASSERT_NO_FATAL_FAILURE(open_with(
	    "20ms", 4, {"--filter=error"},
	    {"error-pwrite=EIO", "error-pwrite-rate=100%", "error-pwrite-file=" + trigger}));
	if (IsSkipped())
		return;
	ASSERT_NO_FATAL_FAILURE(warm(4 * MiB));
	dmio_test::create_sparse(trigger, 0);
	std::vector<uint8_t> a = pattern(kLen, 101);
	EXPECT_EQ((ssize_t)kLen, write(a, 4 * MiB)) << "the local leg has it: answered";
	ASSERT_TRUE(wait_caught_up());
	auto until = Clock::now() + std::chrono::seconds(10);
	while (state_of(1) != LEG_FAILED && Clock::now() < until)
		std::this_thread::sleep_for(std::chrono::milliseconds(2));
	EXPECT_EQ(LEG_FAILED, state_of(1));
	EXPECT_GE(leg(1).write_errors, 1u);
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_TRUE(same_bytes(a, read(kLen, 4 * MiB)));
	/* A member is failed: the cleaner keeps every bit for the re-add. */
	EXPECT_EQ(0, cleaner_clean(m_, true));
}

TEST_F(WriteBehind, CloseDrainsTheWritesBehind)
{
	ASSERT_NO_FATAL_FAILURE(open_with("300ms", 8));
	if (IsSkipped())
		return;
	std::vector<std::vector<uint8_t>> data;
	ASSERT_NO_FATAL_FAILURE(warm(5 * MiB));
	for (unsigned i = 0; i < 4; i++) {
		data.push_back(pattern(kLen, 111 + i));
		ASSERT_EQ((ssize_t)kLen, write(data[i], 5 * MiB + i * kLen));
	}
	EXPECT_GE(leg(1).behind_writes, 1u);
	close_mirror();
	for (unsigned i = 0; i < 4; i++)
		EXPECT_TRUE(same_bytes(data[i], remote_at(5 * MiB + i * kLen, kLen))) << i;
	/* Closed clean: a restart has nothing to resync. */
	superblock sb = read_superblock(0);
	EXPECT_TRUE(sb.flags & SB_FLAG_CLEAN);
}

} // namespace

namespace
{

TEST_F(WriteBehind, FailingTheSlowLegGivesUpOnItsWritesBehind)
{
	ASSERT_NO_FATAL_FAILURE(open_with("1500ms", 8));
	if (IsSkipped())
		return;
	ASSERT_NO_FATAL_FAILURE(warm(6 * MiB));
	std::vector<uint8_t> a = pattern(kLen, 121);
	ASSERT_EQ((ssize_t)kLen, write(a, 6 * MiB));
	ASSERT_EQ(1u, leg(1).behind_writes);
	GError *error = nullptr;
	auto t = Clock::now();
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, &error)) << (error ? error->message : "");
	/* Given up on at once (ECANCELED), not when the server answers. */
	ASSERT_TRUE(wait_caught_up(std::chrono::milliseconds(1000)));
	EXPECT_LT(ms_since(t), 1000.0);
	EXPECT_EQ(LEG_FAILED, state_of(1));
	EXPECT_TRUE(same_bytes(a, read(kLen, 6 * MiB)));
	/* Its regions stay dirty for the re-add. */
	EXPECT_EQ(0, cleaner_clean(m_, true));
	/* Close while the server still has the write: its copy is freed when it answers. */
	close_mirror();
	std::this_thread::sleep_for(std::chrono::milliseconds(1600));
}

} // namespace
