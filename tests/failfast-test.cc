/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Failfast (src/mirror/failfast.c, the io-timeout): a leg that hangs is failed by the mirror
 * itself within its io-timeout, the write in flight is answered on the survivor with the right
 * data, a read is answered from the other leg, a leg failed by hand releases its I/O at once,
 * close returns with a leg still hung, a slow leg shows as slow, and the last in-sync leg is
 * waited for, never failed.  Real leg files behind libdmio's fault-injecting kind, whose hangs
 * the test releases at the end; metadata = internal, so the failure is committed to the
 * survivor's superblock while the hung leg never answers.
 */
#include "mirror-util.h"

#include "dmio/dev-fault.h"

#include <atomic>
#include <cerrno>
#include <cstdlib>

using namespace mirror_test;

namespace
{

constexpr uint64_t kSize = 8 * MiB;
constexpr size_t kLen = 64 * KiB;

const bool kTestDevicesAllowed = setenv("FUSEMIRROR_TEST_DEVICES", "1", 1) == 0;

/* An answer, with when it came. */
struct Answer {
	std::mutex lock;
	std::condition_variable cond;
	bool answered = false;
	ssize_t result = 0;
	std::vector<uint8_t> data;
	std::chrono::steady_clock::time_point at;

	static void fn(void *opaque, ssize_t result, const void *data)
	{
		auto *a = static_cast<Answer *>(opaque);
		std::lock_guard<std::mutex> g(a->lock);
		a->result = result;
		if (result > 0 && data != nullptr)
			a->data.assign(static_cast<const uint8_t *>(data),
				       static_cast<const uint8_t *>(data) + result);
		a->at = std::chrono::steady_clock::now();
		a->answered = true;
		a->cond.notify_all();
	}
	bool wait(std::chrono::milliseconds timeout)
	{
		std::unique_lock<std::mutex> g(lock);
		return cond.wait_for(g, timeout, [this] { return answered; });
	}
};

class Failfast : public MirrorTest
{
      protected:
	void SetUp() override
	{
		MirrorTest::SetUp();
		ASSERT_TRUE(kTestDevicesAllowed);
		for (int i = 0; i < 2; i++) {
			files_.push_back(add_leg("leg" + std::to_string(i), kSize));
			legs_.back().path = "fault:" + files_.back();
		}
	}
	void TearDown() override
	{
		for (const auto &f : files_) {
			dmio_fault_clear(f.c_str());
			dmio_fault_release(f.c_str(), EIO);
		}
		for (auto &t : threads_)
			t.join();
		MirrorTest::TearDown();
	}
	void open_with_timeout(unsigned ms)
	{
		io_timeout_ms_ = ms;
		metadata_ = METADATA_INTERNAL;
		ASSERT_NO_FATAL_FAILURE(format_legs());
		ASSERT_NO_FATAL_FAILURE(open_ok());
	}
	void hang(int leg, unsigned ops)
	{
		dmio_fault_rule rule = {};
		rule.ops = ops;
		rule.action = DMIO_FAULT_HANG;
		ASSERT_GT(dmio_fault_add(files_[leg].c_str(), &rule), 0);
	}
	void wait_held(int leg)
	{
		auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
		while (dmio_fault_held(files_[leg].c_str()) == 0 &&
		       std::chrono::steady_clock::now() < until)
			std::this_thread::sleep_for(std::chrono::milliseconds(2));
		ASSERT_GT(dmio_fault_held(files_[leg].c_str()), 0u) << "nothing is held";
	}
	leg_state state(unsigned i)
	{
		leg_status st;
		mirror_leg_status(m_, i, &st);
		return st.state;
	}
	/* A write answered to a, from a thread that returns once no leg holds buf. */
	void write_async(Answer *a, const std::vector<uint8_t> *buf, uint64_t offset)
	{
		threads_.emplace_back([this, a, buf, offset] {
			mirror_write_answered(m_, buf->data(), buf->size(), offset, 0, Answer::fn,
					      a);
		});
	}

	std::vector<std::string> files_;
	std::vector<std::thread> threads_;
};

/*
 * The mirror fails the hung leg by itself: the write in flight is answered within the
 * io-timeout and a margin, on the survivor, with the data there; then reads, writes and a
 * flush go on without the hung leg, which still holds the buffer it was given.
 */
TEST_F(Failfast, AHungLegIsFailedAndTheWriteAnsweredOnTheSurvivor)
{
	ASSERT_NO_FATAL_FAILURE(open_with_timeout(300));
	hang(1, DMIO_FAULT_WRITE);
	std::vector<uint8_t> data = pattern(kLen, 5);
	Answer a;
	auto start = std::chrono::steady_clock::now();
	write_async(&a, &data, MiB);
	ASSERT_TRUE(a.wait(std::chrono::seconds(5))) << "the write was never answered";
	auto took = a.at - start;
	EXPECT_EQ((ssize_t)kLen, a.result);
	EXPECT_GE(took, std::chrono::milliseconds(250)) << "answered before the io-timeout";
	EXPECT_LT(took, std::chrono::milliseconds(1500)) << "answered late";
	EXPECT_EQ(LEG_FAILED, state(1));
	EXPECT_EQ(LEG_IN_SYNC, state(0));
	bool timed_out = false;
	for (const Event &e : events())
		timed_out |= e.name == "LegFailed" && e.leg == 1 &&
			     e.message.find("I/O timeout") != std::string::npos;
	EXPECT_TRUE(timed_out) << dump_events();

	std::vector<uint8_t> back(kLen);
	EXPECT_EQ((ssize_t)kLen, mirror_read_wait(m_, back.data(), kLen, MiB));
	EXPECT_TRUE(same_bytes(data, back));
	std::vector<uint8_t> more = pattern(kLen, 6);
	EXPECT_EQ((ssize_t)kLen, mirror_write_wait(m_, more.data(), kLen, 2 * MiB, 0));
	Request flushed;
	mirror_flush(m_, Request::done, &flushed);
	ASSERT_TRUE(flushed.wait(std::chrono::seconds(2))) << "a flush waited on the failed leg";
	EXPECT_EQ(0, flushed.result());
	EXPECT_EQ(1u, dmio_fault_held(files_[1].c_str())) << "the hung write is still held";
}

/* A read from a leg that hangs is answered from the other one, in the mirror's own buffer. */
TEST_F(Failfast, AHungReadIsAnsweredFromTheOtherLeg)
{
	policy_ = READ_POLICY_PRIMARY;
	ASSERT_NO_FATAL_FAILURE(open_with_timeout(300));
	std::vector<uint8_t> data = pattern(kLen, 7);
	ASSERT_EQ((ssize_t)kLen, mirror_write_wait(m_, data.data(), kLen, 3 * MiB, 0));
	hang(0, DMIO_FAULT_READ);
	std::vector<uint8_t> buf(kLen, 0xee);
	Answer a;
	threads_.emplace_back([&] {
		mirror_read_answered(m_, buf.data(), kLen, 3 * MiB, Answer::fn, &a);
	});
	ASSERT_TRUE(a.wait(std::chrono::seconds(5))) << "the read was never answered";
	EXPECT_EQ((ssize_t)kLen, a.result);
	EXPECT_TRUE(same_bytes(data, a.data));
	EXPECT_EQ(LEG_FAILED, state(0));
	EXPECT_TRUE(dmio_test::all_bytes_are(buf, 0xee))
	    << "the hung leg's buffer was used for the answer";
	/* buf is the hung leg's until it answers (a failed read zero-fills it). */
	dmio_fault_clear(files_[0].c_str());
	EXPECT_EQ(1u, dmio_fault_release(files_[0].c_str(), EIO));
	threads_.back().join();
	threads_.pop_back();
}

/* Without an io-timeout, fail of a hung leg releases its I/O at once. */
TEST_F(Failfast, FailOfAHungLegReleasesItsIOAtOnce)
{
	ASSERT_NO_FATAL_FAILURE(open_with_timeout(0));
	hang(1, DMIO_FAULT_WRITE);
	std::vector<uint8_t> data = pattern(kLen, 8);
	Answer a;
	write_async(&a, &data, 4 * MiB);
	ASSERT_NO_FATAL_FAILURE(wait_held(1));
	EXPECT_FALSE(a.wait(std::chrono::milliseconds(300))) << "answered without a timeout";
	g_autoptr(GError) error = nullptr;
	auto start = std::chrono::steady_clock::now();
	ASSERT_EQ(0, mirror_fail_leg(m_, 1, &error)) << (error ? error->message : "");
	ASSERT_TRUE(a.wait(std::chrono::seconds(2))) << "fail did not release the write";
	EXPECT_LT(a.at - start, std::chrono::seconds(1));
	EXPECT_EQ((ssize_t)kLen, a.result);
}

/* Close does not wait for a leg that never answers; the late answer then touches nothing. */
TEST_F(Failfast, CloseReturnsWhileALegStillHangs)
{
	ASSERT_NO_FATAL_FAILURE(open_with_timeout(200));
	hang(1, DMIO_FAULT_WRITE);
	std::vector<uint8_t> data = pattern(kLen, 9);
	Answer a;
	write_async(&a, &data, 5 * MiB);
	ASSERT_TRUE(a.wait(std::chrono::seconds(5)));
	auto start = std::chrono::steady_clock::now();
	close_mirror();
	EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
	/* The survivor recorded the failure: its superblock says leg 1 is failed. */
	EXPECT_EQ(1u, dmio_fault_held(files_[1].c_str()));
	dmio_fault_clear(files_[1].c_str());
	EXPECT_EQ(1u, dmio_fault_release(files_[1].c_str(), 0));
	threads_.back().join();
	threads_.pop_back();
	/*
	 * Reassemble: leg 1 is stale and catches up; the data is the survivor's.  The late
	 * answer closes leg 1's device (and lets go of its claim) on an engine thread: retry.
	 */
	io_timeout_ms_ = 0;
	auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
	int r;
	do {
		g_autoptr(GError) error = nullptr;
		r = open_mirror(&error);
		if (r == -EBUSY)
			std::this_thread::sleep_for(std::chrono::milliseconds(20));
	} while (r == -EBUSY && std::chrono::steady_clock::now() < until);
	ASSERT_EQ(0, r);
	std::vector<uint8_t> back(kLen);
	EXPECT_EQ((ssize_t)kLen, mirror_read_wait(m_, back.data(), kLen, 5 * MiB));
	EXPECT_TRUE(same_bytes(data, back));
	/* (It may be in sync again already: the bitmap's regions are few.) */
	EXPECT_EQ(1u, count_events("StaleLegRejected", 1))
	    << "the failure was not recorded on the survivor\n"
	    << dump_events();
}

/* A leg whose oldest I/O is past half its io-timeout shows as slow, and not once it answered. */
TEST_F(Failfast, ASlowLegShowsAsSlow)
{
	ASSERT_NO_FATAL_FAILURE(open_with_timeout(3000));
	hang(1, DMIO_FAULT_WRITE);
	std::vector<uint8_t> data = pattern(kLen, 10);
	Answer a;
	write_async(&a, &data, 6 * MiB);
	ASSERT_NO_FATAL_FAILURE(wait_held(1));
	leg_status st;
	auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
	do {
		std::this_thread::sleep_for(std::chrono::milliseconds(50));
		mirror_leg_status(m_, 1, &st);
	} while (!st.slow && std::chrono::steady_clock::now() < until);
	EXPECT_TRUE(st.slow);
	EXPECT_GE(st.busy_ms, 1500u);
	EXPECT_EQ(3000u, st.io_timeout_ms);
	EXPECT_EQ(LEG_IN_SYNC, st.state);
	dmio_fault_clear(files_[1].c_str());
	EXPECT_EQ(1u, dmio_fault_release(files_[1].c_str(), 0));
	ASSERT_TRUE(a.wait(std::chrono::seconds(2)));
	EXPECT_EQ((ssize_t)kLen, a.result);
	until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
	do {
		std::this_thread::sleep_for(std::chrono::milliseconds(50));
		mirror_leg_status(m_, 1, &st);
	} while (st.slow && std::chrono::steady_clock::now() < until);
	EXPECT_FALSE(st.slow);
	EXPECT_EQ(LEG_IN_SYNC, st.state);
}

/* The last in-sync leg is waited for, never failed: failing it would fail every request. */
TEST_F(Failfast, TheLastInSyncLegIsWaitedFor)
{
	ASSERT_NO_FATAL_FAILURE(open_with_timeout(200));
	g_autoptr(GError) error = nullptr;
	ASSERT_EQ(0, mirror_fail_leg(m_, 0, &error));
	hang(1, DMIO_FAULT_WRITE);
	std::vector<uint8_t> data = pattern(kLen, 11);
	Answer a;
	write_async(&a, &data, 2 * MiB);
	EXPECT_FALSE(a.wait(std::chrono::milliseconds(800))) << "answered without its last leg";
	EXPECT_EQ(LEG_IN_SYNC, state(1));
	EXPECT_EQ(1u, count_events("LegSlow", 1)) << dump_events();
	dmio_fault_clear(files_[1].c_str());
	EXPECT_EQ(1u, dmio_fault_release(files_[1].c_str(), 0));
	ASSERT_TRUE(a.wait(std::chrono::seconds(2)));
	EXPECT_EQ((ssize_t)kLen, a.result);
}

/* set io-timeout: one leg, then every leg. */
TEST_F(Failfast, TheTimeoutIsSetAtRunTime)
{
	ASSERT_NO_FATAL_FAILURE(open_with_timeout(0));
	leg_status st;
	EXPECT_EQ(0, mirror_set_io_timeout(m_, 1, 1500));
	mirror_leg_status(m_, 1, &st);
	EXPECT_EQ(1500u, st.io_timeout_ms);
	mirror_leg_status(m_, 0, &st);
	EXPECT_EQ(0u, st.io_timeout_ms);
	EXPECT_EQ(0, mirror_set_io_timeout(m_, -1, 250));
	for (unsigned i = 0; i < 2; i++) {
		mirror_leg_status(m_, i, &st);
		EXPECT_EQ(250u, st.io_timeout_ms);
	}
	EXPECT_EQ(-EINVAL, mirror_set_io_timeout(m_, 2, 250));
	/* And it works: a hang is now caught. */
	hang(0, DMIO_FAULT_WRITE);
	std::vector<uint8_t> data = pattern(kLen, 12);
	Answer a;
	write_async(&a, &data, 0);
	ASSERT_TRUE(a.wait(std::chrono::seconds(3)));
	EXPECT_EQ(LEG_FAILED, state(0));
}

} /* namespace */
