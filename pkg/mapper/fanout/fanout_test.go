package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/verge-edge/verge/pkg/mapper/sink"
)

// recordingSink records batches; failures lists the errors the next Write
// calls return (nil entries succeed); block makes Write wait for ctx.
type recordingSink struct {
	mu       sync.Mutex
	batches  [][]sink.Sample
	failures []error
	block    bool
	release  chan struct{} // closing it fails blocked writes at once
	calls    chan struct{}
	closed   bool
}

func newRecordingSink() *recordingSink {
	return &recordingSink{calls: make(chan struct{}, 1000), release: make(chan struct{})}
}

func (s *recordingSink) Name() string { return "rec" }

func (s *recordingSink) Write(ctx context.Context, batch []sink.Sample) error {
	s.mu.Lock()
	block := s.block
	var err error
	if len(s.failures) > 0 {
		err, s.failures = s.failures[0], s.failures[1:]
	}
	if err == nil && !block {
		s.batches = append(s.batches, append([]sink.Sample(nil), batch...))
	}
	s.mu.Unlock()
	s.calls <- struct{}{}
	if block {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.release:
			return errors.New("released")
		}
	}
	return err
}

func (s *recordingSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *recordingSink) values() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.batches {
		for _, x := range b {
			out = append(out, x.Value)
		}
	}
	return out
}

func samples(n int) []sink.Sample {
	out := make([]sink.Sample, n)
	for i := range out {
		out[i] = sink.Sample{Namespace: "default", Device: "d", Property: "p", Value: fmt.Sprint(i), Type: "int"}
	}
	return out
}

func waitCalls(t *testing.T, s *recordingSink, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-s.calls:
		case <-time.After(5 * time.Second):
			t.Fatalf("sink saw %d of %d expected Write calls", i, n)
		}
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestDeliversInOrderInBatches(t *testing.T) {
	s := newRecordingSink()
	s.block = true // hold the first batch so the rest queue up
	w := Start("rec", s, Options{MaxBatch: 3, WriteTimeout: 50 * time.Millisecond, MaxAttempts: 1})
	defer func() { _ = w.Stop(context.Background()) }()
	w.Enqueue(samples(1)...)
	waitCalls(t, s, 1)
	s.mu.Lock()
	s.block = false
	s.mu.Unlock()
	w.Enqueue(samples(7)...)
	eventually(t, "7 samples delivered", func() bool { return w.Status().Written == 7 })
	s.mu.Lock()
	sizes := []int{}
	for _, b := range s.batches {
		sizes = append(sizes, len(b))
	}
	s.mu.Unlock()
	if fmt.Sprint(sizes) != "[3 3 1]" {
		t.Errorf("batch sizes %v, want [3 3 1]", sizes)
	}
	if got := fmt.Sprint(s.values()); got != "[0 1 2 3 4 5 6]" {
		t.Errorf("delivered %s, want samples in order", got)
	}
	st := w.Status()
	if st.Written != 7 || st.Failed != 1 || !st.Healthy {
		t.Errorf("status %+v: want 7 written, 1 failed (the timed-out first batch), healthy", st)
	}
}

func TestOverflowDropsOldestAndCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	s := newRecordingSink()
	s.block = true
	w := Start("rec", s, Options{QueueSize: 4, MaxBatch: 1, MaxAttempts: 1, WriteTimeout: time.Hour, Metrics: m})
	w.Enqueue(samples(1)...) // taken by the worker, which blocks in Write
	waitCalls(t, s, 1)
	batch := samples(10)
	w.Enqueue(batch[1:]...) // 9 into a buffer of 4: 5 dropped
	st := w.Status()
	if st.Dropped != 5 || st.Queued != 4 {
		t.Fatalf("status %+v: want 5 dropped, 4 queued", st)
	}
	if got := metricValue(t, reg, "verge_mapper_sink_samples_total", "dropped"); got != 5 {
		t.Errorf("dropped metric = %v, want 5", got)
	}
	if got := metricValue(t, reg, "verge_mapper_sink_queued_samples", ""); got != 4 {
		t.Errorf("queued gauge = %v, want 4", got)
	}
	s.mu.Lock()
	s.block = false
	s.mu.Unlock()
	close(s.release) // the stuck Write fails; its single attempt is used up
	eventually(t, "delivery of the rest", func() bool { return len(s.values()) == 4 })
	if got := fmt.Sprint(s.values()); got != "[6 7 8 9]" {
		t.Errorf("after overflow delivered %s, want the 4 newest", got)
	}
}

func TestRetriesWithBackoffThenSucceeds(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	boom := errors.New("broker unreachable")
	s := newRecordingSink()
	s.failures = []error{boom, boom}
	w := Start("rec", s, Options{Clock: fc, RetryMin: time.Second, RetryMax: 10 * time.Second, MaxAttempts: 5, Jitter: func() float64 { return 1 }})
	defer func() { _ = w.Stop(context.Background()) }()
	w.Enqueue(samples(2)...)
	waitCalls(t, s, 1)
	eventually(t, "backoff timer", fc.HasWaiters)
	if st := w.Status(); st.Healthy || st.LastError != boom.Error() || st.WriteErrors != 1 {
		t.Errorf("after a failure status = %+v, want unhealthy with the error", st)
	}
	fc.Step(999 * time.Millisecond)
	select {
	case <-s.calls:
		t.Fatal("retried before the 1 s backoff elapsed")
	case <-time.After(20 * time.Millisecond):
	}
	fc.Step(time.Millisecond)
	waitCalls(t, s, 1)
	eventually(t, "second backoff timer", fc.HasWaiters)
	fc.Step(2 * time.Second) // doubled
	waitCalls(t, s, 1)
	eventually(t, "delivery", func() bool { return w.Status().Written == 2 })
	st := w.Status()
	if st.Written != 2 || st.WriteErrors != 2 || st.Failed != 0 || !st.Healthy {
		t.Errorf("status %+v: want 2 written after 2 errors, healthy", st)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	boom := errors.New("no")
	s := newRecordingSink()
	s.failures = []error{boom, boom, boom}
	w := Start("rec", s, Options{Clock: fc, MaxAttempts: 3, RetryMin: time.Second, Jitter: func() float64 { return 1 }})
	defer func() { _ = w.Stop(context.Background()) }()
	w.Enqueue(samples(4)...)
	for i := 0; i < 2; i++ {
		waitCalls(t, s, 1)
		eventually(t, "backoff timer", fc.HasWaiters)
		fc.Step(time.Minute)
	}
	waitCalls(t, s, 1)
	eventually(t, "give up", func() bool { return w.Status().Failed == 4 })
	// The next sample goes through: the worker is not stuck.
	w.Enqueue(samples(1)...)
	eventually(t, "next delivery", func() bool { return w.Status().Written == 1 })
}

func TestBrokenSinkDoesNotBlockOthers(t *testing.T) {
	broken := newRecordingSink()
	broken.block = true
	good := newRecordingSink()
	bw := Start("broken", broken, Options{QueueSize: 10, MaxBatch: 5, WriteTimeout: time.Hour})
	gw := Start("good", good, Options{QueueSize: 1000, MaxBatch: 5})
	for i := 0; i < 100; i++ {
		batch := samples(1)
		batch[0].Value = fmt.Sprint(i)
		bw.Enqueue(batch...)
		gw.Enqueue(batch...)
	}
	eventually(t, "good sink to receive all 100", func() bool { return len(good.values()) == 100 })
	if st := bw.Status(); st.Dropped < 85 || st.Written != 0 {
		t.Errorf("broken sink status %+v: want a full buffer and drops", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := gw.Stop(ctx); err != nil {
		t.Error(err)
	}
	close(broken.release)
	if err := bw.Stop(ctx); err != nil {
		t.Error(err)
	}
}

func TestStopFlushesAndCloses(t *testing.T) {
	s := newRecordingSink()
	s.block = true
	w := Start("rec", s, Options{WriteTimeout: 20 * time.Millisecond, MaxAttempts: 1})
	w.Enqueue(samples(1)...)
	waitCalls(t, s, 1)
	s.mu.Lock()
	s.block = false
	s.mu.Unlock()
	w.Enqueue(samples(3)...)
	if err := w.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(s.values()) != 3 || !s.closed {
		t.Errorf("after Stop: delivered %v, closed=%v; want the 3 queued samples and a closed sink", s.values(), s.closed)
	}
	w.Enqueue(samples(2)...)
	if st := w.Status(); st.Dropped != 2 {
		t.Errorf("enqueue after stop: status %+v, want 2 dropped", st)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempt int
		jitter  float64
		want    time.Duration
	}{
		{1, 1, time.Second}, {2, 1, 2 * time.Second}, {3, 1, 4 * time.Second}, {5, 1, 10 * time.Second}, {50, 1, 10 * time.Second},
		{1, 0.8, 800 * time.Millisecond}, {2, 1.2, 2400 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := Backoff(time.Second, 10*time.Second, tt.attempt, tt.jitter); got != tt.want {
			t.Errorf("Backoff(attempt %d, jitter %v) = %v, want %v", tt.attempt, tt.jitter, got, tt.want)
		}
	}
}

// metricValue reads a counter or gauge for sink "rec" (and result, if set).
func metricValue(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if (l.GetName() == "sink" && l.GetValue() != "rec") || (l.GetName() == "result" && l.GetValue() != result) {
					continue metrics
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s{sink=rec,result=%q} not found", name, result)
	return 0
}

func TestStopDeadlineCancelsHungWrite(t *testing.T) {
	s := newRecordingSink()
	s.block = true
	w := Start("rec", s, Options{WriteTimeout: time.Hour})
	w.Enqueue(samples(2)...)
	waitCalls(t, s, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() { _ = w.Stop(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop waited for a hung Write past its deadline")
	}
	if st := w.Status(); st.Written != 0 || st.Dropped+st.Failed != 2 {
		t.Errorf("status %+v: want both samples accounted as dropped or failed", st)
	}
}

func TestLingerBatchesSamplesThatArriveTogether(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	s := newRecordingSink()
	w := Start("rec", s, Options{Clock: fc, Linger: 100 * time.Millisecond})
	defer func() { _ = w.Stop(context.Background()) }()
	for i := 0; i < 3; i++ {
		w.Enqueue(samples(1)...)
	}
	eventually(t, "linger timer", fc.HasWaiters)
	select {
	case <-s.calls:
		t.Fatal("wrote before the linger elapsed")
	case <-time.After(20 * time.Millisecond):
	}
	fc.Step(100 * time.Millisecond)
	waitCalls(t, s, 1)
	s.mu.Lock()
	n := len(s.batches)
	size := len(s.batches[0])
	s.mu.Unlock()
	if n != 1 || size != 3 {
		t.Errorf("%d batches, first of %d; want one batch of 3", n, size)
	}
}
