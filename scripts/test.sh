#!/usr/bin/env bash
# The project's test command: formatting, vet, a tidy go.mod, the alert rules
# (promtool check/test rules), every test (unit and integration, with the race
# detector) and a short run of every fuzz target. Integration
# tests start what they need themselves (the CEC simulator in-process, a real
# S3 server built from tools/); the PostgreSQL checkpoint store's tests use a
# throwaway server this script starts (scripts/postgres.sh, which installs
# Debian's postgresql package when initdb is missing) and stops at exit, or
# the server ARCHIVER_TEST_POSTGRES_DSN already names. Skips are listed; a test named in
# .ci/required-tests (REQUIRED_TESTS overrides the path) that skips, or a rule
# there that no test ran for, fails the run: nothing required may be silently
# left out (scripts/skipgate.sh). The tidy and alert-rules gates are
# scripts/gates.sh (promtool comes from Debian's prometheus package when it is
# missing). Before the tests, the self-tests of the gates
# (scripts/skipgate_test.sh, scripts/gates_test.sh) show each gate failing on
# a deliberately broken input.
#
#   scripts/test.sh                  # everything
#   FUZZTIME=20000x scripts/test.sh  # longer fuzzing (executions per target)
#   FUZZTIME=30s scripts/test.sh     # a wall-clock budget (see below)
#   SKIP_FUZZ=1 scripts/test.sh      # no fuzzing
#
# The fuzz budget is a number of executions, not a time: with a wall-clock
# -fuzztime the Go 1.26 fuzz coordinator can end a clean run with "context
# deadline exceeded" and no failing input (golang/go#75804). For the same
# reason a fuzz run that fails without writing a reproducer under
# testdata/fuzz/ is retried once; only a failure with a reproducer, or a
# second failure in a row, counts.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-3000x}
required_tests=${REQUIRED_TESTS:-.ci/required-tests}
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

# The Parquet tests read the archiver's files back with DuckDB
# (tools/parquetcheck, cgo): built in the background too, and named to the
# tests in CEC_PARQUETCHECK_BIN.
pqbuild_out=$(mktemp -t cec-archiver-pqbuild.XXXXXX)
pqbuild_log=$(mktemp -t cec-archiver-pqbuild.XXXXXX)
scripts/gates.sh install-parquetcheck >"$pqbuild_out" 2>"$pqbuild_log" &
pqbuild=$!

# The PostgreSQL server is started in the background too (after the
# promtool step: both may run apt-get), unless one is given; cleanup stops
# it. pg_env receives the exports scripts/postgres.sh start prints.
pg_env=$(mktemp -t cec-archiver-pgenv.XXXXXX)
pg_log=$(mktemp -t cec-archiver-pg.XXXXXX)
pgstart=""
cleanup() {
	if [ -n "$pgstart" ]; then
		wait "$pgstart" 2>/dev/null || true
		local dir
		dir=$(sed -n "s/^export ARCHIVER_TEST_POSTGRES_DIR='\(.*\)'\$/\1/p" "$pg_env")
		if [ -n "$dir" ]; then
			scripts/postgres.sh stop "$dir" || echo "stopping the test PostgreSQL server in $dir failed"
		fi
	fi
	rm -f "$log" "$s3build_log" "$pg_env" "$pg_log" "$pqbuild_out" "$pqbuild_log"
}
trap cleanup EXIT

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

step "go mod tidy -diff"
scripts/gates.sh tidy

step "promtool (alert rules)"
scripts/gates.sh install-promtool
scripts/gates.sh rules

# The Pushgateway TestCmdOnce_Pushgateway runs (with the prometheus server
# of the package above): installed when missing, never started here.
step "prometheus-pushgateway"
scripts/gates.sh install-pushgateway
echo "ok"

if [ -z "${ARCHIVER_TEST_POSTGRES_DSN:-}" ]; then
	pg_t0=$SECONDS
	scripts/postgres.sh start >"$pg_env" 2>"$pg_log" &
	pgstart=$!
fi

step "skip gate self-test"
scripts/skipgate_test.sh

step "tidy and rules gate self-test"
scripts/gates_test.sh

step "versitygw"
if ! wait "$s3build"; then
	echo "building versitygw failed:"; cat "$s3build_log"
	exit 1
fi
tail -1 "$s3build_log"

step "parquetcheck (DuckDB)"
if ! wait "$pqbuild"; then
	echo "building tools/parquetcheck failed:"; cat "$pqbuild_log"
	exit 1
fi
CEC_PARQUETCHECK_BIN=$(tail -1 "$pqbuild_out")
export CEC_PARQUETCHECK_BIN
echo "$CEC_PARQUETCHECK_BIN"

step "PostgreSQL"
if [ -n "$pgstart" ]; then
	if ! wait "$pgstart"; then
		pgstart=""
		echo "starting PostgreSQL failed:"; cat "$pg_log"
		exit 1
	fi
	# shellcheck disable=SC1090 # the two exports scripts/postgres.sh printed
	. "$pg_env"
	echo "$(tail -1 "$pg_log") (ready $((SECONDS - pg_t0))s after it was started)"
else
	echo "using the server of ARCHIVER_TEST_POSTGRES_DSN"
fi

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
if [ "$failed" -gt 0 ]; then
	# The lines above give each message's first line; a failure's whole
	# message (its continuation lines: what the test printed to explain
	# itself) follows here, at most 60 lines a message.
	echo "== the messages of the failed tests, in full"
	awk '
		function keep() { if (cont && n > 0) out = out msg buf "\n"; cont = 0 }
		/_test\.go:[0-9]+:/ { keep(); msg = $0; n = 0; cont = 1; buf = ""; next }
		cont && /^[ \t]/ && !/^[ \t]*(=== |--- )/ { if (n < 60) buf = buf "\n" $0; n++; next }
		{ keep() }
		/--- FAIL:/ { printf "%s", out; out = "" }
		/--- (PASS|SKIP):/ { out = "" }
	' "$log" || true
fi
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	echo "go test exited $rc; the last lines of its output:"
	tail -50 "$log"
	failed=1
fi
skip_rc=0
scripts/skipgate.sh "$required_tests" "$log" || skip_rc=$?

# fuzz_once PKG NAME runs one fuzz target for the budget, output in $log.
# On failure fuzz_new lists the files it added under PKG/testdata/fuzz/NAME
# (the reproducer), empty when it wrote none.
fuzz_once() {
	local corpus="$1/testdata/fuzz/$2" before after
	before=$(find "$corpus" -type f 2>/dev/null | sort)
	fuzz_new=""
	if go test -run='^$' -fuzz="^${2}\$" -fuzztime="$fuzztime" "$1" >"$log" 2>&1; then
		return 0
	fi
	after=$(find "$corpus" -type f 2>/dev/null | sort)
	fuzz_new=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | sed '/^$/d' | paste -sd ' ')
	return 1
}

fuzz_failed=0
if [ -z "${SKIP_FUZZ:-}" ] && [ "$rc" -eq 0 ]; then
	step "fuzz (-fuzztime=${fuzztime} each)"
	while IFS=: read -r file name; do
		pkg="./$(dirname "$file")"
		printf '%s %s ... ' "$pkg" "$name"
		for attempt in 1 2; do
			if fuzz_once "$pkg" "$name"; then
				[ "$attempt" -eq 1 ] && echo ok || echo "ok (on retry)"
				break
			fi
			if [ -n "$fuzz_new" ]; then
				echo FAIL; cat "$log"
				echo "reproducer: ${fuzz_new}"
				echo "replay it with: go test -run='^${name}\$/' ${pkg}"
				fuzz_failed=$((fuzz_failed + 1))
				break
			fi
			if [ "$attempt" -eq 1 ]; then
				echo "failed without a reproducer (a fuzz-coordinator flake?); its output:"
				cat "$log"
				printf 'retrying %s %s ... ' "$pkg" "$name"
			else
				echo "FAIL (twice without a reproducer)"; cat "$log"
				fuzz_failed=$((fuzz_failed + 1))
			fi
		done
	done < <(git ls-files -co --exclude-standard '*_test.go' | xargs grep -oE '^func (Fuzz[A-Za-z0-9_]+)' | sed -E 's/:func /:/' | sort -u)
fi

echo
echo "tests: ${passed} passed, $((failed + fuzz_failed)) failed, ${skipped} skipped"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$skip_rc" -eq 0 ] && [ "$fuzz_failed" -eq 0 ]
