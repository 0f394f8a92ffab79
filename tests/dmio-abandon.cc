/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Outstanding I/O and giving up on it (src/dmio/abandon.c): dmio_dev_busy_ns() ages the oldest
 * started region; dmio_dev_abandon() finishes a hung region with its errno so that the call
 * completes on its other regions, while the hung region keeps the call's memory until its
 * device answers (notify.release; a synchronous call is bounced), its late answer changes
 * nothing, a close or client destroy meanwhile is put off, and a caller stuck running a region
 * inline does not keep the call's other regions from running.  On real files behind the
 * fault-injecting kind, whose hangs the test releases, on each engine.
 */
#include "test-util.h"

#include "dmio/dev-fault.h"

#include <atomic>
#include <cstdlib>
#include <unistd.h>

using namespace dmio_test;

namespace
{

constexpr uint64_t kLegSize = 1024 * 1024;
constexpr uint64_t kBlock = 4096;
constexpr uint64_t kBlockSectors = kBlock / DMIO_SECTOR_SIZE;

const bool kTestDevicesAllowed = setenv("FUSEMIRROR_TEST_DEVICES", "1", 1) == 0;

/* An asynchronous call: its notify and its release, counted. */
struct Call2 {
	Completion done;
	std::atomic<int> released{0};
	int region_errors[2] = {kUnsetRegionError, kUnsetRegionError};

	static void release(void *context)
	{
		static_cast<Call2 *>(context)->released++;
	}
};

/* The Completion's context is the Call2 itself: done is its first member. */
static void notify(unsigned long error, void *context)
{
	Completion::notify(error, &static_cast<Call2 *>(context)->done);
}

class Abandon : public DefaultClientTest, public ::testing::WithParamInterface<Engine>
{
      protected:
	void SetUp() override
	{
		DefaultClientTest::SetUp();
		if (IsSkipped() || HasFatalFailure())
			return;
		ASSERT_TRUE(kTestDevicesAllowed);
		DMIO_REQUIRE_CLIENT(GetParam(), client_);
		for (int i = 0; i < 2; i++) {
			legs_[i] = tmp_ / ("leg" + std::to_string(i));
			write_file(legs_[i], pattern(kLegSize, 7 + i));
			ASSERT_EQ(0, open_dev("fault:" + legs_[i], 0, &devs_[i]));
		}
	}
	void TearDown() override
	{
		for (auto &leg : legs_) {
			dmio_fault_clear(leg.c_str());
			dmio_fault_release(leg.c_str(), EIO);
		}
		for (auto &t : threads_)
			t.join();
		DefaultClientTest::TearDown();
	}

	void hang(int leg, unsigned ops)
	{
		dmio_fault_rule rule = {};
		rule.ops = ops;
		rule.action = DMIO_FAULT_HANG;
		ASSERT_GT(dmio_fault_add(legs_[leg].c_str(), &rule), 0);
	}
	void wait_held(int leg, unsigned n)
	{
		auto until = std::chrono::steady_clock::now() + completion_timeout();
		while (dmio_fault_held(legs_[leg].c_str()) < n &&
		       std::chrono::steady_clock::now() < until)
			std::this_thread::sleep_for(std::chrono::milliseconds(2));
		ASSERT_EQ(n, dmio_fault_held(legs_[leg].c_str()));
	}
	/* An async write of block to both legs. */
	int write_both(Call2 *c, Memory *mem, uint64_t block, unsigned flags)
	{
		dmio_request req = {};
		req.op = DMIO_WRITE;
		req.flags = flags;
		req.mem = mem->desc();
		req.notify.fn = notify;
		req.notify.context = c;
		req.notify.release = Call2::release;
		req.client = client_.get();
		req.region_errors = c->region_errors;
		dmio_region where[2] = {{devs_[0].get(), block * kBlockSectors, kBlockSectors},
					{devs_[1].get(), block * kBlockSectors, kBlockSectors}};
		return dmio(&req, 2, where, nullptr);
	}
	/* A write of block to both legs, hung on leg 0 and abandoned there: c is notified. */
	void abandon_a_hung_write(Call2 *c, Memory *mem, uint64_t block)
	{
		hang(0, DMIO_FAULT_WRITE);
		mem->fill(pattern(kBlock, (uint32_t)block));
		ASSERT_EQ(0, write_both(c, mem, block, DMIO_REQ_ABANDONABLE));
		ASSERT_NO_FATAL_FAILURE(wait_held(0, 1));
		EXPECT_EQ(1u, dmio_dev_abandon(devs_[0].get(), ETIMEDOUT));
		ASSERT_TRUE(c->done.wait());
	}
	void wait_released(Call2 *c)
	{
		auto until = std::chrono::steady_clock::now() + completion_timeout();
		while (c->released.load() == 0 && std::chrono::steady_clock::now() < until)
			std::this_thread::sleep_for(std::chrono::milliseconds(2));
	}
	std::vector<uint8_t> leg_block(int leg, uint64_t block) const
	{
		return read_at(legs_[leg], block * kBlock, kBlock);
	}

	Client client_;
	Dev devs_[2];
	std::string legs_[2];
	std::vector<std::thread> threads_;
};

std::string engine_param_name(const ::testing::TestParamInfo<Engine> &info)
{
	return engine_name(info.param);
}

/* The busy age is that of the oldest started region, and only while it is outstanding. */
TEST_P(Abandon, BusyAgesTheOldestOutstandingRegion)
{
	unsigned outstanding = 99;
	EXPECT_EQ(0u, dmio_dev_busy_ns(devs_[0].get(), &outstanding));
	EXPECT_EQ(0u, outstanding);
	hang(0, DMIO_FAULT_WRITE);
	Memory mem(MemKind::Vm, kBlock);
	mem.fill(pattern(kBlock, 1));
	Call2 c;
	ASSERT_EQ(0, write_both(&c, &mem, 3, 0));
	ASSERT_NO_FATAL_FAILURE(wait_held(0, 1));
	std::this_thread::sleep_for(std::chrono::milliseconds(50));
	uint64_t busy = dmio_dev_busy_ns(devs_[0].get(), &outstanding);
	EXPECT_GE(busy, 40u * 1000 * 1000) << "the hung region's age";
	EXPECT_EQ(1u, outstanding);
	EXPECT_EQ(0u, dmio_dev_busy_ns(devs_[1].get(), &outstanding)) << "the other leg answered";
	EXPECT_EQ(0u, dmio_dev_abandon(devs_[0].get(), ETIMEDOUT)) << "not abandonable";
	EXPECT_EQ(1u, dmio_fault_release(legs_[0].c_str(), 0));
	ASSERT_TRUE(c.done.wait());
	EXPECT_EQ(0ul, c.done.error());
	wait_released(&c);
	EXPECT_EQ(1, c.released.load()) << "released after the notify";
	EXPECT_EQ(0u, dmio_dev_busy_ns(devs_[0].get(), &outstanding));
	EXPECT_EQ(0u, outstanding);
}

/*
 * A hung region abandoned: the call completes with its errno, the other leg has the data, the
 * memory stays the device's until it answers, and its late answer changes nothing.
 */
TEST_P(Abandon, AHungRegionAbandonedCompletesTheCallAndKeepsItsMemory)
{
	hang(0, DMIO_FAULT_WRITE);
	Memory mem(MemKind::Vm, kBlock);
	mem.fill(pattern(kBlock, 2));
	Call2 c;
	ASSERT_EQ(0, write_both(&c, &mem, 4, DMIO_REQ_ABANDONABLE));
	ASSERT_NO_FATAL_FAILURE(wait_held(0, 1));
	EXPECT_FALSE(c.done.wait(std::chrono::milliseconds(50))) << "completed while hung";
	EXPECT_EQ(1u, dmio_dev_abandon(devs_[0].get(), ETIMEDOUT));
	ASSERT_TRUE(c.done.wait()) << "the abandon did not complete the call";
	EXPECT_EQ(1ul, c.done.error()) << "region 0 failed, region 1 did not";
	EXPECT_EQ(ETIMEDOUT, c.region_errors[0]);
	EXPECT_EQ(0, c.region_errors[1]);
	EXPECT_TRUE(same_bytes(pattern(kBlock, 2), leg_block(1, 4)));
	EXPECT_EQ(0, c.released.load()) << "released while the hung region still holds the memory";
	EXPECT_EQ(1u, dmio_dev_abandoned(devs_[0].get()));
	EXPECT_EQ(0u, dmio_dev_busy_ns(devs_[0].get(), nullptr)) << "abandoned regions do not age";
	EXPECT_EQ(0u, dmio_dev_abandon(devs_[0].get(), ETIMEDOUT)) << "abandoned twice";

	/* The device answers late, with success: nothing changes but the release. */
	EXPECT_EQ(1u, dmio_fault_release(legs_[0].c_str(), 0));
	wait_released(&c);
	EXPECT_EQ(1, c.released.load());
	EXPECT_EQ(1, c.done.calls()) << "notified twice";
	EXPECT_EQ(ETIMEDOUT, c.region_errors[0]) << "the late answer changed the outcome";
	EXPECT_EQ(0u, dmio_dev_abandoned(devs_[0].get()));
}

/*
 * The caller runs the regions itself (DMIO_REQ_CALLER_RUNS, cheap devices: one after the
 * other) and is stuck in the hung one: the abandon still gets the other region written.
 */
TEST_P(Abandon, ACallerStuckInAHungRegionDoesNotHoldUpTheOthers)
{
	Memory warm(MemKind::Vm, kBlock);
	warm.fill(pattern(kBlock, 3));
	/* Make both devices cheap, so the caller would run region 1 after region 0. */
	for (int i = 0; i < 20; i++) {
		Call2 w;
		ASSERT_EQ(0, write_both(&w, &warm, 9, DMIO_REQ_CALLER_RUNS));
		ASSERT_TRUE(w.done.wait());
		wait_released(&w); /* it runs after the notify, and w goes */
	}
	hang(0, DMIO_FAULT_WRITE);
	Memory mem(MemKind::Vm, kBlock);
	mem.fill(pattern(kBlock, 4));
	Call2 c;
	std::atomic<bool> returned{false};
	threads_.emplace_back([&] {
		EXPECT_EQ(0, write_both(&c, &mem, 5, DMIO_REQ_CALLER_RUNS | DMIO_REQ_ABANDONABLE));
		returned = true;
	});
	ASSERT_NO_FATAL_FAILURE(wait_held(0, 1));
	EXPECT_EQ(1u, dmio_dev_abandon(devs_[0].get(), ETIMEDOUT));
	ASSERT_TRUE(c.done.wait()) << "the other region never ran";
	EXPECT_EQ(1ul, c.done.error());
	EXPECT_TRUE(same_bytes(pattern(kBlock, 4), leg_block(1, 5)));
	EXPECT_EQ(0, c.released.load());
	EXPECT_EQ(1u, dmio_fault_release(legs_[0].c_str(), EIO));
	threads_.back().join();
	threads_.pop_back();
	EXPECT_TRUE(returned.load());
	wait_released(&c); /* the rescuer may let go last */
	EXPECT_EQ(1, c.released.load());
	EXPECT_EQ(ETIMEDOUT, c.region_errors[0]);
}

/*
 * A synchronous abandonable call returns at the abandon, and the caller's memory is its own
 * again at once: what the device writes when it answers is the data of the call, not what the
 * caller put in its buffer since.
 */
TEST_P(Abandon, ASynchronousCallIsBouncedSoItsMemoryIsFreeAtOnce)
{
	hang(0, DMIO_FAULT_WRITE);
	Memory mem(MemKind::Vm, kBlock);
	mem.fill(pattern(kBlock, 5));
	int region_error = kUnsetRegionError;
	std::atomic<int> ret{1};
	threads_.emplace_back([&] {
		dmio_request req = {};
		req.op = DMIO_WRITE;
		req.flags = DMIO_REQ_ABANDONABLE;
		req.mem = mem.desc();
		req.client = client_.get();
		req.region_errors = &region_error;
		dmio_region where = {devs_[0].get(), 6 * kBlockSectors, kBlockSectors};
		ret = dmio(&req, 1, &where, nullptr);
	});
	ASSERT_NO_FATAL_FAILURE(wait_held(0, 1));
	EXPECT_EQ(1u, dmio_dev_abandon(devs_[0].get(), ECANCELED));
	threads_.back().join();
	threads_.pop_back();
	EXPECT_EQ(-EIO, ret.load());
	EXPECT_EQ(ECANCELED, region_error);
	mem.fill(pattern(kBlock, 6));
	EXPECT_EQ(1u, dmio_fault_release(legs_[0].c_str(), 0));
	auto until = std::chrono::steady_clock::now() + completion_timeout();
	while (dmio_dev_abandoned(devs_[0].get()) > 0 && std::chrono::steady_clock::now() < until)
		std::this_thread::sleep_for(std::chrono::milliseconds(2));
	EXPECT_TRUE(same_bytes(pattern(kBlock, 5), leg_block(0, 6)))
	    << "the late write did not use the call's own copy";
}

/* A region that waits (never started) is abandoned too, and then never runs. */
TEST_P(Abandon, AWaitingRegionAbandonedNeverRuns)
{
	hang(0, DMIO_FAULT_WRITE);
	Memory mem(MemKind::Vm, kBlock);
	mem.fill(pattern(kBlock, 8));
	/* The engine's threads are all held: the last call waits in the engine's queue. */
	std::vector<std::unique_ptr<Call2>> calls;
	for (int i = 0; i < 40; i++) {
		calls.push_back(std::make_unique<Call2>());
		dmio_request req = {};
		req.op = DMIO_WRITE;
		req.flags = DMIO_REQ_ABANDONABLE;
		req.mem = mem.desc();
		req.notify.fn = notify;
		req.notify.context = calls.back().get();
		req.notify.release = Call2::release;
		req.client = client_.get();
		req.region_errors = calls.back()->region_errors;
		dmio_region where = {devs_[0].get(), (uint64_t)(10 + i) * kBlockSectors,
				     kBlockSectors};
		ASSERT_EQ(0, dmio(&req, 1, &where, nullptr));
	}
	std::this_thread::sleep_for(std::chrono::milliseconds(100));
	unsigned held = dmio_fault_held(legs_[0].c_str());
	EXPECT_EQ(40u, dmio_dev_abandon(devs_[0].get(), ETIMEDOUT));
	for (auto &c : calls) {
		ASSERT_TRUE(c->done.wait());
		EXPECT_EQ(ETIMEDOUT, c->region_errors[0]);
	}
	dmio_fault_clear(legs_[0].c_str());
	EXPECT_EQ(held, dmio_fault_release(legs_[0].c_str(), 0));
	/* The ones that never ran are let go of by the engine's threads as they reach them. */
	for (auto &c : calls) {
		wait_released(c.get());
		EXPECT_EQ(1, c->released.load());
	}
	EXPECT_EQ(0u, dmio_dev_abandoned(devs_[0].get()));
	/* Only the held ones reached the file, with the hang's release; the rest never ran. */
	unsigned written = 0;
	for (int i = 0; i < 40; i++)
		written += same_bytes(pattern(kBlock, 8), leg_block(0, 10 + i));
	EXPECT_EQ(held, written);
}

/* A close of a device whose abandoned region still runs is done by that region's answer. */
TEST_P(Abandon, ACloseWhileAnAbandonedRegionRunsIsPutOff)
{
	Memory mem(MemKind::Vm, kBlock);
	Call2 c;
	ASSERT_NO_FATAL_FAILURE(abandon_a_hung_write(&c, &mem, 7));
	devs_[0].reset(); /* put off: the fault device still holds the write */
	EXPECT_EQ(1u, dmio_fault_release(legs_[0].c_str(), 0));
	wait_released(&c);
	EXPECT_EQ(1, c.released.load());
	/* ASan tells whether the answer touched a freed device. */
}

/* A client destroyed while a call is lent is freed by the call's last answer. */
TEST_P(Abandon, AClientDestroyWhileACallIsLentIsPutOff)
{
	Memory mem(MemKind::Vm, kBlock);
	Call2 c;
	ASSERT_NO_FATAL_FAILURE(abandon_a_hung_write(&c, &mem, 8));
	auto start = std::chrono::steady_clock::now();
	client_.reset();
	EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2))
	    << "the destroy waited for the hung region";
	EXPECT_EQ(1u, dmio_fault_release(legs_[0].c_str(), 0));
	wait_released(&c);
	EXPECT_EQ(1, c.released.load());
	/* Let the put-off destroy finish before LeakSanitizer looks. */
	std::this_thread::sleep_for(std::chrono::milliseconds(200));
}

INSTANTIATE_TEST_SUITE_P(Engines, Abandon, ::testing::Values(Engine::Threads, Engine::IoUring),
			 engine_param_name);

} /* namespace */
