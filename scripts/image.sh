#!/usr/bin/env bash
# Builds the archiver's container image without a Docker daemon or a
# registry (tools/image): the static binary, then an OCI image layout and a
# docker-archive tarball of the same image, reproducibly: the same commit,
# Go toolchain and CA bundle give the same digest. docs/image.md explains it.
#
#   scripts/image.sh               # dist/image/ (OCI layout), dist/image.tar
#   scripts/image.sh --tag         # only print the tag it would use
#   VERSION=0.1.0 scripts/image.sh # the tag of a release
#   OUT=/tmp/img ARCH=arm64 scripts/image.sh
#
# The tag (the version stamped into the binary and the labels): $VERSION;
# else, when HEAD is tagged vX.Y.Z, X.Y.Z; else
# 0.0.0-dev.<commit time, UTC, yyyymmddhhmmss>.<first 12 hex of the commit>.
# Without $VERSION a work tree with uncommitted changes adds "-dirty": such an
# image is not the commit's.
# The date (main.date, the created time, every file's mtime):
# $SOURCE_DATE_EPOCH, else the commit time.
#
# Load it with "docker load -i dist/image.tar" or "podman load -i
# dist/image.tar"; push the layout with "crane push dist/image REF" or
# "skopeo copy oci:dist/image:TAG docker://REF".
set -euo pipefail
cd "$(dirname "$0")/.."

repository=${REPOSITORY:-ghcr.io/cec-archiver/cec-archiver}
out=${OUT:-dist}
arch=${ARCH:-$(go env GOARCH)}

commit=$(git rev-parse HEAD)
commit_time=$(git log -1 --format=%ct HEAD)
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
	epoch=$SOURCE_DATE_EPOCH
else
	epoch=$commit_time
fi
date=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

if [ -n "${VERSION:-}" ]; then
	version=$VERSION
elif tag=$(git describe --tags --exact-match --match 'v[0-9]*' HEAD 2>/dev/null); then
	version=${tag#v}
else
	version="0.0.0-dev.$(date -u -d "@$commit_time" +%Y%m%d%H%M%S).${commit:0:12}"
fi
if [ -z "${VERSION:-}" ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
	version="$version-dirty"
	echo "image.sh: the work tree has uncommitted changes: tag $version" >&2
fi

if [ "${1:-}" = "--tag" ]; then
	echo "$repository:$version"
	exit 0
fi

mkdir -p "$out"
rm -rf "$out/image"
go run ./tools/image -version "$version" -commit "$commit" -date "$date" -arch "$arch" \
	-repository "$repository" -oci "$out/image" -docker-archive "$out/image.tar"
