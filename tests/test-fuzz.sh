#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs each libFuzzer target named in fuzz/targets (tests/fuzz.am) for a bounded time on a copy
# of its seed corpus, and fails on any crash, timeout, leak, out-of-memory or sanitizer report,
# printing the reproducer (kept in fuzz/artifacts/TARGET/) and how to replay it.  Skipped when
# configure found no clang with libFuzzer (FUZZ_CC); quickstart.sh check configures with
# --enable-fuzz, so on CI it runs.  tests/fuzz/README.md tells more.
#
# Environment:
#   FUZZ_SECONDS  seconds per target (default 15; 1800 with FUZZ_SOAK)
#   FUZZ_SOAK=1   a long run whose grown corpus is kept in fuzz/soak/TARGET/ for the next one
#   FUZZ_TARGETS  the targets to run, e.g. "fuzz-config" (default: every one built)
#
# By hand, from the build directory's tests/:
#   srcdir=../../tests builddir=. sh ../../tests/test-fuzz.sh

. "${srcdir:-.}/functions.sh"
set -e

fuzzdir=${builddir:-.}/fuzz
test -f "$fuzzdir/targets" ||
	fail "$fuzzdir/targets is missing: run 'make check' (it builds the fuzz targets)"
test -s "$fuzzdir/targets" ||
	skip "configure found no clang with libFuzzer (FUZZ_CC); on Debian: apt-get install clang"

soak=${FUZZ_SOAK:-}
case $soak in '' | 0) soak= ;; esac
seconds=${FUZZ_SECONDS:-${soak:+1800}}
seconds=${seconds:-15}
case $seconds in
'' | *[!0-9]*) fail "FUZZ_SECONDS='$seconds' is not a number of seconds" ;;
esac

make_tmpdir
artifacts=$(cd "$fuzzdir" && pwd)/artifacts
failed=
ran=
# The instrumented binaries run under their own sanitizer options, whatever the caller's are.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=0
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS UBSAN_OPTIONS
unset LSAN_OPTIONS

for target in $(cat "$fuzzdir/targets"); do
	name=${target##*/}
	case " ${FUZZ_TARGETS:-$name} " in *" $name "*) ;; *) continue ;; esac
	ran="$ran $name"
	seeds=${name#fuzz-}
	bin=$(cd "$(dirname "$fuzzdir/../$target")" && pwd)/$name
	test -x "$bin" || fail "$bin was not built"

	# Seeds: hand-made ones from the source tree, generated ones from the build tree.
	if test -n "$soak"; then
		corpus=$(cd "$fuzzdir" && pwd)/soak/$name
	else
		corpus=$tmpdir/$name/corpus
	fi
	rm -rf "$artifacts/$name" # a reproducer shown is always this run's
	mkdir -p "$corpus" "$tmpdir/$name/artifacts"
	for dir in "$srcdir/fuzz/corpus/$seeds" "$fuzzdir/seeds/$seeds"; do
		if test -d "$dir"; then
			find "$dir" -maxdepth 1 -type f ! -name '.*' -exec cp {} "$corpus/" \;
		fi
	done
	test -n "$(ls "$corpus")" || fail "$name has no seeds in $srcdir/fuzz/corpus/$seeds"

	dict=
	test -f "$srcdir/fuzz/$seeds.dict" && dict=-dict=$srcdir/fuzz/$seeds.dict

	log=$tmpdir/$name/log
	echo "$name: ${seconds}s on $(ls "$corpus" | wc -l) inputs${dict:+, dictionary ${dict#-dict=}}"
	status=0
	"$bin" -max_total_time="$seconds" -rss_limit_mb=1024 -malloc_limit_mb=1024 -timeout=25 \
		-detect_leaks=1 -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
		-artifact_prefix="$tmpdir/$name/artifacts/" $dict "$corpus" >"$log" 2>&1 || status=$?
	grep -E '^(stat::number_of_executed_units|#[0-9]+.*DONE)' "$log" | sed "s/^/$name: /" || true

	# Reports that a target could print without exiting non-zero still fail it.
	pattern='ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: '
	reports=$(grep -E "$pattern|fuzz invariant broken|^fuzz: " "$log" || true)
	found=$(ls "$tmpdir/$name/artifacts")
	if test $status -eq 0 && test -z "$reports" && test -z "$found"; then
		continue
	fi
	failed="$failed $name"
	echo "$name: FAILED (exit status $status); the end of its log:" >&2
	tail -n 60 "$log" >&2
	mkdir -p "$artifacts/$name"
	cp "$log" "$artifacts/$name/log"
	for f in $found; do
		cp "$tmpdir/$name/artifacts/$f" "$artifacts/$name/$f"
		echo "$name: reproducer $artifacts/$name/$f; replay it with" >&2
		echo "    $bin $artifacts/$name/$f" >&2
	done
	test -n "$found" ||
		echo "$name: no reproducer was written; the whole log is $artifacts/$name/log" >&2
done

for name in ${FUZZ_TARGETS:-}; do
	case " $ran " in
	*" $name "*) ;;
	*) fail "FUZZ_TARGETS names '$name', which is not built:" \
		"the targets are $(sed 's|.*/||' "$fuzzdir/targets" | tr '\n' ' ')" ;;
	esac
done
test -z "$failed" || fail "fuzz targets failed:$failed"
exit 0
