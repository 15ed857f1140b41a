package influxsink

import (
	"fmt"
	"testing"

	"github.com/verge-edge/verge/pkg/mapper/sink"
)

// BenchmarkEncode500 renders a batch of 500 float samples as line protocol.
func BenchmarkEncode500(b *testing.B) {
	s, err := New(config("http://127.0.0.1:8086"), Options{LookupEnv: env("TOKEN", "t")})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]sink.Sample, 500)
	for i := range batch {
		batch[i] = sink.Sample{Namespace: "default", Device: fmt.Sprintf("dev-%d", i%10), Property: fmt.Sprintf("p%d", i), Value: "21.5", Type: "float", Timestamp: t0}
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Encode(batch)
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "samples/s")
}
