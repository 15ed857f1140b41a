package mqttsink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/testserver"
)

// BenchmarkWrite500QoS1 publishes batches of 500 samples at QoS 1 to a
// real broker on loopback, waiting for every acknowledgement.
func BenchmarkWrite500QoS1(b *testing.B) {
	broker := testserver.MQTTBroker(b)
	s, err := New(Config{Address: broker.Addr, Topic: "bench/{device}/{property}", QoS: 1}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	for deadline := time.Now().Add(10 * time.Second); !s.Connected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("not connected")
		}
	}
	batch := make([]sink.Sample, 500)
	for i := range batch {
		batch[i] = sink.Sample{Namespace: "bench", Device: fmt.Sprintf("dev-%d", i%10), Property: fmt.Sprintf("p%d", i%50), Value: "21.5", Type: "float", Timestamp: t0}
	}
	ctx := context.Background()
	for b.Loop() {
		if err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "samples/s")
}
