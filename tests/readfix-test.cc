/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Read-error correction (src/mirror/readfix.c, md's fix_read_error) on real legs opened by
 * mirror_open(), the leg that serves reads behind libdmio's fault-injecting kind (fault:PATH,
 * src/dmio/dev-fault.h), whose rules give exact read and write errors:
 *   - one transient 4 KiB read error: the reader gets the right bytes, the leg stays in sync,
 *     corrected_errors is 1 and ReadErrorCorrected names the leg, the offset, length and errno;
 *   - a persistent one (the rewrite works, the re-read fails), a write error during the rewrite,
 *     and more than max-read-errors corrections each fail the leg, saying why; 0 never does;
 *   - the count halves every hour (readfix_count_error with the clock given), and a count that
 *     decayed lets a leg survive an error that would otherwise fail it;
 *   - the only in-sync leg erroring: the reader gets the error, nothing is failed;
 *   - errors that are not media errors (ENXIO, ETIMEDOUT) fail the leg as before;
 *   - the rewrite waits for a range hold: no write may come between the read of the good data
 *     and the rewrite.
 */
/* mirror/atomics.h names the C11 atomic types for C++. */
#include "mirror-util.h"

extern "C" {
#include "mirror/mirror-internal.h"
}
#include "dmio/dev-fault.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

using namespace mirror_test;

namespace
{

const bool kTestDevicesAllowed = setenv("FUSEMIRROR_TEST_DEVICES", "1", 1) == 0;

constexpr gint64 kHour = (gint64)3600 * G_USEC_PER_SEC;

class Readfix : public MirrorTest
{
      protected:
	void SetUp() override
	{
		MirrorTest::SetUp();
		ASSERT_TRUE(kTestDevicesAllowed);
		policy_ = READ_POLICY_PRIMARY; /* leg 0, the faulty one, serves the reads */
		bad_ = add_leg("bad", 1 * MiB);
		good_ = add_leg("good", 1 * MiB);
		legs_[0].path = "fault:" + bad_;
	}
	void TearDown() override
	{
		MirrorTest::TearDown();
		dmio_fault_clear(nullptr);
	}

	/* Open, and write a pattern over the whole mirror. */
	void open_with_data(unsigned seed)
	{
		ASSERT_NO_FATAL_FAILURE(open_ok());
		data_ = pattern(1 * MiB, seed);
		ASSERT_EQ((ssize_t)data_.size(), write(data_, 0));
	}

	/* A rule failing ops on [offset, offset + len) of the bad leg with err, times times. */
	int fail_rule(unsigned ops, uint64_t offset, uint64_t len, int err, uint64_t times)
	{
		dmio_fault_rule rule;
		memset(&rule, 0, sizeof(rule));
		rule.ops = ops;
		rule.offset = offset;
		rule.length = len;
		rule.action = DMIO_FAULT_FAIL;
		rule.error = err;
		rule.times = times;
		int id = dmio_fault_add(bad_.c_str(), &rule);
		EXPECT_GT(id, 0);
		return id;
	}

	std::vector<uint8_t> expected(uint64_t offset, uint64_t len)
	{
		return std::vector<uint8_t>(data_.begin() + (ptrdiff_t)offset,
					    data_.begin() + (ptrdiff_t)(offset + len));
	}

	/* The LegFailed message of leg 0 (the first one), "" when none. */
	std::string leg_failed_message()
	{
		for (const Event &e : events())
			if (e.name == "LegFailed" && e.leg == 0)
				return e.message;
		return "";
	}

	std::string bad_, good_;
	std::vector<uint8_t> data_;
};

TEST_F(Readfix, TransientReadErrorIsCorrected)
{
	ASSERT_NO_FATAL_FAILURE(open_with_data(80));
	int id = fail_rule(DMIO_FAULT_READ, 64 * KiB, 4 * KiB, EIO, 1);

	EXPECT_TRUE(same_bytes(expected(64 * KiB, 4 * KiB), read(4 * KiB, 64 * KiB)));
	EXPECT_EQ(1u, dmio_fault_fired(id));
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));
	EXPECT_EQ(1u, leg(0).read_errors);
	EXPECT_EQ(1u, leg(0).corrected_errors);
	EXPECT_EQ(0u, leg(1).corrected_errors);
	EXPECT_EQ(0u, count_events("LegFailed", 0)) << dump_events();
	ASSERT_EQ(1u, count_events("ReadErrorCorrected", 0)) << dump_events();
	EXPECT_EQ(1u, LogCapture::get().count("ReadErrorCorrected",
					      {"leg 0 (bad", "data offset 65536 length 4096",
					       "errno 5", "from leg 1 (good)"}))
	    << LogCapture::get().dump();
	/* The leg holds the data, and serves it again. */
	EXPECT_TRUE(same_bytes(expected(64 * KiB, 4 * KiB), read_at(bad_, 64 * KiB, 4 * KiB)));
	EXPECT_TRUE(same_bytes(data_, read(data_.size(), 0)));
	EXPECT_EQ(1u, leg(0).read_errors) << "read again after the correction";
}

/* A check meets a bad sector: it is corrected as a read's is, and the pass goes on. */
TEST_F(Readfix, ACheckCorrectsAReadErrorAndGoesOn)
{
	ASSERT_NO_FATAL_FAILURE(open_with_data(90));
	int id = fail_rule(DMIO_FAULT_READ, 64 * KiB, 4 * KiB, EIO, 1);
	g_autoptr(GError) error = nullptr;

	ASSERT_EQ(0, mirror_check(m_, false, -1, &error)) << (error ? error->message : "");
	ASSERT_TRUE(wait_resync()) << "the check did not end";
	check_status cs;
	mirror_check_status(m_, &cs);
	EXPECT_EQ(1u, dmio_fault_fired(id));
	EXPECT_EQ(LEG_IN_SYNC, state_of(0)) << dump_events();
	EXPECT_EQ(1u, leg(0).corrected_errors);
	EXPECT_EQ(0u, cs.mismatch_cnt);
	EXPECT_EQ(1u * MiB, cs.done) << "the pass did not cover the mirror";
	EXPECT_EQ(0u, count_events("CheckAborted", -1)) << dump_events();
	EXPECT_TRUE(same_bytes(data_, read_at(bad_, 0, 1 * MiB)));
}

/* A check meets a sector that stays bad: the leg is failed and the pass goes on without it. */
TEST_F(Readfix, ACheckFailsALegWhoseSectorStaysBad)
{
	ASSERT_NO_FATAL_FAILURE(open_with_data(91));
	fail_rule(DMIO_FAULT_READ, 64 * KiB, 4 * KiB, EIO, 0);
	g_autoptr(GError) error = nullptr;

	ASSERT_EQ(0, mirror_check(m_, false, -1, &error)) << (error ? error->message : "");
	ASSERT_TRUE(wait_resync()) << "the check did not end (a loop of corrections?)";
	EXPECT_EQ(LEG_FAILED, state_of(0));
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
}

/* The sector takes the rewrite but cannot be read back: the leg is failed. */
TEST_F(Readfix, PersistentReadErrorFailsTheLeg)
{
	ASSERT_NO_FATAL_FAILURE(open_with_data(81));
	fail_rule(DMIO_FAULT_READ, 128 * KiB, 4 * KiB, EIO, 0);

	EXPECT_TRUE(same_bytes(expected(128 * KiB, 4 * KiB), read(4 * KiB, 128 * KiB)));
	EXPECT_EQ(LEG_FAILED, state_of(0));
	EXPECT_EQ(LEG_IN_SYNC, state_of(1));
	EXPECT_EQ(0u, leg(0).corrected_errors);
	EXPECT_EQ(0u, count_events("ReadErrorCorrected", 0)) << dump_events();
	EXPECT_NE(std::string::npos, leg_failed_message().find("re-read after the rewrite failed"))
	    << dump_events();
	EXPECT_TRUE(same_bytes(data_, read(data_.size(), 0)));
}

TEST_F(Readfix, WriteErrorDuringTheRewriteFailsTheLeg)
{
	ASSERT_NO_FATAL_FAILURE(open_with_data(82));
	fail_rule(DMIO_FAULT_READ, 192 * KiB, 4 * KiB, EIO, 1);
	int write_id = fail_rule(DMIO_FAULT_WRITE, 192 * KiB, 4 * KiB, EIO, 0);

	EXPECT_TRUE(same_bytes(expected(192 * KiB, 4 * KiB), read(4 * KiB, 192 * KiB)));
	EXPECT_EQ(1u, dmio_fault_fired(write_id)) << "the rewrite was tried once";
	EXPECT_EQ(LEG_FAILED, state_of(0));
	EXPECT_EQ(0u, leg(0).corrected_errors);
	EXPECT_NE(std::string::npos, leg_failed_message().find("the rewrite failed"))
	    << dump_events();
	EXPECT_GE(LogCapture::get().count("IOError", {"correction write", "leg 0"}), 1u)
	    << LogCapture::get().dump();
}

/* max-read-errors 3: the fourth error fails the leg, saying why. */
TEST_F(Readfix, MoreThanMaxReadErrorsFailTheLeg)
{
	max_read_errors_ = 3;
	ASSERT_NO_FATAL_FAILURE(open_with_data(83));
	for (unsigned i = 0; i < 4; i++)
		fail_rule(DMIO_FAULT_READ, (i + 1) * 64 * KiB, 4 * KiB, EIO, 1);
	for (unsigned i = 0; i < 3; i++) {
		uint64_t off = (i + 1) * 64 * KiB;
		EXPECT_TRUE(same_bytes(expected(off, 4 * KiB), read(4 * KiB, off))) << i;
		EXPECT_EQ(LEG_IN_SYNC, state_of(0)) << "after correction " << i + 1;
	}
	EXPECT_EQ(3u, leg(0).corrected_errors);
	EXPECT_TRUE(same_bytes(expected(256 * KiB, 4 * KiB), read(4 * KiB, 256 * KiB)));
	EXPECT_EQ(LEG_FAILED, state_of(0));
	EXPECT_EQ(3u, leg(0).corrected_errors);
	EXPECT_NE(std::string::npos, leg_failed_message().find(
					 "too many corrected read errors: 4 > max-read-errors 3"))
	    << dump_events();
}

/* 0: a leg is never failed for corrected errors; set at run time, it applies at once. */
TEST_F(Readfix, MaxReadErrorsZeroNeverFailsAndIsSetAtRunTime)
{
	max_read_errors_ = 1;
	ASSERT_NO_FATAL_FAILURE(open_with_data(84));
	EXPECT_EQ(1u, mirror_get_max_read_errors(m_));
	mirror_set_max_read_errors(m_, 0);
	for (unsigned i = 0; i < 5; i++) {
		uint64_t off = (i + 1) * 64 * KiB;
		fail_rule(DMIO_FAULT_READ, off, 4 * KiB, EIO, 1);
		EXPECT_TRUE(same_bytes(expected(off, 4 * KiB), read(4 * KiB, off))) << i;
	}
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_EQ(5u, leg(0).corrected_errors);
	mirror_set_max_read_errors(m_, 5);
	fail_rule(DMIO_FAULT_READ, 512 * KiB, 4 * KiB, EIO, 1);
	read(4 * KiB, 512 * KiB);
	EXPECT_EQ(LEG_FAILED, state_of(0)) << "the sixth recent error, above the new limit";
}

/* md's check_decay_read_errors: halved for every whole hour, the part of an hour kept. */
TEST_F(Readfix, TheCountHalvesEveryHour)
{
	ASSERT_NO_FATAL_FAILURE(open_ok());
	struct leg *l = &m_->legs[0];
	const gint64 t0 = 1000 * kHour;
	for (unsigned i = 1; i <= 8; i++)
		EXPECT_EQ(i, readfix_count_error(m_, l, t0));
	EXPECT_EQ(8u, readfix_recent_errors(m_, l, t0 + kHour - 1));
	EXPECT_EQ(4u, readfix_recent_errors(m_, l, t0 + kHour + kHour / 2));
	/* md would restart the hour at the last look (t0 + 1.5 h) and not halve here. */
	EXPECT_EQ(2u, readfix_recent_errors(m_, l, t0 + 2 * kHour));
	EXPECT_EQ(3u, readfix_count_error(m_, l, t0 + 2 * kHour + 1));
	EXPECT_EQ(0u, readfix_recent_errors(m_, l, t0 + 40 * kHour));
	/* From zero, the hour starts at the next error. */
	EXPECT_EQ(1u, readfix_count_error(m_, l, t0 + 100 * kHour));
	EXPECT_EQ(1u, readfix_recent_errors(m_, l, t0 + 101 * kHour - 1));
	EXPECT_EQ(0u, readfix_recent_errors(m_, l, t0 + 101 * kHour));
}

/* A leg at the limit two hours ago has a quarter of it now: its next error is corrected. */
TEST_F(Readfix, DecayedCountLetsALegSurvive)
{
	max_read_errors_ = 4;
	ASSERT_NO_FATAL_FAILURE(open_with_data(85));
	struct leg *l = &m_->legs[0];
	const gint64 two_hours_ago = g_get_monotonic_time() - 2 * kHour;
	for (unsigned i = 0; i < 4; i++)
		readfix_count_error(m_, l, two_hours_ago);
	fail_rule(DMIO_FAULT_READ, 64 * KiB, 4 * KiB, EIO, 1);
	EXPECT_TRUE(same_bytes(expected(64 * KiB, 4 * KiB), read(4 * KiB, 64 * KiB)));
	EXPECT_EQ(LEG_IN_SYNC, state_of(0)) << leg_failed_message();
	EXPECT_EQ(1u, leg(0).corrected_errors);
	EXPECT_EQ(2u, readfix_recent_errors(m_, l, g_get_monotonic_time()));

	/* Without the decay the same count fails it. */
	for (unsigned i = 0; i < 3; i++)
		readfix_count_error(m_, l, g_get_monotonic_time());
	fail_rule(DMIO_FAULT_READ, 128 * KiB, 4 * KiB, EIO, 1);
	read(4 * KiB, 128 * KiB);
	EXPECT_EQ(LEG_FAILED, state_of(0));
	EXPECT_NE(std::string::npos, leg_failed_message().find(
					 "too many corrected read errors: 6 > max-read-errors 4"))
	    << dump_events();
}

/* Nothing to correct from: the reader gets the error, nothing is failed. */
TEST_F(Readfix, OnlyInSyncLegErroringFailsNothing)
{
	ASSERT_NO_FATAL_FAILURE(open_with_data(86));
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, nullptr));
	fail_rule(DMIO_FAULT_READ, 64 * KiB, 4 * KiB, EIO, 1);
	ssize_t r;
	read(4 * KiB, 64 * KiB, &r);
	EXPECT_EQ(-EIO, r);
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_EQ(0u, leg(0).corrected_errors);
	EXPECT_EQ(1u, leg(0).read_errors);
	EXPECT_EQ(0u, count_events("LegFailed", 0)) << dump_events();
	EXPECT_EQ(0u, count_events("ReadErrorCorrected", 0)) << dump_events();
	EXPECT_TRUE(same_bytes(expected(64 * KiB, 4 * KiB), read(4 * KiB, 64 * KiB)));
}

/* A leg gone (ENXIO) or an abandoned I/O (ETIMEDOUT) is no bad sector: failed at once. */
TEST_F(Readfix, NonMediaErrorsFailTheLegAtOnce)
{
	for (int err : {ENXIO, ETIMEDOUT}) {
		SCOPED_TRACE(g_strerror(err));
		dmio_fault_clear(nullptr);
		ASSERT_NO_FATAL_FAILURE(open_with_data(87));
		fail_rule(DMIO_FAULT_READ, 64 * KiB, 4 * KiB, err, 1);
		std::vector<uint8_t> got(4 * KiB);
		/* No drain: the failure is the completion's own. */
		EXPECT_EQ((ssize_t)got.size(),
			  mirror_read_wait(m_, got.data(), got.size(), 64 * KiB));
		EXPECT_TRUE(same_bytes(expected(64 * KiB, 4 * KiB), got));
		EXPECT_EQ(LEG_FAILED, state_of(0));
		readfix_drain(m_);
		EXPECT_EQ(0u, leg(0).corrected_errors);
		EXPECT_EQ(0u, count_events("ReadErrorCorrected", 0)) << dump_events();
		close_mirror();
	}
}

/*
 * The correction rewrites under the range lock: while another holder has the range (as a write
 * in flight does), the reader is answered but the leg is not rewritten; once the hold goes, it
 * is.
 */
TEST_F(Readfix, TheRewriteWaitsForTheRange)
{
	ASSERT_NO_FATAL_FAILURE(open_with_data(88));
	/* The bad leg's bytes differ from the good one's under the error: a rewrite shows. */
	std::vector<uint8_t> junk(4 * KiB, 0x5a);
	{
		int fd = open(bad_.c_str(), O_WRONLY | O_CLOEXEC);
		ASSERT_GE(fd, 0);
		ASSERT_EQ((ssize_t)junk.size(), pwrite(fd, junk.data(), junk.size(), 64 * KiB));
		close(fd);
	}
	fail_rule(DMIO_FAULT_READ, 64 * KiB, 4 * KiB, EIO, 1);
	rangelock_hold hold;
	rangelock_acquire(m_->ranges, &hold, 60 * KiB, 16 * KiB);

	std::vector<uint8_t> got(4 * KiB);
	EXPECT_EQ((ssize_t)got.size(), mirror_read_wait(m_, got.data(), got.size(), 64 * KiB));
	EXPECT_TRUE(same_bytes(expected(64 * KiB, 4 * KiB), got));
	/* The correction comes in (io_begin) and waits for the range; give it time to (not) write.
	 */
	for (int i = 0; i < 2000 && atomic_load(&m_->inflight) == 0; i++)
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	EXPECT_EQ(1u, atomic_load(&m_->inflight)) << "no correction is in flight";
	std::this_thread::sleep_for(std::chrono::milliseconds(200));
	EXPECT_TRUE(same_bytes(junk, read_at(bad_, 64 * KiB, 4 * KiB)))
	    << "the leg was rewritten while another held the range";
	EXPECT_EQ(0u, leg(0).corrected_errors);

	rangelock_release(m_->ranges, &hold);
	readfix_drain(m_);
	EXPECT_EQ(1u, leg(0).corrected_errors);
	EXPECT_TRUE(same_bytes(expected(64 * KiB, 4 * KiB), read_at(bad_, 64 * KiB, 4 * KiB)));
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
}

/*
 * A correction is a request for the freezer (quiesce.c): a remove that freezes the mirror while a
 * correction waits for its range waits for it, and both finish once the range is free.
 */
TEST_F(Readfix, AFreezerWaitsForACorrectionAndBothFinish)
{
	add_leg("third", 1 * MiB);
	ASSERT_NO_FATAL_FAILURE(open_with_data(90));
	ASSERT_EQ(0, mirror_fail_leg(m_, 2, nullptr));
	fail_rule(DMIO_FAULT_READ, 64 * KiB, 4 * KiB, EIO, 1);
	rangelock_hold hold;
	rangelock_acquire(m_->ranges, &hold, 64 * KiB, 4 * KiB);
	std::vector<uint8_t> got(4 * KiB);
	EXPECT_EQ((ssize_t)got.size(), mirror_read_wait(m_, got.data(), got.size(), 64 * KiB));

	/* The correction is in (inside io_begin, waiting for the range) before the freezer comes.
	 */
	for (int i = 0; i < 2000 && atomic_load(&m_->inflight) == 0; i++)
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	EXPECT_EQ(1u, atomic_load(&m_->inflight)) << "no correction is in flight";
	std::atomic<bool> removed{false};
	std::thread remover([&] {
		EXPECT_EQ(0, mirror_remove_leg(m_, 2, false, nullptr));
		removed = true;
	});
	std::this_thread::sleep_for(std::chrono::milliseconds(200));
	EXPECT_FALSE(removed) << "the freeze did not wait for the correction in flight; inflight "
			      << atomic_load(&m_->inflight) << " held "
			      << rangelock_count(m_->ranges);
	EXPECT_EQ(0u, leg(0).corrected_errors);
	rangelock_release(m_->ranges, &hold);
	remover.join();
	readfix_drain(m_);
	EXPECT_TRUE(removed);
	EXPECT_EQ(1u, leg(0).corrected_errors);
	EXPECT_EQ(LEG_IN_SYNC, state_of(0));
	EXPECT_EQ(LEG_REMOVED, state_of(2));
}

/* With superblocks (data after the 1 MiB data offset) the offsets are the mirror's. */
TEST_F(Readfix, CorrectsWithSuperblocksAtTheDataOffset)
{
	legs_.clear();
	bad_ = add_leg("bad", 3 * MiB);
	good_ = add_leg("good", 3 * MiB);
	ASSERT_NO_FATAL_FAILURE(format_legs());
	legs_[0].path = "fault:" + bad_;
	ASSERT_NO_FATAL_FAILURE(open_ok());
	uint64_t size = mirror_size(m_);
	data_ = pattern(size, 89);
	ASSERT_EQ((ssize_t)size, write(data_, 0));
	fail_rule(DMIO_FAULT_READ, SB_DATA_OFFSET + 8 * KiB, 4 * KiB, EIO, 1);
	EXPECT_TRUE(same_bytes(expected(8 * KiB, 4 * KiB), read(4 * KiB, 8 * KiB)));
	EXPECT_EQ(LEG_IN_SYNC, state_of(0)) << leg_failed_message();
	EXPECT_EQ(1u, leg(0).corrected_errors);
	EXPECT_EQ(1u,
		  LogCapture::get().count("ReadErrorCorrected", {"data offset 8192 length 4096"}))
	    << LogCapture::get().dump();
	EXPECT_EQ(MIRROR_CLEAN, mirror_state(m_));
}

} // namespace
