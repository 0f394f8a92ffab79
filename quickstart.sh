#!/bin/sh
# fusemirror quick start, on a fresh Debian 12 machine, as root:
#
#   ./quickstart.sh demo    install what is missing, build, serve a mirror of two image files it
#                           creates, write and read through it, show its status
#   ./quickstart.sh check   install what is missing, build with -Werror and ASan/UBSan, run every
#                           test; the last line is "N passed, N failed, N skipped"
#
# Environment: FUSEMIRROR_DEMO_DIR (default /var/tmp/fusemirror-demo), JOBS (default: nproc).
set -eu

top=$(cd "$(dirname "$0")" && pwd)
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

# Build and test dependencies, all Debian 12 packages.
PACKAGES="build-essential autoconf automake libtool pkg-config
	libglib2.0-dev libfuse3-dev fuse3 libgtest-dev liburing-dev libblkid-dev
	fio e2fsprogs util-linux attr python3 valgrind groff-base mandoc clang-format bindfs
	nbdkit libnbd-bin libnbd-dev systemd
	clang libclang-rt-14-dev"

die() {
	echo "quickstart: $*" >&2
	exit 1
}

install_packages() {
	missing=
	for p in $PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing packages:$missing; run as root to install them"
	echo "quickstart: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# configure in $1 with the remaining arguments, unless it is already configured that way.
configure_in() {
	dir=$1
	shift
	if [ ! -x "$top/configure" ] || [ "$top/configure.ac" -nt "$top/configure" ]; then
		(cd "$top" && autoreconf -fi >/dev/null) || return 1
	fi
	mkdir -p "$dir"
	if [ ! -f "$dir/config.status" ] || [ "$(cat "$dir/.quickstart-flags" 2>/dev/null)" != "$*" ]; then
		(cd "$dir" && "$top/configure" -q "$@") || return 1
		echo "$*" >"$dir/.quickstart-flags"
	fi
	make -C "$dir" -s -j"$jobs" >/dev/null
}

# Sum the automake test-suite totals of every test-suite.log under $1.
totals() {
	find "$1" -name test-suite.log -exec cat {} + | awk '
		/^# PASS:/  { pass += $3 }
		/^# XFAIL:/ { pass += $3 }
		/^# SKIP:/  { skip += $3 }
		/^# FAIL:/  { fail += $3 }
		/^# XPASS:/ { fail += $3 }
		/^# ERROR:/ { fail += $3 }
		END { printf "%d passed, %d failed, %d skipped\n", pass, fail, skip }'
}

demo() {
	install_packages
	configure_in "$top/_build" CFLAGS="-O2 -g"
	bin=$top/_build/src
	dir=${FUSEMIRROR_DEMO_DIR:-/var/tmp/fusemirror-demo}
	file=$dir/mirror.img
	mkdir -p "$dir"

	# A previous demo may still be serving: stop it first (unmounting stops the daemon).
	if grep -qs " $file fuse" /proc/self/mounts; then
		umount "$file"
		sleep 1
	fi
	fresh=
	for leg in a b; do
		if [ ! -f "$dir/leg-$leg.img" ]; then
			truncate -s 256M "$dir/leg-$leg.img"
			fresh=1
		fi
	done
	cat >"$dir/demo.conf" <<CONF
# The quick start's mirror: two image files, served as $file.
[mirror]
name = demo
mountpoint = $file

[leg a]
path = $dir/leg-a.img

[leg b]
path = $dir/leg-b.img
CONF
	echo "quickstart: legs $dir/leg-a.img and $dir/leg-b.img, config $dir/demo.conf"
	if [ -n "$fresh" ]; then
		# New, all-zero legs already hold the same data: no initial sync needed.
		rm -f "$dir/leg-a.img" "$dir/leg-b.img"
		truncate -s 256M "$dir/leg-a.img" "$dir/leg-b.img"
		"$bin/ctl/fusemirrorctl" create --assume-clean "$dir/demo.conf"
	fi
	"$bin/daemon/fusemirrord" -c "$dir/demo.conf"
	echo "quickstart: fusemirrord serves $file"

	head -c 16M /dev/urandom >"$dir/data.bin"
	dd if="$dir/data.bin" of="$file" bs=1M oflag=direct conv=notrunc,fsync status=none
	echo "quickstart: wrote 16 MiB through the mirror; checksums of the first 16 MiB:"
	printf '  %s  %s\n' "$(head -c 16M "$dir/data.bin" | sha256sum | cut -c1-16)" "$dir/data.bin"
	printf '  %s  %s\n' "$(head -c 16M "$file" | sha256sum | cut -c1-16)" "$file"
	# The legs' data starts after their 1 MiB of superblock and write-intent bitmap.
	for f in "$dir/leg-a.img" "$dir/leg-b.img"; do
		printf '  %s  %s (from 1 MiB on)\n' \
			"$(tail -c +1048577 "$f" | head -c 16M | sha256sum | cut -c1-16)" "$f"
	done
	rm -f "$dir/data.bin"
	echo
	"$bin/ctl/fusemirrorctl" status "$file" || true
	cat <<EOT

quickstart: the mirror keeps running.  Try:
  losetup --direct-io=on -f --show $file     # then mkfs.ext4 and mount it
  $bin/ctl/fusemirrorctl status --json $file
  $bin/ctl/fusemirrorctl examine $dir/leg-a.img
  getfattr -d -m - $file
Stop it with:  umount $file     (the daemon flushes both legs and exits)
EOT
}

check() {
	install_packages
	build=$top/_build-check
	# --enable-fuzz: configure fails rather than skip the fuzz targets (clang is installed above).
	if ! configure_in "$build" --enable-gcc-warnings --enable-sanitizers --enable-fuzz; then
		echo "quickstart: the build failed (see above)" >&2
		echo "0 passed, 1 failed"
		exit 1
	fi
	find "$build" -name test-suite.log -delete
	status=0
	make -C "$build" -s -j"$jobs" check >"$build/check.out" 2>&1 || status=$?
	grep -E '^(PASS|FAIL|SKIP|ERROR|XFAIL|XPASS):' "$build/check.out" || true
	if [ $status -ne 0 ]; then
		cat "$build/check.out" | tail -n 40
		find "$build" -name test-suite.log -exec cat {} +
	fi
	line=$(totals "$build")
	case $line in
	*" 0 failed"*) [ $status -eq 0 ] || line="$line (make check exited $status)" ;;
	esac
	echo "$line"
	[ $status -eq 0 ]
}

case ${1:-} in
demo) demo ;;
check) check ;;
*)
	echo "usage: $0 demo|check" >&2
	exit 2
	;;
esac
