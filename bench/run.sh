#!/usr/bin/env bash
# bench/run.sh runs the throughput benchmark of issue 10 in one command: it
# builds the archiver and bench/cmd/benchrun, builds (once, cached) versitygw
# with scripts/s3-server.sh, installs rclone from Debian's package when it is
# missing, and runs benchrun, which alternates A (the archiver), B (a bare Go
# loop) and C (rclone copy) on the same recordings and the same versitygw,
# each run into a fresh bucket, and prints the medians, the ratios and the
# issue-10 targets. docs/benchmarks.md has the figures and what they mean.
#
#   bench/run.sh --smoke                        # 20 × 64 KiB, 1 round (the CI smoke test)
#   bench/run.sh --dataset 1mb --rounds 3       # ~2,000 × 1 MiB
#   bench/run.sh --dataset large                # a few × 64 MiB
#   bench/run.sh --dataset 8kb                  # ~20,000 × 8 KiB, lookups off
#   bench/run.sh --dataset store1m              # a pass over 1,000,000 done items vs an empty state
#   bench/run.sh --dataset 1mb --markdown out.md --json out.json --keep --work DIR
#
# Every flag is benchrun's (bench/run.sh -h lists them). BENCH_BIN names a
# directory for the built binaries (default: a temporary one, removed at the
# end). Needs root (or rclone on PATH) to install rclone.
set -euo pipefail
cd "$(dirname "$0")/.."

# install_rclone installs Debian's rclone package the way scripts/gates.sh
# installs promtool: service starts are refused during the install
# (policy-rc.d), and nothing is left running (rclone ships no daemon, but
# the guard costs nothing).
install_rclone() {
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
		echo "bench: rclone is missing: install Debian's rclone package (or put rclone on PATH)" >&2
		return 1
	fi
	local policy="" apt_log rc=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		policy=1
	fi
	apt_log=$(mktemp -t cec-bench-apt.XXXXXX)
	echo "bench: installing rclone (Debian package)..." >&2
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rclone; } >"$apt_log" 2>&1 || rc=$?
	[ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
	if [ "$rc" -ne 0 ]; then
		echo "bench: installing rclone failed:" >&2
		cat "$apt_log" >&2
	fi
	rm -f "$apt_log"
	return "$rc"
}

bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
	bin=$(mktemp -d -t cec-bench-bin.XXXXXX)
	trap 'rm -rf "$bin"' EXIT
fi
mkdir -p "$bin"

go build -o "$bin/archiver" ./cmd/archiver
go build -o "$bin/benchrun" ./bench/cmd/benchrun
vgw=$(scripts/s3-server.sh build)
command -v rclone >/dev/null || install_rclone
command -v rclone >/dev/null || { echo "bench: rclone is still not on PATH" >&2; exit 1; }

"$bin/benchrun" --archiver "$bin/archiver" --versitygw "$vgw" --rclone "$(command -v rclone)" "$@"
