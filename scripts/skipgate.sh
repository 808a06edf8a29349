#!/usr/bin/env bash
# skipgate.sh [--only-present] RULES [OUTPUT] reads the output of `go test -v`
# (a file, or stdin) and checks it against RULES (.ci/required-tests: one
# "package regexp" rule a line, "!package regexp" for exceptions): the
# required tests must run and must not skip.
#
# Every skip is listed. A skip of a required test fails: the gate prints it
# under "required tests skipped" and exits 1. A skip it cannot attribute to a
# package (output cut short) counts as required.
#
# Each rule that is not an exception must have run: at least one test of its
# package whose name it matches reported "--- PASS" or "--- FAIL". A rule
# that matched no test (its package is missing from the output, printed "no
# tests to run" or "no test files", or was left out by a build tag) is printed
# under "required tests that did not run" and the gate exits 1. With
# --only-present only the rules of packages the output shows are checked
# this way (scripts/skipgate_test.sh, on crafted output of a few packages);
# scripts/test.sh checks them all. Exit 2: unreadable rules.
#
# `go test -v` over several packages prints each package's output in one
# piece, ended by its "ok"/"FAIL"/"?" line; the skips and results seen before
# that line belong to that package.
set -euo pipefail
only_present=0
if [ "${1:-}" = --only-present ]; then
	only_present=1
	shift
fi
rules=${1:?usage: skipgate.sh [--only-present] RULES [GO_TEST_V_OUTPUT]}
input=${2:--}
[ -r "$rules" ] || { echo "skipgate: cannot read $rules" >&2; exit 2; }

awk -v rules="$rules" -v only_present="$only_present" '
function pkgmatch(pkg, want) {
	return pkg == want || substr(pkg, length(pkg) - length(want)) == "/" want
}
# required says whether a skip of test name in package pkg fails the run:
# the last rule that matches decides, and an unknown package always does.
function required(pkg, name,    i, req) {
	if (pkg == "") return 1
	req = 0
	for (i = 1; i <= nrules; i++)
		if (pkgmatch(pkg, rpkg[i]) && name ~ ("^(" rre[i] ")$"))
			req = !rneg[i]
	return req
}
# settle gives the skips and results seen since the last package line to
# package pkg ("" when no package line follows them: they count for no rule).
function settle(pkg,    i, j, n) {
	for (i = 1; i <= nrules; i++)
		if (pkg != "" && pkgmatch(pkg, rpkg[i])) present[i] = 1
	for (j = 1; j <= nran; j++)
		for (i = 1; i <= nrules; i++)
			if (pkg != "" && !rneg[i] && pkgmatch(pkg, rpkg[i]) && ran[j] ~ ("^(" rre[i] ")$"))
				hit[i] = 1
	nran = 0
	for (i = 1; i <= npending; i++) {
		n = pending[i]
		if (required(pkg, n)) {
			bad[++nbad] = (pkg == "" ? "(package unknown)" : pkg) " " n
		} else {
			ok[++nok] = pkg " " n
		}
	}
	npending = 0
}
BEGIN {
	while ((getline line < rules) > 0) {
		sub(/#.*/, "", line)
		if (split(line, f, /[ \t]+/) == 0) continue
		if (f[1] == "") { f[1] = f[2]; f[2] = f[3] }
		if (f[1] == "") continue
		if (f[2] == "") { print "skipgate: " rules ": rule without a regexp: " line > "/dev/stderr"; fatal = 1; exit }
		nrules++
		rneg[nrules] = substr(f[1], 1, 1) == "!"
		rpkg[nrules] = rneg[nrules] ? substr(f[1], 2) : f[1]
		rre[nrules] = f[2]
	}
}
/^[ \t]*--- SKIP: / { pending[++npending] = $3; next }
/^[ \t]*--- (PASS|FAIL): / { ran[++nran] = $3; next }
/^(ok|FAIL|\?)[ \t]/ && NF >= 2 && $2 ~ /[.\/]/ { settle($2) }
END {
	if (!fatal && nrules == 0) { print "skipgate: " rules ": no rules" > "/dev/stderr"; fatal = 1 }
	if (fatal) exit 2
	settle("")
	if (nok > 0) {
		printf "allowed skips (%d):\n", nok
		for (i = 1; i <= nok; i++) print "  " ok[i]
	}
	if (nbad > 0) {
		printf "required tests skipped (%d; see %s):\n", nbad, rules
		for (i = 1; i <= nbad; i++) print "  " bad[i]
	}
	for (i = 1; i <= nrules; i++)
		if (!rneg[i] && !hit[i] && (!only_present || present[i]))
			notrun[++nnotrun] = rpkg[i] " " rre[i]
	if (nnotrun > 0) {
		printf "required tests that did not run (%d; see %s):\n", nnotrun, rules
		for (i = 1; i <= nnotrun; i++) print "  " notrun[i]
		print "  (no test they match passed or failed: the package is missing from the output, ran no tests, or was left out by a build tag)"
	}
	if (nbad > 0 || nnotrun > 0) exit 1
}
' "$input"
