#!/usr/bin/env bash
# deps.sh: install what simtix needs on a fresh Debian machine, only what is
# missing. Usage: scripts/deps.sh [go|pcsc|postgres|test|all]
#   go    the Go toolchain check and the Go modules (default)
#   pcsc  pcscd, vsmartcard-vpcd, libpcsclite-dev, pcsc-tools, opensc, and
#         Debian's Python virtual card (vsmartcard-vpicc, python3-pycryptodome)
#   postgres  Debian's postgresql (scripts/postgres.sh runs a private cluster)
#   test  what `make test` needs
#   all   everything (alias of test today)
set -euo pipefail
cd "$(dirname "$0")/.."

want=${1:-go}

log() { printf 'deps: %s\n' "$*" >&2; }

# apt_need PKG...: install the Debian packages that are not installed yet.
apt_need() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]}"
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	# Try with the package lists at hand; on a fresh machine they may be
	# missing or stale, so update them once and try again.
	if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
		$sudo apt-get update -qq
		$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

need_go() {
	if ! command -v go >/dev/null 2>&1; then
		if [ -x /usr/local/go/bin/go ]; then
			export PATH=/usr/local/go/bin:$PATH
		else
			apt_need golang-go
		fi
	fi
	log "$(go version)"
	go mod download
}

# need_pcsc: pcscd with the vsmartcard virtual reader, the PC/SC headers
# for cgo (github.com/ebfe/scard), the PC/SC clients the interop tests
# run (pcsc_scan, scriptor from pcsc-tools; opensc-tool from opensc), and
# vsmartcard's Python virtual card (vicc), the peer card of BenchmarkPCSC
# (scripts/vicc.sh runs it), with the pycryptodome it imports.
need_pcsc() {
	apt_need pcscd libpcsclite-dev vsmartcard-vpcd pcsc-tools opensc pkg-config \
		vsmartcard-vpicc python3-virtualsmartcard python3-pycryptodome
}

case "$want" in
go) need_go ;;
test | all)
	need_go
	# -race and ebfe/scard need cgo and a C compiler.
	command -v gcc >/dev/null 2>&1 || apt_need gcc libc6-dev
	need_pcsc
	# The store's conformance suite runs against a real PostgreSQL
	# (scripts/postgres.sh runs a private cluster).
	apt_need postgresql
	;;
pcsc) need_pcsc ;;
postgres) apt_need postgresql ;;
*)
	echo "usage: $0 [go|test|all]" >&2
	exit 2
	;;
esac
