#!/usr/bin/env bash
# deps.sh: install what simtix needs on a fresh Debian machine, only what is
# missing. Usage: scripts/deps.sh [go|build|pcsc|postgres|test|all]
#   go    the Go toolchain (go.mod's version or newer; fetched from the Go
#         module proxy when missing or too old) and the Go modules (default)
#   build what `go build ./cmd/simtix` needs besides Go: a C compiler,
#         pkg-config and libpcsclite-dev (github.com/ebfe/scard uses cgo)
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

# go_ok GO: whether the go command GO is at least go.mod's version.
go_ok() {
	local want have
	want=$(awk '$1 == "go" { print $2; exit }' go.mod)
	have=$("$1" env GOVERSION 2>/dev/null) || return 1
	have=${have#go}
	# sort -V -C: true when the lines are already in order (want <= have).
	printf '%s\n%s\n' "$want" "$have" | sort -V -C
}

# install_go: put a Go toolchain of go.mod's release (its newest patch
# release) in /usr/local/go, from the Go module proxy's golang.org/toolchain
# module, the same files `go` itself fetches when it switches toolchains.
install_go() {
	apt_need curl ca-certificates unzip
	local want arch proxy list ver tmp sudo=""
	want=$(awk '$1 == "go" { print $2; exit }' go.mod)
	case "$(uname -m)" in
	x86_64) arch=amd64 ;;
	aarch64) arch=arm64 ;;
	*) arch=$(uname -m) ;;
	esac
	proxy=${GOPROXY:-https://proxy.golang.org}
	proxy=${proxy%%[,|]*}
	case "$proxy" in direct | off | "") proxy=https://proxy.golang.org ;; esac
	list=$(curl -fsSL "$proxy/golang.org/toolchain/@v/list")
	ver=$(grep -E "^v0\.0\.1-go${want%.*}\.[0-9]+\.linux-$arch\$" <<<"$list" |
		sed -E 's/^v0\.0\.1-go(.*)\.linux-.*/\1/' | sort -V | tail -n1)
	[ -n "$ver" ] || ver=$want
	log "installing Go $ver in /usr/local/go (from $proxy)"
	tmp=$(mktemp -d)
	curl -fsSL -o "$tmp/go.zip" "$proxy/golang.org/toolchain/@v/v0.0.1-go$ver.linux-$arch.zip"
	unzip -q "$tmp/go.zip" -d "$tmp"
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo rm -rf /usr/local/go
	$sudo mv "$tmp/golang.org/toolchain@v0.0.1-go$ver.linux-$arch" /usr/local/go
	# The zip keeps no file modes: make the commands runnable again.
	$sudo chmod -R a+rX /usr/local/go
	$sudo find /usr/local/go/bin /usr/local/go/pkg/tool -type f -exec chmod a+x {} +
	rm -rf "$tmp"
}

need_go() {
	export PATH=/usr/local/go/bin:$PATH
	if ! command -v go >/dev/null 2>&1 || ! go_ok go; then
		install_go
	fi
	go_ok go || {
		log "$(command -v go) is $(go env GOVERSION); go.mod wants $(awk '$1 == "go" { print $2; exit }' go.mod) or newer"
		exit 1
	}
	log "$(go version)"
	go mod download
}

# need_build: cgo's C compiler and the PC/SC headers that
# github.com/ebfe/scard (hostlib/pcsc, linked into cmd/simtix) compiles
# against.
need_build() {
	command -v gcc >/dev/null 2>&1 || apt_need gcc libc6-dev
	apt_need pkg-config libpcsclite-dev
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
build)
	need_build
	need_go
	;;
test | all)
	# -race and ebfe/scard need cgo and a C compiler.
	need_build
	need_go
	need_pcsc
	# The store's conformance suite runs against a real PostgreSQL
	# (scripts/postgres.sh runs a private cluster).
	apt_need postgresql
	;;
pcsc) need_pcsc ;;
postgres) apt_need postgresql ;;
*)
	echo "usage: $0 [go|build|pcsc|postgres|test|all]" >&2
	exit 2
	;;
esac
