#!/usr/bin/env bash
# deps.sh: install what simtix needs on a fresh Debian machine, only what is
# missing. Usage: scripts/deps.sh [go|test|all]
#   go    the Go toolchain check and the Go modules (default)
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
	if [ ! -f /var/lib/apt/periodic/update-success-stamp ] && [ -z "${SIMTIX_APT_UPDATED:-}" ]; then
		$sudo apt-get update -qq
		export SIMTIX_APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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

case "$want" in
go) need_go ;;
test | all)
	need_go
	# -race needs cgo and a C compiler.
	command -v gcc >/dev/null 2>&1 || apt_need gcc libc6-dev
	;;
*)
	echo "usage: $0 [go|test|all]" >&2
	exit 2
	;;
esac
