#!/usr/bin/env bash
# gates.sh GATE [DIR] runs one hygiene gate of scripts/test.sh on the module
# at DIR (its root; default: this repository). It exits 0 when the gate
# passes; otherwise it prints why and exits 1. scripts/test.sh runs the gates
# on the repository; scripts/gates_test.sh runs the same code on broken copies
# of it, to show that each gate can fail.
#
#   gates.sh tidy [DIR]         go.mod and go.sum are tidy (go mod tidy -diff)
#   gates.sh rules [DIR]        the alert rules load and their unit tests pass
#                               (promtool check rules / test rules)
#   gates.sh install-promtool   installs promtool when it is not on PATH
#   gates.sh install-pushgateway  installs prometheus-pushgateway when it is
#                               not on PATH (the Pushgateway tests of
#                               cmd/archiver run it themselves)
#   gates.sh install-parquetcheck builds tools/parquetcheck (DuckDB, cgo: gcc
#                               from Debian when missing) into the cache the
#                               Parquet tests of internal/jobs use, and prints
#                               its path (their CEC_PARQUETCHECK_BIN)
set -euo pipefail
usage="usage: gates.sh tidy|rules [DIR] | gates.sh install-promtool|install-pushgateway|install-parquetcheck"
gate=${1:?$usage}
dir=${2:-$(dirname "$0")/..}

# tidy exits 1 and prints the diff when go.mod or go.sum are not tidy. Only
# the diff (stdout) counts: on a fresh module cache stderr carries
# "go: downloading" lines, which are shown only when the gate fails.
tidy() {
	local err out rc=0
	err=$(mktemp -t cec-archiver-tidy.XXXXXX)
	out=$(go mod tidy -diff 2>"$err") || rc=$?
	if [ -n "$out" ]; then
		echo "go.mod/go.sum are not tidy; go mod tidy would change:"; echo "$out"; cat "$err"
		rc=1
	elif [ "$rc" -ne 0 ]; then
		echo "go mod tidy -diff failed (exit $rc):"; cat "$err"
		rc=1
	else
		echo "ok"
	fi
	rm -f "$err"
	return "$rc"
}

# rules checks that the alert rules load and that their unit tests pass;
# promtool prints what is wrong.
rules() {
	if ! command -v promtool >/dev/null; then
		echo "promtool is missing: run scripts/gates.sh install-promtool (or put promtool on PATH)"
		return 1
	fi
	promtool check rules deploy/prometheus/alerts.yml || return 1
	promtool test rules deploy/prometheus/alerts_test.yml || return 1
}

# install_debian PKG SERVER installs Debian's package PKG and makes sure no
# server it brings is left running: service starts are refused during the
# install (policy-rc.d), its unit is stopped, and a SERVER process (the full
# path of its binary) that started anyway, its pid new since before the
# install, is stopped. Only what the install started is stopped.
install_debian() {
	local pkg=$1 server=$2
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
		echo "$pkg is missing: install Debian's $pkg package (or put its binary on PATH)"
		return 1
	fi
	local before policy="" apt_log pid
	before=$(pgrep -f "^$server( |\$)" || true)
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		policy=1
	fi
	apt_log=$(mktemp -t cec-archiver-apt.XXXXXX)
	local rc=0
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg"; } >"$apt_log" 2>&1 || rc=$?
	[ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
	if [ -d /run/systemd/system ]; then
		systemctl stop "$pkg.service" >/dev/null 2>&1 || true
	fi
	for pid in $(pgrep -f "^$server( |\$)" || true); do
		if ! grep -qx "$pid" <<<"$before"; then
			echo "stopping the $pkg server the install started (pid $pid)"
			kill "$pid" 2>/dev/null || true
		fi
	done
	if [ "$rc" -ne 0 ]; then
		echo "installing $pkg failed:"; cat "$apt_log"
	fi
	rm -f "$apt_log"
	return "$rc"
}

# parquetcheck builds the DuckDB reader of tools/parquetcheck (its own
# module, so DuckDB never enters the archiver's go.mod) once per content of
# the tools module, under the same cache key as internal/jobs/parquet_test.go:
# sha256(go.mod go.sum main.go), 12 hex digits. It prints the binary's path.
parquetcheck() {
	local src hash cache bin
	src=$(cd "$dir" && pwd)/tools/parquetcheck
	if ! command -v gcc >/dev/null; then
		install_debian gcc /nonexistent >&2 || return 1
	fi
	hash=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/cec-archiver/parquetcheck-${hash}
	bin=$cache/parquetcheck
	if [ ! -x "$bin" ]; then
		mkdir -p "$cache"
		(
			flock 9
			if [ ! -x "$bin" ]; then
				GOWORK=off GOFLAGS=-buildvcs=false CGO_ENABLED=1 go build -C "$src" -o "$bin.tmp" . >&2
				mv "$bin.tmp" "$bin"
			fi
		) 9>"$cache/.lock" || { echo "building tools/parquetcheck failed" >&2; return 1; }
	fi
	echo "$bin"
}

case $gate in
tidy | rules)
	cd "$dir"
	"$gate"
	;;
install-promtool)
	command -v promtool >/dev/null || install_debian prometheus /usr/bin/prometheus
	;;
install-pushgateway)
	command -v prometheus-pushgateway >/dev/null || install_debian prometheus-pushgateway /usr/bin/prometheus-pushgateway
	;;
install-parquetcheck)
	parquetcheck
	;;
*)
	echo "$usage" >&2
	exit 2
	;;
esac
