#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests of the PostgreSQL checkpoint
# store (internal/checkpoint/postgres) and of the commands that use it.
#
#   eval "$(scripts/postgres.sh start)"   # prints the two exports below
#   go test ./internal/checkpoint/postgres/
#   scripts/postgres.sh stop "$ARCHIVER_TEST_POSTGRES_DIR"
#
# start creates a cluster in a new temporary directory (initdb, UTF-8, as the
# postgres user when run as root: the server refuses to run as root), starts
# it on 127.0.0.1 on a free port with its Unix socket in that directory, and
# prints
#
#   export ARCHIVER_TEST_POSTGRES_DSN='postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres?sslmode=disable'
#   export ARCHIVER_TEST_POSTGRES_DIR='DIR'
#
# The DSN is a superuser's (the tests create and drop a database per test);
# its password is random, made for this cluster, and the server asks for it
# (scram-sha-256) even on 127.0.0.1. The cluster runs with fsync off: it is
# thrown away, never recovered. Progress goes to stderr.
#
# When initdb is missing, start installs Debian's postgresql package with
# apt-get (as root; as scripts/gates.sh installs promtool): service starts
# are refused during the install (policy-rc.d) and no "main" cluster is
# created, so nothing but the binaries is left behind.
#
# stop DIR stops the server started in DIR and removes DIR.
set -euo pipefail

usage="usage: postgres.sh start | postgres.sh stop DIR"

log() { printf 'postgres.sh: %s\n' "$*" >&2; }

# bindir prints the directory of the newest installed server's initdb:
# Debian keeps it under /usr/lib/postgresql/VERSION/bin, off PATH.
bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	if [ -n "$d" ] && [ -x "$d/initdb" ]; then
		echo "$d"
	elif command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
		dirname "$(command -v initdb)"
	else
		return 1
	fi
}

# install installs Debian's postgresql package, refusing service starts and
# the creation of the default cluster while it does.
install() {
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
		log "initdb is missing: install Debian's postgresql package (or put initdb and pg_ctl on PATH)"
		return 1
	fi
	local policy="" confdir=/etc/postgresql-common/createcluster.d made_dir="" apt_log rc=0 t0=$SECONDS
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		policy=1
	fi
	# postgresql-common reads createcluster.d when the server package asks
	# it to create the "main" cluster.
	[ -d "$confdir" ] || { mkdir -p "$confdir" && made_dir=1; }
	echo "create_main_cluster = false" >"$confdir/cec-archiver-tests.conf"
	apt_log=$(mktemp -t cec-archiver-apt.XXXXXX)
	log "installing Debian's postgresql package"
	{
		apt-get update -qq -o DPkg::Lock::Timeout=120 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=120 postgresql
	} >"$apt_log" 2>&1 || rc=$?
	rm -f "$confdir/cec-archiver-tests.conf"
	[ -z "$made_dir" ] || rmdir "$confdir" 2>/dev/null || true
	[ -z "$policy" ] || rm -f /usr/sbin/policy-rc.d
	if [ "$rc" -ne 0 ]; then
		log "installing postgresql failed:"
		cat "$apt_log" >&2
	else
		log "installed postgresql in $((SECONDS - t0))s"
	fi
	rm -f "$apt_log"
	return "$rc"
}

# free_port prints a port on 127.0.0.1 nothing listens on now (the server
# may still lose it to a race: start retries).
free_port() {
	local port
	for _ in $(seq 50); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	return 1
}

start() {
	local bin dir
	bin=$(bindir) || { install && bin=$(bindir); } || { log "no initdb after installing postgresql"; return 1; }
	dir=$(mktemp -d -t cec-archiver-pg.XXXXXX)
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
		chown postgres: "$dir"
	fi
	if ! start_in "$bin" "$dir"; then
		rm -rf "$dir"
		return 1
	fi
}

# as runs a server program as the postgres user when we are root.
as() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# start_in BIN DIR creates the cluster in DIR/data and starts it.
start_in() {
	local bin=$1 dir=$2 password port attempt
	password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
	(umask 077 && printf '%s\n' "$password" >"$dir/pwfile")
	[ "$(id -u)" -ne 0 ] || chown postgres: "$dir/pwfile"
	if ! as "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C --auth=scram-sha-256 --pwfile="$dir/pwfile" >"$dir/initdb.log" 2>&1; then
		log "initdb failed:"
		cat "$dir/initdb.log" >&2
		return 1
	fi
	rm -f "$dir/pwfile"
	for attempt in 1 2 3 4 5; do
		port=$(free_port) || { log "no free port found"; return 1; }
		if as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -s \
			-o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off -c max_connections=200" start >&2; then
			log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $dir"
			printf "export ARCHIVER_TEST_POSTGRES_DSN='postgres://postgres:%s@127.0.0.1:%s/postgres?sslmode=disable'\n" "$password" "$port"
			printf "export ARCHIVER_TEST_POSTGRES_DIR='%s'\n" "$dir"
			return 0
		fi
		log "start on port $port failed (attempt $attempt); the server's log:"
		tail -5 "$dir/server.log" >&2 || true
	done
	return 1
}

stop() {
	local dir=${1:?$usage} bin
	# Only a directory this script made: never remove anything else.
	if [ ! -f "$dir/data/PG_VERSION" ] || [[ "$(basename "$dir")" != cec-archiver-pg.* ]]; then
		log "$dir is not a cluster directory made by postgres.sh start"
		return 1
	fi
	bin=$(bindir) || { log "no pg_ctl found"; return 1; }
	if [ -f "$dir/data/postmaster.pid" ]; then
		as "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 -s stop >&2 || log "pg_ctl stop failed; removing $dir anyway"
	fi
	rm -rf "$dir"
}

case ${1:-} in
start) start ;;
stop) stop "${2:-}" ;;
*)
	echo "$usage" >&2
	exit 2
	;;
esac
