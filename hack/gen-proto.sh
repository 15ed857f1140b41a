#!/usr/bin/env bash
# Generate Go code (messages and gRPC services) for .proto files, next to
# each file.
#
#   hack/gen-proto.sh [-o OUTDIR] FILE.proto...
#
# FILE paths are relative to the repository root (or absolute inside it).
# Imports resolve from the repository root and from protoc's well-known types
# (Debian: protobuf-compiler + libprotobuf-dev). The generated files land next
# to each .proto, or under OUTDIR at the same relative path with -o (the
# freshness tests use that to regenerate into a temporary directory).
#
# The code generators are pinned here and run with `go run`, so nothing is
# installed globally and every machine produces identical output.
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$root
if [[ ${1:-} == -o ]]; then
	[[ $# -ge 2 ]] || { echo "gen-proto: -o needs a directory" >&2; exit 2; }
	out=$(mkdir -p "$2" && cd "$2" && pwd)
	shift 2
fi
if [[ $# -eq 0 ]]; then
	echo "usage: hack/gen-proto.sh [-o OUTDIR] FILE.proto..." >&2
	exit 2
fi
if ! command -v protoc >/dev/null; then
	echo "gen-proto: protoc not found: apt-get install -y protobuf-compiler libprotobuf-dev" >&2
	exit 1
fi

# protoc runs plugins as executables; these wrappers hand over to `go run`
# with the pinned versions (the Go build cache makes repeat runs fast).
plugins=$(mktemp -d)
trap 'rm -rf "$plugins"' EXIT
cat >"$plugins/protoc-gen-go" <<EOF
#!/bin/sh
cd "$root" && exec go run google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION "\$@"
EOF
cat >"$plugins/protoc-gen-go-grpc" <<EOF
#!/bin/sh
cd "$root" && exec go run google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION "\$@"
EOF
chmod +x "$plugins"/*

cd "$root"
for f in "$@"; do
	rel=${f#"$root"/}
	if [[ ! -f $rel ]]; then
		echo "gen-proto: $f: no such file (paths are relative to the repository root)" >&2
		exit 1
	fi
	protoc -I . \
		--plugin=protoc-gen-go="$plugins/protoc-gen-go" \
		--plugin=protoc-gen-go-grpc="$plugins/protoc-gen-go-grpc" \
		--go_out="$out" --go_opt=paths=source_relative \
		--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
		"$rel"
done
