#!/usr/bin/env bash
# skipgate_test.sh tests scripts/skipgate.sh on crafted `go test -v` output
# against the real .ci/required-tests: a deliberately broken run (a required
# test skipped, or a required package that ran none of its tests) must fail,
# allowed skips must pass. scripts/test.sh runs it before trusting the gate.
#
# The first cases show a few packages each and check skips: the gate runs
# with --only-present, so the required packages they leave out do not count
# as not run. The last cases are whole runs, checked as scripts/test.sh
# checks them: every required package must have run.
set -euo pipefail
cd "$(dirname "$0")/.."
gate=scripts/skipgate.sh
rules=.ci/required-tests
mod=github.com/cec-archiver/cec-archiver
tmp=$(mktemp -d -t skipgate-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
notrun="required tests that did not run"

# expect NAME WANT_RC WANT_TEXT [UNWANTED_TEXT]: runs the gate on
# $tmp/NAME.out (with --only-present while $scope is "present"); its output
# must contain WANT_TEXT (be empty when WANT_TEXT is "") and must not contain
# UNWANTED_TEXT.
scope=present
expect() {
	local name=$1 want=$2 text=$3 unwanted=${4:-} rc=0 seen=1
	if [ "$scope" = present ]; then
		"$gate" --only-present "$rules" "$tmp/$name.out" >"$tmp/$name.got" 2>&1 || rc=$?
	else
		"$gate" "$rules" "$tmp/$name.out" >"$tmp/$name.got" 2>&1 || rc=$?
	fi
	if [ -z "$text" ]; then
		[ -s "$tmp/$name.got" ] && seen=0
	else
		grep -qF -- "$text" "$tmp/$name.got" || seen=0
	fi
	if [ -n "$unwanted" ] && grep -qF -- "$unwanted" "$tmp/$name.got"; then
		seen=0
	fi
	if [ "$rc" -ne "$want" ] || [ "$seen" -eq 0 ]; then
		echo "FAIL $name: exit $rc (want $want), output (want it to contain \"$text\"${unwanted:+, not \"$unwanted\"}):"
		sed 's/^/    /' "$tmp/$name.got"
		failures=$((failures + 1))
	else
		echo "ok   $name"
	fi
}

# A skipped non-required test (the dir sink has no Object Lock) passes.
cat >"$tmp/allowed.out" <<OUT
=== RUN   TestSink_Conformance
=== RUN   TestSink_Conformance/ObjectLock
    suite.go:385: the store has no Object Lock
    --- SKIP: TestSink_Conformance/ObjectLock (0.00s)
    --- PASS: TestSink_Conformance/PutStat (0.01s)
--- PASS: TestSink_Conformance (0.20s)
PASS
--- PASS: TestSink_RefusesLock (0.00s)
ok  	$mod/internal/sink/dir	3.9s
=== RUN   TestDataset_Hashes
    dataset_test.go:261: hashes tens of MB
--- SKIP: TestDataset_Hashes (0.00s)
PASS
ok  	$mod/internal/cecsim	1.0s
OUT
expect allowed 0 "$mod/internal/sink/dir TestSink_Conformance/ObjectLock" "$notrun"

# A deliberately broken run: the S3 server is missing, the S3 conformance
# suite skips. It must fail and name the test (the package's other tests ran).
cat >"$tmp/required.out" <<OUT
--- PASS: TestOptions_Validate (0.00s)
=== RUN   TestSink_Conformance
    s3_test.go:120: s3test: no versitygw (skipping outside CI)
--- SKIP: TestSink_Conformance (0.00s)
PASS
ok  	$mod/internal/sink/s3	0.1s
OUT
expect required 1 "$mod/internal/sink/s3 TestSink_Conformance" "$notrun"

# The same test name is required in one package and allowed in another:
# the skip belongs to the package whose result line follows it.
cat >"$tmp/package.out" <<OUT
    --- SKIP: TestSink_Conformance/ObjectLock (0.00s)
    --- PASS: TestSink_Conformance/PutStat (0.01s)
--- PASS: TestSink_RefusesLock (0.00s)
ok  	$mod/internal/sink/dir	3.9s
    --- SKIP: TestSink_Conformance/ObjectLock (0.00s)
    --- PASS: TestSink_Conformance/PutStat (0.01s)
ok  	$mod/internal/sink/s3	2.1s
OUT
expect package 1 "$mod/internal/sink/s3 TestSink_Conformance/ObjectLock" "$notrun"
expect package 1 "allowed skips (1)"

# An exception covers only what it names: a variant's ObjectLock may skip,
# a variant's ConcurrentWriters with conditional writes may not.
cat >"$tmp/exception.out" <<OUT
        --- SKIP: TestSink_ConformanceVariants/CRC32/ObjectLock (0.00s)
        --- SKIP: TestSink_ConformanceVariants/HeadThenPut/ConcurrentWriters (0.00s)
        --- SKIP: TestSink_ConformanceVariants/CRC32/ConcurrentWriters (0.00s)
        --- PASS: TestSink_ConformanceVariants/CRC32/PutStat (0.01s)
ok  	$mod/internal/sink/s3	2.1s
OUT
expect exception 1 "$mod/internal/sink/s3 TestSink_ConformanceVariants/CRC32/ConcurrentWriters" "$notrun"
expect exception 1 "allowed skips (2)"

# No PostgreSQL server: the store's tests and the command's run on it skip
# (the command's other postgres subtest ran). Both must fail the gate, as
# skipped and, since none of them ran, as not run.
cat >"$tmp/postgres.out" <<OUT
    pgtest.go:28: ARCHIVER_TEST_POSTGRES_DSN is not set
--- SKIP: TestStore_Conformance (0.00s)
--- SKIP: TestStore_Tenants (0.00s)
PASS
ok  	$mod/internal/checkpoint/postgres	0.1s
        --- PASS: TestCmdOnce/postgres/unreachable (0.02s)
        --- SKIP: TestCmdOnce/postgres/server (0.00s)
    --- PASS: TestCmdOnce/postgres (0.02s)
--- PASS: TestCmdOnce (9.00s)
ok  	$mod/cmd/archiver	20.4s
OUT
expect postgres 1 "required tests skipped (3; see $rules):"
expect postgres 1 "$mod/cmd/archiver TestCmdOnce/postgres/server"
expect postgres 1 "  cmd/archiver TestCmdOnce/postgres/server"

# A required acceptance test skipped in a failing package still fails the gate.
cat >"$tmp/acceptance.out" <<OUT
--- SKIP: TestOnce_Clean (0.00s)
--- FAIL: TestOnce_Faults (0.30s)
FAIL
FAIL	$mod/test/acceptance	0.5s
OUT
expect acceptance 1 "$mod/test/acceptance TestOnce_Clean" "$notrun"

# Output cut short: a skip no package line follows cannot be allowed.
cat >"$tmp/truncated.out" <<OUT
--- PASS: TestSink_Conformance (0.20s)
--- PASS: TestSink_RefusesLock (0.00s)
ok  	$mod/internal/sink/dir	3.9s
    --- SKIP: TestSink_Conformance/ObjectLock (0.00s)
OUT
expect truncated 1 "(package unknown) TestSink_Conformance/ObjectLock" "$notrun"

# No skips at all: nothing to say, success.
printf 'ok  \t%s/internal/recording\t0.1s\n' "$mod" >"$tmp/none.out"
expect none 0 ""

# --only-present still checks the packages the output shows: a required
# package that ran no tests fails.
printf 'ok  \t%s/internal/sink/dir\t0.01s [no tests to run]\n' "$mod" >"$tmp/present.out"
expect present 1 "  internal/sink/dir TestSink_Conformance(/.*)?"

# Whole runs, checked as scripts/test.sh checks them.
scope=all

# whole_run [SKIP_PKG] writes the shape of a full `go test -v ./...` run in
# which every required package ran its tests, leaving out package SKIP_PKG's
# lines.
whole_run() {
	awk -v skip="${1:-}" -v mod="$mod" '
	{ gsub(/MOD/, mod) }
	/^=== PKG / { keep = $3 != skip; next }
	keep' <<'OUT'
=== PKG internal/cdr
--- PASS: TestParse (0.00s)
--- PASS: TestWriteParquet_RoundTrip (0.10s)
ok  	MOD/internal/cdr	0.1s
=== PKG internal/checkpoint/sqlite
    --- PASS: TestStore_Conformance/Claim (0.01s)
--- PASS: TestStore_Conformance (0.30s)
ok  	MOD/internal/checkpoint/sqlite	3.8s
=== PKG internal/sink/dir
    --- SKIP: TestSink_Conformance/ObjectLock (0.00s)
    --- PASS: TestSink_Conformance/PutStat (0.01s)
--- PASS: TestSink_Conformance (0.20s)
--- PASS: TestSink_RefusesLock (0.00s)
ok  	MOD/internal/sink/dir	4.5s
=== PKG internal/sink/s3
--- PASS: TestOptions_Validate (0.00s)
        --- SKIP: TestSink_ConformanceVariants/CRC32/ObjectLock (0.00s)
        --- PASS: TestSink_ConformanceVariants/CRC32/PutStat (0.01s)
    --- PASS: TestSink_ConformanceVariants/CRC32 (0.10s)
--- PASS: TestSink_ConformanceVariants (0.50s)
--- PASS: TestSink_Conformance (0.40s)
ok  	MOD/internal/sink/s3	9.1s
=== PKG internal/sink/s3test
--- PASS: TestStart (0.30s)
ok  	MOD/internal/sink/s3test	0.5s
=== PKG test/acceptance
--- PASS: TestOnce_Clean (2.00s)
ok  	MOD/test/acceptance	30.2s
=== PKG bench
--- PASS: TestRun_Smoke (12.00s)
--- PASS: TestRun_Resume (14.00s)
ok  	MOD/bench	12.5s
=== PKG bench/cmd/benchrun
--- PASS: TestDropCached (0.10s)
ok  	MOD/bench/cmd/benchrun	0.2s
=== PKG internal/checkpoint/postgres
    --- PASS: TestStore_Conformance/Claim (0.01s)
--- PASS: TestStore_Conformance (3.10s)
ok  	MOD/internal/checkpoint/postgres	7.2s
=== PKG cmd/archiver
        --- PASS: TestCmdOnce/postgres/server (0.60s)
    --- PASS: TestCmdOnce/postgres (0.62s)
--- PASS: TestCmdOnce (9.00s)
    --- PASS: TestCmdUpload/valid (0.05s)
--- PASS: TestCmdUpload (0.30s)
--- PASS: TestCmdOnce_Replica (0.40s)
--- PASS: TestCmdOnce_HeldElsewhere (0.40s)
--- PASS: TestCmdOnce_DatabaseDown (3.10s)
    --- PASS: TestCmdMigrateState/usage (0.01s)
--- PASS: TestCmdBackfill_ProgressTTY (2.10s)
--- PASS: TestCmdBackfill_ProgressLog (1.90s)
--- PASS: TestCmdBackfill_Quiet (1.20s)
--- PASS: TestCmdMigrateState (0.50s)
--- PASS: TestCmdOnce_Pushgateway (6.00s)
--- PASS: TestCmdOnce_PushesForcedShutdown (2.00s)
--- PASS: TestCmdStatus_Jobs (0.50s)
--- PASS: TestCmdStatus_EndedRun (0.50s)
--- PASS: TestCmdStatus_EndedRunPostgres (0.50s)
--- PASS: TestCheckConfig_BucketLock (0.50s)
--- PASS: TestCmdHold_Refused (0.10s)
--- PASS: TestCmdHold_S3 (0.60s)
--- PASS: TestCmdParquetBackfill_S3 (0.60s)
    --- PASS: TestCmdVerify/chain (0.50s)
--- PASS: TestCmdVerify (1.00s)
ok  	MOD/cmd/archiver	20.4s
=== PKG internal/config
--- PASS: TestRetention_Load (0.00s)
--- PASS: TestRetention_Overlaps (0.00s)
--- PASS: TestDocs_CoversRuleKeys (0.00s)
ok  	MOD/internal/config	0.1s
=== PKG internal/telemetry
--- PASS: TestPrometheusRule (0.01s)
ok  	MOD/internal/telemetry	0.2s
=== PKG internal/jobs
    --- PASS: TestReplicas_ClaimConcurrently/postgres (2.00s)
--- PASS: TestProgress_Backfill (1.00s)
--- PASS: TestReplicas_ClaimConcurrently (4.00s)
--- PASS: TestChain_Dir (1.00s)
    --- PASS: TestCDR_Parquet/dir (1.00s)
--- PASS: TestCDR_Parquet (2.00s)
--- PASS: TestCDR_ParquetFailure (1.00s)
--- PASS: TestRetention_S3 (2.00s)
--- PASS: TestRetention_Attrs (0.10s)
--- PASS: TestHold_S3 (2.00s)
--- PASS: TestRetention_S3_RuleAtWrite (2.00s)
--- PASS: TestRetention_StoredRule (0.10s)
--- PASS: TestHold_S3_Late (2.00s)
    --- PASS: TestParquetBackfill_S3/backfill (0.50s)
--- PASS: TestParquetBackfill_S3 (1.00s)
--- PASS: TestVerify_LocksS3 (2.00s)
--- PASS: TestVerify_LocksDir (1.00s)
    --- PASS: TestChain_Replicas/sqlite (1.00s)
    --- PASS: TestChain_Replicas/postgres (1.00s)
--- PASS: TestChain_Replicas (2.00s)
ok  	MOD/internal/jobs	40.0s
=== PKG internal/sink
--- PASS: TestLedgerNames (0.00s)
--- PASS: TestParquetKey (0.00s)
ok  	MOD/internal/sink	0.1s
=== PKG tools/image
--- PASS: TestImage (40.00s)
ok  	MOD/tools/image	41.0s
=== PKG packaging
--- PASS: TestDeb (17.00s)
ok  	MOD/packaging	22.0s
OUT
}

# Every required package ran: the allowed skips are listed, the gate passes.
whole_run >"$tmp/whole.out"
expect whole 0 "allowed skips (2)" "$notrun"

# A required package that is missing from the output (the S3 sink's: left
# out by a build tag, or never built) has not run: the gate names its rule.
whole_run internal/sink/s3 >"$tmp/absent.out"
expect absent 1 "$notrun (1; see $rules):"
expect absent 1 "  internal/sink/s3 .*"

# A required package that ran no tests (a -run that matches none of them).
whole_run internal/checkpoint/sqlite >"$tmp/notests.out"
printf 'ok  \t%s/internal/checkpoint/sqlite\t0.01s [no tests to run]\n' "$mod" >>"$tmp/notests.out"
expect notests 1 "$notrun (1; see $rules):"
expect notests 1 "  internal/checkpoint/sqlite .*"

# A required package without test files (all of them behind a build tag).
whole_run test/acceptance >"$tmp/notestfiles.out"
printf '?   \t%s/test/acceptance\t[no test files]\n' "$mod" >>"$tmp/notestfiles.out"
expect notestfiles 1 "$notrun (1; see $rules):"
expect notestfiles 1 "  test/acceptance .*"

# The dir sink ran tests, but none the rule names (the conformance suite).
whole_run internal/sink/dir >"$tmp/unmatched.out"
printf -- '--- PASS: TestClassify (0.00s)\n--- PASS: TestSink_RefusesLock (0.00s)\nok  \t%s/internal/sink/dir\t0.1s\n' "$mod" >>"$tmp/unmatched.out"
expect unmatched 1 "$notrun (1; see $rules):"
expect unmatched 1 "  internal/sink/dir TestSink_Conformance(/.*)?"

# A required test that failed has run: go test's failure fails the run, the
# gate does not count it as not run.
whole_run test/acceptance >"$tmp/failed.out"
printf -- '--- FAIL: TestOnce_Clean (2.00s)\nFAIL\nFAIL\t%s/test/acceptance\t30.2s\n' "$mod" >>"$tmp/failed.out"
expect failed 0 "allowed skips (2)" "$notrun"

if [ "$failures" -ne 0 ]; then
	echo "skipgate_test: $failures case(s) failed"
	exit 1
fi
