package mysqlsink

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/testserver"
)

// BenchmarkWrite500 writes batches of 500 samples (10 properties × 50
// readings) to a real MariaDB on loopback.
func BenchmarkWrite500(b *testing.B) {
	srv := testserver.MariaDB(b, dbName, user, password)
	s, err := New(Config{Addr: srv.Addr, Database: dbName, UserName: user}, Options{LookupEnv: env("PASSWORD", password)})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	ctx := context.Background()
	batch := make([]sink.Sample, 500)
	n := 0
	b.ResetTimer()
	for b.Loop() {
		for i := range batch {
			n++
			batch[i] = sink.Sample{Namespace: "bench", Device: "meter", Property: fmt.Sprintf("p%d", i%10), Value: "21.5", Type: "float", Timestamp: t0.Add(time.Duration(n) * time.Millisecond)}
		}
		if err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "samples/s")
}
