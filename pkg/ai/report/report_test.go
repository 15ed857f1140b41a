package report

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

type lc struct {
	mu    sync.Mutex
	paths []string
	msgs  []map[string]any
	code  atomic.Int32
}

func startLC(t *testing.T) (*lc, string) {
	t.Helper()
	l := &lc{}
	l.code.Store(200)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &m) != nil {
			http.Error(w, "bad", 400)
			return
		}
		l.mu.Lock()
		l.paths = append(l.paths, r.URL.Path)
		l.msgs = append(l.msgs, m)
		l.mu.Unlock()
		w.WriteHeader(int(l.code.Load()))
		_, _ = w.Write([]byte("lc says no"))
	}))
	t.Cleanup(ts.Close)
	return l, ts.URL
}

func (l *lc) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.msgs)
}

var worker = Worker{Name: "ji-edge-7d9f", Namespace: "default", OwnerName: "helmet", OwnerKind: KindJointInference}

func TestSendSednaShape(t *testing.T) {
	l, url := startLC(t)
	c, err := NewClient(url+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 2, 15, 4, 5, 0, time.Local)
	m := worker.Message(PhaseInference, StatusRunning, JointInferenceInfo(8, 2, start, start.Add(30*time.Second)), nil)
	if err := c.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if l.paths[0] != "/sedna/workers/ji-edge-7d9f/info" {
		t.Fatalf("path %s", l.paths[0])
	}
	got := l.msgs[0]
	info := got["ownerInfo"].(map[string]any)
	if got["name"] != "ji-edge-7d9f" || got["ownerKind"] != "jointinferenceservice" || got["kind"] != "inference" || got["status"] != "running" ||
		info["inferenceNumber"] != 8.0 || info["hardExampleNumber"] != 2.0 || info["uploadCloudRatio"] != 0.25 ||
		info["startTime"] != "2026-01-02 15:04:05" || info["updateTime"] != "2026-01-02 15:04:35" {
		t.Fatalf("message %v", got)
	}
	if _, ok := got["results"]; ok {
		t.Fatal("empty results must be omitted")
	}

	l.code.Store(500)
	if err := c.Send(context.Background(), m); err == nil || !strings.Contains(err.Error(), "500: lc says no") {
		t.Fatalf("LC error: %v", err)
	}
	if _, err := NewClient("localhost:9100", nil); err == nil {
		t.Fatal("URL without scheme accepted")
	}
	if err := c.Send(context.Background(), Message{}); err == nil {
		t.Fatal("message without a worker name accepted")
	}
}

func TestFederatedInfo(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.Local)
	info := FederatedInfo(3, 1800, map[string]float64{"accuracy": 0.84, "currentRound": 99}, now, now)
	if info["currentRound"] != 3 || info["sampleCount"] != 1800 || info["accuracy"] != 0.84 {
		t.Fatalf("info %v", info)
	}
}

func TestPeriodicReportsOnlyChanges(t *testing.T) {
	l, url := startLC(t)
	c, _ := NewClient(url, nil)
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 2, 0, 0, 0, 0, time.Local))
	var inferences, hard atomic.Uint64
	p, err := NewPeriodic(PeriodicConfig{
		Client: c, Period: 30 * time.Second, Clock: clk, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Build: JointInference(worker, func() (uint64, uint64) { return inferences.Load(), hard.Load() }),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Start(ctx) }()
	tick := func(want int) {
		t.Helper()
		for !clk.HasWaiters() {
			time.Sleep(time.Millisecond)
		}
		clk.Step(30 * time.Second)
		deadline := time.Now().Add(2 * time.Second)
		for l.count() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%d reports, want %d", l.count(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	tick(0) // nothing happened yet
	inferences.Store(10)
	hard.Store(1)
	tick(1)
	tick(1) // no change, no report
	inferences.Store(12)
	tick(2)
	inferences.Store(13)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if l.count() != 3 {
		t.Fatalf("the last report on stop was not sent: %d", l.count())
	}
	if last := l.msgs[2]["ownerInfo"].(map[string]any); last["inferenceNumber"] != 13.0 {
		t.Fatalf("last report %v", last)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func TestPeriodicResendsUndeliveredReport(t *testing.T) {
	l, url := startLC(t)
	c, _ := NewClient(url, nil)
	clk := testingclock.NewFakeClock(time.Now())
	p, _ := NewPeriodic(PeriodicConfig{
		Client: c, Period: time.Second, Clock: clk,
		Build: JointInference(worker, func() (uint64, uint64) { return 5, 1 }),
	})
	l.code.Store(503)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Start(ctx) }()
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for l.count() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d posts, want %d", l.count(), n)
			}
			for !clk.HasWaiters() {
				time.Sleep(time.Millisecond)
			}
			clk.Step(time.Second)
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(1) // refused by the LC
	l.code.Store(200)
	waitFor(2) // same numbers, sent again because not delivered
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if l.count() != 2 {
		t.Fatalf("%d posts; a delivered report must not be repeated on stop", l.count())
	}
}
