#!/usr/bin/env bash
# skipgate_test.sh tests scripts/skipgate.sh on crafted `go test -v` output
# against the real .ci/required-tests: a deliberately broken run (a required
# test skipped) must fail, allowed skips must pass. scripts/test.sh runs it
# before trusting the gate.
set -euo pipefail
cd "$(dirname "$0")/.."
gate=scripts/skipgate.sh
rules=.ci/required-tests
mod=github.com/cec-archiver/cec-archiver
tmp=$(mktemp -d -t skipgate-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0

# expect NAME WANT_RC WANT_TEXT: runs the gate on $tmp/NAME.out; its output
# must contain WANT_TEXT (be empty when WANT_TEXT is "").
expect() {
	local name=$1 want=$2 text=$3 rc=0 seen=1
	"$gate" "$rules" "$tmp/$name.out" >"$tmp/$name.got" 2>&1 || rc=$?
	if [ -z "$text" ]; then
		[ -s "$tmp/$name.got" ] && seen=0
	else
		grep -qF -- "$text" "$tmp/$name.got" || seen=0
	fi
	if [ "$rc" -ne "$want" ] || [ "$seen" -eq 0 ]; then
		echo "FAIL $name: exit $rc (want $want), output (want it to contain \"$text\"):"
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
ok  	$mod/internal/sink/dir	3.9s
=== RUN   TestDataset_Hashes
    dataset_test.go:261: hashes tens of MB
--- SKIP: TestDataset_Hashes (0.00s)
PASS
ok  	$mod/internal/cecsim	1.0s
OUT
expect allowed 0 "$mod/internal/sink/dir TestSink_Conformance/ObjectLock"

# A deliberately broken run: the S3 server is missing, the S3 conformance
# suite skips. It must fail and name the test.
cat >"$tmp/required.out" <<OUT
=== RUN   TestSink_Conformance
    s3_test.go:120: s3test: no versitygw (skipping outside CI)
--- SKIP: TestSink_Conformance (0.00s)
PASS
ok  	$mod/internal/sink/s3	0.1s
OUT
expect required 1 "$mod/internal/sink/s3 TestSink_Conformance"

# The same test name is required in one package and allowed in another:
# the skip belongs to the package whose result line follows it.
cat >"$tmp/package.out" <<OUT
    --- SKIP: TestSink_Conformance/ObjectLock (0.00s)
ok  	$mod/internal/sink/dir	3.9s
    --- SKIP: TestSink_Conformance/ObjectLock (0.00s)
ok  	$mod/internal/sink/s3	2.1s
OUT
expect package 1 "$mod/internal/sink/s3 TestSink_Conformance/ObjectLock"
expect package 1 "allowed skips (1)"

# An exception covers only what it names: a variant's ObjectLock may skip,
# a variant's ConcurrentWriters with conditional writes may not.
cat >"$tmp/exception.out" <<OUT
        --- SKIP: TestSink_ConformanceVariants/CRC32/ObjectLock (0.00s)
        --- SKIP: TestSink_ConformanceVariants/HeadThenPut/ConcurrentWriters (0.00s)
        --- SKIP: TestSink_ConformanceVariants/CRC32/ConcurrentWriters (0.00s)
ok  	$mod/internal/sink/s3	2.1s
OUT
expect exception 1 "$mod/internal/sink/s3 TestSink_ConformanceVariants/CRC32/ConcurrentWriters"
expect exception 1 "allowed skips (2)"

# A required acceptance test skipped in a failing package still fails the gate.
cat >"$tmp/acceptance.out" <<OUT
--- SKIP: TestOnce_Clean (0.00s)
FAIL
FAIL	$mod/test/acceptance	0.5s
OUT
expect acceptance 1 "$mod/test/acceptance TestOnce_Clean"

# Output cut short: a skip no package line follows cannot be allowed.
cat >"$tmp/truncated.out" <<OUT
ok  	$mod/internal/sink/dir	3.9s
    --- SKIP: TestSink_Conformance/ObjectLock (0.00s)
OUT
expect truncated 1 "(package unknown) TestSink_Conformance/ObjectLock"

# No skips at all: nothing to say, success.
printf 'ok  \t%s/internal/cdr\t0.1s\n' "$mod" >"$tmp/none.out"
expect none 0 ""

if [ "$failures" -ne 0 ]; then
	echo "skipgate_test: $failures case(s) failed"
	exit 1
fi
