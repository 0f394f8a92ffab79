/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * DMIO_MEM_PIPE (src/dmio/pipe.c): a write whose data is in a pipe reaches every region, spliced
 * into those that take a splice and copied once for the others, on each engine, sync and async.
 * The bytes are checked on disk with plain pread; dmio_client_pipe_stats says which way each
 * region went; the caller's pipe is empty afterwards (or untouched after an argument error).
 */
#include "test-util.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

using namespace dmio_test;

namespace
{

const bool kTestDevicesAllowed = setenv("FUSEMIRROR_TEST_DEVICES", "1", 1) == 0;

constexpr uint64_t kFileSize = 4 * 1024 * 1024;

/* A pipe holding data (sized to hold it without a reader), closed by the destructor. */
class DataPipe
{
      public:
	explicit DataPipe(const std::vector<uint8_t> &data)
	{
		if (pipe2(fd_, O_CLOEXEC) != 0)
			return;
		size_t size = std::max<size_t>(data.size(), 65536);
		if (fcntl(fd_[0], F_SETPIPE_SZ, (int)size) < (int)data.size())
			return;
		size_t done = 0;
		while (done < data.size()) {
			ssize_t n = write(fd_[1], data.data() + done, data.size() - done);
			if (n <= 0)
				return;
			done += (size_t)n;
		}
		ok_ = true;
	}
	~DataPipe()
	{
		for (int fd : fd_)
			if (fd >= 0)
				close(fd);
	}
	bool ok() const
	{
		return ok_;
	}
	int read_end() const
	{
		return fd_[0];
	}
	/* Bytes still in the pipe. */
	int held() const
	{
		int n = -1;
		ioctl(fd_[0], FIONREAD, &n);
		return n;
	}

      private:
	int fd_[2] = {-1, -1};
	bool ok_ = false;
};

struct PipeParam {
	Engine engine;
	bool async;
};

std::string pipe_name(const ::testing::TestParamInfo<PipeParam> &info)
{
	return std::string(engine_name(info.param.engine)) +
	       (info.param.async ? "_async" : "_sync");
}

class Pipe : public DmioTest, public ::testing::WithParamInterface<PipeParam>
{
      protected:
	void SetUp() override
	{
		DmioTest::SetUp();
		DMIO_REQUIRE_CLIENT(GetParam().engine, client_);
	}

	/* A file of kFileSize with a pattern of its own, and its device (prefix: "fault:"...). */
	void add_leg(const std::string &dir, const std::string &prefix = "", unsigned flags = 0)
	{
		std::string path = dir + "/leg" + std::to_string(paths_.size()) + ".img";
		images_.push_back(pattern(kFileSize, 300 + (uint32_t)paths_.size()));
		write_file(path, images_.back());
		paths_.push_back(path);
		Dev dev;
		ASSERT_EQ(0, open_dev(prefix + path, flags, &dev)) << prefix << path;
		devs_.push_back(std::move(dev));
	}

	/* Write the pipe's data to every leg at its sector; the error bitset (or -errno). */
	long write_from_pipe(int fd, const std::vector<uint64_t> &sectors, uint64_t len,
			     int *ret = nullptr)
	{
		std::vector<dmio_region> where;
		for (size_t i = 0; i < devs_.size(); i++)
			where.push_back({devs_[i].get(), sectors[i], len >> DMIO_SECTOR_SHIFT});
		Completion done;
		dmio_request req = {};
		req.op = DMIO_WRITE;
		req.client = client_.get();
		req.mem.type = DMIO_MEM_PIPE;
		req.mem.ptr.pipe = fd;
		if (GetParam().async) {
			req.notify.fn = Completion::notify;
			req.notify.context = &done;
		}
		unsigned long bits = 0;
		int r = dmio(&req, (unsigned)where.size(), where.data(), &bits);
		if (ret != nullptr)
			*ret = r;
		if (GetParam().async) {
			if (r < 0)
				return r;
			EXPECT_TRUE(done.wait()) << "no completion";
			return (long)done.error();
		}
		if (r < 0 && r != -EIO)
			return r;
		return (long)bits;
	}

	void expect_leg_has(size_t leg, uint64_t sector, const std::vector<uint8_t> &data)
	{
		std::vector<uint8_t> expected = images_[leg];
		std::copy(data.begin(), data.end(), expected.begin() + (long)(sector * 512));
		EXPECT_TRUE(same_bytes(expected, read_at(paths_[leg], 0, kFileSize)))
		    << "leg " << leg << " (" << paths_[leg] << ")";
	}

	void stats(uint64_t *spliced, uint64_t *copied)
	{
		dmio_client_pipe_stats(client_.get(), spliced, copied);
	}

	Client client_;
	std::vector<std::string> paths_;
	std::vector<std::vector<uint8_t>> images_;
	std::vector<Dev> devs_;
};

TEST_P(Pipe, ThreeFileRegionsAreSplicedEachAtItsSector)
{
	ASSERT_TRUE(kTestDevicesAllowed);
	for (int i = 0; i < 3; i++)
		add_leg(tmp_.path());
	/* 1 MiB and an odd number of sectors: pages split across the pipe's buffers. */
	for (uint64_t len : {uint64_t(1024 * 1024), uint64_t(43 * 512)}) {
		std::vector<uint8_t> data = pattern(len, (uint32_t)len);
		DataPipe p(data);
		ASSERT_TRUE(p.ok());
		uint64_t spliced0, copied0, spliced, copied;
		stats(&spliced0, &copied0);
		std::vector<uint64_t> sectors = {8, 77, 1001};
		EXPECT_EQ(0, write_from_pipe(p.read_end(), sectors, len));
		EXPECT_EQ(0, p.held()) << "the caller's pipe is not empty";
		stats(&spliced, &copied);
		EXPECT_EQ(3u, spliced - spliced0);
		EXPECT_EQ(0u, copied - copied0);
		for (size_t i = 0; i < 3; i++)
			expect_leg_has(i, sectors[i], data);
		/* The legs' own copies: rewrite the files' images for the next length. */
		for (size_t i = 0; i < 3; i++)
			images_[i] = read_at(paths_[i], 0, kFileSize);
	}
}

TEST_P(Pipe, RegionThatCannotSpliceIsCopiedOnce)
{
	ASSERT_TRUE(kTestDevicesAllowed);
	/* A fault device passes writes through but takes no splice; O_DIRECT copies too. */
	add_leg(tmp_.path());
	add_leg(tmp_.path(), "fault:");
	std::vector<uint8_t> data = pattern(256 * 1024, 5);
	DataPipe p(data);
	ASSERT_TRUE(p.ok());
	uint64_t spliced0, copied0, spliced, copied;
	stats(&spliced0, &copied0);
	EXPECT_EQ(0, write_from_pipe(p.read_end(), {16, 2048}, data.size()));
	EXPECT_EQ(0, p.held());
	stats(&spliced, &copied);
	EXPECT_EQ(1u, spliced - spliced0);
	EXPECT_EQ(1u, copied - copied0);
	expect_leg_has(0, 16, data);
	expect_leg_has(1, 2048, data);
}

TEST_P(Pipe, DirectRegionIsCopied)
{
	/* O_DIRECT needs a filesystem that takes it: /var/tmp, not always tmpfs. */
	char tmpl[] = "/var/tmp/dmio-pipe.XXXXXX";
	if (mkdtemp(tmpl) == nullptr)
		GTEST_SKIP() << "no /var/tmp";
	std::string dir = tmpl;
	add_leg(tmp_.path());
	std::string path = dir + "/direct.img";
	images_.push_back(pattern(kFileSize, 77));
	write_file(path, images_.back());
	paths_.push_back(path);
	Dev dev;
	int r = open_dev(path, DMIO_DEV_DIRECT, &dev);
	if (r == -EINVAL) {
		unlink(path.c_str());
		rmdir(dir.c_str());
		GTEST_SKIP() << dir << " takes no O_DIRECT";
	}
	ASSERT_EQ(0, r);
	devs_.push_back(std::move(dev));
	std::vector<uint8_t> data = pattern(64 * 1024, 6);
	DataPipe p(data);
	ASSERT_TRUE(p.ok());
	uint64_t spliced0, copied0, spliced, copied;
	stats(&spliced0, &copied0);
	EXPECT_EQ(0, write_from_pipe(p.read_end(), {8, 4096}, data.size()));
	stats(&spliced, &copied);
	EXPECT_EQ(1u, spliced - spliced0);
	EXPECT_EQ(1u, copied - copied0);
	expect_leg_has(0, 8, data);
	expect_leg_has(1, 4096, data);
	devs_.pop_back();
	unlink(path.c_str());
	rmdir(dir.c_str());
}

TEST_P(Pipe, RegionThatFailsMidwayFailsAloneAndTheOthersHaveTheData)
{
	ASSERT_TRUE(kTestDevicesAllowed);
	add_leg(tmp_.path());
	Mount small;
	DMIO_REQUIRE_TMPFS(small, tmp_ / "small", "8M");
	/* Sparse on a tmpfs with 5 MiB left after the image: the 1 MiB write runs out mid-way. */
	std::string bad = tmp_ / "small/bad.img";
	create_sparse(bad, kFileSize);
	write_file(tmp_ / "small/filler", std::vector<uint8_t>(8 * 1024 * 1024 - 512 * 1024, 1));
	paths_.push_back(bad);
	images_.push_back(std::vector<uint8_t>(kFileSize, 0));
	Dev dev;
	ASSERT_EQ(0, open_dev(bad, 0, &dev));
	devs_.push_back(std::move(dev));
	add_leg(tmp_.path());

	std::vector<uint8_t> data = pattern(1024 * 1024, 9);
	DataPipe p(data);
	ASSERT_TRUE(p.ok());
	EXPECT_EQ(1 << 1, write_from_pipe(p.read_end(), {0, 0, 512}, data.size()))
	    << "only region 1 (the full tmpfs) fails";
	EXPECT_EQ(0, p.held());
	expect_leg_has(0, 0, data);
	expect_leg_has(2, 512, data);
}

TEST_P(Pipe, PipeHoldingLessThanTheRegionIsRefusedUntouched)
{
	add_leg(tmp_.path());
	std::vector<uint8_t> data = pattern(8192, 11);
	DataPipe p(data);
	ASSERT_TRUE(p.ok());
	int r = 0;
	write_from_pipe(p.read_end(), {0}, 16384, &r);
	EXPECT_EQ(-EINVAL, r);
	EXPECT_EQ(8192, p.held()) << "an argument error must leave the pipe as it was";
	expect_leg_has(0, 0, {});
}

TEST_P(Pipe, ReadFromPipeIsRefused)
{
	add_leg(tmp_.path());
	std::vector<uint8_t> data = pattern(4096, 12);
	DataPipe p(data);
	ASSERT_TRUE(p.ok());
	dmio_region where = {devs_[0].get(), 0, 8};
	dmio_request req = {};
	req.op = DMIO_READ;
	req.client = client_.get();
	req.mem.type = DMIO_MEM_PIPE;
	req.mem.ptr.pipe = p.read_end();
	EXPECT_EQ(-EINVAL, dmio(&req, 1, &where, nullptr));
	EXPECT_EQ(4096, p.held());
}

TEST_P(Pipe, FuaWriteFromPipeIsOnDisk)
{
	add_leg(tmp_.path());
	add_leg(tmp_.path());
	std::vector<uint8_t> data = pattern(128 * 1024, 13);
	DataPipe p(data);
	ASSERT_TRUE(p.ok());
	std::vector<dmio_region> where = {{devs_[0].get(), 64, 256}, {devs_[1].get(), 128, 256}};
	dmio_request req = {};
	req.op = DMIO_WRITE;
	req.flags = DMIO_REQ_FUA;
	req.client = client_.get();
	req.mem.type = DMIO_MEM_PIPE;
	req.mem.ptr.pipe = p.read_end();
	unsigned long bits = 1;
	EXPECT_EQ(0, dmio(&req, 2, where.data(), &bits));
	EXPECT_EQ(0u, bits);
	expect_leg_has(0, 64, data);
	expect_leg_has(1, 128, data);
}

INSTANTIATE_TEST_SUITE_P(Engines, Pipe,
			 ::testing::Values(PipeParam{Engine::Threads, false},
					   PipeParam{Engine::Threads, true},
					   PipeParam{Engine::IoUring, false},
					   PipeParam{Engine::IoUring, true}),
			 pipe_name);

} // namespace
