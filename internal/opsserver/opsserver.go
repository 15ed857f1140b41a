// Package opsserver serves what operators and orchestrators probe on a
// daemon: /healthz (is the process working), /readyz (can it do its job
// now), /metrics (Prometheus) and, when enabled, /debug/pprof.
//
// Checks are registered by the parts of the daemon that know their own
// state; a probe runs every check of its kind and answers 200 "ok" only when
// all pass, otherwise 503 listing the failures. `?verbose` lists every check.
package opsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports nil when healthy.
type Check func(ctx context.Context) error

// Options configures a Server.
type Options struct {
	// Address to listen on, e.g. "127.0.0.1:10260".
	Address string
	// EnablePprof serves /debug/pprof/.
	EnablePprof bool
	// Gatherer provides the metrics for /metrics.
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// ShutdownTimeout bounds the graceful shutdown; default 5 s.
	ShutdownTimeout time.Duration
}

// Server is the ops HTTP endpoint.
type Server struct {
	opts   Options
	mu     sync.Mutex
	health map[string]Check
	ready  map[string]Check
	addr   chan net.Addr
}

// New returns a Server; call Start to serve.
func New(opts Options) *Server {
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 5 * time.Second
	}
	return &Server{opts: opts, health: map[string]Check{}, ready: map[string]Check{}, addr: make(chan net.Addr, 1)}
}

// AddHealthCheck registers a liveness check; a failing one means the
// process should be restarted.
func (s *Server) AddHealthCheck(name string, c Check) { s.add(s.health, name, c) }

// AddReadyCheck registers a readiness check; a failing one means the process
// should get no work yet.
func (s *Server) AddReadyCheck(name string, c Check) { s.add(s.ready, name, c) }

func (s *Server) add(m map[string]Check, name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m[name] = c
}

// Addr returns the bound address once Start is listening.
func (s *Server) Addr(ctx context.Context) (net.Addr, error) {
	select {
	case a := <-s.addr:
		s.addr <- a
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Handler returns the ops endpoints as an http.Handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { s.probe(w, r, s.health) })
	mux.HandleFunc("/livez", func(w http.ResponseWriter, r *http.Request) { s.probe(w, r, s.health) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { s.probe(w, r, s.ready) })
	if s.opts.Gatherer != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{ErrorLog: slogErrorLog{s.opts.Logger}}))
	}
	if s.opts.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Start serves until ctx is done, then shuts down gracefully.
func (s *Server) Start(ctx context.Context) error {
	l, err := net.Listen("tcp", s.opts.Address)
	if err != nil {
		return fmt.Errorf("ops endpoint: listening on %s: %w", s.opts.Address, err)
	}
	s.addr <- l.Addr()
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("ops endpoint: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("ops endpoint: shutting down: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) probe(w http.ResponseWriter, r *http.Request, checks map[string]Check) {
	s.mu.Lock()
	names := make([]string, 0, len(checks))
	snapshot := make(map[string]Check, len(checks))
	for n, c := range checks {
		names = append(names, n)
		snapshot[n] = c
	}
	s.mu.Unlock()
	sort.Strings(names)

	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	var report strings.Builder
	failed := false
	for _, n := range names {
		if err := snapshot[n](ctx); err != nil {
			failed = true
			fmt.Fprintf(&report, "[-]%s failed: %v\n", n, err)
		} else {
			fmt.Fprintf(&report, "[+]%s ok\n", n)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if failed {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "%s%s check failed\n", report.String(), strings.TrimPrefix(r.URL.Path, "/"))
		return
	}
	if _, verbose := r.URL.Query()["verbose"]; verbose {
		fmt.Fprintf(w, "%s%s check passed\n", report.String(), strings.TrimPrefix(r.URL.Path, "/"))
		return
	}
	fmt.Fprint(w, "ok")
}

// slogErrorLog adapts a slog.Logger to promhttp's error logger.
type slogErrorLog struct{ l *slog.Logger }

func (e slogErrorLog) Println(v ...any) {
	if e.l != nil {
		e.l.Error("serving metrics failed", "error", fmt.Sprint(v...))
	}
}
