#!/usr/bin/env bash
# skipgate.sh RULES [OUTPUT] reads the output of `go test -v` (a file, or
# stdin) and checks its skipped tests against RULES (.ci/required-tests: one
# "package regexp" rule a line, "!package regexp" for exceptions).
#
# Every skip is listed. A skip of a required test fails: the gate prints it
# under "required tests skipped" and exits 1. A skip it cannot attribute to a
# package (output cut short) counts as required. Exit 2: unreadable rules.
#
# `go test -v` over several packages prints each package's output in one
# piece, ended by its "ok"/"FAIL"/"?" line; the skips seen before that line
# belong to that package.
set -euo pipefail
rules=${1:?usage: skipgate.sh RULES [GO_TEST_V_OUTPUT]}
input=${2:--}
[ -r "$rules" ] || { echo "skipgate: cannot read $rules" >&2; exit 2; }

awk -v rules="$rules" '
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
function settle(pkg,    i, n) {
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
		exit 1
	}
}
' "$input"
