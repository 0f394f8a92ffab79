/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared fixtures of the libdmio GoogleTest suites; see test-util.h. */
#include "test-util.h"

#include <fcntl.h>
#include <ftw.h>
#include <linux/loop.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace dmio_test
{

namespace
{

constexpr uint8_t kGuard = 0x5c;

/*
 * Mounts made by the tests live in a private mount namespace: they vanish with the process even
 * when a test crashes.  Done before main(), while the process has one thread.
 */
const bool private_mount_namespace = [] {
	if (unshare(CLONE_NEWNS) != 0)
		return false;
	return mount("none", "/", "none", MS_REC | MS_PRIVATE, nullptr) == 0;
}();

char watchdog_message[512];

void watchdog_fired(int)
{
	ssize_t n = write(STDERR_FILENO, watchdog_message, strlen(watchdog_message));
	(void)n;
	_exit(124);
}

} // namespace

unsigned scale()
{
	const char *s = getenv("DMIO_TEST_SCALE");
	long v = s ? strtol(s, nullptr, 10) : 1;
	return v >= 1 ? (unsigned)v : 1;
}

std::chrono::milliseconds completion_timeout()
{
	return std::chrono::milliseconds(30000) * scale();
}

/* ---- Bytes --------------------------------------------------------------------------------- */

std::vector<uint8_t> pattern(size_t len, uint32_t seed)
{
	std::vector<uint8_t> v(len);
	uint64_t x = 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed * 0x2545f4914f6cdd1dull);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		v[i] = (uint8_t)(x >> 24);
	}
	return v;
}

::testing::AssertionResult same_bytes(const std::vector<uint8_t> &expected,
				      const std::vector<uint8_t> &actual)
{
	if (expected.size() != actual.size())
		return ::testing::AssertionFailure()
		       << "size " << actual.size() << ", expected " << expected.size();
	for (size_t i = 0; i < expected.size(); i++) {
		if (expected[i] != actual[i]) {
			size_t n = 0;
			for (size_t j = i; j < expected.size(); j++)
				n += expected[j] != actual[j];
			char buf[160];
			snprintf(buf, sizeof(buf),
				 "first difference at byte %zu (0x%zx): 0x%02x, expected 0x%02x; "
				 "%zu of %zu bytes differ",
				 i, i, actual[i], expected[i], n, expected.size());
			return ::testing::AssertionFailure() << buf;
		}
	}
	return ::testing::AssertionSuccess();
}

::testing::AssertionResult all_bytes_are(const std::vector<uint8_t> &bytes, uint8_t value)
{
	for (size_t i = 0; i < bytes.size(); i++) {
		if (bytes[i] != value) {
			char buf[120];
			snprintf(buf, sizeof(buf), "byte %zu of %zu is 0x%02x, expected 0x%02x", i,
				 bytes.size(), bytes[i], value);
			return ::testing::AssertionFailure() << buf;
		}
	}
	return ::testing::AssertionSuccess();
}

/* ---- Files -------------------------------------------------------------------------------- */

void write_file(const std::string &path, const std::vector<uint8_t> &contents)
{
	int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ADD_FAILURE() << "open " << path << ": " << strerror(errno);
		return;
	}
	size_t done = 0;
	while (done < contents.size()) {
		ssize_t n = pwrite(fd, contents.data() + done, contents.size() - done, done);
		if (n <= 0) {
			ADD_FAILURE() << "pwrite " << path << ": " << strerror(errno);
			break;
		}
		done += n;
	}
	if (fsync(fd) != 0)
		ADD_FAILURE() << "fsync " << path << ": " << strerror(errno);
	close(fd);
}

void create_sparse(const std::string &path, uint64_t size)
{
	int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)size) != 0)
		ADD_FAILURE() << "create " << path << ": " << strerror(errno);
	if (fd >= 0)
		close(fd);
}

std::vector<uint8_t> read_at(const std::string &path, uint64_t offset, size_t len)
{
	std::vector<uint8_t> v(len);
	int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ADD_FAILURE() << "open " << path << ": " << strerror(errno);
		return v;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, v.data() + done, len - done, (off_t)(offset + done));
		if (n <= 0) {
			ADD_FAILURE() << "pread " << path << " at " << offset + done << ": "
				      << (n == 0 ? "end of file" : strerror(errno));
			break;
		}
		done += n;
	}
	close(fd);
	return v;
}

void write_at(const std::string &path, uint64_t offset, const std::vector<uint8_t> &data)
{
	int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		ADD_FAILURE() << "open " << path << ": " << strerror(errno);
		return;
	}
	size_t done = 0;
	while (done < data.size()) {
		ssize_t n =
		    pwrite(fd, data.data() + done, data.size() - done, (off_t)(offset + done));
		if (n <= 0) {
			ADD_FAILURE() << "pwrite " << path << ": " << strerror(errno);
			break;
		}
		done += n;
	}
	if (fsync(fd) != 0)
		ADD_FAILURE() << "fsync " << path << ": " << strerror(errno);
	close(fd);
}

uint64_t allocated_blocks(const std::string &path)
{
	struct stat st;
	if (stat(path.c_str(), &st) != 0) {
		ADD_FAILURE() << "stat " << path << ": " << strerror(errno);
		return 0;
	}
	return (uint64_t)st.st_blocks;
}

void fill_filesystem(const std::string &dir)
{
	std::string path = dir + "/filler";
	int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ADD_FAILURE() << "open " << path << ": " << strerror(errno);
		return;
	}
	std::vector<uint8_t> chunk(64 * 1024, 0x66);
	for (size_t size = chunk.size(); size > 0; size /= 2) {
		while (write(fd, chunk.data(), size) == (ssize_t)size)
			;
		if (errno != ENOSPC && errno != 0) {
			ADD_FAILURE() << "write " << path << ": " << strerror(errno);
			break;
		}
	}
	/* Full: not even one byte more. */
	errno = 0;
	EXPECT_EQ(-1, write(fd, chunk.data(), 1)) << path << " is not full";
	EXPECT_EQ(ENOSPC, errno);
	close(fd);
}

/* ---- Resources ---------------------------------------------------------------------------- */

TempDir::TempDir()
{
	const char *base = getenv("TMPDIR");
	std::string tmpl = std::string(base && *base ? base : "/tmp") + "/dmio-test.XXXXXX";
	std::vector<char> buf(tmpl.begin(), tmpl.end());
	buf.push_back('\0');
	if (!mkdtemp(buf.data())) {
		ADD_FAILURE() << "mkdtemp " << tmpl << ": " << strerror(errno);
		return;
	}
	path_ = buf.data();
}

TempDir::~TempDir()
{
	if (path_.empty())
		return;
	nftw(
	    path_.c_str(),
	    [](const char *p, const struct stat *, int, struct FTW *) { return remove(p); }, 16,
	    FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

Mount::~Mount()
{
	if (!dir_.empty() && umount2(dir_.c_str(), MNT_DETACH) != 0)
		fprintf(stderr, "umount %s: %s\n", dir_.c_str(), strerror(errno));
}

int Mount::mount(const std::string &dir, const std::string &fstype, const std::string &options)
{
	if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
		return errno;
	if (::mount(fstype.c_str(), dir.c_str(), fstype.c_str(), 0, options.c_str()) != 0)
		return errno;
	dir_ = dir;
	return 0;
}

LoopDevice::~LoopDevice()
{
	if (holder_ < 0)
		return;
	/* Detaches now, or (if the device is still open elsewhere) on its last close. */
	ioctl(holder_, LOOP_CLR_FD, 0);
	close(holder_);
}

int LoopDevice::attach(const std::string &backing, bool read_only, unsigned block_size)
{
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return errno;
	int backing_fd = open(backing.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (backing_fd < 0) {
		int err = errno;
		close(ctl);
		return err;
	}
	int err = EBUSY;
	/* Another process may take the free device between GET_FREE and CONFIGURE: retry. */
	for (int attempt = 0; attempt < 100 && err == EBUSY; attempt++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			err = errno;
			break;
		}
		std::string path = "/dev/loop" + std::to_string(n);
		int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			err = errno;
			if (err == ENOENT) /* the node is not there yet */
				err = EBUSY, usleep(10000);
			continue;
		}
		struct loop_config config;
		memset(&config, 0, sizeof(config));
		config.fd = (uint32_t)backing_fd;
		config.block_size = block_size;
		config.info.lo_flags = LO_FLAGS_AUTOCLEAR | (read_only ? LO_FLAGS_READ_ONLY : 0);
		snprintf((char *)config.info.lo_file_name, sizeof(config.info.lo_file_name), "%s",
			 backing.c_str());
		if (ioctl(fd, LOOP_CONFIGURE, &config) == 0) {
			holder_ = fd;
			path_ = path;
			err = 0;
			break;
		}
		err = errno;
		close(fd);
	}
	close(backing_fd);
	close(ctl);
	return err;
}

uint64_t LoopDevice::queue_attribute(const std::string &name) const
{
	std::string dev = path_.substr(path_.rfind('/') + 1);
	std::ifstream in("/sys/block/" + dev + "/queue/" + name);
	uint64_t v = 0;
	in >> v;
	return v;
}

bool environment_refuses(int err)
{
	return err == EPERM || err == EACCES || err == ENODEV || err == ENXIO ||
	       (err == ENOENT && access("/dev/loop-control", F_OK) != 0);
}

/* ---- Library handles --------------------------------------------------------------------- */

int open_dev(const std::string &path, unsigned int flags, Dev *out)
{
	dmio_dev *dev = nullptr;
	int r = dmio_dev_open(path.c_str(), flags, &dev);
	if (r == 0)
		out->reset(dev);
	return r;
}

const char *engine_name(Engine engine)
{
	return engine == Engine::Threads ? "threads" : "io_uring";
}

static bool io_uring_disabled()
{
	const char *v = getenv("DMIO_TEST_NO_IO_URING");
	return v && *v && strcmp(v, "0") != 0;
}

const char *io_uring_skip_reason()
{
	if (io_uring_disabled())
		return "io_uring variants are off (DMIO_TEST_NO_IO_URING): valgrind serialises "
		       "threads and deadlocks when one waits in io_uring_enter while another "
		       "submits (liburing issue #657)";
	return "the io_uring engine is not built in (dmio_client_create: -ENOTSUP)";
}

int make_client(Engine engine, Client *out, unsigned threads, unsigned reserved_pages)
{
	if (engine == Engine::IoUring && io_uring_disabled())
		return -ENOTSUP;
	dmio_client_opts opts;
	memset(&opts, 0, sizeof(opts));
	opts.engine = engine == Engine::Threads ? DMIO_ENGINE_THREADS : DMIO_ENGINE_IO_URING;
	opts.threads = threads;
	opts.reserved_pages = reserved_pages;
	dmio_client *client = nullptr;
	int r = dmio_client_create(&opts, &client);
	if (r == 0)
		out->reset(client);
	return r;
}

/* ---- Memory ------------------------------------------------------------------------------- */

const char *mem_kind_name(MemKind kind)
{
	switch (kind) {
	case MemKind::PageList:
		return "page_list";
	case MemKind::Bvec:
		return "bvec";
	case MemKind::Vm:
		return "vm";
	case MemKind::Iovec:
		return "iovec";
	}
	return "?";
}

uint8_t *Memory::alloc(size_t len)
{
	size_t rounded = (len + DMIO_PAGE_SIZE - 1) / DMIO_PAGE_SIZE * DMIO_PAGE_SIZE;
	void *p = aligned_alloc(DMIO_PAGE_SIZE, rounded ? rounded : DMIO_PAGE_SIZE);
	if (!p)
		abort();
	memset(p, kGuard, rounded ? rounded : DMIO_PAGE_SIZE);
	allocations_.push_back(p);
	return (uint8_t *)p;
}

Memory::Memory(MemKind kind, size_t size, unsigned twist) : kind_(kind), size_(size)
{
	switch (kind) {
	case MemKind::PageList: {
		page_offset_ = twist == 0 ? 1234 : twist == kPageAligned ? 0 : twist;
		size_t npages = (page_offset_ + size + DMIO_PAGE_SIZE - 1) / DMIO_PAGE_SIZE;
		if (npages == 0)
			npages = 1;
		pl_.resize(npages);
		size_t left = size;
		for (size_t i = 0; i < npages; i++) {
			uint8_t *page = alloc(DMIO_PAGE_SIZE);
			pl_[i].page = page;
			pl_[i].next = i + 1 < npages ? &pl_[i + 1] : nullptr;
			size_t start = i == 0 ? page_offset_ : 0;
			size_t len = std::min(left, (size_t)DMIO_PAGE_SIZE - start);
			if (start)
				guards_.push_back({page, start});
			data_.push_back({page + start, len});
			if (start + len < DMIO_PAGE_SIZE)
				guards_.push_back(
				    {page + start + len, DMIO_PAGE_SIZE - start - len});
			left -= len;
		}
		break;
	}
	case MemKind::Bvec: {
		struct Piece {
			bool new_page;
			unsigned offset, len;
		};
		static const Piece even[] = {
		    {true, 512, 1024}, {false, 2048, 2048}, {true, 0, 4096}};
		static const Piece odd[] = {
		    {true, 100, 1000}, {false, 1500, 2000}, {true, 0, 4096}, {true, 7, 519}};
		const Piece *pieces = twist ? odd : even;
		size_t npieces = twist ? 4 : 3;
		size_t left = size;
		uint8_t *page = nullptr;
		std::vector<std::pair<uint8_t *, std::vector<bool>>> used;
		for (size_t i = 0; left > 0; i++) {
			const Piece &piece = pieces[i % npieces];
			if (piece.new_page || !page) {
				page = alloc(DMIO_PAGE_SIZE);
				used.emplace_back(page, std::vector<bool>(DMIO_PAGE_SIZE, false));
			}
			unsigned len = (unsigned)std::min(left, (size_t)piece.len);
			bvec_.push_back({page, len, piece.offset});
			data_.push_back({page + piece.offset, len});
			for (unsigned b = 0; b < len; b++)
				used.back().second[piece.offset + b] = true;
			left -= len;
		}
		/* Everything in the pages that no piece covers is guard. */
		for (auto &u : used) {
			for (size_t b = 0; b < DMIO_PAGE_SIZE;) {
				if (u.second[b]) {
					b++;
					continue;
				}
				size_t e = b;
				while (e < DMIO_PAGE_SIZE && !u.second[e])
					e++;
				guards_.push_back({u.first + b, e - b});
				b = e;
			}
		}
		break;
	}
	case MemKind::Vm: {
		size_t misalign = twist;
		uint8_t *base = alloc(size + misalign + 2 * DMIO_PAGE_SIZE);
		uint8_t *p = base + DMIO_PAGE_SIZE + misalign;
		vm_ = p;
		guards_.push_back({base, DMIO_PAGE_SIZE + misalign});
		guards_.push_back({p + size, DMIO_PAGE_SIZE});
		data_.push_back({p, size});
		break;
	}
	case MemKind::Iovec: {
		static const size_t even[] = {1024, 8192, 512, 3072};
		static const size_t odd[] = {700, 5000, 3, 1333, 8192};
		const size_t *lens = twist ? odd : even;
		size_t nlens = twist ? 5 : 4;
		constexpr size_t gap = 16;
		size_t pieces = 0, left = size;
		while (left > 0) {
			left -= std::min(left, lens[pieces % nlens]);
			pieces++;
		}
		uint8_t *base = alloc(size + (pieces + 1) * gap);
		uint8_t *p = base;
		left = size;
		for (size_t i = 0; i < pieces; i++) {
			guards_.push_back({p, gap});
			p += gap;
			size_t len = std::min(left, lens[i % nlens]);
			iov_.push_back({p, len});
			data_.push_back({p, len});
			p += len;
			left -= len;
		}
		guards_.push_back({p, gap});
		break;
	}
	}
	/* Unused vectors must still have a valid data() for descriptors of zero bytes. */
	if (size == 0 && kind == MemKind::Iovec)
		iov_.push_back({alloc(1), 0});
}

Memory::~Memory()
{
	for (void *p : allocations_)
		free(p);
}

dmio_memory Memory::desc()
{
	dmio_memory m;
	memset(&m, 0, sizeof(m));
	switch (kind_) {
	case MemKind::PageList:
		m.type = DMIO_MEM_PAGE_LIST;
		m.offset = page_offset_;
		m.ptr.pl = pl_.data();
		break;
	case MemKind::Bvec:
		m.type = DMIO_MEM_BVEC;
		m.ptr.bvec = bvec_.data();
		break;
	case MemKind::Vm:
		m.type = DMIO_MEM_VM;
		m.ptr.vma = vm_;
		break;
	case MemKind::Iovec:
		m.type = DMIO_MEM_IOVEC;
		m.ptr.iov.vec = iov_.data();
		m.ptr.iov.count = (unsigned)iov_.size();
		break;
	}
	return m;
}

void Memory::fill(const std::vector<uint8_t> &data)
{
	ASSERT_EQ(size_, data.size());
	size_t at = 0;
	for (const Span &s : data_) {
		memcpy(s.p, data.data() + at, s.len);
		at += s.len;
	}
}

void Memory::fill_byte(uint8_t value)
{
	for (const Span &s : data_)
		memset(s.p, value, s.len);
}

std::vector<uint8_t> Memory::contents() const
{
	std::vector<uint8_t> v;
	v.reserve(size_);
	for (const Span &s : data_)
		v.insert(v.end(), s.p, s.p + s.len);
	return v;
}

::testing::AssertionResult Memory::guards_intact() const
{
	for (const Span &s : guards_)
		for (size_t i = 0; i < s.len; i++)
			if (s.p[i] != kGuard)
				return ::testing::AssertionFailure()
				       << mem_kind_name(kind_)
				       << " memory: a guard byte outside the "
				       << "data was overwritten";
	return ::testing::AssertionSuccess();
}

/* ---- Completions ----------------------------------------------------------------------------- */

void Completion::notify(unsigned long error, void *context)
{
	auto *c = static_cast<Completion *>(context);
	std::lock_guard<std::mutex> guard(c->lock_);
	c->calls_++;
	c->error_ = error;
	c->thread_ = std::this_thread::get_id();
	/* Under the lock: once the waiter sees the call, this thread no longer touches *c. */
	c->cond_.notify_all();
}

bool Completion::wait(std::chrono::milliseconds timeout)
{
	std::unique_lock<std::mutex> guard(lock_);
	return cond_.wait_for(guard, timeout, [this] { return calls_ > 0; });
}

int Completion::calls() const
{
	std::lock_guard<std::mutex> guard(lock_);
	return calls_;
}

unsigned long Completion::error() const
{
	std::lock_guard<std::mutex> guard(lock_);
	return error_;
}

std::thread::id Completion::thread() const
{
	std::lock_guard<std::mutex> guard(lock_);
	return thread_;
}

/* ---- Issuing I/O -------------------------------------------------------------------------- */

const char *call_name(Call call)
{
	switch (call) {
	case Call::SeedSync:
		return "seed_sync";
	case Call::SeedAsync:
		return "seed_async";
	case Call::DmioSync:
		return "dmio_sync_req";
	case Call::DmioAsync:
		return "dmio_async_req";
	}
	return "?";
}

bool is_seed(Call call)
{
	return call == Call::SeedSync || call == Call::SeedAsync;
}

bool is_async(Call call)
{
	return call == Call::SeedAsync || call == Call::DmioAsync;
}

IoOutcome run_io(Call call, dmio_client *client, dmio_op op, Memory *mem,
		 std::vector<dmio_region> regions, unsigned int flags)
{
	IoOutcome out;
	/* Heap-allocated and leaked on timeout, so a late notify never touches a dead object. */
	auto *done = new Completion;
	unsigned n = (unsigned)regions.size();
	dmio_region *where = regions.empty() ? nullptr : regions.data();
	unsigned long *bits = &out.bits;
	out.bits = ~0ul;

	if (is_seed(call)) {
		int rw = (int)op;
		bool async = call == Call::SeedAsync;
		dmio_notify_fn fn = &Completion::notify;
		switch (mem ? mem->kind() : MemKind::Vm) {
		case MemKind::PageList:
			out.ret = async ? dmio_async(n, where, rw, mem->page_list(),
						     mem->page_offset(), fn, done)
					: dmio_sync(n, where, rw, mem->page_list(),
						    mem->page_offset(), bits);
			break;
		case MemKind::Bvec:
			out.ret = async ? dmio_async_bvec(n, where, rw, mem->bvec(), fn, done)
					: dmio_sync_bvec(n, where, rw, mem->bvec(), bits);
			break;
		case MemKind::Vm:
			out.ret =
			    async ? dmio_async_vm(n, where, rw, mem ? mem->vm() : nullptr, fn, done)
				  : dmio_sync_vm(n, where, rw, mem ? mem->vm() : nullptr, bits);
			break;
		case MemKind::Iovec:
			ADD_FAILURE() << "the seed calls take no iovec memory";
			delete done;
			return out;
		}
	} else {
		out.region_errors.assign(n ? n : 1, kUnsetRegionError);
		dmio_request req;
		memset(&req, 0, sizeof(req));
		req.op = op;
		req.flags = flags;
		if (mem)
			req.mem = mem->desc();
		req.client = client;
		req.region_errors = out.region_errors.data();
		if (call == Call::DmioAsync) {
			req.notify.fn = &Completion::notify;
			req.notify.context = done;
		}
		out.ret = dmio(&req, n, where, call == Call::DmioAsync ? nullptr : bits);
	}

	if (is_async(call)) {
		if (out.ret == 0) {
			if (!done->wait()) {
				ADD_FAILURE() << call_name(call) << ": no notify within "
					      << completion_timeout().count() << " ms";
				return out; /* leaks done on purpose */
			}
			out.bits = done->error();
			out.notify_in_caller = done->thread() == std::this_thread::get_id();
		}
		out.notify_calls = done->calls();
	}
	delete done;
	if (!regions.empty() && !is_seed(call))
		out.region_errors.resize(n);
	return out;
}

void expect_success(const IoOutcome &o, Call call, size_t regions, const std::string &what)
{
	SCOPED_TRACE(what);
	EXPECT_EQ(0, o.ret);
	EXPECT_EQ(0ul, o.bits);
	if (is_async(call)) {
		EXPECT_EQ(1, o.notify_calls);
		EXPECT_FALSE(o.notify_in_caller) << "notify ran in the submitting thread";
	}
	if (!is_seed(call)) {
		for (size_t i = 0; i < regions && i < o.region_errors.size(); i++)
			EXPECT_EQ(0, o.region_errors[i]) << "region_errors[" << i << "]";
	}
}

/* ---- Fixtures ----------------------------------------------------------------------------- */

void DmioTest::SetUp()
{
	ASSERT_FALSE(tmp_.path().empty());
	const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
	snprintf(watchdog_message, sizeof(watchdog_message),
		 "\nwatchdog: %s.%s did not finish in %u s; giving up on the whole binary\n",
		 info->test_suite_name(), info->name(), 120 * scale());
	signal(SIGALRM, watchdog_fired);
	alarm(120 * scale());
}

void DmioTest::TearDown()
{
	alarm(0);
}

void DefaultClientTest::SetUp()
{
	DmioTest::SetUp();
	ASSERT_EQ(0, dmio_get(kReservedPages)) << "dmio_get";
	got_ = true;
}

void DefaultClientTest::TearDown()
{
	if (got_)
		dmio_put(kReservedPages);
	DmioTest::TearDown();
}

std::string sanitize_name(std::string name)
{
	for (char &c : name)
		if (!isalnum((unsigned char)c))
			c = '_';
	return name;
}

bool have_nbdkit()
{
	return system("command -v nbdkit >/dev/null 2>&1") == 0;
}

/* Whether something accepts a connection on the unix socket sock. */
static bool socket_accepts(const std::string &sock)
{
	struct sockaddr_un addr = {};
	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock.c_str());
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
	close(fd);
	return ok;
}

int NbdKit::start(const std::string &sock, const std::vector<std::string> &args)
{
	std::vector<std::string> argv = {"nbdkit", "-f", "--exit-with-parent", "-U", sock};
	argv.insert(argv.end(), args.begin(), args.end());
	unlink(sock.c_str());
	pid_ = fork();
	if (pid_ < 0)
		return errno;
	if (pid_ == 0) {
		std::vector<char *> v;
		for (auto &a : argv)
			v.push_back(const_cast<char *>(a.c_str()));
		v.push_back(nullptr);
		execvp("nbdkit", v.data());
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		struct stat st;
		/* The socket exists before nbdkit listens on it: until then, refused. */
		if (stat(sock.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && socket_accepts(sock))
			return 0;
		int status;
		if (waitpid(pid_, &status, WNOHANG) == pid_) {
			pid_ = -1;
			return ECHILD;
		}
		usleep(10000);
	}
	return ETIMEDOUT;
}

void NbdKit::signal(int sig)
{
	if (pid_ > 0)
		kill(pid_, sig);
}

void NbdKit::stop(int sig)
{
	if (pid_ <= 0)
		return;
	kill(pid_, SIGCONT);
	kill(pid_, sig);
	waitpid(pid_, nullptr, 0);
	pid_ = -1;
}

} // namespace dmio_test
