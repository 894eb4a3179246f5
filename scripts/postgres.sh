#!/usr/bin/env bash
# postgres.sh: a private PostgreSQL cluster for simtix's tests and
# benchmarks (store/postgres), apart from any system cluster.
#
# Usage: scripts/postgres.sh start | stop | purge | url | status
#
#   start   install Debian's postgresql if it is missing, create the cluster
#           (initdb) on first use, start it unless it runs, make the database
#           `simtix`, and print its URL on stdout (the only thing printed
#           there). Safe to run again and from several processes at once:
#           a running cluster only has its URL printed.
#   stop    stop the cluster (pg_ctl stop -m fast), keeping its data so that
#           the next start is quick.
#   purge   stop the cluster and delete its directory.
#   url     print the URL (whether or not the cluster runs).
#   status  exit 0 if the cluster runs, 3 if it does not.
#
# The cluster listens on no TCP port, only on a unix socket in DIR/run (mode
# 0700), so only its owner (and root) can connect; authentication is `trust`
# within that. The superuser is `simtix`. As root the server runs as the
# `postgres` system user (PostgreSQL refuses to run as root); otherwise as
# the calling user. It is a throwaway test cluster: fsync is off unless
# SIMTIX_PG_FSYNC=on.
#
# Environment: SIMTIX_PG (default /tmp/simtix-pg) is the cluster's directory
# (data/, run/, log); SIMTIX_PG_PORT (default 55432) names the socket
# (.s.PGSQL.PORT); SIMTIX_PG_FSYNC (default off).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${SIMTIX_PG:-/tmp/simtix-pg}
port=${SIMTIX_PG_PORT:-55432}
fsync=${SIMTIX_PG_FSYNC:-off}
data=$dir/data
sockdir=$dir/run
logfile=$dir/log
lockfile=$dir.lock
superuser=simtix
database=simtix

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

url() {
	printf 'postgres://%s@/%s?host=%s&port=%s&sslmode=disable\n' "$superuser" "$database" "$sockdir" "$port"
}

# bindir: the newest installed server's binaries.
bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[ -n "$d" ] && [ -x "$d/pg_ctl" ] || return 1
	printf '%s\n' "$d"
}

# as_owner CMD...: run CMD as the cluster's owner, without the lock's file
# descriptor (a server started with it would hold the lock for good).
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@" 9>&-
	else
		"$@" 9>&-
	fi
}

running() {
	local bin
	bin=$(bindir) || return 1
	[ -f "$data/PG_VERSION" ] || return 1
	as_owner "$bin/pg_ctl" status -D "$data" >/dev/null 2>&1
}

# locked: hold the cluster's lock (serialising start, stop and purge between
# processes) for the rest of the script.
locked() {
	exec 9>"$lockfile"
	flock 9
}

start() {
	local bin
	if ! bin=$(bindir); then
		"$root/scripts/deps.sh" postgres >&2
		bin=$(bindir) || die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin after installing postgresql"
	fi
	locked
	if ! running; then
		mkdir -p "$dir"
		if [ "$(id -u)" -eq 0 ]; then
			id postgres >/dev/null 2>&1 || die "no postgres system user (Debian's postgresql package makes it)"
			chown postgres: "$dir"
		fi
		chmod 0700 "$dir"
		if [ ! -f "$data/PG_VERSION" ]; then
			rm -rf "$data"
			log "initdb $data"
			if ! as_owner "$bin/initdb" -D "$data" -U "$superuser" --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
				cat "$dir/initdb.log" >&2
				die "initdb failed"
			fi
		fi
		as_owner mkdir -p "$sockdir"
		as_owner chmod 0700 "$sockdir"
		log "starting the cluster in $dir"
		if ! as_owner "$bin/pg_ctl" start -D "$data" -l "$logfile" -w -t 30 -o "-c listen_addresses='' -c port=$port -c unix_socket_directories='$sockdir' -c unix_socket_permissions=0700 -c fsync=$fsync -c synchronous_commit=$fsync -c full_page_writes=$fsync -c max_connections=200 -c deadlock_timeout=100ms" >/dev/null 2>&1; then
			tail -n 30 "$logfile" >&2 || true
			die "pg_ctl start failed (log: $logfile)"
		fi
	fi
	if [ "$(as_owner "$bin/psql" -X -q -h "$sockdir" -p "$port" -U "$superuser" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$database'")" != 1 ]; then
		as_owner "$bin/createdb" -h "$sockdir" -p "$port" -U "$superuser" "$database"
	fi
	url
}

stop() {
	local bin
	bin=$(bindir) || return 0
	[ -d "$dir" ] || return 0
	locked
	if running; then
		as_owner "$bin/pg_ctl" stop -D "$data" -m fast -w -t 30 >/dev/null
		log "stopped the cluster in $dir"
	fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
purge)
	stop
	rm -rf "$dir"
	;;
url) url ;;
status)
	if running; then
		log "running in $dir"
		exit 0
	fi
	log "not running"
	exit 3
	;;
*)
	echo "usage: $0 start|stop|purge|url|status" >&2
	exit 2
	;;
esac
