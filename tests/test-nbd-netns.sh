#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A mirror across two hosts, on one machine: two network namespaces of this test's own (a
# "local" and a "remote" one) joined by a veth pair, with addresses that exist only inside them.
# The NBD server runs in the remote namespace, fusemirrord in the local one, with a local file
# leg and the remote leg nbd://ADDR:PORT/ (write-mostly, io-timeout = 5).  fusemirrorctl
# creates the mirror there, fio writes and verifies through the mount, and once the daemon has
# stopped the local leg's data area and the server's file are byte-identical.  Two variants:
#   nbdkit    the file plugin behind the delay filter (1 ms per read and write: a LAN's latency;
#             this kernel has no sch_netem for tc to add it on the link)
#   qemu-nbd  -f raw --persistent --shared 8, no added latency
# The daemon and fusemirrorctl run under nsenter --net, which switches the network namespace
# only: "ip netns exec" also makes a mount namespace of its own, and the FUSE mount made in it
# would not be seen here.  Everything the test made (namespaces, servers, the mount) goes on
# every exit path, through functions.sh's cleanup stack.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires ip nsenter nbdkit qemu-nbd nbdinfo nbdcopy fio cmp dd truncate
grep -q '^#define HAVE_LIBNBD 1' "${top_builddir:-..}/config.h" 2>/dev/null ||
	skip "libdmio is built without libnbd: no NBD legs"
make_daemon_tmpdir

mib=1048576
leg_size=$((64 * mib))
data_size=$((leg_size - mib))
# Namespaces named after this process: tests running in parallel do not meet.  The addresses
# live only inside them, so every run may use the same ones.
ns_local=fm-$$-a
ns_remote=fm-$$-b
local_addr=10.251.73.1
remote_addr=10.251.73.2
port=10809
engine=$(fio_engine)

# ---- Two hosts ---------------------------------------------------------------------------------

ip netns add "$ns_local" || fail "ip netns add $ns_local"
cleanup_fn "ip netns del '$ns_local'"
ip netns add "$ns_remote" || fail "ip netns add $ns_remote"
cleanup_fn "ip netns del '$ns_remote'"
# The pair is made inside the namespaces: its names never exist in the host's namespace.
ip link add fm-veth-a netns "$ns_local" type veth peer name fm-veth-b netns "$ns_remote" ||
	fail "cannot create the veth pair"
ip -n "$ns_local" addr add "$local_addr/24" dev fm-veth-a
ip -n "$ns_remote" addr add "$remote_addr/24" dev fm-veth-b
for ns in "$ns_local" "$ns_remote"; do
	ip -n "$ns" link set lo up
	ip -n "$ns" link set "fm-veth-${ns##*-}" up
done

# in_local CMD...: CMD in the local namespace's network, in this mount namespace.
in_local ()
{
	nsenter --net="/run/netns/$ns_local" "$@"
}

# The daemon runs in the local namespace: start_daemon runs "$daemon_env fusemirrord ...", and
# nsenter execs its command, so $! stays the daemon's pid.
daemon_env="nsenter --net=/run/netns/$ns_local $daemon_env"

# ---- One variant -------------------------------------------------------------------------------

# server_answers URI: whether the export answers, from the local namespace, with its size.
server_answers ()
{
	test "$(in_local nbdinfo --size "$1" 2>/dev/null)" = "$leg_size"
}

# start_server KIND FILE: the NBD server of that kind in the remote namespace, serving FILE on
# $remote_addr:$port; sets server_pid and uri; it is killed at exit if it still runs.
start_server ()
{
	_pidfile=$tmpdir/$1.pid
	rm -f "$_pidfile"
	case $1 in
	nbdkit)
		ip netns exec "$ns_remote" nbdkit -i "$remote_addr" -p $port --pidfile "$_pidfile" \
			--filter=delay file "$2" delay-read=1ms delay-write=1ms \
			>"$tmpdir/$1.log" 2>&1 || fail "nbdkit did not start: $(cat "$tmpdir/$1.log")"
		;;
	qemu-nbd)
		# Up to 8 clients at once, as many connections as libdmio's pool opens (qemu-nbd
		# then offers multi-conn); persistent: fusemirrorctl's connection comes and goes first.
		ip netns exec "$ns_remote" qemu-nbd -f raw --bind "$remote_addr" --port $port \
			--persistent --shared 8 --fork --pid-file "$_pidfile" "$2" \
			>"$tmpdir/$1.log" 2>&1 || fail "qemu-nbd did not start: $(cat "$tmpdir/$1.log")"
		;;
	esac
	wait_until 10 "the $1 pid file" test -s "$_pidfile"
	server_pid=$(cat "$_pidfile")
	cleanup_fn "kill $server_pid 2>/dev/null"
	uri=nbd://$remote_addr:$port/
	wait_until 10 "$1 to answer on $uri from $ns_local" server_answers "$uri"
	# And only there: the host's own namespace has no route to it.
	if timeout 5 nbdinfo --size "$uri" >/dev/null 2>&1; then
		fail "$uri answers from the host's namespace: the addresses are not only in the test's"
	fi
}

# stop_server: SIGTERM the server and wait for it to go (it is not our child: poll).
stop_server ()
{
	kill "$server_pid" 2>/dev/null || true
	_tries=100
	while kill -0 "$server_pid" 2>/dev/null; do
		_tries=$((_tries - 1))
		test $_tries -gt 0 || fail "the NBD server $server_pid did not stop on SIGTERM"
		sleep 0.1
	done
}

# write_jobs FILE TARGET: fio with crc32c verification, on disjoint ranges of the mirror: large
# sequential writes, small random ones at queue depth 16 (more than libdmio's 8 connections),
# and mixed sizes; the last MiB of the data area stays unwritten.
write_jobs ()
{
	cat >"$1" <<EOF
[global]
filename=$2
ioengine=$engine
direct=1
verify=crc32c
verify_fatal=1
verify_state_save=0
end_fsync=1
stonewall

[seq-1m-qd4]
rw=write
bs=1m
iodepth=4
offset=0
size=16m

[rand-4k-qd16]
rw=randwrite
bs=4k
iodepth=16
offset=16m
size=4m

[rand-4k-1m-qd8]
rw=randwrite
bsrange=4k-1m
iodepth=8
offset=20m
size=24m

[seq-64k-qd1-buffered]
rw=write
bs=64k
direct=0
ioengine=psync
offset=44m
size=8m
EOF
}

# run_variant KIND: the whole scenario with one kind of server.
run_variant ()
{
	kind=$1
	local_leg=$tmpdir/$kind-local.img
	remote_file=$tmpdir/$kind-remote.img
	# The local leg starts with random bytes, the remote one with zeroes: the initial sync has
	# to copy all of it over the network for the legs to end up equal.
	head -c $leg_size /dev/urandom >"$local_leg"
	truncate -s $leg_size "$remote_file"
	start_server "$kind" "$remote_file"

	conf=$tmpdir/$kind.conf
	cat >"$conf" <<EOF
[mirror]
name = netns-$kind
metadata = internal
stop-timeout = 0

[leg local]
path = $local_leg

[leg remote]
path = $uri
write-mostly = true
io-timeout = 5
EOF
	in_local "$fusemirrorctl" create "$conf" >"$tmpdir/$kind.create" 2>&1 ||
		fail "fusemirrorctl create with the remote leg $uri: $(cat "$tmpdir/$kind.create")"
	# create wrote a superblock on both legs, the remote one through the server; leg 0 is in
	# sync and the remote leg resyncing from offset 0, which the daemon copies when it starts.
	"$fusemirrorctl" examine "$remote_file" >"$tmpdir/$kind.examine" 2>&1 ||
		fail "no superblock on the server's file: $(cat "$tmpdir/$kind.examine")"

	mirror=$tmpdir/$kind.mirror
	start_daemon "$conf" "$mirror"
	start=$(date +%s)
	wait_until 120 "the initial sync of the remote leg" state_is clean
	echo "$kind: the initial sync of $data_size bytes took $(($(date +%s) - start)) s" >&2
	assert_eq "$(file_size "$mirror")" $data_size "the size of the mirror"
	assert_eq "$(leg_state "$mirror" 1)" in_sync "the remote leg's state"
	assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.path)" "$uri" "the remote leg's path"

	write_jobs "$tmpdir/$kind.fio" "$mirror"
	start=$(date +%s)
	run_fio "$kind" "$tmpdir/$kind.fio"
	echo "$kind: fio wrote and verified through the mirror in $(($(date +%s) - start)) s" >&2
	assert_eq "$(grep -Ec 'err= *0' "$tmpdir/fio-$kind.out")" 4 "fio jobs that ended well"
	assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "the state after fio"
	assert_eq "$(leg_state "$mirror" 1)" in_sync "the remote leg after fio"
	assert_eq "$(xattr "$mirror" user.fusemirror.error_bits)" 0x0 "error_bits after fio"

	read_mirror "$mirror" "$tmpdir/$kind.through"
	not_zero "$tmpdir/$kind.through"
	stop_daemon

	# What the mirror served is what both legs hold, the remote one on the server's side.
	cmp -i 0:$mib -n $data_size "$tmpdir/$kind.through" "$local_leg" >&2 ||
		fail "$kind: the local leg's data area is not what the mirror served"
	data_equal $data_size "$local_leg" "$remote_file"
	# Read back through the server too, from the local namespace: it serves what its file holds.
	in_local nbdcopy "$uri" "$tmpdir/$kind.served" || fail "nbdcopy cannot read $uri back"
	cmp -n $leg_size "$remote_file" "$tmpdir/$kind.served" >&2 ||
		fail "$kind: the server serves something else than its file"
	stop_server
	rm -f "$local_leg" "$remote_file" "$tmpdir/$kind.through" "$tmpdir/$kind.served"
	echo "$kind: the local leg and the server's file hold the same $data_size bytes" >&2
}

run_variant nbdkit
run_variant qemu-nbd
exit 0
