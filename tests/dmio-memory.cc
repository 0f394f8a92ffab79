/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Data round-trips through every calling style (the six seed calls and dmio(), sync and async)
 * and every memory kind (a page list starting inside its first page, bvecs that split a page, one
 * vm buffer, an iovec array), to 1, 2 and 3 regions at different sectors of different files, on
 * each engine.  The bytes are checked on disk with plain pread, and read back through the library.
 */
#include "test-util.h"

#include <sstream>

using namespace dmio_test;

namespace
{

constexpr uint64_t kFileSize = 1024 * 1024;
constexpr uint64_t kSectors = 43; /* 22016 bytes: several pages, not a whole number of them */
constexpr uint64_t kRegionSector[3] = {8, 77, 1001};

struct RoundTripParam {
	Call call;
	MemKind kind;
	unsigned regions;
	Engine engine;
	bool default_client; /* dmio() with client NULL */
};

/* gtest would print the raw bytes, padding included (valgrind: uninitialised). */
void PrintTo(const RoundTripParam &p, std::ostream *os)
{
	*os << call_name(p.call) << " " << mem_kind_name(p.kind) << " " << p.regions << " regions "
	    << (p.default_client ? "default client" : engine_name(p.engine));
}

std::string round_trip_name(const ::testing::TestParamInfo<RoundTripParam> &info)
{
	const RoundTripParam &p = info.param;
	std::ostringstream s;
	s << (is_seed(p.call) || p.default_client ? "default" : engine_name(p.engine)) << "_"
	  << call_name(p.call) << "_" << mem_kind_name(p.kind) << "_" << p.regions << "regions";
	return sanitize_name(s.str());
}

std::vector<RoundTripParam> round_trip_params()
{
	std::vector<RoundTripParam> v;
	for (Call call : {Call::SeedSync, Call::SeedAsync, Call::DmioSync, Call::DmioAsync})
		for (Engine engine : {Engine::Threads, Engine::IoUring})
			for (MemKind kind :
			     {MemKind::PageList, MemKind::Bvec, MemKind::Vm, MemKind::Iovec}) {
				if (is_seed(call) &&
				    (kind == MemKind::Iovec || engine != Engine::Threads))
					continue;
				for (unsigned n = 1; n <= 3; n++)
					v.push_back({call, kind, n, engine, false});
			}
	/* dmio() on the default client (client NULL). */
	for (Call call : {Call::DmioSync, Call::DmioAsync})
		for (MemKind kind : {MemKind::PageList, MemKind::Bvec, MemKind::Vm, MemKind::Iovec})
			v.push_back({call, kind, 3, Engine::Threads, true});
	return v;
}

/* Three 1 MiB files of distinct patterns, opened. */
class Legs
{
      public:
	void create(const TempDir &tmp, unsigned int flags = 0)
	{
		for (int i = 0; i < 3; i++) {
			paths.push_back(tmp / ("leg" + std::to_string(i) + ".img"));
			images.push_back(pattern(kFileSize, 100 + i));
			write_file(paths[i], images[i]);
			Dev dev;
			ASSERT_EQ(0, open_dev(paths[i], flags, &dev)) << paths[i];
			devs.push_back(std::move(dev));
		}
	}
	std::vector<std::string> paths;
	std::vector<std::vector<uint8_t>> images;
	std::vector<Dev> devs;
};

class RoundTrip : public DefaultClientParamTest<RoundTripParam>
{
};

TEST_P(RoundTrip, WriteLandsInEveryRegionAndReadsBack)
{
	const RoundTripParam &p = GetParam();
	Client client;
	if (!is_seed(p.call) && !p.default_client)
		DMIO_REQUIRE_CLIENT(p.engine, client);
	Legs legs;
	ASSERT_NO_FATAL_FAILURE(legs.create(tmp_));

	std::vector<uint8_t> data = pattern(kSectors * DMIO_SECTOR_SIZE, 7);
	Memory mem(p.kind, data.size());
	ASSERT_NO_FATAL_FAILURE(mem.fill(data));
	std::vector<dmio_region> where;
	for (unsigned i = 0; i < p.regions; i++)
		where.push_back({legs.devs[i].get(), kRegionSector[i], kSectors});

	IoOutcome w = run_io(p.call, client.get(), DMIO_WRITE, &mem, where);
	expect_success(w, p.call, p.regions, "write");
	EXPECT_TRUE(same_bytes(data, mem.contents())) << "a write changed the caller's memory";
	EXPECT_TRUE(mem.guards_intact());

	/* Each region got the data at its own sector; nothing else in any file changed. */
	for (unsigned i = 0; i < 3; i++) {
		std::vector<uint8_t> expected = legs.images[i];
		if (i < p.regions)
			std::copy(data.begin(), data.end(),
				  expected.begin() + kRegionSector[i] * DMIO_SECTOR_SIZE);
		EXPECT_TRUE(same_bytes(expected, read_at(legs.paths[i], 0, kFileSize)))
		    << legs.paths[i] << (i < p.regions ? " (a region)" : " (not a region)");
	}

	/* Read each region back into fresh memory of the same kind. */
	for (unsigned i = 0; i < p.regions; i++) {
		Memory back(p.kind, data.size());
		back.fill_byte(0xaa);
		IoOutcome r = run_io(p.call, client.get(), DMIO_READ, &back, {where[i]});
		expect_success(r, p.call, 1, "read");
		EXPECT_TRUE(same_bytes(data, back.contents())) << "read of region " << i;
		EXPECT_TRUE(back.guards_intact()) << "read of region " << i;
	}
}

INSTANTIATE_TEST_SUITE_P(AllCallsAndMemory, RoundTrip, ::testing::ValuesIn(round_trip_params()),
			 round_trip_name);

/* Regions of different lengths in one write each take the prefix of the memory. */
struct PrefixParam {
	Call call;
	MemKind kind;
	Engine engine;
};

void PrintTo(const PrefixParam &p, std::ostream *os)
{
	*os << call_name(p.call) << " " << mem_kind_name(p.kind) << " " << engine_name(p.engine);
}

class Prefix : public DefaultClientParamTest<PrefixParam>
{
};

TEST_P(Prefix, EachRegionTakesThePrefixOfTheMemory)
{
	const PrefixParam &p = GetParam();
	Client client;
	if (!is_seed(p.call))
		DMIO_REQUIRE_CLIENT(p.engine, client);
	Legs legs;
	ASSERT_NO_FATAL_FAILURE(legs.create(tmp_));

	const uint64_t counts[3] = {kSectors, 20, 1};
	std::vector<uint8_t> data = pattern(kSectors * DMIO_SECTOR_SIZE, 11);
	Memory mem(p.kind, data.size());
	ASSERT_NO_FATAL_FAILURE(mem.fill(data));
	std::vector<dmio_region> where;
	for (unsigned i = 0; i < 3; i++)
		where.push_back({legs.devs[i].get(), kRegionSector[i], counts[i]});
	IoOutcome w = run_io(p.call, client.get(), DMIO_WRITE, &mem, where);
	expect_success(w, p.call, 3, "write");

	for (unsigned i = 0; i < 3; i++) {
		std::vector<uint8_t> expected = legs.images[i];
		std::copy(data.begin(), data.begin() + counts[i] * DMIO_SECTOR_SIZE,
			  expected.begin() + kRegionSector[i] * DMIO_SECTOR_SIZE);
		EXPECT_TRUE(same_bytes(expected, read_at(legs.paths[i], 0, kFileSize)))
		    << "region " << i << " of " << counts[i] << " sectors";
	}

	/* A one-sector read fills the first sector of the memory and nothing more. */
	Memory back(p.kind, data.size());
	back.fill_byte(0xaa);
	IoOutcome r = run_io(p.call, client.get(), DMIO_READ, &back, {where[2]});
	expect_success(r, p.call, 1, "read");
	std::vector<uint8_t> got = back.contents();
	EXPECT_TRUE(same_bytes(std::vector<uint8_t>(data.begin(), data.begin() + DMIO_SECTOR_SIZE),
			       std::vector<uint8_t>(got.begin(), got.begin() + DMIO_SECTOR_SIZE)));
	EXPECT_TRUE(
	    all_bytes_are(std::vector<uint8_t>(got.begin() + DMIO_SECTOR_SIZE, got.end()), 0xaa))
	    << "a one-sector read wrote past its sector";
	EXPECT_TRUE(back.guards_intact());
}

std::vector<PrefixParam> prefix_params()
{
	std::vector<PrefixParam> v;
	for (MemKind kind : {MemKind::PageList, MemKind::Bvec, MemKind::Vm}) {
		v.push_back({Call::SeedSync, kind, Engine::Threads});
		v.push_back({Call::SeedAsync, kind, Engine::Threads});
	}
	for (Engine engine : {Engine::Threads, Engine::IoUring})
		for (MemKind kind : {MemKind::PageList, MemKind::Bvec, MemKind::Vm, MemKind::Iovec})
			v.push_back({Call::DmioSync, kind, engine});
	return v;
}

INSTANTIATE_TEST_SUITE_P(
    AllMemory, Prefix, ::testing::ValuesIn(prefix_params()),
    [](const ::testing::TestParamInfo<PrefixParam> &info) {
	    return sanitize_name(
		std::string(is_seed(info.param.call) ? "default" : engine_name(info.param.engine)) +
		"_" + call_name(info.param.call) + "_" + mem_kind_name(info.param.kind));
    });

class Memory_ : public DefaultClientTest
{
};

/* A page list whose data starts in the last sector of its first page. */
TEST_F(Memory_, PageListOffsetAtTheEndOfTheFirstPage)
{
	Legs legs;
	ASSERT_NO_FATAL_FAILURE(legs.create(tmp_));
	for (unsigned offset : {DMIO_PAGE_SIZE - DMIO_SECTOR_SIZE, DMIO_PAGE_SIZE - 1, 1u}) {
		SCOPED_TRACE("offset " + std::to_string(offset));
		std::vector<uint8_t> data = pattern(3 * DMIO_SECTOR_SIZE, offset);
		Memory mem(MemKind::PageList, data.size(), offset);
		ASSERT_EQ(offset, mem.page_offset());
		mem.fill(data);
		dmio_region where = {legs.devs[0].get(), 5, 3};
		unsigned long bits = ~0ul;
		EXPECT_EQ(0, dmio_sync(1, &where, DMIO_WRITE, mem.page_list(), offset, &bits));
		EXPECT_EQ(0ul, bits);
		EXPECT_TRUE(
		    same_bytes(data, read_at(legs.paths[0], 5 * DMIO_SECTOR_SIZE, data.size())));

		Memory back(MemKind::PageList, data.size(), offset);
		back.fill_byte(0);
		EXPECT_EQ(0, dmio_sync(1, &where, DMIO_READ, back.page_list(), offset, &bits));
		EXPECT_TRUE(same_bytes(data, back.contents()));
		EXPECT_TRUE(back.guards_intact());
	}
}

/* "count 0 is ignored": such a region is not written and gets no error bit. */
TEST_F(Memory_, ZeroCountRegionIsIgnored)
{
	Legs legs;
	ASSERT_NO_FATAL_FAILURE(legs.create(tmp_));
	std::vector<uint8_t> data = pattern(4096, 3);
	dmio_region where[2] = {{legs.devs[0].get(), 16, 8}, {legs.devs[1].get(), 16, 0}};
	unsigned long bits = ~0ul;
	EXPECT_EQ(0, dmio_sync_vm(2, where, DMIO_WRITE, data.data(), &bits));
	EXPECT_EQ(0ul, bits);
	EXPECT_TRUE(same_bytes(data, read_at(legs.paths[0], 16 * DMIO_SECTOR_SIZE, 4096)));
	EXPECT_TRUE(same_bytes(legs.images[1], read_at(legs.paths[1], 0, kFileSize)));
}

/* bvecs of odd lengths at odd offsets, two of them in one page, through the seed's bvec calls. */
TEST_F(Memory_, BvecsSplittingPagesWithOddLengths)
{
	Legs legs;
	ASSERT_NO_FATAL_FAILURE(legs.create(tmp_));
	std::vector<uint8_t> data = pattern(40 * DMIO_SECTOR_SIZE, 5);
	Memory mem(MemKind::Bvec, data.size(), 1);
	mem.fill(data);
	dmio_region where[2] = {{legs.devs[0].get(), 0, 40}, {legs.devs[2].get(), 2000, 40}};
	unsigned long bits = ~0ul;
	EXPECT_EQ(0, dmio_sync_bvec(2, where, DMIO_WRITE, mem.bvec(), &bits));
	EXPECT_EQ(0ul, bits);
	EXPECT_TRUE(same_bytes(data, read_at(legs.paths[0], 0, data.size())));
	EXPECT_TRUE(same_bytes(data, read_at(legs.paths[2], 2000 * DMIO_SECTOR_SIZE, data.size())));
	Memory back(MemKind::Bvec, data.size(), 1);
	back.fill_byte(0xaa);
	EXPECT_EQ(0, dmio_sync_bvec(1, &where[1], DMIO_READ, back.bvec(), &bits));
	EXPECT_TRUE(same_bytes(data, back.contents()));
	EXPECT_TRUE(back.guards_intact());
}

/* The largest fan-out: 64 regions, every one at its own place, all with the same data. */
TEST_F(Memory_, SixtyFourRegions)
{
	Legs legs;
	ASSERT_NO_FATAL_FAILURE(legs.create(tmp_));
	std::vector<uint8_t> data = pattern(4 * DMIO_SECTOR_SIZE, 64);
	std::vector<dmio_region> where;
	for (unsigned i = 0; i < DMIO_MAX_REGIONS; i++)
		where.push_back({legs.devs[i % 3].get(), 10 + (i / 3) * 8, 4});
	unsigned long bits = ~0ul;
	EXPECT_EQ(0, dmio_sync_vm(DMIO_MAX_REGIONS, where.data(), DMIO_WRITE, data.data(), &bits));
	EXPECT_EQ(0ul, bits);
	for (unsigned i = 0; i < DMIO_MAX_REGIONS; i++)
		EXPECT_TRUE(
		    same_bytes(data, read_at(legs.paths[i % 3], where[i].sector * DMIO_SECTOR_SIZE,
					     data.size())))
		    << "region " << i;
}

} // namespace
