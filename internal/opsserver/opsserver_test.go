package opsserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestProbes(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	s := New(Options{Gatherer: reg})
	s.AddHealthCheck("loop", func(context.Context) error { return nil })
	crdsReady := errors.New("CRDs not installed yet")
	s.AddReadyCheck("crds", func(context.Context) error { return crdsReady })
	s.AddReadyCheck("apiserver", func(context.Context) error { return nil })
	h := s.Handler()

	if code, body := get(t, h, "/healthz"); code != 200 || body != "ok" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	code, body := get(t, h, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]crds failed: CRDs not installed yet") || !strings.Contains(body, "[+]apiserver ok") {
		t.Errorf("/readyz = %d %q, want 503 naming the failing check", code, body)
	}
	crdsReady = nil
	if code, body := get(t, h, "/readyz"); code != 200 || body != "ok" {
		t.Errorf("/readyz after recovery = %d %q", code, body)
	}
	if code, body := get(t, h, "/readyz?verbose"); code != 200 || !strings.Contains(body, "[+]crds ok") {
		t.Errorf("/readyz?verbose = %d %q", code, body)
	}
	if code, body := get(t, h, "/metrics"); code != 200 || !strings.Contains(body, "verge_test_total 1") {
		t.Errorf("/metrics = %d, body lacks the counter: %q", code, body)
	}
	if code, _ := get(t, h, "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("pprof served while disabled: %d", code)
	}
	withPprof := New(Options{EnablePprof: true}).Handler()
	if code, _ := get(t, withPprof, "/debug/pprof/"); code != 200 {
		t.Errorf("pprof not served when enabled: %d", code)
	}
}

func TestStartAndGracefulShutdown(t *testing.T) {
	s := New(Options{Address: "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	addr, err := s.Addr(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Start returned %v after shutdown", err)
	}
}

func TestBusyAddressIsNamed(t *testing.T) {
	first := New(Options{Address: "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = first.Start(ctx) }()
	addr, err := first.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = New(Options{Address: addr.String()}).Start(ctx)
	if err == nil || !strings.Contains(err.Error(), addr.String()) {
		t.Fatalf("want an error naming %s, got %v", addr, err)
	}
}
