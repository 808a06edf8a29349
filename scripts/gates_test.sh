#!/usr/bin/env bash
# gates_test.sh tests the tidy and alert-rules gates of scripts/gates.sh on
# copies of this repository (its tracked and untracked, not ignored files):
# the unmodified copy must pass both gates, and a deliberately broken copy
# (an untidy go.mod, a failing alert rule test, an alerts.yml that does not
# load) must fail the gate it breaks, with the gate's reason in its output.
# scripts/test.sh runs it before trusting the gates.
#
# It needs no network: the go commands run with GOPROXY=off, on the module
# cache the tidy gate of the repository itself filled (run scripts/gates.sh
# tidy first on a fresh cache), so a case is fast and cannot pass or fail on
# what a proxy answers. The rules cases need promtool (scripts/gates.sh
# install-promtool). KEEP=1 keeps the copies and the gates' output.
set -euo pipefail
cd "$(dirname "$0")/.."
gates=$PWD/scripts/gates.sh
tmp=$(mktemp -d -t gates-test.XXXXXX)
if [ -n "${KEEP:-}" ]; then
	echo "keeping $tmp"
else
	trap 'rm -rf "$tmp"' EXIT
fi
export GOPROXY=off
failures=0

# The pristine copy every case starts from. Files deleted in the work tree
# but still tracked are left out, as the gates would not see them either.
mkdir "$tmp/repo"
git ls-files -z -co --exclude-standard |
	while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done |
	tar -cf - --null -T - | tar -xf - -C "$tmp/repo"

# fresh NAME makes $tmp/NAME, a copy of the repository for case NAME.
fresh() { cp -a "$tmp/repo" "$tmp/$1"; }

# edit NAME FILE SED_SCRIPT changes FILE in case NAME's copy; the case fails
# the self-test when the script changed nothing (the file no longer has what
# the case breaks).
edit() {
	local f="$tmp/$1/$2"
	cp "$f" "$tmp/$1.orig"
	sed -i -e "$3" "$f"
	if cmp -s "$f" "$tmp/$1.orig"; then
		echo "FAIL $1: sed '$3' did not change $2; update the case"
		failures=$((failures + 1))
		return 1
	fi
}

# expect NAME GATE WANT TEXT runs the gate on case NAME's copy: it must pass
# (WANT=pass, exit 0) or fail (WANT=fail, exit non-zero), and its output must
# contain TEXT, which tells the failure the case made from any other.
expect() {
	local name=$1 gate=$2 want=$3 text=$4 rc=0 got=pass
	"$gates" "$gate" "$tmp/$name" >"$tmp/$name.$gate.got" 2>&1 || rc=$?
	[ "$rc" -eq 0 ] || got=fail
	if [ "$got" != "$want" ] || ! grep -qF -- "$text" "$tmp/$name.$gate.got"; then
		echo "FAIL $name ($gate gate): exit $rc (want $want), output (want it to contain \"$text\"):"
		sed 's/^/    /' "$tmp/$name.$gate.got"
		failures=$((failures + 1))
	else
		echo "ok   $name ($gate gate)"
	fi
}

# The unmodified copy passes both gates: they can pass.
fresh clean
expect clean tidy pass "ok"
expect clean rules pass "SUCCESS"

# A direct dependency (the first of go.mod's first require block) marked
# indirect: go mod tidy would drop the comment.
fresh tidy-indirect
direct=$(awk '/^require \($/ { inblock = 1; next } inblock && /^\t[^ ]+ v[^ ]+$/ { print substr($0, 2); exit }' "$tmp/repo/go.mod")
if [ -z "$direct" ]; then
	echo "FAIL tidy-indirect: no direct dependency found in go.mod; update the case"
	failures=$((failures + 1))
elif edit tidy-indirect go.mod "s|^\t${direct}\$|& // indirect|"; then
	expect tidy-indirect tidy fail "-	${direct} // indirect"
fi

# An unused requirement: golang.org/x/mod, at the version go.sum already has
# (no download), is in the module graph but no package of ours imports it.
fresh tidy-unused
unused=$(awk '$1 == "golang.org/x/mod" && $2 !~ /\/go\.mod$/ { print $1 "@" $2; exit }' "$tmp/repo/go.sum")
if [ -z "$unused" ] || grep -q '^[[:space:]]*golang.org/x/mod ' "$tmp/repo/go.mod"; then
	echo "FAIL tidy-unused: golang.org/x/mod is not in go.sum or already required in go.mod; pick another module"
	failures=$((failures + 1))
else
	(cd "$tmp/tidy-unused" && go mod edit -require="$unused")
	expect tidy-unused tidy fail "-	${unused/@/ }"
fi

# An alert rule test that no longer matches: the first expected alert's
# severity label is changed, so promtool test rules reports a mismatch (and
# prints the expected labels, the changed one with them).
fresh rules-test-fails
if edit rules-test-fails deploy/prometheus/alerts_test.yml '0,/exp_labels: {severity: /s//exp_labels: {severity: not-/'; then
	expect rules-test-fails rules fail 'severity="not-'
fi

# An alerts.yml that is not YAML: promtool check rules refuses it.
fresh rules-yaml-broken
if edit rules-yaml-broken deploy/prometheus/alerts.yml '0,/^groups:$/s//groups: [/'; then
	expect rules-yaml-broken rules fail "yaml:"
fi

# An alert whose expression does not parse: promtool check rules refuses it.
fresh rules-expr-broken
if edit rules-expr-broken deploy/prometheus/alerts.yml '0,/ expr: /s// expr: sum(/'; then
	expect rules-expr-broken rules fail "parse error"
fi

if [ "$failures" -ne 0 ]; then
	echo "gates_test: $failures case(s) failed"
	exit 1
fi
