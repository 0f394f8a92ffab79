/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control-command parser (src/fuse/control.c): every verb and option, the precise refusals,
 * control characters anywhere, messages that never carry one; and the opens table
 * (src/fuse/opens.c): counting, the stop decision, and naming what holds a file (a process, a
 * loop device).
 */
#include "test-util.h"

extern "C" {
#include "config/config.h"
#include "fuse/control.h"
#include "fuse/opens.h"
}

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace
{

struct Parsed {
	int r = 0;
	control_command c{};
	std::string message;
};

Parsed parse(const std::string &text)
{
	Parsed p;
	GError *error = nullptr;

	memset(&p.c, 0x5a, sizeof(p.c)); /* control_parse must set every field */
	p.c.path = nullptr;
	p.r = control_parse(text.c_str(), &p.c, &error);
	if (error != nullptr) {
		p.message = error->message;
		g_error_free(error);
	}
	if (p.r == 0)
		EXPECT_TRUE(p.message.empty()) << "success with a message: " << p.message;
	else
		EXPECT_FALSE(p.message.empty()) << "a refusal without a message: '" << text << "'";
	return p;
}

/* The command parses; the fixture clears it. */
class Control : public ::testing::Test
{
      protected:
	void TearDown() override
	{
		control_command_clear(&p_.c);
	}
	const control_command &ok(const std::string &text)
	{
		control_command_clear(&p_.c);
		p_ = parse(text);
		EXPECT_EQ(0, p_.r) << "'" << text << "': " << p_.message;
		return p_.c;
	}
	/* The command is refused with EINVAL and a message containing want. */
	void refused(const std::string &text, const std::string &want)
	{
		control_command_clear(&p_.c);
		p_ = parse(text);
		EXPECT_EQ(-EINVAL, p_.r) << "'" << text << "'";
		EXPECT_NE(std::string::npos, p_.message.find(want))
		    << "'" << text << "': message '" << p_.message << "', expected '" << want
		    << "'";
		EXPECT_EQ(nullptr, p_.c.path) << "a refused command keeps no path";
	}
	Parsed p_;
};

TEST_F(Control, Fail)
{
	const control_command &c = ok("fail 3");
	EXPECT_EQ(CONTROL_FAIL, c.verb);
	EXPECT_EQ(3u, c.leg);
	EXPECT_FALSE(c.force);
	EXPECT_EQ(0u, ok("fail 0").leg);
	EXPECT_EQ(4294967295u, ok("fail 4294967295").leg) << "any index: the mirror checks it";
	EXPECT_EQ(1u, ok("  fail\t 1 \t").leg);
}

TEST_F(Control, RemoveWithOptions)
{
	const control_command *c = &ok("remove 2");
	EXPECT_EQ(CONTROL_REMOVE, c->verb);
	EXPECT_EQ(2u, c->leg);
	EXPECT_FALSE(c->force);
	EXPECT_FALSE(c->no_save);
	c = &ok("remove --force 1");
	EXPECT_TRUE(c->force);
	EXPECT_FALSE(c->no_save);
	c = &ok("remove --no-save --force 7");
	EXPECT_TRUE(c->force);
	EXPECT_TRUE(c->no_save);
	EXPECT_EQ(7u, c->leg);
	c = &ok("remove --no-save 0");
	EXPECT_FALSE(c->force);
	EXPECT_TRUE(c->no_save);
}

TEST_F(Control, AddTakesTheRestOfTheLine)
{
	const control_command *c = &ok("add /dev/sdc");
	EXPECT_EQ(CONTROL_ADD, c->verb);
	EXPECT_STREQ("/dev/sdc", c->path);
	c = &ok("add --force --no-save /srv/legs/a leg.img  ");
	EXPECT_TRUE(c->force);
	EXPECT_TRUE(c->no_save);
	EXPECT_STREQ("/srv/legs/a leg.img", c->path);
	c = &ok("add nbd://127.0.0.1:10810/exp");
	EXPECT_STREQ("nbd://127.0.0.1:10810/exp", c->path);
	c = &ok("add /caf\xc3\xa9/\xe2\x80\xba");
	EXPECT_STREQ("/caf\xc3\xa9/\xe2\x80\xba", c->path) << "UTF-8 beyond C1 is not a control";
}

TEST_F(Control, AddAndReplaceTakeDirect)
{
	const control_command *c = &ok("add /dev/sdc");
	EXPECT_EQ((unsigned)LEG_DIRECT_AUTO, c->direct) << "the default";
	c = &ok("add --direct=true --no-save /srv/a.img");
	EXPECT_EQ((unsigned)LEG_DIRECT_TRUE, c->direct);
	EXPECT_TRUE(c->no_save);
	EXPECT_STREQ("/srv/a.img", c->path);
	c = &ok("add --direct=false /srv/a.img");
	EXPECT_EQ((unsigned)LEG_DIRECT_FALSE, c->direct);
	c = &ok("replace --direct=auto 1 /dev/sdd");
	EXPECT_EQ((unsigned)LEG_DIRECT_AUTO, c->direct);
	EXPECT_EQ(1u, c->leg);
	c = &ok("replace --direct=true 0 /dev/sdd");
	EXPECT_EQ((unsigned)LEG_DIRECT_TRUE, c->direct);
	refused("add --direct=maybe /a", "add --direct takes auto, true or false, got 'maybe'");
	refused("add --direct= /a", "add --direct takes auto, true or false, got ''");
	refused("remove --direct=true 1", "remove has no option '--direct=true'");
}

TEST_F(Control, ResyncSetStop)
{
	EXPECT_EQ(CONTROL_RESYNC, ok("resync").verb);
	EXPECT_FALSE(ok("resync").full);
	EXPECT_TRUE(ok("resync --full").full);
	const control_command *c = &ok("set resync-rate-min 1048576");
	EXPECT_EQ(CONTROL_SET, c->verb);
	EXPECT_EQ(CONTROL_RESYNC_RATE_MIN, c->tunable);
	EXPECT_STREQ("resync-rate-min", c->tunable_name);
	EXPECT_EQ(1048576u, c->value);
	c = &ok("set resync-rate-max 0");
	EXPECT_EQ(CONTROL_RESYNC_RATE_MAX, c->tunable);
	EXPECT_EQ(0u, c->value);
	EXPECT_EQ(18446744073709551615u, ok("set resync-rate-max 18446744073709551615").value);
	c = &ok("set max-read-errors 7");
	EXPECT_EQ(CONTROL_MAX_READ_ERRORS, c->tunable);
	EXPECT_STREQ("max-read-errors", c->tunable_name);
	EXPECT_EQ(7u, c->value);
	EXPECT_EQ(0u, ok("set max-read-errors 0").value);
	EXPECT_EQ(1000000u, ok("set max-read-errors 1000000").value);
	c = &ok("set write-behind 1 256");
	EXPECT_EQ(CONTROL_WRITE_BEHIND, c->tunable);
	EXPECT_STREQ("write-behind", c->tunable_name);
	EXPECT_TRUE(c->has_leg);
	EXPECT_EQ(1u, c->leg);
	EXPECT_EQ(256u, c->value);
	c = &ok("set write-behind 0");
	EXPECT_FALSE(c->has_leg) << "every write-mostly leg";
	EXPECT_EQ(0u, c->value);
	EXPECT_EQ(16383u, ok("set write-behind 16383").value);
	c = &ok("set reconnect-delay 2.5");
	EXPECT_EQ(CONTROL_RECONNECT_DELAY, c->tunable);
	EXPECT_FALSE(c->has_leg);
	EXPECT_EQ(2500u, c->value) << "milliseconds";
	c = &ok("set reconnect-delay 1 0.001");
	EXPECT_TRUE(c->has_leg);
	EXPECT_EQ(1u, c->leg);
	EXPECT_EQ(1u, c->value);
	c = &ok("set reconnect-max 0 0");
	EXPECT_EQ(CONTROL_RECONNECT_MAX, c->tunable);
	EXPECT_TRUE(c->has_leg);
	EXPECT_EQ(0u, c->value) << "never";
	EXPECT_EQ(1000000u, ok("set reconnect-max 1000000").value);
	c = &ok("stop");
	EXPECT_EQ(CONTROL_STOP, c->verb);
	EXPECT_FALSE(c->force);
	EXPECT_TRUE(ok("stop --force").force);
}

TEST_F(Control, PreciseRefusals)
{
	refused("", "empty control command");
	refused(" \t ", "empty control command");
	refused("frob", "unknown command 'frob'");
	refused("FAIL 1", "unknown command 'FAIL'");
	refused("fails 1", "unknown command 'fails'");
	refused("fail", "fail needs a leg index");
	refused("fail one", "'one' is not a leg index");
	refused("fail 01", "'01' is not a leg index");
	refused("fail +1", "'+1' is not a leg index");
	refused("fail -1", "'-1' is not a leg index");
	refused("fail 0x1", "'0x1' is not a leg index");
	refused("fail 4294967296", "'4294967296' is not a leg index");
	refused("fail 99999999999999999999999", "is not a leg index");
	refused("fail 1 2", "unexpected argument '2'");
	refused("fail --force 1", "fail takes no options, got '--force'");
	refused("remove", "remove needs a leg index");
	refused("remove --full 1", "remove has no option '--full'");
	refused("remove 1 --force", "unexpected argument '--force'");
	refused("add", "add needs the path of the new leg");
	refused("add --force", "add needs the path of the new leg");
	refused("add dev/sdc", "add needs an absolute path");
	refused("add ./leg", "add needs an absolute path or an NBD URI, got './leg'");
	refused("add nbd:///exp", "add: NBD URI 'nbd:///exp' names no host");
	refused("add nbd+unix:///e?password=hunter2", "add: NBD URI 'nbd+unix:///e?password=***' "
						      "names no socket");
	refused("add --bogus /a", "add has no option '--bogus'");
	refused("resync now", "unexpected argument 'now'");
	refused("resync --force", "resync has no option '--force'");
	refused("set", "set needs a tunable and a value");
	refused("set resync-rate", "unknown tunable 'resync-rate'");
	refused("set resync-rate-min", "set resync-rate-min needs a value");
	refused("set resync-rate-min 50M", "resync-rate-min needs a decimal number of bytes per "
					   "second, got '50M'");
	refused("set resync-rate-max -1", "got '-1'");
	refused("set resync-rate-max 18446744073709551616", "got '18446744073709551616'");
	refused("set resync-rate-min 1 2", "unexpected argument '2'");
	refused("set max-read-errors 1000001", "max-read-errors needs a decimal number of read "
					      "errors from 0 to 1000000");
	refused("set reconnect-delay 0", "reconnect-delay needs seconds from 0.001 to 3600");
	refused("set reconnect-delay 1 soon", "got 'soon'");
	refused("set reconnect-max 1000001", "reconnect-max needs a decimal number of tries");
	refused("set max-read-errors 2K", "got '2K'");
	refused("set write-behind 16384", "write-behind needs a decimal number of writes from 0 to "
					  "16383 (0: none), got '16384'");
	refused("set write-behind one 4", "'one' is not a leg index");
	refused("set write-behind 1 -4", "got '-4'");
	refused("stop now", "unexpected argument 'now'");
	refused("stop --no-save", "stop has no option '--no-save'");
}

/* Every control character, in every part of a command, is refused, naming the part. */
TEST_F(Control, ControlCharactersAreRefused)
{
	refused("add /tmp/x\x1b[31mred", "the path contains control character 0x1b");
	refused("add /tmp/a\nLegAdded fake", "the path contains control character 0x0a");
	refused("add /tmp/\x07", "the path contains control character 0x07");
	refused("add /tmp/\x7f", "the path contains control character 0x7f");
	refused("add /tmp/a\tb", "the path contains control character 0x09");
	refused("add /tmp/\xc2\x9b"
		"31m",
		"the path contains control character U+009B");
	refused("fa\x1bil 1", "the command contains control character 0x1b");
	refused("fail 1\x1b", "the leg index contains control character 0x1b");
	refused("fail 1 \x1b", "the command contains control character 0x1b");
	refused("remove --for\x07" "ce 1", "the command contains control character 0x07");
	refused("set resync\x1b-rate-min 1", "the tunable name contains control character 0x1b");
	refused("set resync-rate-min 1\r", "the value contains control character 0x0d");
	/* Found by fuzz-control: the refusal quoted the verb's bytes, which were not UTF-8. */
	refused("remo\xf6" "e 999", "the command is not UTF-8 (byte 4 is 0xf6)");
	refused("add /tmp/\xff", "the path is not UTF-8 (byte 5 is 0xff)");
	refused("stop \x08", "the command contains control character 0x08");

	for (unsigned c = 1; c < 256; c++) {
		bool control = c < 0x20 || c == 0x7f;
		if (!control || c == '\t')
			continue;
		SCOPED_TRACE(c);
		refused(std::string("add /leg") + (char)c, "the path contains control character");
	}
}

/* Whatever the input, a refusal's message holds no control character (it is logged). */
TEST_F(Control, MessagesNeverCarryControlCharacters)
{
	const char *templates[] = {"X",	     "fail X", "fail 1X",	   "remove --X 1",
				   "add X",  "add /X", "set X 1",	   "set resync-rate-min X",
				   "stop X", "X X",    "repair --source X"};
	for (const char *t : templates) {
		for (unsigned c = 1; c < 256; c++) {
			std::string text = t;
			text.replace(text.find('X'), 1, std::string(1, (char)c));
			Parsed p = parse(text);
			ASSERT_TRUE(g_utf8_validate(p.message.c_str(), -1, NULL))
			    << "'" << text << "' gave a message that is not UTF-8";
			for (unsigned char m : p.message)
				ASSERT_FALSE(m < 0x20 || m == 0x7f)
				    << "'" << text << "' gave a message with 0x" << std::hex
				    << (int)m << ": " << p.message;
			control_command_clear(&p.c);
		}
	}
}

TEST_F(Control, CheckRepair)
{
	EXPECT_EQ(CONTROL_CHECK, ok("check").verb);
	EXPECT_EQ(CONTROL_REPAIR, ok("repair").verb);
	EXPECT_FALSE(ok("repair").has_source);
	const control_command *c = &ok("repair --source 2");
	EXPECT_TRUE(c->has_source);
	EXPECT_EQ(2u, c->leg);
	EXPECT_EQ(CONTROL_REPAIR, ok("  repair\t--source  0 ").verb);
	refused("check now", "unexpected argument 'now'");
	refused("check --source 1", "check takes no options, got '--source'");
	refused("repair --full", "repair has no option '--full'");
	refused("repair --source", "repair --source needs a leg index");
	refused("repair --source --source 1", "repair --source needs a leg index");
	refused("repair --source 01", "'01' is not a leg index");
	refused("repair --source b", "'b' is not a leg index");
	refused("repair --source 1 2", "unexpected argument '2'");
	refused("repair 1", "unexpected argument '1'");
	refused("repair --source \x1b", "the leg index contains control character 0x1b");
	refused("frob",
		"(there are: fail, remove, add, resync, set, stop, check, repair, replace, restart)");
}

TEST_F(Control, ReplaceTakesALegThenTheRestOfTheLine)
{
	const control_command *c = &ok("replace 1 /dev/sdd");
	EXPECT_EQ(CONTROL_REPLACE, c->verb);
	EXPECT_EQ(1u, c->leg);
	EXPECT_STREQ("/dev/sdd", c->path);
	EXPECT_FALSE(c->no_save);
	c = &ok("replace --no-save	0  /srv/legs/new leg.img ");
	EXPECT_TRUE(c->no_save);
	EXPECT_EQ(0u, c->leg);
	EXPECT_STREQ("/srv/legs/new leg.img", c->path);
	refused("replace", "replace needs a leg index and the path of the new leg");
	refused("replace 1", "replace needs the path of the new leg");
	refused("replace /dev/sdd", "'/dev/sdd' is not a leg index");
	refused("replace b /dev/sdd", "'b' is not a leg index");
	refused("replace 1 dev/sdd", "replace needs an absolute path or an NBD URI, got 'dev/sdd'");
	c = &ok("replace 1 nbd+unix:///exp?socket=/run/nbd.sock ");
	EXPECT_STREQ("nbd+unix:///exp?socket=/run/nbd.sock", c->path);
	refused("replace 1 nbds://alice:hunter2@/e",
		"replace: NBD URI 'nbds://***@/e' names no host");
	refused("replace --force 1 /dev/sdd", "replace has no option '--force'");
	refused("replace 1 /x\x1b", "the path contains control character 0x1b");
	EXPECT_STREQ("replace", control_verb_name(CONTROL_REPLACE));
}

TEST_F(Control, ClearTwiceAndVerbNames)
{
	control_command c{};
	control_command_clear(&c);
	GError *error = nullptr;
	ASSERT_EQ(0, control_parse("add /a", &c, &error));
	control_command_clear(&c);
	EXPECT_EQ(nullptr, c.path);
	control_command_clear(&c);
	EXPECT_STREQ("fail", control_verb_name(CONTROL_FAIL));
	EXPECT_STREQ("remove", control_verb_name(CONTROL_REMOVE));
	EXPECT_STREQ("add", control_verb_name(CONTROL_ADD));
	EXPECT_STREQ("resync", control_verb_name(CONTROL_RESYNC));
	EXPECT_STREQ("set", control_verb_name(CONTROL_SET));
	EXPECT_STREQ("stop", control_verb_name(CONTROL_STOP));
	EXPECT_STREQ("check", control_verb_name(CONTROL_CHECK));
	EXPECT_STREQ("repair", control_verb_name(CONTROL_REPAIR));
}

TEST(ControlEscape, NoRawControlCharacterSurvives)
{
	char *s = control_escape("add /x\x1b[31m\nfake\x07\x7f\\\"");
	std::string e = s;
	g_free(s);
	EXPECT_EQ("add /x\\033[31m\\nfake\\007\\177\\\\\\\"", e);
}

/* ---- The opens table ---------------------------------------------------------------------- */

class Opens : public ::testing::Test
{
      protected:
	void SetUp() override
	{
		path_ = dir_ / "file";
		dmio_test::create_sparse(path_, 1 << 20);
		GError *error = nullptr;
		opens_ = opens_new(path_.c_str(), &error);
		ASSERT_NE(nullptr, opens_) << (error ? error->message : "");
	}
	void TearDown() override
	{
		if (child_ > 0) {
			kill(child_, SIGKILL);
			waitpid(child_, nullptr, 0);
		}
		opens_free(opens_);
	}
	/* A child process that holds path_ open until killed. */
	pid_t hold_open()
	{
		int ready[2];
		EXPECT_EQ(0, pipe(ready));
		child_ = fork();
		if (child_ == 0) {
			int fd = open(path_.c_str(), O_RDONLY);
			(void)!write(ready[1], fd >= 0 ? "y" : "n", 1);
			for (;;)
				pause();
		}
		char c = 0;
		EXPECT_EQ(1, read(ready[0], &c, 1));
		EXPECT_EQ('y', c);
		close(ready[0]);
		close(ready[1]);
		return child_;
	}
	bool idle_readable()
	{
		struct pollfd p = {opens_idle_fd(opens_), POLLIN, 0};
		return poll(&p, 1, 0) == 1;
	}
	dmio_test::TempDir dir_;
	std::string path_;
	struct opens *opens_ = nullptr;
	pid_t child_ = -1;
};

TEST_F(Opens, CountsAndTheStopDecision)
{
	EXPECT_EQ(0u, opens_count(opens_));
	uint64_t a = opens_add(opens_, getpid());
	uint64_t b = opens_add(opens_, getpid());
	EXPECT_NE(0u, a);
	EXPECT_NE(0u, b);
	EXPECT_NE(a, b);
	EXPECT_EQ(2u, opens_count(opens_));

	GError *error = nullptr;
	EXPECT_EQ(-EBUSY, opens_begin_stop(opens_, false, &error));
	ASSERT_NE(nullptr, error);
	std::string message = error->message;
	g_clear_error(&error);
	EXPECT_NE(std::string::npos, message.find(path_ + " is in use: 2 opens, opened by process"))
	    << message;
	EXPECT_NE(std::string::npos, message.find(std::to_string(getpid()))) << message;

	opens_remove(opens_, a);
	opens_remove(opens_, 12345); /* unknown: ignored */
	EXPECT_EQ(1u, opens_count(opens_));
	EXPECT_FALSE(idle_readable()) << "one open is left";
	opens_remove(opens_, b);
	EXPECT_EQ(0u, opens_count(opens_));
	EXPECT_TRUE(idle_readable()) << "the last close wakes the stopper";

	/* A refused decision leaves the door open. */
	uint64_t c = opens_add(opens_, getpid());
	EXPECT_NE(0u, c);
	opens_remove(opens_, c);
	EXPECT_EQ(0, opens_begin_stop(opens_, false, &error));
	EXPECT_EQ(nullptr, error);
	EXPECT_EQ(0u, opens_add(opens_, getpid())) << "no open once the stop is decided";
	EXPECT_EQ(0u, opens_count(opens_));
}

TEST_F(Opens, ForceStopsWhileOpen)
{
	uint64_t a = opens_add(opens_, getpid());
	GError *error = nullptr;
	EXPECT_EQ(0, opens_begin_stop(opens_, true, &error));
	EXPECT_EQ(nullptr, error);
	EXPECT_EQ(0u, opens_add(opens_, getpid()));
	EXPECT_EQ(1u, opens_count(opens_));
	opens_remove(opens_, a);
}

TEST_F(Opens, NamesTheProcessHoldingTheFile)
{
	char **none = opens_find_processes(path_.c_str());
	EXPECT_EQ(nullptr, none[0]);
	g_strfreev(none);

	pid_t pid = hold_open();
	char **procs = opens_find_processes(path_.c_str());
	ASSERT_NE(nullptr, procs[0]);
	std::string first = procs[0];
	EXPECT_EQ(nullptr, procs[1]);
	g_strfreev(procs);
	EXPECT_EQ(0u, first.find(std::to_string(pid) + " (")) << first;

	uint64_t id = opens_add(opens_, pid);
	char *what = opens_describe(opens_);
	std::string described = what;
	g_free(what);
	EXPECT_EQ("process " + first + " has it open", described);
	opens_remove(opens_, id);
}

TEST_F(Opens, NamesTheLoopDeviceBoundToTheFile)
{
	dmio_test::LoopDevice loop;
	int err = loop.attach(path_);
	if (dmio_test::environment_refuses(err))
		GTEST_SKIP() << "no loop device here: " << strerror(err);
	ASSERT_EQ(0, err);
	char **loops = opens_find_loop_devices(path_.c_str());
	ASSERT_NE(nullptr, loops[0]);
	EXPECT_EQ(loop.path(), loops[0]);
	EXPECT_EQ(nullptr, loops[1]);
	g_strfreev(loops);

	char *what = opens_describe(opens_);
	std::string described = what;
	g_free(what);
	EXPECT_EQ(0u, described.find("loop device " + loop.path() + " is bound to it"))
	    << described;
}

} // namespace
