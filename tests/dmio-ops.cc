/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The operations besides read and write: flush (count 0, several regions), discard (a punched
 * hole on a file, BLKDISCARD on a loop device), write-zeroes (with the library's fallback where
 * the filesystem has no ZERO_RANGE), FUA writes, and the capability probes, on each engine, sync
 * and async.  Files live in the test's directory (the disk's filesystem), on tmpfs and on ramfs
 * (which has no fallocate modes at all); block devices are loop devices.
 */
#include "test-util.h"

#include <fcntl.h>
#include <unistd.h>

#include <map>

using namespace dmio_test;

namespace
{

constexpr uint64_t kSize = 4 * 1024 * 1024;
/* A 4 KiB-aligned range inside the file: 128 KiB at 256 KiB. */
constexpr uint64_t kRangeSector = 512;
constexpr uint64_t kRangeSectors = 256;
constexpr uint64_t kRangeOffset = kRangeSector * DMIO_SECTOR_SIZE;
constexpr uint64_t kRangeBytes = kRangeSectors * DMIO_SECTOR_SIZE;

struct OpsParam {
	Engine engine;
	bool async;
};

/* gtest would print the raw bytes, padding included (valgrind: uninitialised). */
void PrintTo(const OpsParam &p, std::ostream *os)
{
	*os << engine_name(p.engine) << (p.async ? " async" : " sync");
}

/* The expected image after zeroing the range. */
std::vector<uint8_t> with_zeroed_range(std::vector<uint8_t> image, uint64_t offset, uint64_t len)
{
	std::fill(image.begin() + offset, image.begin() + offset + len, 0);
	return image;
}

class Ops : public DefaultClientParamTest<OpsParam>
{
      protected:
	void SetUp() override
	{
		DefaultClientParamTest<OpsParam>::SetUp();
		if (IsSkipped() || HasFatalFailure())
			return;
		DMIO_REQUIRE_CLIENT(GetParam().engine, client_);
	}
	Call call() const
	{
		return GetParam().async ? Call::DmioAsync : Call::DmioSync;
	}

	/* A file of kSize pattern bytes at path, opened. */
	void make_file(const std::string &path, uint32_t seed, Dev *dev, unsigned flags = 0)
	{
		images_[path] = pattern(kSize, seed);
		write_file(path, images_[path]);
		ASSERT_EQ(0, open_dev(path, flags, dev)) << path;
	}
	/* A loop device over such a file, opened. */
	void make_loop(LoopDevice *loop, const std::string &backing, uint32_t seed, Dev *dev)
	{
		images_[backing] = pattern(kSize, seed);
		write_file(backing, images_[backing]);
		int err = loop->attach(backing);
		if (err && environment_refuses(err))
			GTEST_SKIP() << "cannot attach a loop device: " << strerror(err);
		ASSERT_EQ(0, err) << "attach a loop device: " << strerror(err);
		images_[loop->path()] = images_[backing];
		ASSERT_EQ(0, open_dev(loop->path(), 0, dev));
	}
	std::vector<uint8_t> &image(const std::string &path)
	{
		return images_[path];
	}

	Client client_;
	std::map<std::string, std::vector<uint8_t>> images_;
};

std::string ops_name(const ::testing::TestParamInfo<OpsParam> &info)
{
	return std::string(engine_name(info.param.engine)) +
	       (info.param.async ? "_async" : "_sync");
}

#define MAKE_LOOP(loop, backing, seed, dev)                                                        \
	do {                                                                                       \
		make_loop(&(loop), (backing), (seed), &(dev));                                     \
		if (IsSkipped() || HasFatalFailure())                                              \
			return;                                                                    \
	} while (0)

TEST_P(Ops, FlushFilesAndLoopDevice)
{
	Dev a, b, l;
	LoopDevice loop;
	ASSERT_NO_FATAL_FAILURE(make_file(tmp_ / "a.img", 1, &a));
	ASSERT_NO_FATAL_FAILURE(make_file(tmp_ / "b.img", 2, &b));
	MAKE_LOOP(loop, tmp_ / "loop.img", 3, l);
	/* Dirty some pages first, so the flushes have something to do. */
	std::vector<uint8_t> data = pattern(64 * 1024, 4);
	Memory mem(MemKind::Vm, data.size());
	mem.fill(data);
	expect_success(run_io(call(), client_.get(), DMIO_WRITE, &mem,
			      {{a.get(), 0, 128}, {b.get(), 0, 128}, {l.get(), 0, 128}}),
		       call(), 3, "write");
	/* count 0, the memory left empty: a flush carries no data. */
	IoOutcome o = run_io(call(), client_.get(), DMIO_FLUSH, nullptr,
			     {{a.get(), 0, 0}, {b.get(), 7, 0}, {l.get(), 0, 0}});
	expect_success(o, call(), 3, "flush");
	for (const std::string &path : {tmp_ / "a.img", tmp_ / "b.img", tmp_ / "loop.img"})
		EXPECT_TRUE(same_bytes(data, read_at(path, 0, data.size()))) << path;
}

/*
 * A flush that fails for real: a loop device over a sparse file on a full tmpfs accepts buffered
 * writes into its page cache; writing them back fails, and the flush reports it for that region.
 * The tmpfs is filled to the last byte first (see fill_filesystem).
 */
TEST_P(Ops, FlushOfLoopDeviceOverFullTmpfsFailsItsRegion)
{
	Mount small;
	DMIO_REQUIRE_TMPFS(small, tmp_ / "small", "1M");
	create_sparse(tmp_ / "small/loop.img", 8 * 1024 * 1024);
	ASSERT_NO_FATAL_FAILURE(fill_filesystem(tmp_ / "small"));
	LoopDevice loop;
	DMIO_REQUIRE_LOOP(loop, tmp_ / "small/loop.img");
	Dev good, bad;
	ASSERT_NO_FATAL_FAILURE(make_file(tmp_ / "good.img", 1, &good));
	ASSERT_EQ(0, open_dev(loop.path(), 0, &bad));
	std::vector<uint8_t> data = pattern(2 * 1024 * 1024, 4);
	Memory mem(MemKind::Vm, data.size());
	mem.fill(data);
	dmio_region w = {bad.get(), 0, data.size() / DMIO_SECTOR_SIZE};
	/* Buffered: lands in the loop device's page cache. */
	IoOutcome wo = run_io(call(), client_.get(), DMIO_WRITE, &mem, {w});
	ASSERT_EQ(0, wo.ret);
	ASSERT_EQ(0ul, wo.bits) << "a buffered write to a block device should not fail yet";
	IoOutcome o = run_io(call(), client_.get(), DMIO_FLUSH, nullptr,
			     {{good.get(), 0, 0}, {bad.get(), 0, 0}});
	EXPECT_EQ(call() == Call::DmioAsync ? 0 : -EIO, o.ret);
	EXPECT_EQ(1ul << 1, o.bits);
	ASSERT_EQ(2u, o.region_errors.size());
	EXPECT_EQ(0, o.region_errors[0]);
	EXPECT_NE(0, o.region_errors[1]);
}

TEST_P(Ops, DiscardPunchesAHoleInAFile)
{
	Mount fs;
	for (const char *where : {"disk", "tmpfs"}) {
		SCOPED_TRACE(where);
		std::string dir = tmp_.path();
		if (std::string(where) == "tmpfs") {
			DMIO_REQUIRE_TMPFS(fs, tmp_ / "tmpfs", "16M");
			dir = tmp_ / "tmpfs";
		}
		std::string path = dir + "/discard.img";
		Dev dev;
		ASSERT_NO_FATAL_FAILURE(make_file(path, 5, &dev));
		EXPECT_TRUE(dmio_dev_can_discard(dev.get())) << "files start optimistic";
		uint64_t blocks_before = allocated_blocks(path);
		IoOutcome o = run_io(call(), client_.get(), DMIO_DISCARD, nullptr,
				     {{dev.get(), kRangeSector, kRangeSectors}});
		expect_success(o, call(), 1, "discard");
		EXPECT_TRUE(same_bytes(with_zeroed_range(image(path), kRangeOffset, kRangeBytes),
				       read_at(path, 0, kSize)));
		EXPECT_LT(allocated_blocks(path), blocks_before) << "no blocks were freed";
		int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
		ASSERT_GE(fd, 0);
		EXPECT_EQ((off_t)kRangeOffset, lseek(fd, 0, SEEK_HOLE))
		    << "SEEK_HOLE finds no hole";
		EXPECT_EQ((off_t)(kRangeOffset + kRangeBytes), lseek(fd, kRangeOffset, SEEK_DATA));
		close(fd);
		EXPECT_TRUE(dmio_dev_can_discard(dev.get()));
	}
}

/* ramfs has no fallocate modes: discard fails the region with EOPNOTSUPP, and says so after. */
TEST_P(Ops, DiscardWithoutKernelSupportFailsTheRegion)
{
	Mount fs;
	DMIO_REQUIRE(fs.mount(tmp_ / "ramfs", "ramfs", ""), "mount -t ramfs");
	std::string path = tmp_ / "ramfs/discard.img";
	Dev dev, good;
	ASSERT_NO_FATAL_FAILURE(make_file(path, 6, &dev));
	ASSERT_NO_FATAL_FAILURE(make_file(tmp_ / "good.img", 7, &good));
	EXPECT_TRUE(dmio_dev_can_discard(dev.get())) << "files start optimistic";
	for (int round = 0; round < 2; round++) {
		SCOPED_TRACE("round " + std::to_string(round));
		IoOutcome o = run_io(call(), client_.get(), DMIO_DISCARD, nullptr,
				     {{good.get(), kRangeSector, kRangeSectors},
				      {dev.get(), kRangeSector, kRangeSectors}});
		EXPECT_EQ(call() == Call::DmioAsync ? 0 : -EIO, o.ret);
		EXPECT_EQ(1ul << 1, o.bits);
		ASSERT_EQ(2u, o.region_errors.size());
		EXPECT_EQ(0, o.region_errors[0]);
		EXPECT_EQ(EOPNOTSUPP, o.region_errors[1]);
		EXPECT_FALSE(dmio_dev_can_discard(dev.get()))
		    << "the capability must be switched off after EOPNOTSUPP";
		EXPECT_TRUE(same_bytes(image(path), read_at(path, 0, kSize)))
		    << "a failed discard changed the data";
		EXPECT_TRUE(same_bytes(
		    with_zeroed_range(image(tmp_ / "good.img"), kRangeOffset, kRangeBytes),
		    read_at(tmp_ / "good.img", 0, kSize)));
	}
}

TEST_P(Ops, DiscardAndWriteZeroesOnALoopDevice)
{
	LoopDevice loop;
	Dev dev;
	MAKE_LOOP(loop, tmp_ / "loop.img", 8, dev);
	ASSERT_TRUE(dmio_dev_is_block(dev.get()));
	EXPECT_EQ(loop.queue_attribute("discard_max_bytes") > 0, dmio_dev_can_discard(dev.get()));
	EXPECT_EQ(loop.queue_attribute("write_zeroes_max_bytes") > 0, dmio_dev_can_zero(dev.get()));

	std::vector<uint8_t> expected = image(loop.path());
	IoOutcome o = run_io(call(), client_.get(), DMIO_DISCARD, nullptr,
			     {{dev.get(), kRangeSector, kRangeSectors}});
	expect_success(o, call(), 1, "discard");
	expected = with_zeroed_range(expected, kRangeOffset, kRangeBytes);
	EXPECT_TRUE(same_bytes(expected, read_at(loop.path(), 0, kSize))) << "after discard";

	o = run_io(call(), client_.get(), DMIO_WRITE_ZEROES, nullptr, {{dev.get(), 3000, 100}});
	expect_success(o, call(), 1, "write-zeroes");
	expected = with_zeroed_range(expected, 3000 * DMIO_SECTOR_SIZE, 100 * DMIO_SECTOR_SIZE);
	EXPECT_TRUE(same_bytes(expected, read_at(loop.path(), 0, kSize))) << "after write-zeroes";
}

TEST_P(Ops, WriteZeroesOnFiles)
{
	Mount tmpfs, ramfs;
	DMIO_REQUIRE_TMPFS(tmpfs, tmp_ / "tmpfs", "16M");
	DMIO_REQUIRE(ramfs.mount(tmp_ / "ramfs", "ramfs", ""), "mount -t ramfs");
	struct Case {
		std::string path;
		bool zero_range; /* the filesystem has FALLOC_FL_ZERO_RANGE */
	};
	/* The disk's filesystem has ZERO_RANGE; tmpfs and ramfs do not: the library falls back. */
	for (const Case &c : {Case{tmp_ / "zero.img", true}, Case{tmp_ / "tmpfs/zero.img", false},
			      Case{tmp_ / "ramfs/zero.img", false}}) {
		SCOPED_TRACE(c.path);
		Dev dev;
		ASSERT_NO_FATAL_FAILURE(make_file(c.path, 9, &dev));
		EXPECT_TRUE(dmio_dev_can_zero(dev.get())) << "files start optimistic";
		/* 1 MiB: more than one buffer of zeroes for the fallback. */
		IoOutcome o = run_io(call(), client_.get(), DMIO_WRITE_ZEROES, nullptr,
				     {{dev.get(), 1001, 2048}});
		expect_success(o, call(), 1, "write-zeroes");
		EXPECT_TRUE(same_bytes(with_zeroed_range(image(c.path), 1001 * DMIO_SECTOR_SIZE,
							 2048 * DMIO_SECTOR_SIZE),
				       read_at(c.path, 0, kSize)));
		EXPECT_EQ(c.zero_range, dmio_dev_can_zero(dev.get()))
		    << (c.zero_range
			    ? "ZERO_RANGE works here; the capability must stay on"
			    : "ZERO_RANGE answered EOPNOTSUPP; the capability must be off");
		/* Once off, it still works (by writing zeroes). */
		o = run_io(call(), client_.get(), DMIO_WRITE_ZEROES, nullptr, {{dev.get(), 0, 1}});
		expect_success(o, call(), 1, "second write-zeroes");
		EXPECT_TRUE(all_bytes_are(read_at(c.path, 0, DMIO_SECTOR_SIZE), 0));
	}
}

/* One write-zeroes over a disk file, a tmpfs file and a loop device. */
TEST_P(Ops, WriteZeroesToThreeRegions)
{
	Mount tmpfs;
	DMIO_REQUIRE_TMPFS(tmpfs, tmp_ / "tmpfs", "16M");
	LoopDevice loop;
	Dev a, b, l;
	ASSERT_NO_FATAL_FAILURE(make_file(tmp_ / "a.img", 10, &a));
	ASSERT_NO_FATAL_FAILURE(make_file(tmp_ / "tmpfs/b.img", 11, &b));
	MAKE_LOOP(loop, tmp_ / "loop.img", 12, l);
	const uint64_t sectors[3] = {0, 77, 4000};
	IoOutcome o = run_io(
	    call(), client_.get(), DMIO_WRITE_ZEROES, nullptr,
	    {{a.get(), sectors[0], 64}, {b.get(), sectors[1], 64}, {l.get(), sectors[2], 64}});
	expect_success(o, call(), 3, "write-zeroes");
	const std::string paths[3] = {tmp_ / "a.img", tmp_ / "tmpfs/b.img", loop.path()};
	for (int i = 0; i < 3; i++)
		EXPECT_TRUE(
		    same_bytes(with_zeroed_range(image(paths[i]), sectors[i] * DMIO_SECTOR_SIZE,
						 64 * DMIO_SECTOR_SIZE),
			       read_at(paths[i], 0, kSize)))
		    << paths[i];
}

TEST_P(Ops, FuaWritesLand)
{
	LoopDevice loop;
	Dev a, l;
	ASSERT_NO_FATAL_FAILURE(make_file(tmp_ / "a.img", 13, &a));
	MAKE_LOOP(loop, tmp_ / "loop.img", 14, l);
	std::vector<uint8_t> data = pattern(24 * DMIO_SECTOR_SIZE, 15);
	Memory mem(MemKind::Bvec, data.size(), 1);
	mem.fill(data);
	IoOutcome o = run_io(call(), client_.get(), DMIO_WRITE, &mem,
			     {{a.get(), 40, 24}, {l.get(), 80, 24}}, DMIO_REQ_FUA);
	expect_success(o, call(), 2, "FUA write");
	EXPECT_TRUE(same_bytes(data, read_at(tmp_ / "a.img", 40 * DMIO_SECTOR_SIZE, data.size())));
	EXPECT_TRUE(same_bytes(data, read_at(loop.path(), 80 * DMIO_SECTOR_SIZE, data.size())));
	/* FUA on a loop device is durable: the backing file has it without any further sync. */
	EXPECT_TRUE(
	    same_bytes(data, read_at(tmp_ / "loop.img", 80 * DMIO_SECTOR_SIZE, data.size())));
}

INSTANTIATE_TEST_SUITE_P(EnginesSyncAsync, Ops,
			 ::testing::Values(OpsParam{Engine::Threads, false},
					   OpsParam{Engine::Threads, true},
					   OpsParam{Engine::IoUring, false},
					   OpsParam{Engine::IoUring, true}),
			 ops_name);

class Capabilities : public DefaultClientTest
{
};

/* Fresh devices: files are optimistic; loop devices say what sysfs says; probes are stable. */
TEST_F(Capabilities, ProbesAreConsistent)
{
	std::string path = tmp_ / "cap.img";
	create_sparse(path, kSize);
	Dev file;
	ASSERT_EQ(0, open_dev(path, 0, &file));
	EXPECT_TRUE(dmio_dev_can_discard(file.get()));
	EXPECT_TRUE(dmio_dev_can_zero(file.get()));
	EXPECT_TRUE(dmio_dev_can_fua(file.get()));

	LoopDevice loop;
	DMIO_REQUIRE_LOOP(loop, path);
	Dev dev;
	ASSERT_EQ(0, open_dev(loop.path(), 0, &dev));
	EXPECT_EQ(loop.queue_attribute("discard_max_bytes") > 0, dmio_dev_can_discard(dev.get()));
	EXPECT_EQ(loop.queue_attribute("write_zeroes_max_bytes") > 0, dmio_dev_can_zero(dev.get()));
	bool fua = dmio_dev_can_fua(dev.get());
	for (int i = 0; i < 3; i++) {
		EXPECT_EQ(loop.queue_attribute("discard_max_bytes") > 0,
			  dmio_dev_can_discard(dev.get()));
		EXPECT_EQ(fua, dmio_dev_can_fua(dev.get()));
	}
}

/* FUA writes on the default client to filesystems without a disk underneath. */
TEST_F(Capabilities, FuaWritesOnTmpfsAndRamfs)
{
	Mount tmpfs, ramfs;
	DMIO_REQUIRE_TMPFS(tmpfs, tmp_ / "tmpfs", "4M");
	DMIO_REQUIRE(ramfs.mount(tmp_ / "ramfs", "ramfs", ""), "mount -t ramfs");
	Dev a, b;
	create_sparse(tmp_ / "tmpfs/f.img", 1024 * 1024);
	create_sparse(tmp_ / "ramfs/f.img", 1024 * 1024);
	ASSERT_EQ(0, open_dev(tmp_ / "tmpfs/f.img", 0, &a));
	ASSERT_EQ(0, open_dev(tmp_ / "ramfs/f.img", 0, &b));
	std::vector<uint8_t> data = pattern(8192, 3);
	dmio_region where[2] = {{a.get(), 8, 16}, {b.get(), 8, 16}};
	dmio_request req;
	memset(&req, 0, sizeof(req));
	req.op = DMIO_WRITE;
	req.flags = DMIO_REQ_FUA;
	req.mem.type = DMIO_MEM_VM;
	req.mem.ptr.vma = data.data();
	unsigned long bits = ~0ul;
	EXPECT_EQ(0, dmio(&req, 2, where, &bits));
	EXPECT_EQ(0ul, bits);
	EXPECT_TRUE(same_bytes(data, read_at(tmp_ / "tmpfs/f.img", 8 * DMIO_SECTOR_SIZE, 8192)));
	EXPECT_TRUE(same_bytes(data, read_at(tmp_ / "ramfs/f.img", 8 * DMIO_SECTOR_SIZE, 8192)));
}

} // namespace
