#!/usr/bin/env bash
# A local S3 server for trying the archiver and for debugging the sink's
# integration tests: versitygw (pinned in tools/versitygw/go.mod) with its posix
# backend and a versioning directory, so Object Lock works, on 127.0.0.1.
# The tests start their own servers (internal/sink/s3test); this script shares
# their cached binary.
#
#   scripts/s3-server.sh build     # build versitygw once, print its path
#   scripts/s3-server.sh start     # start in the background, create buckets, print settings
#   scripts/s3-server.sh status
#   scripts/s3-server.sh stop
#
# Environment: S3_DIR (state, default ${TMPDIR:-/tmp}/cec-archiver-s3),
# S3_PORT (default 7070), S3_ACCESS_KEY / S3_SECRET_KEY (default
# cecadmin / cecadmin-secret; local use only), CEC_VERSITYGW_BIN (use this
# binary instead of building).
set -euo pipefail
cd "$(dirname "$0")/.."

version=v1.8.0
pkg=github.com/versity/versitygw/cmd/versitygw
dir=${S3_DIR:-${TMPDIR:-/tmp}/cec-archiver-s3}
port=${S3_PORT:-7070}
ak=${S3_ACCESS_KEY:-cecadmin}
sk=${S3_SECRET_KEY:-cecadmin-secret}
region=us-east-1
endpoint=http://127.0.0.1:${port}

# binary prints the path of the versitygw binary, building it if needed. The
# cache key matches internal/sink/s3test: sha256(go.mod + go.sum), 12 hex digits.
binary() {
	if [ -n "${CEC_VERSITYGW_BIN:-}" ]; then
		echo "$CEC_VERSITYGW_BIN"
		return
	fi
	local hash cache bin
	hash=$(cat tools/versitygw/go.mod tools/versitygw/go.sum | sha256sum | cut -c1-12)
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/cec-archiver/versitygw-${version}-${hash}
	bin=$cache/versitygw
	if [ ! -x "$bin" ]; then
		mkdir -p "$cache"
		echo "building versitygw ${version} (takes a few minutes the first time)..." >&2
		(
			flock 9
			if [ ! -x "$bin" ]; then
				GOWORK=off GOFLAGS=-buildvcs=false go build -C tools/versitygw -o "$bin.tmp" "$pkg"
				mv "$bin.tmp" "$bin"
			fi
		) 9>"$cache/.lock"
	fi
	echo "$bin"
}

running() {
	[ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null
}

s3curl() {
	# The body is always empty: its SHA-256 is the constant below.
	curl -sS --fail-with-body --aws-sigv4 "aws:amz:${region}:s3" --user "${ak}:${sk}" \
		-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" "$@"
}

start() {
	if running; then
		echo "already running (pid $(cat "$dir/pid")) on $endpoint"
		return
	fi
	local bin
	bin=$(binary)
	mkdir -p "$dir/root" "$dir/versions"
	ROOT_ACCESS_KEY_ID=$ak ROOT_SECRET_ACCESS_KEY=$sk \
		nohup "$bin" --port "127.0.0.1:${port}" --region "$region" --quiet \
		posix --versioning-dir "$dir/versions" "$dir/root" >"$dir/versitygw.log" 2>&1 &
	echo $! >"$dir/pid"
	for _ in $(seq 100); do
		if curl -s -o /dev/null "$endpoint/"; then
			break
		fi
		if ! running; then
			echo "versitygw exited; log:" >&2
			cat "$dir/versitygw.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	if [ ! -d "$dir/root/cec-archive" ]; then
		s3curl -X PUT "$endpoint/cec-archive" >/dev/null
	fi
	if [ ! -d "$dir/root/cec-archive-locked" ]; then
		s3curl -X PUT -H "x-amz-bucket-object-lock-enabled: true" "$endpoint/cec-archive-locked" >/dev/null
	fi
	cat <<EOF
versitygw ${version} running (pid $(cat "$dir/pid")), state in $dir
buckets: cec-archive, cec-archive-locked (Object Lock enabled)

ARCHIVER_SINK_TYPE=s3
ARCHIVER_SINK_S3_ENDPOINT=$endpoint
ARCHIVER_SINK_S3_REGION=$region
ARCHIVER_SINK_S3_BUCKET=cec-archive
ARCHIVER_SINK_S3_PATH_STYLE=true
ARCHIVER_SINK_S3_ACCESS_KEY=$ak
ARCHIVER_SINK_S3_SECRET_KEY=$sk
EOF
}

stop() {
	if ! running; then
		echo "not running"
		rm -f "$dir/pid"
		return
	fi
	local pid
	pid=$(cat "$dir/pid")
	kill "$pid"
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$dir/pid"
	echo "stopped"
}

case "${1:-}" in
build) binary ;;
start) start ;;
stop) stop ;;
status) if running; then echo "running (pid $(cat "$dir/pid")) on $endpoint"; else echo "not running"; exit 1; fi ;;
*)
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
