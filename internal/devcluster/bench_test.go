package devcluster_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/verge-edge/verge/internal/devcluster"
	"github.com/verge-edge/verge/internal/testenv"
)

// BenchmarkStart measures the time from Start to a ready control plane
// (API server /readyz, controller-manager and scheduler /healthz) with the
// binaries already built: on a fresh directory, and resuming a stopped one.
func BenchmarkStart(b *testing.B) {
	bins, err := testenv.Binaries(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, dir string) {
		c, err := devcluster.Start(context.Background(), devcluster.Config{Dir: dir, Binaries: bins, KeepData: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := c.Stop(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.Run("fresh", func(b *testing.B) {
		for range b.N {
			run(b, b.TempDir())
		}
	})
	b.Run("resume", func(b *testing.B) {
		dir := b.TempDir()
		b.StopTimer()
		run(b, dir)
		b.StartTimer()
		for range b.N {
			run(b, dir)
		}
	})
}
