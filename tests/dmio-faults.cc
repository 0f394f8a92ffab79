/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Real failures, not simulated ones: a region whose file lies on a full tmpfs (ENOSPC), a region
 * on a read-only loop device (EPERM), a region on a loop device over a full tmpfs, and a read that
 * runs into the end of a file truncated under the library's feet.  A failed region sets exactly
 * its bit, the others get the data, and a failed read leaves zeroes where it could not read.
 */
#include "test-util.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <sstream>

using namespace dmio_test;

namespace
{

constexpr uint64_t kGoodSize = 4 * 1024 * 1024;
constexpr uint64_t kWriteSectors = 4096; /* 2 MiB: more than the 1 MiB tmpfs holds */

struct FaultParam {
	Call call;
	MemKind kind;
	Engine engine;
	unsigned failing; /* index of the failing region among three */
};

/* gtest would print the raw bytes, padding included (valgrind: uninitialised). */
void PrintTo(const FaultParam &p, std::ostream *os)
{
	*os << call_name(p.call) << " " << mem_kind_name(p.kind) << " " << engine_name(p.engine)
	    << ", region " << p.failing << " fails";
}

std::string fault_name(const ::testing::TestParamInfo<FaultParam> &info)
{
	const FaultParam &p = info.param;
	std::ostringstream s;
	s << (is_seed(p.call) ? "default" : engine_name(p.engine)) << "_" << call_name(p.call)
	  << "_" << mem_kind_name(p.kind) << "_region" << p.failing << "fails";
	return sanitize_name(s.str());
}

std::vector<FaultParam> fault_params()
{
	std::vector<FaultParam> v = {
	    {Call::SeedSync, MemKind::Vm, Engine::Threads, 1},
	    {Call::SeedSync, MemKind::PageList, Engine::Threads, 1},
	    {Call::SeedAsync, MemKind::Bvec, Engine::Threads, 1},
	    {Call::SeedAsync, MemKind::Vm, Engine::Threads, 1},
	};
	for (Engine engine : {Engine::Threads, Engine::IoUring}) {
		for (unsigned failing = 0; failing < 3; failing++)
			v.push_back({Call::DmioSync, MemKind::Vm, engine, failing});
		v.push_back({Call::DmioSync, MemKind::Iovec, engine, 1});
		v.push_back({Call::DmioAsync, MemKind::PageList, engine, 1});
		v.push_back({Call::DmioAsync, MemKind::Vm, engine, 2});
	}
	return v;
}

/* What a write with one failed region must report. */
void expect_only_bit(const IoOutcome &o, Call call, unsigned failing, int expected_errno)
{
	if (is_async(call)) {
		EXPECT_EQ(0, o.ret) << "an async call returns 0 once submitted";
		EXPECT_EQ(1, o.notify_calls);
	} else {
		EXPECT_EQ(-EIO, o.ret) << "a sync call with a failed region returns -EIO";
	}
	EXPECT_EQ(1ul << failing, o.bits) << "exactly the failed region's bit";
	if (!is_seed(call)) {
		ASSERT_EQ(3u, o.region_errors.size());
		for (unsigned i = 0; i < 3; i++)
			EXPECT_EQ(i == failing ? expected_errno : 0, o.region_errors[i])
			    << "region_errors[" << i << "] (" << strerror(o.region_errors[i])
			    << ")";
	}
}

/* The two good 4 MiB files of a faulty write. */
class Targets
{
      public:
	void add_good(const TempDir &tmp, const std::string &name)
	{
		paths.push_back(tmp / name);
		images.push_back(pattern(kGoodSize, (uint32_t)paths.size()));
		write_file(paths.back(), images.back());
	}
	std::vector<std::string> paths;
	std::vector<std::vector<uint8_t>> images;
};

class Fault : public DefaultClientParamTest<FaultParam>
{
      protected:
	/* Write 2 MiB to the three devices, the one at p.failing failing with errno. */
	void write_and_check(dmio_dev *bad, int expected_errno)
	{
		const FaultParam &p = GetParam();
		Client client;
		if (!is_seed(p.call))
			DMIO_REQUIRE_CLIENT(p.engine, client);
		Targets good;
		good.add_good(tmp_, "good-a.img");
		good.add_good(tmp_, "good-b.img");
		Dev a, b;
		ASSERT_EQ(0, open_dev(good.paths[0], 0, &a));
		ASSERT_EQ(0, open_dev(good.paths[1], 0, &b));

		std::vector<dmio_region> where;
		std::vector<int> good_index;
		dmio_dev *goods[2] = {a.get(), b.get()};
		for (unsigned i = 0, g = 0; i < 3; i++) {
			if (i == p.failing) {
				where.push_back({bad, 0, kWriteSectors});
			} else {
				good_index.push_back((int)i);
				where.push_back({goods[g++], 0, kWriteSectors});
			}
		}
		std::vector<uint8_t> data = pattern(kWriteSectors * DMIO_SECTOR_SIZE, 42);
		Memory mem(p.kind, data.size());
		ASSERT_NO_FATAL_FAILURE(mem.fill(data));

		IoOutcome o = run_io(p.call, client.get(), DMIO_WRITE, &mem, where);
		expect_only_bit(o, p.call, p.failing, expected_errno);

		for (int g = 0; g < 2; g++) {
			std::vector<uint8_t> expected = good.images[g];
			std::copy(data.begin(), data.end(), expected.begin());
			EXPECT_TRUE(same_bytes(expected, read_at(good.paths[g], 0, kGoodSize)))
			    << "good region " << good_index[g] << " did not get the data";
		}
	}
};

TEST_P(Fault, FileOnFullTmpfsFailsOnlyItsRegion)
{
	Mount small;
	DMIO_REQUIRE_TMPFS(small, tmp_ / "small", "1M");
	/* Sparse: the device is big enough, the filesystem is not. */
	std::string bad_path = tmp_ / "small/bad.img";
	create_sparse(bad_path, 8 * 1024 * 1024);
	Dev bad;
	ASSERT_EQ(0, open_dev(bad_path, 0, &bad));
	write_and_check(bad.get(), ENOSPC);
}

/* BLKROSET on a device for the duration of a test (cleared again by the destructor). */
class ReadOnlyFlag
{
      public:
	~ReadOnlyFlag()
	{
		if (fd_ >= 0) {
			int zero = 0;
			ioctl(fd_, BLKROSET, &zero);
			close(fd_);
		}
	}
	int set(const std::string &path)
	{
		int one = 1;
		fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
		if (fd_ < 0 || ioctl(fd_, BLKROSET, &one) != 0)
			return errno;
		return 0;
	}

      private:
	int fd_ = -1;
};

TEST_P(Fault, ReadOnlyLoopDeviceFailsOnlyItsRegion)
{
	std::string backing = tmp_ / "ro-loop.img";
	create_sparse(backing, 4 * 1024 * 1024);
	LoopDevice loop;
	DMIO_REQUIRE_LOOP(loop, backing, /*read_only=*/true);
	Dev bad;
	int r = open_dev(loop.path(), 0, &bad);
	LoopDevice rw_loop;
	ReadOnlyFlag read_only;
	if (r == -EROFS) {
		/*
		 * The library declines to open a read-only device for writing (the header allows
		 * -EROFS): make a writable one read-only once it is open instead.
		 */
		DMIO_REQUIRE_LOOP(rw_loop, backing);
		ASSERT_EQ(0, open_dev(rw_loop.path(), 0, &bad));
		ASSERT_EQ(0, read_only.set(rw_loop.path())) << "BLKROSET: " << strerror(errno);
	} else {
		ASSERT_EQ(0, r) << strerror(-r);
	}
	ASSERT_TRUE(dmio_dev_is_block(bad.get()));
	/* blkdev_write_iter() refuses writes to a read-only device with EPERM. */
	write_and_check(bad.get(), EPERM);
	/* Nothing reached the backing file. */
	EXPECT_TRUE(all_bytes_are(read_at(backing, 0, kWriteSectors * DMIO_SECTOR_SIZE), 0));
}

TEST_P(Fault, DirectLoopDeviceOverFullTmpfsFailsOnlyItsRegion)
{
	Mount small;
	DMIO_REQUIRE_TMPFS(small, tmp_ / "small", "1M");
	std::string backing = tmp_ / "small/loop.img";
	create_sparse(backing, 8 * 1024 * 1024);
	/* No room at all: every request of the loop device fails whole (see fill_filesystem). */
	ASSERT_NO_FATAL_FAILURE(fill_filesystem(tmp_ / "small"));
	LoopDevice loop;
	DMIO_REQUIRE_LOOP(loop, backing);
	/* O_DIRECT: the loop device's ENOSPC reaches the writer instead of the page cache. */
	Dev bad;
	ASSERT_EQ(0, open_dev(loop.path(), DMIO_DEV_DIRECT, &bad));
	write_and_check(bad.get(), ENOSPC);
}

INSTANTIATE_TEST_SUITE_P(Writes, Fault, ::testing::ValuesIn(fault_params()), fault_name);

/* Two failing regions out of three: both bits, not just the first failure. */

class TwoFaults : public DefaultClientParamTest<Engine>
{
};

TEST_P(TwoFaults, TwoFullTmpfsFilesSetTwoBits)
{
	Client client;
	DMIO_REQUIRE_CLIENT(GetParam(), client);
	Mount small;
	DMIO_REQUIRE_TMPFS(small, tmp_ / "small", "1M");
	create_sparse(tmp_ / "small/bad0.img", 8 * 1024 * 1024);
	create_sparse(tmp_ / "small/bad2.img", 8 * 1024 * 1024);
	std::vector<uint8_t> image = pattern(kGoodSize, 1);
	write_file(tmp_ / "good.img", image);
	Dev bad0, good, bad2;
	ASSERT_EQ(0, open_dev(tmp_ / "small/bad0.img", 0, &bad0));
	ASSERT_EQ(0, open_dev(tmp_ / "good.img", 0, &good));
	ASSERT_EQ(0, open_dev(tmp_ / "small/bad2.img", 0, &bad2));
	std::vector<uint8_t> data = pattern(kWriteSectors * DMIO_SECTOR_SIZE, 2);
	Memory mem(MemKind::Vm, data.size());
	mem.fill(data);
	IoOutcome o = run_io(Call::DmioSync, client.get(), DMIO_WRITE, &mem,
			     {{bad0.get(), 0, kWriteSectors},
			      {good.get(), 0, kWriteSectors},
			      {bad2.get(), 0, kWriteSectors}});
	EXPECT_EQ(-EIO, o.ret);
	EXPECT_EQ((1ul << 0) | (1ul << 2), o.bits);
	ASSERT_EQ(3u, o.region_errors.size());
	EXPECT_EQ(ENOSPC, o.region_errors[0]);
	EXPECT_EQ(0, o.region_errors[1]);
	EXPECT_EQ(ENOSPC, o.region_errors[2]);
	std::copy(data.begin(), data.end(), image.begin());
	EXPECT_TRUE(same_bytes(image, read_at(tmp_ / "good.img", 0, kGoodSize)));
}

/* error_bits NULL is allowed for a sync call; the return value still says -EIO. */
TEST_P(TwoFaults, NullErrorBitsStillReturnsEio)
{
	Client client;
	DMIO_REQUIRE_CLIENT(GetParam(), client);
	Mount small;
	DMIO_REQUIRE_TMPFS(small, tmp_ / "small", "1M");
	create_sparse(tmp_ / "small/bad.img", 8 * 1024 * 1024);
	Dev bad;
	ASSERT_EQ(0, open_dev(tmp_ / "small/bad.img", 0, &bad));
	std::vector<uint8_t> data = pattern(kWriteSectors * DMIO_SECTOR_SIZE, 2);
	dmio_region where = {bad.get(), 0, kWriteSectors};
	dmio_request req;
	memset(&req, 0, sizeof(req));
	req.op = DMIO_WRITE;
	req.mem.type = DMIO_MEM_VM;
	req.mem.ptr.vma = data.data();
	req.client = client.get();
	EXPECT_EQ(-EIO, dmio(&req, 1, &where, nullptr));
	EXPECT_EQ(-EIO, dmio_sync_vm(1, &where, DMIO_WRITE, data.data(), nullptr));
}

INSTANTIATE_TEST_SUITE_P(Engines, TwoFaults, ::testing::Values(Engine::Threads, Engine::IoUring),
			 [](const ::testing::TestParamInfo<Engine> &info) {
				 return std::string(engine_name(info.param));
			 });

/*
 * A read that fails part-way: the device is opened, then its file is truncated behind the
 * library's back, so the read meets the end of the file.  The part of the buffer that could not be
 * read must be zero (it was 0xaa); the part before holds the data (or zeroes, as the kernel's
 * dm-io zero-fills a whole failed bio).
 */
struct ReadFaultParam {
	Call call;
	MemKind kind;
	Engine engine;
};

void PrintTo(const ReadFaultParam &p, std::ostream *os)
{
	*os << call_name(p.call) << " " << mem_kind_name(p.kind) << " " << engine_name(p.engine);
}

class ReadFault : public DefaultClientParamTest<ReadFaultParam>
{
};

TEST_P(ReadFault, FailedReadLeavesZeroesInTheUnreadPart)
{
	const ReadFaultParam &p = GetParam();
	Client client;
	if (!is_seed(p.call))
		DMIO_REQUIRE_CLIENT(p.engine, client);
	constexpr size_t kFile = 64 * 1024;
	constexpr size_t kKept = 20 * 1024 + 512; /* not a whole number of pages */
	std::string path = tmp_ / "shrinking.img";
	std::vector<uint8_t> image = pattern(kFile, 77);
	write_file(path, image);
	Dev dev;
	ASSERT_EQ(0, open_dev(path, 0, &dev));
	ASSERT_EQ(kFile / DMIO_SECTOR_SIZE, dmio_dev_sectors(dev.get()));
	ASSERT_EQ(0, truncate(path.c_str(), kKept)) << strerror(errno);

	Memory mem(p.kind, kFile);
	mem.fill_byte(0xaa);
	IoOutcome o = run_io(p.call, client.get(), DMIO_READ, &mem,
			     {{dev.get(), 0, kFile / DMIO_SECTOR_SIZE}});
	if (is_async(p.call)) {
		EXPECT_EQ(0, o.ret);
		EXPECT_EQ(1, o.notify_calls);
	} else {
		EXPECT_EQ(-EIO, o.ret);
	}
	EXPECT_EQ(1ul, o.bits);
	if (!is_seed(p.call)) {
		ASSERT_EQ(1u, o.region_errors.size());
		EXPECT_NE(0, o.region_errors[0]);
		EXPECT_NE(kUnsetRegionError, o.region_errors[0]);
	}
	std::vector<uint8_t> got = mem.contents();
	EXPECT_TRUE(all_bytes_are(std::vector<uint8_t>(got.begin() + kKept, got.end()), 0))
	    << "the unread part of a failed read must be zero";
	std::vector<uint8_t> head(got.begin(), got.begin() + kKept);
	EXPECT_TRUE(same_bytes(std::vector<uint8_t>(image.begin(), image.begin() + kKept), head) ||
		    all_bytes_are(head, 0))
	    << "the part before the end of the file is neither the data nor zeroes";
	EXPECT_TRUE(mem.guards_intact());
}

std::vector<ReadFaultParam> read_fault_params()
{
	std::vector<ReadFaultParam> v;
	for (MemKind kind : {MemKind::PageList, MemKind::Bvec, MemKind::Vm}) {
		v.push_back({Call::SeedSync, kind, Engine::Threads});
		v.push_back({Call::SeedAsync, kind, Engine::Threads});
	}
	for (Engine engine : {Engine::Threads, Engine::IoUring})
		for (MemKind kind :
		     {MemKind::PageList, MemKind::Bvec, MemKind::Vm, MemKind::Iovec}) {
			v.push_back({Call::DmioSync, kind, engine});
			v.push_back({Call::DmioAsync, kind, engine});
		}
	return v;
}

INSTANTIATE_TEST_SUITE_P(
    Reads, ReadFault, ::testing::ValuesIn(read_fault_params()),
    [](const ::testing::TestParamInfo<ReadFaultParam> &info) {
	    return sanitize_name(
		std::string(is_seed(info.param.call) ? "default" : engine_name(info.param.engine)) +
		"_" + call_name(info.param.call) + "_" + mem_kind_name(info.param.kind));
    });

} // namespace
