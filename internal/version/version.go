// Package version reports the Verge release this binary was built from.
package version

// Version is set at link time by the Makefile
// (-X github.com/verge-edge/verge/internal/version.Version=...). Development
// builds report a pre-release that sorts below every release.
var Version = "v0.0.0-dev"

// BuildTags are the Go build tags every Verge binary is built with (the
// Makefile passes the same list; test/shape checks they agree).
//
// grpcnotrace drops gRPC's golang.org/x/net/trace support, which we never
// enable. That package links text/template, whose reflective method calls
// stop the linker from removing unused methods anywhere in the program:
// without it verge-edge is 4.7 MB smaller, and nearly all of a Go binary's
// pages end up resident (docs/benchmarks.md).
const BuildTags = "grpcnotrace"
