/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * DMIO_DEV_DIRECT devices (O_DIRECT) with caller buffers of every alignment: page-aligned vm
 * buffers and page lists, and unaligned ones (a vm buffer one byte past a page, a page list 7
 * bytes into its first page, bvecs and iovecs of odd lengths at odd offsets), which the library
 * must bounce.  Writes must land exactly, reads must come back exactly, and nothing around the
 * caller's data may be touched.  Targets: a file on the disk's filesystem, a file on tmpfs, a
 * loop device with 512-byte and one with 4096-byte logical blocks.
 */
#include "test-util.h"

#include <fcntl.h>
#include <unistd.h>

#include <sstream>

using namespace dmio_test;

namespace
{

constexpr uint64_t kSize = 4 * 1024 * 1024;

enum class Target { DiskFile, TmpfsFile, Loop512, Loop4096 };

const char *target_name(Target t)
{
	switch (t) {
	case Target::DiskFile:
		return "disk_file";
	case Target::TmpfsFile:
		return "tmpfs_file";
	case Target::Loop512:
		return "loop512";
	case Target::Loop4096:
		return "loop4096";
	}
	return "?";
}

struct DirectParam {
	Target target;
	MemKind kind;
	unsigned twist; /* see Memory: misalignment / page offset / odd layout */
	Engine engine;
	Call call;
};

std::string direct_name(const ::testing::TestParamInfo<DirectParam> &info);

/* gtest would print the raw bytes, padding included (valgrind: uninitialised). */
void PrintTo(const DirectParam &p, std::ostream *os)
{
	*os << direct_name(::testing::TestParamInfo<DirectParam>(p, 0));
}

std::string direct_name(const ::testing::TestParamInfo<DirectParam> &info)
{
	const DirectParam &p = info.param;
	std::ostringstream s;
	s << target_name(p.target) << "_" << (is_seed(p.call) ? "default" : engine_name(p.engine))
	  << "_" << call_name(p.call) << "_" << mem_kind_name(p.kind);
	switch (p.kind) {
	case MemKind::Vm:
		s << (p.twist ? "_plus" + std::to_string(p.twist) : std::string("_aligned"));
		break;
	case MemKind::PageList:
		s << "_offset" << (p.twist == kPageAligned ? 0 : p.twist ? p.twist : 1234);
		break;
	default:
		s << (p.twist ? "_odd" : "_even");
	}
	return sanitize_name(s.str());
}

/* Can this file be opened with O_DIRECT at all? */
bool supports_o_direct(const std::string &path)
{
	int fd = open(path.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

class Direct : public DefaultClientParamTest<DirectParam>
{
      protected:
	/* Sets up path_ (what to read and write through) with image_, and dev_ opened DIRECT. */
	void make_target()
	{
		const DirectParam &p = GetParam();
		std::string file = tmp_ / "direct.img";
		if (p.target == Target::TmpfsFile) {
			DMIO_REQUIRE_TMPFS(tmpfs_, tmp_ / "tmpfs", "16M");
			file = tmp_ / "tmpfs/direct.img";
		}
		image_ = pattern(kSize, 21);
		write_file(file, image_);
		path_ = file;
		if (p.target == Target::Loop512 || p.target == Target::Loop4096) {
			DMIO_REQUIRE_LOOP(loop_, file, false,
					  p.target == Target::Loop4096 ? 4096 : 0);
			path_ = loop_.path();
		}
		if (!supports_o_direct(path_))
			GTEST_SKIP() << path_ << " cannot be opened with O_DIRECT here";
		ASSERT_EQ(0, open_dev(path_, DMIO_DEV_DIRECT, &dev_));
		EXPECT_EQ(DMIO_DEV_DIRECT, dmio_dev_flags(dev_.get()));
		EXPECT_EQ(p.target == Target::Loop4096 ? 4096u : 512u,
			  dmio_dev_logical_block_size(dev_.get()));
	}

	Mount tmpfs_;
	LoopDevice loop_;
	Dev dev_;
	std::string path_;
	std::vector<uint8_t> image_;
};

#define MAKE_TARGET()                                                                              \
	do {                                                                                       \
		make_target();                                                                     \
		if (IsSkipped() || HasFatalFailure())                                              \
			return;                                                                    \
	} while (0)

TEST_P(Direct, WritesLandAndReadsComeBack)
{
	const DirectParam &p = GetParam();
	Client client;
	if (!is_seed(p.call))
		DMIO_REQUIRE_CLIENT(p.engine, client);
	MAKE_TARGET();
	/* Aligned to the device's logical block: sector 3 for 512-byte blocks, 8 for 4096. */
	unsigned lbs_sectors = dmio_dev_logical_block_size(dev_.get()) / DMIO_SECTOR_SIZE;
	uint64_t sector = lbs_sectors == 1 ? 3 : 8;
	uint64_t count = lbs_sectors == 1 ? 87 : 88;
	std::vector<uint8_t> data = pattern(count * DMIO_SECTOR_SIZE, 22);
	Memory mem(p.kind, data.size(), p.twist);
	ASSERT_NO_FATAL_FAILURE(mem.fill(data));

	IoOutcome w = run_io(p.call, client.get(), DMIO_WRITE, &mem, {{dev_.get(), sector, count}});
	expect_success(w, p.call, 1, "direct write");
	EXPECT_TRUE(same_bytes(data, mem.contents())) << "a write changed the caller's memory";
	EXPECT_TRUE(mem.guards_intact());
	std::vector<uint8_t> expected = image_;
	std::copy(data.begin(), data.end(), expected.begin() + sector * DMIO_SECTOR_SIZE);
	EXPECT_TRUE(same_bytes(expected, read_at(path_, 0, kSize))) << "after the direct write";

	/* New bytes through the page cache, read back with O_DIRECT. */
	std::vector<uint8_t> fresh = pattern(data.size(), 23);
	write_at(path_, sector * DMIO_SECTOR_SIZE, fresh);
	Memory back(p.kind, data.size(), p.twist);
	back.fill_byte(0xaa);
	IoOutcome r = run_io(p.call, client.get(), DMIO_READ, &back, {{dev_.get(), sector, count}});
	expect_success(r, p.call, 1, "direct read");
	EXPECT_TRUE(same_bytes(fresh, back.contents())) << "after the direct read";
	EXPECT_TRUE(back.guards_intact());
}

std::vector<DirectParam> direct_params()
{
	struct Shape {
		MemKind kind;
		unsigned twist;
	};
	const Shape shapes[] = {
	    {MemKind::Vm, 0},	    {MemKind::Vm, 1},	 {MemKind::PageList, kPageAligned},
	    {MemKind::PageList, 7}, {MemKind::Bvec, 0},	 {MemKind::Bvec, 1},
	    {MemKind::Iovec, 0},    {MemKind::Iovec, 1},
	};
	std::vector<DirectParam> v;
	for (Target t : {Target::DiskFile, Target::TmpfsFile, Target::Loop512, Target::Loop4096})
		for (Engine e : {Engine::Threads, Engine::IoUring})
			for (const Shape &s : shapes)
				v.push_back(
				    {t, s.kind, s.twist, e,
				     e == Engine::Threads ? Call::DmioSync : Call::DmioAsync});
	/* The seed calls on the default client. */
	for (Target t : {Target::DiskFile, Target::Loop4096}) {
		v.push_back({t, MemKind::Vm, 1, Engine::Threads, Call::SeedSync});
		v.push_back({t, MemKind::PageList, 7, Engine::Threads, Call::SeedAsync});
		v.push_back({t, MemKind::Bvec, 1, Engine::Threads, Call::SeedSync});
	}
	return v;
}

INSTANTIATE_TEST_SUITE_P(Buffers, Direct, ::testing::ValuesIn(direct_params()), direct_name);

class DirectMixed : public DefaultClientParamTest<Engine>
{
};

/*
 * One unaligned write to a DIRECT loop device (4 KiB blocks), a DIRECT file and a buffered file:
 * every region gets the same bytes (the library's one aligned copy is shared by all regions).
 */
TEST_P(DirectMixed, UnalignedWriteToDirectAndBufferedRegions)
{
	Client client;
	DMIO_REQUIRE_CLIENT(GetParam(), client);
	std::vector<uint8_t> image = pattern(kSize, 30);
	for (const char *name : {"loop.img", "direct.img", "buffered.img"})
		write_file(tmp_ / name, image);
	LoopDevice loop;
	DMIO_REQUIRE_LOOP(loop, tmp_ / "loop.img", false, 4096);
	Dev l, d, b;
	ASSERT_EQ(0, open_dev(loop.path(), DMIO_DEV_DIRECT, &l));
	ASSERT_EQ(0, open_dev(tmp_ / "direct.img", DMIO_DEV_DIRECT, &d));
	ASSERT_EQ(0, open_dev(tmp_ / "buffered.img", 0, &b));
	std::vector<uint8_t> data = pattern(16 * 4096, 31);
	for (MemKind kind : {MemKind::Vm, MemKind::Bvec, MemKind::Iovec, MemKind::PageList}) {
		SCOPED_TRACE(mem_kind_name(kind));
		Memory mem(kind, data.size(), kind == MemKind::PageList ? 7 : 1);
		mem.fill(data);
		const uint64_t sectors[3] = {64, 9, 1};
		IoOutcome o = run_io(Call::DmioSync, client.get(), DMIO_WRITE, &mem,
				     {{l.get(), sectors[0], 128},
				      {d.get(), sectors[1], 128},
				      {b.get(), sectors[2], 128}});
		expect_success(o, Call::DmioSync, 3, "mixed write");
		const std::string paths[3] = {loop.path(), tmp_ / "direct.img",
					      tmp_ / "buffered.img"};
		for (int i = 0; i < 3; i++)
			EXPECT_TRUE(same_bytes(
			    data, read_at(paths[i], sectors[i] * DMIO_SECTOR_SIZE, data.size())))
			    << paths[i];
		data = pattern(data.size(), 32 + (uint32_t)kind);
	}
}

/*
 * Bouncing works whatever the reserve: no reserved pages at all, and a reserve far smaller than
 * the request (the pool lends fresh pages beyond it).
 */
TEST_P(DirectMixed, BouncingBeyondTheReserve)
{
	for (unsigned reserved : {0u, 1u, 64u}) {
		SCOPED_TRACE("reserved_pages " + std::to_string(reserved));
		Client client;
		int r = make_client(GetParam(), &client, 2, reserved);
		if (r == -ENOTSUP)
			GTEST_SKIP() << io_uring_skip_reason();
		ASSERT_EQ(0, r);
		std::string path = tmp_ / ("reserve" + std::to_string(reserved) + ".img");
		write_file(path, pattern(kSize, 40));
		Dev dev;
		ASSERT_EQ(0, open_dev(path, DMIO_DEV_DIRECT, &dev));
		std::vector<uint8_t> data = pattern(45 * 1024, 41 + reserved); /* 11.25 pages */
		Memory mem(MemKind::Vm, data.size(), 3);
		mem.fill(data);
		IoOutcome o = run_io(Call::DmioSync, client.get(), DMIO_WRITE, &mem,
				     {{dev.get(), 5, data.size() / DMIO_SECTOR_SIZE}});
		expect_success(o, Call::DmioSync, 1, "write");
		EXPECT_TRUE(same_bytes(data, read_at(path, 5 * DMIO_SECTOR_SIZE, data.size())));
		Memory back(MemKind::Vm, data.size(), 3);
		back.fill_byte(0xaa);
		o = run_io(Call::DmioSync, client.get(), DMIO_READ, &back,
			   {{dev.get(), 5, data.size() / DMIO_SECTOR_SIZE}});
		expect_success(o, Call::DmioSync, 1, "read");
		EXPECT_TRUE(same_bytes(data, back.contents()));
		EXPECT_TRUE(back.guards_intact());
	}
}

/*
 * The one aligned copy is made once per call: a write of unaligned memory to two direct regions
 * (and a buffered one) bounces once, not once per region, and aligned memory is not bounced at
 * all (dmio_client_bounces() counts the calls that were).
 */
TEST_P(DirectMixed, OneBouncePerCallWhateverTheRegions)
{
	Client client;
	DMIO_REQUIRE_CLIENT(GetParam(), client);
	for (const char *name : {"d1.img", "d2.img", "buffered.img"})
		write_file(tmp_ / name, pattern(kSize, 50));
	Dev d1, d2, b;
	ASSERT_EQ(0, open_dev(tmp_ / "d1.img", DMIO_DEV_DIRECT, &d1));
	ASSERT_EQ(0, open_dev(tmp_ / "d2.img", DMIO_DEV_DIRECT, &d2));
	ASSERT_EQ(0, open_dev(tmp_ / "buffered.img", 0, &b));
	unsigned int mem_align, offset_align;
	dmio_dev_direct_align(d1.get(), &mem_align, &offset_align);
	EXPECT_GE(offset_align, DMIO_SECTOR_SIZE);
	EXPECT_GE(mem_align, 1u);
	EXPECT_LE(mem_align, DMIO_PAGE_SIZE);
	dmio_dev_direct_align(b.get(), &mem_align, &offset_align);
	EXPECT_EQ(1u, mem_align) << "a buffered device has no alignment";
	EXPECT_EQ(1u, offset_align);
	dmio_dev_direct_align(b.get(), nullptr, nullptr);

	std::vector<uint8_t> data = pattern(64 * 1024, 51);
	const uint64_t count = data.size() / DMIO_SECTOR_SIZE;
	struct Case {
		unsigned twist; /* 0: page-aligned memory; else this many bytes past a page */
		uint64_t bounces;
	};
	for (Case c : {Case{0, 0}, Case{1, 1}, Case{0, 0}, Case{3, 1}}) {
		SCOPED_TRACE("memory " + std::to_string(c.twist) + " bytes past a page");
		Memory mem(MemKind::Vm, data.size(), c.twist);
		mem.fill(data);
		uint64_t before = dmio_client_bounces(client.get());
		IoOutcome o = run_io(Call::DmioSync, client.get(), DMIO_WRITE, &mem,
				     {{d1.get(), 8, count}, {d2.get(), 16, count}, {b.get(), 24, count}});
		expect_success(o, Call::DmioSync, 3, "write");
		EXPECT_EQ(c.bounces, dmio_client_bounces(client.get()) - before)
		    << "bounced calls for one write to two direct regions and a buffered one";
		EXPECT_TRUE(same_bytes(data, read_at(tmp_ / "d1.img", 8 * DMIO_SECTOR_SIZE,
						     data.size())));
		EXPECT_TRUE(same_bytes(data, read_at(tmp_ / "d2.img", 16 * DMIO_SECTOR_SIZE,
						     data.size())));
		EXPECT_TRUE(same_bytes(data, read_at(tmp_ / "buffered.img", 24 * DMIO_SECTOR_SIZE,
						     data.size())));

		/* A read of one direct region: bounced exactly when the memory is unaligned. */
		Memory back(MemKind::Vm, data.size(), c.twist);
		back.fill_byte(0xaa);
		before = dmio_client_bounces(client.get());
		o = run_io(Call::DmioSync, client.get(), DMIO_READ, &back, {{d2.get(), 16, count}});
		expect_success(o, Call::DmioSync, 1, "read");
		EXPECT_EQ(c.bounces, dmio_client_bounces(client.get()) - before);
		EXPECT_TRUE(same_bytes(data, back.contents()));
		data = pattern(data.size(), 52 + c.twist);
	}
}

INSTANTIATE_TEST_SUITE_P(Engines, DirectMixed, ::testing::Values(Engine::Threads, Engine::IoUring),
			 [](const ::testing::TestParamInfo<Engine> &info) {
				 return std::string(engine_name(info.param));
			 });

} // namespace
