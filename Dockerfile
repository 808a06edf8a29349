# syntax=docker/dockerfile:1
#
# The archiver's container image, for hosts with Docker or BuildKit:
#
#   docker build -t ghcr.io/cec-archiver/cec-archiver:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg DATE=$(git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ) .
#
# scripts/image.sh builds the same image without a Docker daemon (tools/image:
# an OCI layout and a docker-archive tarball), which is what CI does. Both
# describe one image: a static binary (CGO_ENABLED=0, -trimpath, version,
# commit and date in the ldflags) at /usr/local/bin/archiver on distroless
# static as user nonroot (65532:65532): CA certificates, no shell. The test
# tools/image TestDockerfile keeps this file and the offline builder in step
# (user, entrypoint, command, environment, ports, labels, build flags).
# docs/image.md says how the tag is made.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=dev
ARG COMMIT=
ARG DATE=
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=linux GOARCH=${TARGETARCH} GOFLAGS= \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" \
      -o /out/archiver ./cmd/archiver

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=
ARG DATE=
LABEL org.opencontainers.image.title="cec-archiver" \
      org.opencontainers.image.description="Archives call recordings and CDR packages from Huawei Cloud CEC into S3-compatible storage" \
      org.opencontainers.image.source="https://github.com/cec-archiver/cec-archiver" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${DATE}"
COPY --from=build /out/archiver /usr/local/bin/archiver
# The Kubernetes manifests mount the configuration here.
ENV ARCHIVER_CONFIG=/etc/archiver/config.toml
USER 65532:65532
WORKDIR /home/nonroot
# CC-FS callbacks, metrics.
EXPOSE 8080/tcp 10108/tcp
ENTRYPOINT ["/usr/local/bin/archiver"]
CMD ["run"]
