#!/usr/bin/env bash
# vicc.sh: run Debian's Python virtual smart card (vsmartcard's vicc) as a
# card in a vpcd slot of a running pcscd (scripts/pcscd.sh), as a peer to
# compare simtix's emulated cards with (BenchmarkPCSC in emulator/vpcd).
#
# Usage: scripts/vicc.sh check
#        scripts/vicc.sh run [--port P] [--type T] [--quickack] [-- VICC-ARGS...]
#
#   check  install what is missing (scripts/deps.sh pcsc) and check that
#          vicc and its Python modules load; on failure say why, exit 1.
#   run    check, then become vicc (exec: the caller's child is vicc
#          itself) in the foreground: a card of type T (default iso7816)
#          that dials vpcd's slot on 127.0.0.1 port P (default 35963, slot
#          0; slot n is 35963+n, as in scripts/pcscd.sh). VICC-ARGS go to
#          vicc (-v, -vv, ... for its log on stderr).
#          --quickack sets TCP_QUICKACK on vicc's socket after each read,
#          as simtix's cards do (emulator/vpcd): vpcd writes a message's
#          length and its body in two writes without TCP_NODELAY, so
#          without it every APDU waits about 44 ms for the card's delayed
#          ACK. vicc as shipped does not set it.
#
# As Debian 12 ships it (vsmartcard-vpicc 3.3), vicc does not start: its
# modules are in /usr/lib/python3/site-packages/virtualsmartcard, which is
# not on Python's path, and it imports pycryptodome as `Crypto`, which
# Debian's python3-pycryptodome names `Cryptodome`. This script sets
# PYTHONPATH and an alias `Crypto` (a symlink in $SIMTIX_RUN/vicc-python,
# default /tmp/simtix-pcscd), and changes nothing on the system.
#
# vicc exits, with status 0, when it cannot reach vpcd or when pcscd stops:
# it does not redial. Its card (type iso7816) has an empty master file and
# creates files on CREATE FILE; it fails on a case 3 UPDATE BINARY (without
# Le: a Python TypeError that ends it), so send UPDATE BINARY with an Le.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
run=${SIMTIX_RUN:-/tmp/simtix-pcscd}
shim=$run/vicc-python
python=/usr/bin/python3 # vicc's own interpreter (its #! line)
vsc_dir=/usr/lib/python3/site-packages/virtualsmartcard

die() {
	printf 'vicc.sh: %s\n' "$*" >&2
	exit 1
}

usage() {
	echo "usage: $0 check | run [--port P] [--type T] [--quickack] [-- VICC-ARGS...]" >&2
	exit 2
}

# setup: install what is missing, find vicc, and export the Python path
# that lets it load.
setup() {
	"$root/scripts/deps.sh" pcsc
	vicc=$(command -v vicc) || die "vicc not found (is vsmartcard-vpicc installed? scripts/deps.sh pcsc installs it)"
	[ -x "$python" ] || die "$python not found (vicc runs with it)"
	local path=""
	[ -d "$vsc_dir" ] && path=$vsc_dir
	# pycryptodome as Crypto, unless that name already loads.
	if ! "$python" -c 'import Crypto.Cipher.DES3' 2>/dev/null; then
		local dome
		dome=$("$python" -c 'import Cryptodome, os; print(os.path.dirname(Cryptodome.__file__))' 2>/dev/null) ||
			die "neither Crypto nor Cryptodome loads in $python (is python3-pycryptodome installed?)"
		mkdir -p "$shim"
		ln -sfn "$dome" "$shim/Crypto"
		path=${path:+$path:}$shim
	fi
	export PYTHONPATH=$path${PYTHONPATH:+:$PYTHONPATH}
	export PYTHONUNBUFFERED=1
	local err
	if ! err=$("$python" -c 'import virtualsmartcard.VirtualSmartcard, virtualsmartcard.CryptoUtils' 2>&1); then
		printf 'vicc.sh: vicc cannot load its modules (PYTHONPATH=%s):\n%s\n' "$PYTHONPATH" "$err" >&2
		exit 1
	fi
}

# The --quickack launcher: vicc, with its socket wrapped so that every read
# is acknowledged at once.
read -r -d '' quickack_py <<'PY' || true
import runpy, socket, sys
from virtualsmartcard import VirtualSmartcard as vs

class QuickAck:
    """vicc's socket to vpcd, acknowledging each read at once."""

    def __init__(self, sock):
        self._sock = sock

    def recv(self, n):
        data = self._sock.recv(n)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return data

    def __getattr__(self, name):
        return getattr(self._sock, name)

connect = vs.VirtualICC.connectToPort
vs.VirtualICC.connectToPort = staticmethod(lambda host, port: QuickAck(connect(host, port)))
vicc = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(vicc, run_name="__main__")
PY

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
check)
	[ $# -eq 0 ] || usage
	setup
	echo "vicc.sh: $vicc loads (PYTHONPATH=$PYTHONPATH)"
	;;
run)
	port=35963
	type=iso7816
	quickack=0
	while [ $# -gt 0 ]; do
		case "$1" in
		--port)
			[ $# -ge 2 ] || usage
			port=$2
			shift 2
			;;
		--type)
			[ $# -ge 2 ] || usage
			type=$2
			shift 2
			;;
		--quickack)
			quickack=1
			shift
			;;
		--)
			shift
			break
			;;
		*) usage ;;
		esac
	done
	[[ $port =~ ^[0-9]+$ ]] || usage
	setup
	args=(--hostname 127.0.0.1 --port "$port" --type "$type" "$@")
	if [ "$quickack" = 1 ]; then
		exec "$python" -c "$quickack_py" "$vicc" "${args[@]}"
	fi
	exec "$python" "$vicc" "${args[@]}"
	;;
*) usage ;;
esac
