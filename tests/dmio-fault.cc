/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fault-injecting device kind (src/dmio/dev-fault.c): "fault:PATH" over a real file, driven
 * through the public dmio() calls on each engine.  Every rule kind (fail reads, writes or
 * flushes of a range with an errno, once, N times, always or at a seeded rate; delay; hang),
 * a hang released with success and with an error (its buffer untouched while held), rules
 * cleared, the control file PATH.fault, and the FUSEMIRROR_TEST_DEVICES gate.
 */
#include "test-util.h"

#include "dmio/dev-fault.h"

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

using namespace dmio_test;

namespace
{

constexpr uint64_t kLegSize = 1024 * 1024;
constexpr uint64_t kBlock = 4096;
constexpr uint64_t kBlockSectors = kBlock / DMIO_SECTOR_SIZE;

/* The kind opens only with the variable set: set it before any test runs. */
const bool kTestDevicesAllowed = setenv("FUSEMIRROR_TEST_DEVICES", "1", 1) == 0;

/* An asynchronous dmio() in flight, its outcome waited for later. */
struct AsyncIo {
	Completion done;
	int region_error = kUnsetRegionError;
	int ret = 0;
};

class Fault : public DefaultClientTest, public ::testing::WithParamInterface<Engine>
{
      protected:
	void SetUp() override
	{
		DefaultClientTest::SetUp();
		if (IsSkipped() || HasFatalFailure())
			return;
		ASSERT_TRUE(kTestDevicesAllowed);
		DMIO_REQUIRE_CLIENT(GetParam(), client_);
		leg_ = tmp_ / "leg";
		original_ = pattern(kLegSize, 7);
		write_file(leg_, original_);
		ASSERT_EQ(0, open_dev("fault:" + leg_, 0, &dev_)) << "fault:" << leg_;
	}
	void TearDown() override
	{
		/* Nothing may stay held when the client goes away. */
		dmio_fault_clear(leg_.c_str());
		unlink((leg_ + ".fault").c_str());
		dmio_fault_release(leg_.c_str(), EIO);
		DefaultClientTest::TearDown();
	}

	int add(unsigned ops, dmio_fault_action action, uint64_t offset, uint64_t length,
		int error = 0, uint64_t times = 0)
	{
		dmio_fault_rule rule = {};
		rule.ops = ops;
		rule.offset = offset;
		rule.length = length;
		rule.action = action;
		rule.error = error;
		rule.times = times;
		int id = dmio_fault_add(leg_.c_str(), &rule);
		EXPECT_GT(id, 0) << "dmio_fault_add";
		return id;
	}

	/* A synchronous call on one region of the fault device: the region's errno (0: success). */
	int sync_io(dmio_op op, uint64_t sector, uint64_t count, Memory *mem, unsigned flags = 0)
	{
		IoOutcome o = run_io(Call::DmioSync, client_.get(), op, mem,
				     {{dev_.get(), sector, count}}, flags);
		EXPECT_EQ(o.region_errors[0] != 0, o.bits == 1) << "bitset and region errors agree";
		return o.region_errors[0];
	}
	int read_block(uint64_t block, std::vector<uint8_t> *out = nullptr)
	{
		Memory mem(MemKind::Vm, kBlock);
		mem.fill_byte(0xee);
		int err = sync_io(DMIO_READ, block * kBlockSectors, kBlockSectors, &mem);
		if (out != nullptr)
			*out = mem.contents();
		return err;
	}
	int write_block(uint64_t block, uint32_t seed)
	{
		Memory mem(MemKind::Vm, kBlock);
		mem.fill(pattern(kBlock, seed));
		return sync_io(DMIO_WRITE, block * kBlockSectors, kBlockSectors, &mem);
	}
	int flush()
	{
		return sync_io(DMIO_FLUSH, 0, 0, nullptr);
	}
	std::vector<uint8_t> original_block(uint64_t block) const
	{
		return std::vector<uint8_t>(original_.begin() + block * kBlock,
					    original_.begin() + (block + 1) * kBlock);
	}
	std::vector<uint8_t> leg_block(uint64_t block) const
	{
		return read_at(leg_, block * kBlock, kBlock);
	}

	void start(AsyncIo *io, dmio_op op, uint64_t block, Memory *mem)
	{
		dmio_request req = {};
		req.op = op;
		req.mem = mem->desc();
		req.notify.fn = &Completion::notify;
		req.notify.context = &io->done;
		req.client = client_.get();
		req.region_errors = &io->region_error;
		dmio_region where = {dev_.get(), block * kBlockSectors, kBlockSectors};
		io->ret = dmio(&req, 1, &where, nullptr);
		ASSERT_EQ(0, io->ret) << "dmio";
	}
	/* Wait (bounded) until n operations of the leg are held. */
	void wait_held(unsigned n)
	{
		auto until = std::chrono::steady_clock::now() + completion_timeout();
		while (dmio_fault_held(leg_.c_str()) < n &&
		       std::chrono::steady_clock::now() < until)
			std::this_thread::sleep_for(std::chrono::milliseconds(5));
		ASSERT_EQ(n, dmio_fault_held(leg_.c_str())) << "operations held";
	}
	/* Replace the control file (a new inode, so the change is seen however fast it comes). */
	void control(const std::string &text)
	{
		std::string tmp = leg_ + ".fault.new";
		FILE *f = fopen(tmp.c_str(), "w");
		ASSERT_NE(nullptr, f);
		fputs(text.c_str(), f);
		fclose(f);
		ASSERT_EQ(0, rename(tmp.c_str(), (leg_ + ".fault").c_str()));
	}

	Client client_;
	Dev dev_;
	std::string leg_;
	std::vector<uint8_t> original_;
};

std::string engine_param_name(const ::testing::TestParamInfo<Engine> &info)
{
	return engine_name(info.param);
}

/* ---- Passing through --------------------------------------------------------------------------
 */

TEST_P(Fault, WithoutRulesEveryOperationReachesTheFile)
{
	EXPECT_EQ(kLegSize / DMIO_SECTOR_SIZE, dmio_dev_sectors(dev_.get()));
	std::vector<uint8_t> got;
	EXPECT_EQ(0, read_block(3, &got));
	EXPECT_TRUE(same_bytes(original_block(3), got));
	EXPECT_EQ(0, write_block(5, 55));
	EXPECT_EQ(0, flush());
	EXPECT_TRUE(same_bytes(pattern(kBlock, 55), leg_block(5)));
	EXPECT_EQ(0, sync_io(DMIO_WRITE_ZEROES, 6 * kBlockSectors, kBlockSectors, nullptr));
	EXPECT_TRUE(all_bytes_are(leg_block(6), 0));
}

/* ---- Failing ------------------------------------------------------------------------------- */

/* A read rule fails reads overlapping its range with its errno, and nothing else. */
TEST_P(Fault, FailReadsOfARange)
{
	add(DMIO_FAULT_READ, DMIO_FAULT_FAIL, 2 * kBlock + 512, 512, ENOSPC);
	std::vector<uint8_t> got;
	EXPECT_EQ(0, read_block(1, &got)) << "before the range";
	EXPECT_TRUE(same_bytes(original_block(1), got));
	EXPECT_EQ(0, read_block(3, &got)) << "after the range";
	EXPECT_EQ(ENOSPC, read_block(2)) << "overlapping the range";
	EXPECT_EQ(ENOSPC, read_block(2)) << "always";
	EXPECT_EQ(0, write_block(2, 22)) << "a read rule leaves writes alone";
	EXPECT_TRUE(same_bytes(pattern(kBlock, 22), leg_block(2)));
}

/* A write rule with times = 2 fails two writes, which never reach the file, then no more. */
TEST_P(Fault, FailWritesNTimes)
{
	int id = add(DMIO_FAULT_WRITE, DMIO_FAULT_FAIL, 0, 0, EIO, 2);
	EXPECT_EQ(EIO, write_block(4, 1));
	EXPECT_EQ(EIO, write_block(9, 2));
	EXPECT_EQ(2u, dmio_fault_fired(id));
	EXPECT_TRUE(same_bytes(original_block(4), leg_block(4))) << "a failed write is not written";
	EXPECT_TRUE(same_bytes(original_block(9), leg_block(9)));
	EXPECT_EQ(0, write_block(4, 3)) << "the third write";
	EXPECT_TRUE(same_bytes(pattern(kBlock, 3), leg_block(4)));
	EXPECT_EQ(0, read_block(4)) << "reads were never affected";
	EXPECT_EQ(2u, dmio_fault_fired(id));
}

/* A flush rule fails flushes (whatever their range) and FUA writes' flushes, not writes. */
TEST_P(Fault, FailFlushesOnce)
{
	int id = add(DMIO_FAULT_FLUSH, DMIO_FAULT_FAIL, 0, 0, EIO, 1);
	EXPECT_EQ(0, write_block(0, 1));
	EXPECT_EQ(EIO, flush());
	EXPECT_EQ(0, flush()) << "once";
	EXPECT_EQ(1u, dmio_fault_fired(id));
	add(DMIO_FAULT_FLUSH, DMIO_FAULT_FAIL, 0, 0, ETIMEDOUT);
	EXPECT_EQ(ETIMEDOUT, flush());
	EXPECT_EQ(0, write_block(1, 2));
}

/* At a rate, about that share of matching operations fails, and the seed decides which. */
TEST_P(Fault, FailAtASeededRate)
{
	auto run = [this](uint64_t seed) {
		dmio_fault_rule rule = {};
		rule.ops = DMIO_FAULT_READ;
		rule.action = DMIO_FAULT_FAIL;
		rule.error = EIO;
		rule.rate_ppm = 250000;
		rule.seed = seed;
		dmio_fault_clear(leg_.c_str());
		EXPECT_GT(dmio_fault_add(leg_.c_str(), &rule), 0);
		std::vector<bool> failed;
		for (unsigned i = 0; i < 200; i++)
			failed.push_back(read_block(i % (kLegSize / kBlock)) != 0);
		return failed;
	};
	std::vector<bool> a = run(1), b = run(1), c = run(2);
	size_t failures = std::count(a.begin(), a.end(), true);
	EXPECT_GE(failures, 25u) << "about 50 of 200";
	EXPECT_LE(failures, 80u) << "about 50 of 200";
	EXPECT_EQ(a, b) << "the same seed fails the same operations";
	EXPECT_NE(a, c) << "another seed fails others";
}

/* ---- Delay --------------------------------------------------------------------------------- */

TEST_P(Fault, DelayOperationsOfARange)
{
	dmio_fault_rule rule = {};
	rule.ops = DMIO_FAULT_WRITE;
	rule.offset = 8 * kBlock;
	rule.length = kBlock;
	rule.action = DMIO_FAULT_DELAY;
	rule.delay_us = 300 * 1000;
	ASSERT_GT(dmio_fault_add(leg_.c_str(), &rule), 0);
	auto t0 = std::chrono::steady_clock::now();
	EXPECT_EQ(0, write_block(8, 88));
	auto took = std::chrono::steady_clock::now() - t0;
	EXPECT_GE(took, std::chrono::milliseconds(300)) << "the write waited";
	EXPECT_TRUE(same_bytes(pattern(kBlock, 88), leg_block(8))) << "then reached the file";
	t0 = std::chrono::steady_clock::now();
	EXPECT_EQ(0, read_block(8)) << "a write rule does not delay reads";
	EXPECT_EQ(0, write_block(9, 99)) << "nor writes elsewhere";
	EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300));
}

/* ---- Hang ------------------------------------------------------------------------------------ */

/*
 * A hung read leaves its buffer alone and does not complete until released; released with
 * success it reads the file.
 */
TEST_P(Fault, HungReadReleasedWithSuccess)
{
	add(DMIO_FAULT_READ, DMIO_FAULT_HANG, 0, 0);
	Memory mem(MemKind::Vm, kBlock);
	mem.fill_byte(0xee);
	AsyncIo io;
	ASSERT_NO_FATAL_FAILURE(start(&io, DMIO_READ, 5, &mem));
	ASSERT_NO_FATAL_FAILURE(wait_held(1));
	EXPECT_FALSE(io.done.wait(std::chrono::milliseconds(200))) << "completed while hung";
	EXPECT_TRUE(all_bytes_are(mem.contents(), 0xee)) << "the buffer is touched while hung";
	/* The rule stays: release only lets the held one go. */
	EXPECT_EQ(1u, dmio_fault_release(leg_.c_str(), 0));
	ASSERT_TRUE(io.done.wait()) << "never completed after its release";
	EXPECT_EQ(0ul, io.done.error());
	EXPECT_EQ(0, io.region_error);
	EXPECT_TRUE(same_bytes(original_block(5), mem.contents()));
	EXPECT_TRUE(mem.guards_intact());
	EXPECT_EQ(0u, dmio_fault_held(leg_.c_str()));
}

/* A hung write does not reach the file while held; released with an error it never does. */
TEST_P(Fault, HungWriteReleasedWithAnError)
{
	add(DMIO_FAULT_WRITE, DMIO_FAULT_HANG, 7 * kBlock, kBlock, 0, 1);
	Memory mem(MemKind::Vm, kBlock);
	mem.fill(pattern(kBlock, 77));
	AsyncIo io;
	ASSERT_NO_FATAL_FAILURE(start(&io, DMIO_WRITE, 7, &mem));
	ASSERT_NO_FATAL_FAILURE(wait_held(1));
	EXPECT_EQ(0, write_block(6, 66)) << "another range is not held";
	EXPECT_FALSE(io.done.wait(std::chrono::milliseconds(200))) << "completed while hung";
	EXPECT_TRUE(same_bytes(original_block(7), leg_block(7))) << "written while hung";
	EXPECT_TRUE(same_bytes(pattern(kBlock, 77), mem.contents())) << "buffer changed";
	EXPECT_EQ(1u, dmio_fault_release(leg_.c_str(), EIO));
	ASSERT_TRUE(io.done.wait()) << "never completed after its release";
	EXPECT_EQ(1ul, io.done.error());
	EXPECT_EQ(EIO, io.region_error);
	EXPECT_TRUE(same_bytes(original_block(7), leg_block(7))) << "written after an error";
	EXPECT_EQ(0, write_block(7, 78)) << "times = 1: the next write is not held";
	EXPECT_TRUE(same_bytes(pattern(kBlock, 78), leg_block(7)));
}

/* Released with success, a hung write reaches the file. */
TEST_P(Fault, HungWriteReleasedWithSuccess)
{
	add(DMIO_FAULT_WRITE, DMIO_FAULT_HANG, 0, 0);
	Memory mem(MemKind::Vm, kBlock);
	mem.fill(pattern(kBlock, 11));
	AsyncIo io;
	ASSERT_NO_FATAL_FAILURE(start(&io, DMIO_WRITE, 1, &mem));
	ASSERT_NO_FATAL_FAILURE(wait_held(1));
	EXPECT_EQ(0u, dmio_fault_release("/no/such/target", 0)) << "another target";
	EXPECT_TRUE(same_bytes(original_block(1), leg_block(1)));
	EXPECT_EQ(1u, dmio_fault_release(leg_.c_str(), 0));
	ASSERT_TRUE(io.done.wait());
	EXPECT_EQ(0ul, io.done.error());
	EXPECT_TRUE(same_bytes(pattern(kBlock, 11), leg_block(1)));
}

/* ---- Clearing, the API's checks, the gate -------------------------------------------------- */

TEST_P(Fault, ClearedRulesNoLongerFire)
{
	int id = add(DMIO_FAULT_ALL, DMIO_FAULT_FAIL, 0, 0, EIO);
	EXPECT_EQ(EIO, read_block(0));
	EXPECT_EQ(EIO, write_block(0, 1));
	dmio_fault_clear("/some/other/leg");
	EXPECT_EQ(EIO, flush()) << "clearing another target's rules";
	dmio_fault_clear(leg_.c_str());
	EXPECT_EQ(0u, dmio_fault_fired(id)) << "the rule is gone";
	EXPECT_EQ(0, read_block(0));
	EXPECT_EQ(0, write_block(0, 1));
	EXPECT_EQ(0, flush());
	add(DMIO_FAULT_READ, DMIO_FAULT_FAIL, 0, 0, EIO);
	dmio_fault_clear(nullptr);
	EXPECT_EQ(0, read_block(0)) << "clear(NULL) clears every target";
}

TEST_P(Fault, BadRulesAreRefused)
{
	dmio_fault_rule rule = {};
	rule.ops = DMIO_FAULT_READ;
	rule.action = DMIO_FAULT_FAIL;
	EXPECT_EQ(-EINVAL, dmio_fault_add(leg_.c_str(), &rule)) << "a failure without an errno";
	rule.error = EIO;
	rule.ops = 0;
	EXPECT_EQ(-EINVAL, dmio_fault_add(leg_.c_str(), &rule)) << "no operations";
	rule.ops = DMIO_FAULT_READ;
	rule.rate_ppm = 1000001;
	EXPECT_EQ(-EINVAL, dmio_fault_add(leg_.c_str(), &rule)) << "a rate above one";
	rule.rate_ppm = 0;
	EXPECT_EQ(-EINVAL, dmio_fault_add("", &rule)) << "no target";
	EXPECT_EQ(0, read_block(0)) << "nothing was added";
}

TEST_P(Fault, OpensOnlyWithTestDevicesAllowed)
{
	Dev other;
	ASSERT_EQ(0, unsetenv("FUSEMIRROR_TEST_DEVICES"));
	int r = open_dev("fault:" + leg_, 0, &other);
	ASSERT_EQ(0, setenv("FUSEMIRROR_TEST_DEVICES", "1", 1));
	EXPECT_EQ(-EPERM, r);
	EXPECT_EQ(-ENOENT, open_dev("fault:" + tmp_ / "missing", 0, &other));
	EXPECT_EQ(-EINVAL, open_dev("fault:", 0, &other));
}

/* ---- The control file ------------------------------------------------------------------------ */

TEST_P(Fault, ControlFile)
{
	ASSERT_NO_FATAL_FAILURE(control("# a comment\n"
					"fail read 8192+4096 error=ENOSPC\n"
					"fail write,flush * error=EIO times=1\n"));
	EXPECT_EQ(0, read_block(1));
	EXPECT_EQ(ENOSPC, read_block(2));
	EXPECT_EQ(EIO, write_block(3, 3));
	EXPECT_EQ(0, flush()) << "times=1 was used by the write";

	/* A new file replaces the old rules: a hang, released by the file's "release". */
	ASSERT_NO_FATAL_FAILURE(control("hang write 0+4096\n"));
	EXPECT_EQ(0, read_block(2)) << "the old rules are gone";
	Memory mem(MemKind::Vm, kBlock);
	mem.fill(pattern(kBlock, 44));
	AsyncIo io;
	ASSERT_NO_FATAL_FAILURE(start(&io, DMIO_WRITE, 0, &mem));
	ASSERT_NO_FATAL_FAILURE(wait_held(1));
	EXPECT_FALSE(io.done.wait(std::chrono::milliseconds(150)));
	ASSERT_NO_FATAL_FAILURE(control("release error=EIO\nhang write 0+4096\n"));
	ASSERT_TRUE(io.done.wait()) << "the control file's release did not release it";
	EXPECT_EQ(EIO, io.region_error);
	EXPECT_TRUE(same_bytes(original_block(0), leg_block(0)));

	AsyncIo again;
	ASSERT_NO_FATAL_FAILURE(start(&again, DMIO_WRITE, 0, &mem));
	ASSERT_NO_FATAL_FAILURE(wait_held(1));
	ASSERT_NO_FATAL_FAILURE(control("release\n"));
	ASSERT_TRUE(again.done.wait());
	EXPECT_EQ(0, again.region_error) << "release without error= lets it through";
	EXPECT_TRUE(same_bytes(pattern(kBlock, 44), leg_block(0)));

	ASSERT_NO_FATAL_FAILURE(control("delay read * ms=250\n"));
	auto t0 = std::chrono::steady_clock::now();
	EXPECT_EQ(0, read_block(0));
	EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(250));

	/* Without the file, no rules. */
	ASSERT_EQ(0, unlink((leg_ + ".fault").c_str()));
	t0 = std::chrono::steady_clock::now();
	EXPECT_EQ(0, read_block(0));
	EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(250));
}

/* A bad line is skipped (with a warning naming file and line); the good ones apply. */
TEST_P(Fault, ControlFileBadLinesAreSkipped)
{
	ASSERT_NO_FATAL_FAILURE(control("explode read *\n"
					"fail read 0+0\n"
					"fail read * error=EWHAT\n"
					"fail sideways *\n"
					"fail read 4096+4096 error=EROFS\n"));
	EXPECT_EQ(0, read_block(0)) << "none of the bad lines applies";
	EXPECT_EQ(EROFS, read_block(1));
}

INSTANTIATE_TEST_SUITE_P(Engines, Fault, ::testing::Values(Engine::Threads, Engine::IoUring),
			 engine_param_name);

} // namespace
