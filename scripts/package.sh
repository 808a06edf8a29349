#!/usr/bin/env bash
# Builds the cec-archiver .deb and .rpm with nfpm (pinned in tools/nfpm,
# built through the Go module proxy like every other tool here): the static
# binary, stamped as scripts/image.sh stamps the image's (main.version,
# main.commit, main.date), the systemd units of deploy/systemd, the example
# /etc/archiver/config.toml as a conffile, and the scripts that create the
# _archiver user (packaging/). docs/packages.md says what is in them.
#
#   scripts/package.sh                   # dist/packages/cec-archiver_VERSION_ARCH.deb and .rpm
#   scripts/package.sh deb               # only the .deb
#   scripts/package.sh --out /tmp/p rpm  # only the .rpm, into /tmp/p
#   VERSION=0.1.0 ARCH=arm64 scripts/package.sh
#
# The version is the image's tag (scripts/image.sh --tag: $VERSION, a vX.Y.Z
# tag on HEAD, or 0.0.0-dev.<commit time>.<commit>, "-dirty" for a work tree
# with changes); the date $SOURCE_DATE_EPOCH or the commit time, which is
# also every file's mtime in the packages. It prints the path of each
# package it wrote.
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: package.sh [--out DIR] [deb|rpm]..."
out=dist/packages
formats=()
while [ $# -gt 0 ]; do
	case $1 in
	--out) out=${2:?$usage}; shift 2 ;;
	--out=*) out=${1#--out=}; shift ;;
	deb | rpm) formats+=("$1"); shift ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
[ ${#formats[@]} -gt 0 ] || formats=(deb rpm)

tag=$(scripts/image.sh --tag)
version=${tag##*:}
commit=$(git rev-parse HEAD)
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct HEAD)}
date=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
arch=${ARCH:-$(go env GOARCH)}

work=$(mktemp -d -t cec-archiver-package.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The build of tools/image (spec.go: buildEnv, buildFlags): static,
# -trimpath, stamped by the ldflags only.
CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOFLAGS= go build -trimpath -buildvcs=false \
	-ldflags "-s -w -X main.version=$version -X main.commit=$commit -X main.date=$date" \
	-o "$work/archiver" ./cmd/archiver

mkdir -p "$out"
for format in "${formats[@]}"; do
	target="$out/cec-archiver_${version}_${arch}.$format"
	rm -f "$target"
	ARCHIVER_BINARY=$work/archiver VERSION=$version ARCH=$arch SOURCE_DATE_EPOCH=$epoch \
		GOWORK=off GOFLAGS=-buildvcs=false go tool -modfile=tools/nfpm/go.mod nfpm package \
		--config packaging/nfpm.yaml --packager "$format" --target "$target" >"$work/nfpm.log" 2>&1 ||
		{ cat "$work/nfpm.log" >&2; exit 1; }
	echo "$target"
done
