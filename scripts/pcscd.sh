#!/usr/bin/env bash
# pcscd.sh: run pcscd with vsmartcard's virtual reader (vpcd) for simtix's
# emulated cards (`simtix card serve`) and the tests that use them.
#
# Usage: scripts/pcscd.sh start [--slots N] | stop | restart [--slots N] | status
#
#   start    install what is missing (scripts/deps.sh pcsc), start pcscd in
#            the background in its own session and wait until it is ready:
#            its socket /run/pcscd/pcscd.comm exists and every vpcd port
#            listens (10 s at most; on failure the log's tail is printed
#            and the exit status is 1). If the pcscd this script started is
#            already running with N slots it is reused; with another slot
#            count it is restarted.
#   stop     stop the pcscd this script started (TERM, then KILL after 5 s),
#            wait until it has exited, remove what it left (a stale socket,
#            the pid file, the generated reader configuration).
#   restart  stop, then start with the same slot count (or --slots N).
#   status   say whether it runs: exit 0 running, 3 not running, 4 a pcscd
#            that this script did not start is running.
#
# --slots N (even, 2 to 16, default 2): vpcd reader slots. Slot n listens on
# TCP port 35963+n (on all interfaces, as vpcd does). Each emulated card
# takes two slots, contact on the even one, contactless on the odd one:
#
#   card  contact port  contactless port  contact reader         contactless reader
#   0     35963         35964             "Virtual PCD 00 00"    "Virtual PCD 00 01"
#   1     35965         35966             "Virtual PCD 1 00 00"  "Virtual PCD 1 00 01"
#   k     35963+2k      35964+2k          "Virtual PCD k 00 00"  "Virtual PCD k 00 01"
#
# (--slots 16 is 8 cards, up to port 35978.)
#
# Card 0 is Debian's own layout (/etc/reader.conf.d/vpcd). How more slots are
# made: vpcd opens two slots per reader entry, on the entry's port and the
# next one. The driver keeps its connections in a static table indexed by
# slot, and pcscd loads a library path only once, so a second entry naming
# the same library would overwrite the first entry's slots; each extra entry
# therefore gets its own copy of the driver (another path is another dlopen)
# and its own FRIENDLYNAME (pcscd names every vpcd entry "NAME 00 nn").
#
# The reader configuration is this script's own: pcscd runs with
# `-c RUN/reader.conf.d`, so Debian's /etc/reader.conf.d is neither read nor
# changed. A pcscd that this script did not start (for instance the
# system's) is not touched: start fails with a clear message, because only
# one pcscd can run on a machine (its socket path is fixed) and its slots
# are unknown.
#
# Environment: SIMTIX_RUN (default /tmp/simtix-pcscd) holds pcscd.pid,
# pcscd.log, slots, reader.conf.d/ and the driver copies;
# SIMTIX_PCSCD_DEBUG=1 runs pcscd with -d -a (debug log with every APDU).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
run=${SIMTIX_RUN:-/tmp/simtix-pcscd}
pidfile=$run/pcscd.pid
logfile=$run/pcscd.log
slotsfile=$run/slots
confdir=$run/reader.conf.d
sock=/run/pcscd/pcscd.comm
base_port=35963
debian_conf=/etc/reader.conf.d/vpcd
default_lib=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
ready_timeout=10 # seconds
stop_timeout=5   # seconds before KILL

say() { printf 'pcscd.sh: %s\n' "$*"; }
die() {
	printf 'pcscd.sh: %s\n' "$*" >&2
	exit 1
}

usage() {
	echo "usage: $0 start [--slots N] | stop | restart [--slots N] | status" >&2
	exit 2
}

# ours: the pid of the pcscd this script started, if it still runs.
ours() {
	local pid
	[ -f "$pidfile" ] || return 1
	pid=$(cat "$pidfile" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = pcscd ] || return 1
	echo "$pid"
}

# foreign: pids of pcscd processes this script did not start.
foreign() {
	local mine p out=()
	mine=$(ours || true)
	for p in $(pgrep -x pcscd || true); do
		[ "$p" = "$mine" ] && continue
		# A zombie is not running.
		[ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] && continue
		out+=("$p")
	done
	echo "${out[*]:-}"
}

# listening PORT: whether a TCP socket listens on PORT (read from /proc, so
# that nothing connects: a connection to vpcd would be taken for a card).
listening() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# driver: the vpcd driver library, as Debian's configuration names it.
driver() {
	local lib=""
	[ -f "$debian_conf" ] && lib=$(awk '$1 == "LIBPATH" { print $2; exit }' "$debian_conf")
	[ -n "$lib" ] || lib=$default_lib
	[ -e "$lib" ] || die "vpcd driver $lib not found (is vsmartcard-vpcd installed?)"
	echo "$lib"
}

# write_config SLOTS: the reader configuration for SLOTS slots.
write_config() {
	local slots=$1 lib k port
	lib=$(driver)
	rm -rf "$confdir" "$run"/libifdvpcd-*.so
	mkdir -p "$confdir"
	{
		echo "# Written by simtix scripts/pcscd.sh: $slots vpcd slots from port $base_port."
		for ((k = 0; k < slots / 2; k++)); do
			port=$((base_port + 2 * k))
			echo
			# Debian's order of the keys: pcscd's parser adds an entry as
			# soon as it has a name, a device and a library, still holding
			# the previous entry's values, so DEVICENAME precedes LIBPATH.
			if [ "$k" -eq 0 ]; then
				echo 'FRIENDLYNAME "Virtual PCD"'
				echo "DEVICENAME   /dev/null:$port"
				echo "LIBPATH      $lib"
			else
				cp "$(readlink -f "$lib")" "$run/libifdvpcd-$k.so"
				echo "FRIENDLYNAME \"Virtual PCD $k\""
				echo "DEVICENAME   /dev/null:$port"
				echo "LIBPATH      $run/libifdvpcd-$k.so"
			fi
			echo "CHANNELID    $port"
		done
	} >"$confdir/vpcd"
}

log_tail() {
	[ -f "$logfile" ] || return 0
	echo "--- last lines of $logfile:" >&2
	tail -n 30 "$logfile" >&2
	echo "---" >&2
}

do_status() {
	local pid f
	if pid=$(ours); then
		say "running (pid $pid, $(cat "$slotsfile" 2>/dev/null || echo '?') slots from port $base_port, log $logfile)"
		return 0
	fi
	f=$(foreign)
	if [ -n "$f" ]; then
		say "a pcscd not started by this script is running (pid $f)"
		return 4
	fi
	say "not running"
	return 3
}

do_stop() {
	local pid i
	if pid=$(ours); then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < stop_timeout * 20; i++)); do
			[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = pcscd ] || break
			[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
			sleep 0.05
		done
		if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = pcscd ] &&
			[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
			say "pcscd (pid $pid) did not stop within ${stop_timeout}s: killing it"
			kill -KILL "$pid" 2>/dev/null || true
			sleep 0.2
		fi
		say "stopped (pid $pid)"
	else
		say "not running"
	fi
	rm -f "$pidfile" "$slotsfile"
	rm -rf "$confdir" "$run"/libifdvpcd-*.so
	# A socket left by a pcscd that died: the next pcscd would take it for
	# a running one. Only when no pcscd at all runs.
	if [ -z "$(foreign)" ] && [ -e "$sock" ]; then
		rm -f "$sock"
	fi
}

# reserve_ports keeps the kernel from giving the vpcd ports to outgoing
# connections (they lie in its ephemeral range), when it may (root, a
# writable /proc/sys); otherwise a busy port makes start try again.
reserve_ports() {
	local f=/proc/sys/net/ipv4/ip_local_reserved_ports range cur
	range="$base_port-$((base_port + 15))"
	[ -w "$f" ] || return 0
	cur=$(cat "$f" 2>/dev/null) || return 0
	case ",$cur," in *",$range,"*) return 0 ;; esac
	echo "${cur:+$cur,}$range" >"$f" 2>/dev/null || true
}

do_start() {
	local slots=$1 attempt=${2:-1} pid f args i port missing
	if pid=$(ours); then
		if [ "$(cat "$slotsfile" 2>/dev/null)" = "$slots" ]; then
			say "already running (pid $pid, $slots slots)"
			return 0
		fi
		say "running with $(cat "$slotsfile" 2>/dev/null || echo '?') slots: restarting with $slots"
		do_stop
	fi
	f=$(foreign)
	if [ -n "$f" ]; then
		die "a pcscd not started by this script is running (pid $f); only one pcscd can run on a machine. Stop it first (kill $f, or systemctl stop pcscd.socket pcscd) and run this again."
	fi

	"$root/scripts/deps.sh" pcsc
	command -v pcscd >/dev/null 2>&1 || die "pcscd is not installed (scripts/deps.sh pcsc did not install it)"

	reserve_ports
	mkdir -p "$run"
	rm -f "$pidfile" "$slotsfile"
	[ -e "$sock" ] && rm -f "$sock" # stale: no pcscd runs
	write_config "$slots"
	args=(--foreground -c "$confdir")
	[ "${SIMTIX_PCSCD_DEBUG:-}" = 1 ] && args+=(-d -a)
	# Its own session, so that a terminal's Ctrl-C does not reach it; stdin
	# closed, output to the log and the lock's fd closed, so that it holds
	# no caller's pipe and no lock.
	setsid pcscd "${args[@]}" </dev/null >"$logfile" 2>&1 9>&- &
	pid=$!
	echo "$pid" >"$pidfile"
	echo "$slots" >"$slotsfile"

	for ((i = 0; i < ready_timeout * 20; i++)); do
		# Alive, not a zombie (its comm is still bash or setsid until it
		# has exec'd pcscd: do not test the name here).
		if ! kill -0 "$pid" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
			wait "$pid" 2>/dev/null && rc=0 || rc=$?
			printf 'pcscd.sh: pcscd exited during start-up (status %s)\n' "$rc" >&2
			log_tail
			rm -f "$pidfile" "$slotsfile"
			exit 1
		fi
		# A reader that cannot open its port (taken by another program)
		# never comes: say so at once.
		if grep -qE 'init failed|Could not initialize connection' "$logfile" 2>/dev/null; then
			do_stop >/dev/null
			# An outgoing connection may hold the port for a moment
			# (the vpcd ports lie in the kernel's ephemeral range):
			# try again before giving up.
			if ((attempt < 3)); then
				say "a vpcd port was busy; starting again"
				sleep 1
				do_start "$slots" $((attempt + 1))
				return
			fi
			printf 'pcscd.sh: pcscd (pid %s) could not start a vpcd reader (is a vpcd port in use by another program?)\n' "$pid" >&2
			log_tail
			exit 1
		fi
		missing=""
		[ -S "$sock" ] || missing="socket $sock"
		for ((port = base_port; port < base_port + slots; port++)); do
			listening "$port" || missing="${missing:+$missing, }port $port"
		done
		if [ -z "$missing" ]; then
			say "pcscd running (pid $pid): $slots vpcd slots on ports $base_port-$((base_port + slots - 1)), log $logfile"
			return 0
		fi
		sleep 0.05
	done
	printf 'pcscd.sh: pcscd (pid %s) not ready after %ss: no %s\n' "$pid" "$ready_timeout" "$missing" >&2
	log_tail
	do_stop >/dev/null
	exit 1
}

[ $# -ge 1 ] || usage
cmd=$1
shift
slots=""
while [ $# -gt 0 ]; do
	case "$1" in
	--slots)
		[ $# -ge 2 ] || usage
		slots=$2
		shift 2
		;;
	--slots=*)
		slots=${1#--slots=}
		shift
		;;
	*) usage ;;
	esac
done
if [ -n "$slots" ]; then
	if ! [[ $slots =~ ^[0-9]+$ ]] || [ "$slots" -lt 2 ] || [ "$slots" -gt 16 ] || [ $((slots % 2)) -ne 0 ]; then
		echo "pcscd.sh: --slots $slots: want an even number from 2 to 16 (pcscd has 16 reader slots at most)" >&2
		exit 2
	fi
fi

mkdir -p "$run"
# One command at a time (start/stop/restart/status from several shells).
exec 9>"$run/.ctl.lock"
flock -w 30 9 || die "another pcscd.sh has been busy for 30 s (lock $run/.ctl.lock)"

case "$cmd" in
start) do_start "${slots:-2}" ;;
stop)
	[ -z "$slots" ] || usage
	do_stop
	;;
restart)
	[ -n "$slots" ] || slots=$(cat "$slotsfile" 2>/dev/null || echo 2)
	do_stop
	do_start "$slots"
	;;
status)
	[ -z "$slots" ] || usage
	do_status
	;;
*) usage ;;
esac
