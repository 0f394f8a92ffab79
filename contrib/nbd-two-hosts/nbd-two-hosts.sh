#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# nbd-two-hosts.sh: a fusemirror mirror across two hosts, both simulated on this machine with
# network namespaces (see README.md next to this script). One namespace is the "remote" host: it
# runs an NBD server (nbdkit, or qemu-nbd) exporting a file. The other is the "local" host: it
# runs fusemirrord with a local file leg and the remote export as a write-mostly leg. A veth pair
# joins them; their addresses exist only inside the two namespaces.
#
#   nbd-two-hosts.sh up      set it all up and serve the mirror file (prints where)
#   nbd-two-hosts.sh status  fusemirrorctl status of the mirror
#   nbd-two-hosts.sh down    stop the daemon and the server, delete the namespaces and the files
#   nbd-two-hosts.sh demo    up, write and read back 16 MiB, compare the legs, down
#
# Run as root. On two real machines the same steps apply without the namespaces: run the
# server on the remote machine, put its address in the [leg] group, run fusemirrord locally.
set -euo pipefail

PROG=${0##*/}
# Everything this script creates; override in the environment.
STATE=${STATE:-/run/fusemirror-two-hosts}  # the legs, the config, the logs, the pid files
NS_LOCAL=${NS_LOCAL:-fm-two-hosts-local}    # fusemirrord's host
NS_REMOTE=${NS_REMOTE:-fm-two-hosts-remote} # the NBD server's host
LOCAL_ADDR=${LOCAL_ADDR:-10.251.74.1}
REMOTE_ADDR=${REMOTE_ADDR:-10.251.74.2}
PORT=${PORT:-10809}
SERVER=${SERVER:-nbdkit}  # nbdkit or qemu-nbd
DELAY_MS=${DELAY_MS:-1}   # latency added by nbdkit's delay filter (this script cannot use
                          # tc netem: many kernels lack sch_netem); 0 for none; not for qemu-nbd
SIZE=${SIZE:-256M}        # each leg's size (the mirror's is 1 MiB less)
FUSEMIRRORD=${FUSEMIRRORD:-fusemirrord}
FUSEMIRRORCTL=${FUSEMIRRORCTL:-fusemirrorctl}

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	say "$*"
	exit 1
}

# CMD in the local host's network namespace, but in this mount namespace: "ip netns exec"
# would also give CMD a mount namespace of its own, and a FUSE mount made there would not be
# seen by anyone else.
in_local() { nsenter --net="/run/netns/$NS_LOCAL" "$@"; }

uri() { echo "nbd://$REMOTE_ADDR:$PORT/"; }

check_tools() {
	local cmd missing=()
	[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces, FUSE mounts)"
	for cmd in ip nsenter nbdinfo getfattr "$FUSEMIRRORD" "$FUSEMIRRORCTL" "$SERVER"; do
		command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
	done
	[ ${#missing[@]} -eq 0 ] ||
		die "missing ${missing[*]} (Debian: apt-get install iproute2 util-linux libnbd-bin attr nbdkit qemu-utils; fusemirror itself: make install, or FUSEMIRRORD=... FUSEMIRRORCTL=...)"
	case $SERVER in nbdkit | qemu-nbd) ;; *) die "SERVER=$SERVER: nbdkit or qemu-nbd" ;; esac
}

# wait_for SECONDS WHAT CMD...: CMD every 0.1 s until it succeeds.
wait_for() {
	local tries=$(($1 * 10)) what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		tries=$((tries - 1))
		[ $tries -gt 0 ] || die "timed out waiting for $what"
		sleep 0.1
	done
}

# 1. Two hosts: two namespaces, a veth pair made inside them (its ends never exist in this
# namespace), an address on each end.
make_hosts() {
	ip netns add "$NS_LOCAL"
	ip netns add "$NS_REMOTE"
	ip link add fm-th-local netns "$NS_LOCAL" type veth peer name fm-th-remote netns "$NS_REMOTE"
	ip -n "$NS_LOCAL" addr add "$LOCAL_ADDR/24" dev fm-th-local
	ip -n "$NS_REMOTE" addr add "$REMOTE_ADDR/24" dev fm-th-remote
	ip -n "$NS_LOCAL" link set lo up
	ip -n "$NS_REMOTE" link set lo up
	ip -n "$NS_LOCAL" link set fm-th-local up
	ip -n "$NS_REMOTE" link set fm-th-remote up
	say "hosts: $NS_LOCAL ($LOCAL_ADDR) and $NS_REMOTE ($REMOTE_ADDR), a veth pair between them"
}

# 2. The remote host's NBD server, exporting its "disk" (a file) on REMOTE_ADDR:PORT.
start_server() {
	truncate -s "$SIZE" "$STATE/remote.img"
	case $SERVER in
	nbdkit)
		local filter=() params=()
		if [ "$DELAY_MS" != 0 ]; then
			filter=(--filter=delay)
			params=("delay-read=${DELAY_MS}ms" "delay-write=${DELAY_MS}ms")
		fi
		# nbdkit forks into the background once it listens, and writes its pid.
		ip netns exec "$NS_REMOTE" nbdkit -i "$REMOTE_ADDR" -p "$PORT" \
			--pidfile "$STATE/server.pid" "${filter[@]}" file "$STATE/remote.img" \
			"${params[@]}" 2>"$STATE/server.log"
		;;
	qemu-nbd)
		# --shared 8: as many clients as connections libdmio opens to one export (qemu-nbd
		# then allows multi-conn); --persistent: fusemirrorctl connects and goes before the
		# daemon comes.
		ip netns exec "$NS_REMOTE" qemu-nbd -f raw --bind "$REMOTE_ADDR" --port "$PORT" \
			--persistent --shared 8 --fork --pid-file "$STATE/server.pid" \
			"$STATE/remote.img" 2>"$STATE/server.log"
		;;
	esac
	wait_for 10 "the server's pid file" test -s "$STATE/server.pid"
	# Reachable from the local host (there is no ping here: connect with nbdinfo).
	wait_for 10 "$(uri) to answer from $NS_LOCAL" in_local nbdinfo --size "$(uri)"
	say "server: $SERVER (pid $(cat "$STATE/server.pid")) exports $STATE/remote.img as $(uri)" \
		"$([ "$SERVER" = nbdkit ] && [ "$DELAY_MS" != 0 ] && echo "with $DELAY_MS ms per read and write")"
}

# 3. The config: a local leg, and the remote export as a write-mostly leg with a short
# io-timeout (fusemirror.conf(5)).
write_config() {
	truncate -s "$SIZE" "$STATE/local.img"
	cat >"$STATE/mirror.conf" <<EOF
# A mirror across two hosts, written by $PROG.
[mirror]
name = two-hosts
metadata = internal

# The local disk: reads come from here.
[leg local]
path = $STATE/local.img

# The remote disk, over NBD: written like every leg, read only when the local leg cannot
# serve; failed after 5 s without an answer rather than holding the mirror.
[leg remote]
path = $(uri)
write-mostly = true
io-timeout = 5
EOF
	say "config: $STATE/mirror.conf"
}

# 4. The mirror: superblocks on both legs (through the server for the remote one), then the
# daemon in the local host, serving STATE/mirror.img at once while it copies the local leg
# onto the remote one (without --assume-clean, create marks every leg but the first resyncing).
start_mirror() {
	local state
	in_local "$FUSEMIRRORCTL" create "$STATE/mirror.conf"
	: >"$STATE/mirror.img"
	in_local "$FUSEMIRRORD" -f -c "$STATE/mirror.conf" "$STATE/mirror.img" \
		</dev/null >"$STATE/fusemirrord.log" 2>&1 &
	echo $! >"$STATE/fusemirrord.pid"
	wait_for 30 "fusemirrord to serve $STATE/mirror.img (see $STATE/fusemirrord.log)" \
		getfattr --absolute-names --only-values -n user.fusemirror.state "$STATE/mirror.img"
	say "mirror: $STATE/mirror.img, served by fusemirrord (pid $(cat "$STATE/fusemirrord.pid")); log $STATE/fusemirrord.log"
	say "waiting for the initial sync over the network (fusemirrorctl status shows its progress)"
	wait_for 600 "the initial sync" mirror_clean
	state=$(getfattr --absolute-names --only-values -n user.fusemirror.state "$STATE/mirror.img")
	say "mirror state: $state"
}

mirror_clean() {
	[ "$(getfattr --absolute-names --only-values -n user.fusemirror.state "$STATE/mirror.img")" = clean ]
}

cmd_up() {
	check_tools
	[ ! -e "$STATE/mirror.conf" ] || die "$STATE/mirror.conf exists: already up? ($PROG down first)"
	mkdir -p "$STATE"
	# A step that fails (or dies) undoes the ones before it.
	trap 'say "setting up failed: tearing down"; cmd_down' EXIT
	make_hosts
	start_server
	write_config
	start_mirror
	trap - EXIT
	cat <<EOF

Up. Use the mirror file like a disk image:
  dd if=/dev/urandom of=$STATE/mirror.img bs=1M count=16 oflag=direct conv=notrunc
  $FUSEMIRRORCTL status $STATE/mirror.img
Stop the remote host's server (kill -STOP \$(cat $STATE/server.pid)) and the next write fails
the remote leg after io-timeout; "$PROG down" removes it all.
EOF
}

cmd_status() {
	"$FUSEMIRRORCTL" status "$STATE/mirror.img"
}

# kill_pidfile FILE: SIGTERM the process whose pid FILE holds (SIGCONT first: it may have been
# stopped), wait up to 20 s, SIGKILL.
kill_pidfile() {
	local pid i
	[ -s "$1" ] || return 0
	pid=$(cat "$1")
	kill -CONT "$pid" 2>/dev/null || true
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	rm -f "$1"
}

# Undo everything, whatever state it is in; every step may find nothing to do.
cmd_down() {
	trap - EXIT
	set +e
	kill_pidfile "$STATE/fusemirrord.pid"
	if awk -v p="$STATE/mirror.img" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo; then
		umount -l "$STATE/mirror.img"
	fi
	kill_pidfile "$STATE/server.pid"
	ip netns del "$NS_LOCAL" 2>/dev/null
	ip netns del "$NS_REMOTE" 2>/dev/null
	if [ -n "${KEEP:-}" ]; then
		say "down; the legs and logs are kept in $STATE (KEEP is set)"
	else
		rm -f "$STATE"/{local.img,remote.img,mirror.img,mirror.conf,server.log,fusemirrord.log}
		rmdir "$STATE" 2>/dev/null
		say "down: namespaces deleted, daemon and server stopped, $STATE removed"
	fi
	set -e
}

cmd_demo() {
	cmd_up
	# From here on, whatever happens, tear down at the end.
	trap cmd_down EXIT
	head -c 16M /dev/urandom >"$STATE/data"
	dd if="$STATE/data" of="$STATE/mirror.img" bs=1M oflag=direct conv=notrunc,fsync status=none
	dd if="$STATE/mirror.img" of="$STATE/back" bs=1M count=16 iflag=direct status=none
	cmp "$STATE/data" "$STATE/back" && say "16 MiB written and read back through the mirror"
	"$FUSEMIRRORCTL" status "$STATE/mirror.img" || true
	kill_pidfile "$STATE/fusemirrord.pid"
	# Both legs hold the data from 1 MiB on (the first MiB is each leg's own superblock and
	# bitmap): the remote one in the server's file.
	cmp -i 1M:0 -n 16M "$STATE/remote.img" "$STATE/data" &&
		say "the remote host's disk holds the same 16 MiB"
	cmp -i 1M:1M "$STATE/local.img" "$STATE/remote.img" &&
		say "the two legs' data areas are identical"
	rm -f "$STATE/data" "$STATE/back"
}

case ${1:-} in
up) cmd_up ;;
status) cmd_status ;;
down) cmd_down ;;
demo) cmd_demo ;;
*)
	sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
	exit 2
	;;
esac
