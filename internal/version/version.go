// Package version reports the Verge release this binary was built from.
package version

// Version is set at link time by the Makefile
// (-X github.com/verge-edge/verge/internal/version.Version=...). Development
// builds report a pre-release that sorts below every release.
var Version = "v0.0.0-dev"
