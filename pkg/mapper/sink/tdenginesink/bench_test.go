package tdenginesink

import (
	"fmt"
	"testing"

	"github.com/verge-edge/verge/pkg/mapper/sink"
)

// BenchmarkPlan500 renders a batch of 500 samples (10 devices × 50
// properties) as SQL.
func BenchmarkPlan500(b *testing.B) {
	s, err := New(Config{Addr: "127.0.0.1:6041", DBName: "verge"}, Options{LookupEnv: goodEnv})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]sink.Sample, 500)
	for i := range batch {
		batch[i] = sink.Sample{Namespace: "default", Device: fmt.Sprintf("dev-%d", i%10), Property: fmt.Sprintf("p%d", i/10), Value: "21.5", Type: "float", Timestamp: t0}
	}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = s.plan(batch)
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "samples/s")
}
