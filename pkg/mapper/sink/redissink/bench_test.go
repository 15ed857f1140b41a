package redissink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/testserver"
)

// BenchmarkWrite500 writes batches of 500 samples (10 devices) to a real
// redis-server on loopback.
func BenchmarkWrite500(b *testing.B) {
	srv := testserver.Redis(b, password)
	s, err := New(Config{Addr: srv.Addr}, Options{LookupEnv: env("PASSWORD", password)})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	ctx := context.Background()
	batch := make([]sink.Sample, 500)
	n := 0
	for b.Loop() {
		for i := range batch {
			n++
			batch[i] = sink.Sample{Namespace: "bench", Device: fmt.Sprintf("dev-%d", i%10), Property: "p", Value: "21.5", Type: "float", Timestamp: t0.Add(time.Duration(n) * time.Millisecond)}
		}
		if err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "samples/s")
}
