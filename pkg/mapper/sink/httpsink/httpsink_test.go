package httpsink

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/testserver"
	"github.com/verge-edge/verge/pkg/mapper/sink/secret"
)

type request struct {
	method, path, contentType, auth, body string
}

type recorder struct {
	mu     sync.Mutex
	reqs   []request
	status int
	reply  string
	delay  time.Duration
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, request{req.Method, req.URL.RequestURI(), req.Header.Get("Content-Type"), req.Header.Get("Authorization"), string(b)})
	status, reply, delay := r.status, r.reply, r.delay
	r.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
			return
		}
	}
	if status == 0 {
		status = http.StatusNoContent
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, reply)
}

func (r *recorder) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

func (r *recorder) set(status int, reply string, delay time.Duration) {
	r.mu.Lock()
	r.status, r.reply, r.delay = status, reply, delay
	r.mu.Unlock()
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)

func samples() []sink.Sample {
	return []sink.Sample{
		{Namespace: "default", Device: "thermo-1", Property: "temperature", Value: "21.5", Type: "float", Timestamp: t0},
		{Namespace: "default", Device: "thermo-1", Property: "label", Value: `a "b" & c=d`, Type: "string", Timestamp: t0.Add(time.Second)},
	}
}

func newSink(t *testing.T, srv *testserver.HTTP, opts Options) *Sink {
	t.Helper()
	host, port, _ := net.SplitHostPort(srv.Addr)
	p, _ := strconv.ParseInt(port, 10, 64)
	s, err := New(Config{HostName: "http://" + host, Port: p, RequestPath: "/api/readings", Timeout: 5}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestJSONBatchesOnOneKeptAliveConnection(t *testing.T) {
	rec := &recorder{}
	srv := testserver.NewHTTP(t, rec)
	s := newSink(t, srv, Options{})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := s.Write(ctx, samples()); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	reqs := rec.requests()
	if len(reqs) != 3 {
		t.Fatalf("server got %d requests, want 3 (one per batch)", len(reqs))
	}
	if got := srv.Conns(); got != 1 {
		t.Errorf("server accepted %d connections for 3 writes, want 1 (keep-alive)", got)
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/api/readings" || r.contentType != "application/json" {
		t.Errorf("request = %s %s (%s), want POST /api/readings (application/json)", r.method, r.path, r.contentType)
	}
	want := `{"samples":[` +
		`{"namespace":"default","device":"thermo-1","property":"temperature","value":"21.5","type":"float","timestamp":"2026-03-04T05:06:07.89Z"},` +
		`{"namespace":"default","device":"thermo-1","property":"label","value":"a \"b\" \u0026 c=d","type":"string","timestamp":"2026-03-04T05:06:08.89Z"}]}`
	if r.body != want {
		t.Errorf("body\n got %s\nwant %s", r.body, want)
	}
	var decoded struct{ Samples []map[string]string }
	if err := json.Unmarshal([]byte(r.body), &decoded); err != nil || decoded.Samples[1]["value"] != `a "b" & c=d` {
		t.Errorf("body does not round-trip: %v %v", err, decoded)
	}
}

func TestFormFormatIsUpstreamCompatible(t *testing.T) {
	rec := &recorder{}
	srv := testserver.NewHTTP(t, rec)
	s := newSink(t, srv, Options{Format: FormatForm})
	if err := s.Write(context.Background(), samples()); err != nil {
		t.Fatal(err)
	}
	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("got %d requests, want one per sample", len(reqs))
	}
	wantBodies := []string{
		"temperature=21.5&time=2026-03-04+05%3A06%3A07",
		"label=a+%22b%22+%26+c%3Dd&time=2026-03-04+05%3A06%3A08",
	}
	for i, r := range reqs {
		if r.contentType != "application/x-www-form-urlencoded" || r.body != wantBodies[i] {
			t.Errorf("request %d: %s %q, want form body %q", i, r.contentType, r.body, wantBodies[i])
		}
	}
}

func TestNon2xxIsAnErrorWithTheBodysStart(t *testing.T) {
	rec := &recorder{}
	srv := testserver.NewHTTP(t, rec)
	s := newSink(t, srv, Options{})
	rec.set(http.StatusServiceUnavailable, "ingest queue full, retry later"+strings.Repeat("x", 2000), 0)
	err := s.Write(context.Background(), samples())
	if err == nil {
		t.Fatal("Write succeeded on a 503")
	}
	msg := err.Error()
	if !strings.Contains(msg, "503") || !strings.Contains(msg, "ingest queue full, retry later") || len(msg) > 800 {
		t.Errorf("error %q should name the status and carry the start of the body, bounded", msg)
	}
	rec.set(http.StatusOK, "ok", 0)
	if err := s.Write(context.Background(), samples()); err != nil {
		t.Errorf("200 after a 503: %v", err)
	}
	if got := srv.Conns(); got != 1 {
		t.Errorf("error responses must not cost the connection: %d connections", got)
	}
}

func TestSlowServerIsBoundedByContext(t *testing.T) {
	rec := &recorder{}
	srv := testserver.NewHTTP(t, rec)
	s := newSink(t, srv, Options{})
	rec.set(http.StatusOK, "", 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Write(ctx, samples())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Write returned after %v, want about 300ms", d)
	}
}

func TestServerDownThenBack(t *testing.T) {
	rec := &recorder{}
	srv := testserver.NewHTTP(t, rec)
	s := newSink(t, srv, Options{})
	ctx := context.Background()
	if err := s.Write(ctx, samples()); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	start := time.Now()
	err := s.Write(wctx, samples())
	cancel()
	if err == nil {
		t.Fatal("Write succeeded with the server down")
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("Write took %v with the server down", d)
	}
	srv.Start()
	if err := s.Write(ctx, samples()); err != nil {
		t.Fatalf("Write after the server came back: %v", err)
	}
	if got := len(rec.requests()); got != 2 {
		t.Errorf("server got %d batches, want 2", got)
	}
}

func TestBearerTokenFromEnvOrFile(t *testing.T) {
	rec := &recorder{}
	srv := testserver.NewHTTP(t, rec)
	env := map[string]string{"PUSH_TOKEN": "from-env"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	s := newSink(t, srv, Options{BearerToken: secret.Credential{Env: "PUSH_TOKEN"}, LookupEnv: lookup})
	if err := s.Write(context.Background(), samples()); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := newSink(t, srv, Options{BearerToken: secret.Credential{Env: "PUSH_TOKEN", File: file}, LookupEnv: lookup})
	if err := s2.Write(context.Background(), samples()); err != nil {
		t.Fatal(err)
	}
	// A rotated Secret file is picked up on the next request.
	if err := os.WriteFile(file, []byte("rotated"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s2.Write(context.Background(), samples()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rec.requests() {
		got = append(got, r.auth)
	}
	want := []string{"Bearer from-env", "Bearer from-file", "Bearer rotated"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Authorization headers %q, want %q", got, want)
	}

	delete(env, "PUSH_TOKEN")
	err := s.Write(context.Background(), samples())
	if !errors.Is(err, secret.ErrNotSet) || !strings.Contains(err.Error(), "PUSH_TOKEN") {
		t.Errorf("unset token: %v, want an error naming PUSH_TOKEN", err)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		opts    Options
		wantURL string
		wantErr string
	}{
		{name: "upstream style", cfg: Config{HostName: "http://127.0.0.1", Port: 7777, RequestPath: "/data"}, wantURL: "http://127.0.0.1:7777/data"},
		{name: "bare host", cfg: Config{HostName: "collector.local", Port: 80, RequestPath: "in"}, wantURL: "http://collector.local:80/in"},
		{name: "https default port", cfg: Config{HostName: "https://collector.example", RequestPath: "/v1/push?src=edge"}, wantURL: "https://collector.example/v1/push?src=edge"},
		{name: "port in host", cfg: Config{HostName: "http://10.0.0.1:8080"}, wantURL: "http://10.0.0.1:8080"},
		{name: "ipv6", cfg: Config{HostName: "http://[::1]", Port: 8080, RequestPath: "/x"}, wantURL: "http://[::1]:8080/x"},
		{name: "empty host", cfg: Config{Port: 80}, wantErr: "hostName is empty"},
		{name: "bad scheme", cfg: Config{HostName: "ftp://h"}, wantErr: `scheme "ftp"`},
		{name: "path in host", cfg: Config{HostName: "http://h/api"}, wantErr: "put the path in requestPath"},
		{name: "port conflict", cfg: Config{HostName: "http://h:81", Port: 82}, wantErr: "set one of them"},
		{name: "port range", cfg: Config{HostName: "h", Port: 70000}, wantErr: "out of range"},
		{name: "timeout in ms", cfg: Config{HostName: "h", Timeout: 5000}, wantErr: "it is in seconds"},
		{name: "negative timeout", cfg: Config{HostName: "h", Timeout: -1}, wantErr: "it is in seconds"},
		{name: "bad format", cfg: Config{HostName: "h"}, opts: Options{Format: "xml"}, wantErr: `unknown format "xml"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New = %v, want error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.URL() != tc.wantURL {
				t.Errorf("URL = %s, want %s", s.URL(), tc.wantURL)
			}
		})
	}
}
