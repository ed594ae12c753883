#!/usr/bin/env bash
# Regenerates driver.pb.go and driver_grpc.pb.go from driver.proto with pinned generators.
# Needs protoc on PATH (Debian: protobuf-compiler) and the Go module proxy for the generators.
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.5.1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${PLUGINAPI_GEN_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/pluggable-storage/protoc-gen-go-${PROTOC_GEN_GO_VERSION}-grpc-${PROTOC_GEN_GO_GRPC_VERSION}}"
mkdir -p "$bin"

if [[ ! -x "$bin/protoc-gen-go" ]]; then
	GOBIN="$bin" GOFLAGS=-mod=mod go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
fi
if [[ ! -x "$bin/protoc-gen-go-grpc" ]]; then
	GOBIN="$bin" GOFLAGS=-mod=mod go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"
fi

command -v protoc >/dev/null || { echo "gen.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }

cd "$here"
PATH="$bin:$PATH" protoc \
	--proto_path=. \
	--go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	driver.proto
