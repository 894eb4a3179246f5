#!/usr/bin/env bash
# simtix-cards.sh: emulated simtix SIM cards in pcscd, for another project's
# CI (docs/ci.md). Starts pcscd with vsmartcard's virtual reader and one
# `simtix card serve` per card image, waits until every card is in its
# readers, and stops it all again.
#
# Usage:
#   scripts/simtix-cards.sh start IMAGE [IMAGE...]   serve these card images
#   scripts/simtix-cards.sh stop                      stop the cards (images saved) and pcscd
#   scripts/simtix-cards.sh status                    list the readers and their cards
#
# Card k (in the order given) is served on reader "Virtual PCD 00 00" /
# "Virtual PCD 00 01" for k = 0 (contact / contactless), and "Virtual PCD k
# 00 00" / "Virtual PCD k 00 01" after that (scripts/pcscd.sh has the port
# layout). Environment: SIMTIX_RUN (default /tmp/simtix-pcscd) for pids and
# logs; SIMTIX_BIN, a simtix binary to use instead of building one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
run=${SIMTIX_RUN:-/tmp/simtix-pcscd}
export SIMTIX_RUN=$run
cards=$run/cards

log() { printf 'simtix-cards: %s\n' "$*" >&2; }

simtix_bin() {
	if [ -n "${SIMTIX_BIN:-}" ]; then
		printf '%s\n' "$SIMTIX_BIN"
		return
	fi
	mkdir -p "$run/bin"
	(cd "$root" && scripts/deps.sh pcsc >&2 && scripts/deps.sh go >&2 &&
		go build -o "$run/bin/simtix" ./cmd/simtix) || {
		log "building simtix failed"
		exit 1
	}
	printf '%s\n' "$run/bin/simtix"
}

stop_cards() {
	[ -d "$cards" ] || return 0
	for pidfile in "$cards"/*.pid; do
		[ -e "$pidfile" ] || continue
		pid=$(cat "$pidfile")
		if kill -TERM "$pid" 2>/dev/null; then
			for _ in $(seq 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -KILL "$pid" 2>/dev/null || true
		fi
		rm -f "$pidfile"
	done
}

case "${1:-}" in
start)
	shift
	[ $# -ge 1 ] || { echo "usage: $0 start IMAGE [IMAGE...]" >&2; exit 2; }
	for img in "$@"; do
		[ -f "$img" ] || { log "no card image $img (make one with: simtix card new)"; exit 2; }
	done
	bin=$(simtix_bin)
	stop_cards
	"$root/scripts/pcscd.sh" start --slots $((2 * $#)) >&2
	mkdir -p "$cards"
	k=0
	for img in "$@"; do
		contact=127.0.0.1:$((35963 + 2 * k))
		contactless=127.0.0.1:$((35964 + 2 * k))
		setsid "$bin" card serve --image "$img" --vpcd "$contact" --contactless-vpcd "$contactless" \
			>"$cards/card$k.log" 2>&1 </dev/null &
		echo $! >"$cards/card$k.pid"
		k=$((k + 1))
	done
	if ! "$bin" readers --wait $((2 * $#)) --timeout 30s; then
		log "the cards did not all appear; their logs:"
		tail -n 20 "$cards"/*.log >&2 || true
		stop_cards
		exit 1
	fi
	;;
stop)
	stop_cards
	"$root/scripts/pcscd.sh" stop >&2 || true
	;;
status)
	bin=$(simtix_bin)
	"$bin" readers
	;;
*)
	echo "usage: $0 start IMAGE [IMAGE...] | stop | status" >&2
	exit 2
	;;
esac
