#!/usr/bin/env bash
# The project's test command: formatting, vet, every test (unit and integration,
# with the race detector) and a short run of every fuzz target. Integration
# tests start what they need themselves (the CEC simulator in-process, a real
# S3 server built from tools/). A skipped test fails the run: nothing required
# may be silently left out.
#
#   scripts/test.sh               # everything
#   FUZZTIME=30s scripts/test.sh  # longer fuzzing
#   SKIP_FUZZ=1 scripts/test.sh   # no fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-5s}
log=$(mktemp -t cec-archiver-test.XXXXXX)
trap 'rm -f "$log"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "go version"
go version

# The S3 integration tests need versitygw (pinned in tools/versitygw); build it
# in the background while formatting and vet run. The tests share its cache.
s3build_log=$(mktemp -t cec-archiver-s3build.XXXXXX)
scripts/s3-server.sh build >"$s3build_log" 2>&1 &
s3build=$!
trap 'rm -f "$log" "$s3build_log"' EXIT

step "gofmt"
unformatted=$(gofmt -l $(git ls-files -co --exclude-standard '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change these files:"; echo "$unformatted"
	exit 1
fi
echo "ok"

step "go vet"
go vet ./...
echo "ok"

step "versitygw"
if ! wait "$s3build"; then
	echo "building versitygw failed:"; cat "$s3build_log"
	exit 1
fi
tail -1 "$s3build_log"

step "go test -race ./..."
set +e
go test -race -count=1 -timeout 20m -v ./... >"$log" 2>&1
rc=$?
set -e
# Package lines, failures and their output, skips: what a reader needs.
grep -E '^(ok|FAIL|---|\?|panic:|=== NAME)|--- (FAIL|SKIP)|_test\.go:[0-9]+:' "$log" | grep -vE -- '--- PASS' || true
passed=$(grep -cE -- '--- PASS:' "$log" || true)
failed=$(grep -cE -- '--- FAIL:' "$log" || true)
skipped=$(grep -cE -- '--- SKIP:' "$log" || true)
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	echo "go test exited $rc; the last lines of its output:"
	tail -50 "$log"
	failed=1
fi
if [ "$skipped" -ne 0 ]; then
	echo "skipped tests are not allowed (a required test that skips fails the run):"
	grep -E -- '--- SKIP:' "$log"
fi

fuzz_failed=0
if [ -z "${SKIP_FUZZ:-}" ] && [ "$rc" -eq 0 ]; then
	step "fuzz (${fuzztime} each)"
	while IFS=: read -r file name; do
		pkg="./$(dirname "$file")"
		printf '%s %s ... ' "$pkg" "$name"
		if go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg" >"$log" 2>&1; then
			echo ok
		else
			echo FAIL; cat "$log"; fuzz_failed=$((fuzz_failed + 1))
		fi
	done < <(git ls-files -co --exclude-standard '*_test.go' | xargs grep -oE '^func (Fuzz[A-Za-z0-9_]+)' | sed -E 's/:func /:/' | sort -u)
fi

echo
echo "tests: ${passed} passed, $((failed + fuzz_failed)) failed, ${skipped} skipped"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$skipped" -eq 0 ] && [ "$fuzz_failed" -eq 0 ]
