package influxsink

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/testserver"
	"github.com/verge-edge/verge/pkg/mapper/sink/secret"
)

// fakeInflux checks requests the way InfluxDB's /api/v2/write does
// (method, path, org, bucket, precision, token, content type) and keeps
// the bodies it accepted. No InfluxDB 2 server can be installed from
// Debian, so the sink is checked against the exact line protocol.
type fakeInflux struct {
	mu     sync.Mutex
	bodies []string
	token  string
}

func (f *fakeInflux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/api/v2/write":
		http.Error(w, `{"code":"not found","message":"path not found"}`, http.StatusNotFound)
		return
	case r.Header.Get("Authorization") != "Token "+f.token:
		http.Error(w, `{"code":"unauthorized","message":"unauthorized access"}`, http.StatusUnauthorized)
		return
	case q.Get("org") != "edge org" || q.Get("precision") != "ns":
		http.Error(w, `{"code":"invalid","message":"bad query"}`, http.StatusBadRequest)
		return
	case q.Get("bucket") != "plant":
		http.Error(w, `{"code":"not found","message":"bucket \"`+q.Get("bucket")+`\" not found"}`, http.StatusNotFound)
		return
	case r.Header.Get("Content-Type") != "text/plain; charset=utf-8":
		http.Error(w, `{"code":"invalid","message":"content type"}`, http.StatusBadRequest)
		return
	}
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, string(b))
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeInflux) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bodies...)
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 890_123_456, time.UTC)

func env(kv ...string) secret.LookupEnv {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func config(url string) Config {
	return Config{
		Influxdb2ClientConfig: ClientConfig{URL: url, Org: "edge org", Bucket: "plant"},
		Influxdb2DataConfig:   DataConfig{Measurement: "readings", Tag: map[string]string{"site": "hall 3"}, FieldKey: "v"},
	}
}

func TestWritesExactLineProtocol(t *testing.T) {
	f := &fakeInflux{token: "tok-123"}
	srv := testserver.NewHTTP(t, f)
	s, err := New(config(srv.URL), Options{LookupEnv: env("TOKEN", "tok-123")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	batch := []sink.Sample{
		{Namespace: "default", Device: "thermo-1", Property: "temperature", Value: "21.5", Type: "float", Timestamp: t0},
		{Namespace: "default", Device: "thermo-1", Property: "count", Value: "-42", Type: "int", Timestamp: t0},
		{Namespace: "default", Device: "valve-2", Property: "open", Value: "true", Type: "boolean", Timestamp: t0},
		{Namespace: "default", Device: "valve-2", Property: "label", Value: `say "hi" \ bye`, Type: "string", Timestamp: t0},
		{Namespace: "default", Device: "thermo-1", Property: "whole", Value: "20", Type: "double", Timestamp: t0},
	}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	want := "" +
		`readings,device=thermo-1,namespace=default,property=temperature,site=hall\ 3 v=21.5 1772600767890123456` + "\n" +
		`readings,device=thermo-1,namespace=default,property=count,site=hall\ 3 v=-42i 1772600767890123456` + "\n" +
		`readings,device=valve-2,namespace=default,property=open,site=hall\ 3 v=true 1772600767890123456` + "\n" +
		`readings,device=valve-2,namespace=default,property=label,site=hall\ 3 v="say \"hi\" \\ bye" 1772600767890123456` + "\n" +
		`readings,device=thermo-1,namespace=default,property=whole,site=hall\ 3 v=20 1772600767890123456` + "\n"
	got := f.got()
	if len(got) != 1 {
		t.Fatalf("server got %d requests, want 1 per batch", len(got))
	}
	if got[0] != want {
		t.Errorf("line protocol\n got:\n%s\nwant:\n%s", got[0], want)
	}
}

func TestEscapingAndTypes(t *testing.T) {
	tests := []struct {
		name        string
		measurement string
		tags        map[string]string
		fieldKey    string
		smp         sink.Sample
		want        string // "" means skipped
	}{
		{
			name: "special characters everywhere", measurement: `m,1 x=y\`, tags: map[string]string{`k,=e y`: `v,=a l\`}, fieldKey: `f =,`,
			smp:  sink.Sample{Namespace: "ns", Device: "d", Property: "p", Value: "a\"b\\c\nd", Type: "string", Timestamp: t0},
			want: `m\,1\ x=y\\,device=d,k\,\=e\ y=v\,\=a\ l\\,namespace=ns,property=p f\ \=\,="a\"b\\c\nd" 1772600767890123456` + "\n",
		},
		{
			name: "config tag overrides identity, empty tags dropped", measurement: "m", tags: map[string]string{"device": "alias", "empty": ""}, fieldKey: "value",
			smp:  sink.Sample{Namespace: "ns", Device: "d", Property: "p", Value: "1", Type: "INT", Timestamp: t0},
			want: "m,device=alias,namespace=ns,property=p value=1i 1772600767890123456\n",
		},
		{
			name: "float in exponent form", measurement: "m", fieldKey: "value",
			smp:  sink.Sample{Namespace: "ns", Device: "d", Property: "p", Value: "1.5e300", Type: "double", Timestamp: t0},
			want: "m,device=d,namespace=ns,property=p value=1.5e+300 1772600767890123456\n",
		},
		{
			name: "bytes are strings", measurement: "m", fieldKey: "value",
			smp:  sink.Sample{Namespace: "ns", Device: "d", Property: "p", Value: "AQID", Type: "bytes", Timestamp: t0},
			want: `m,device=d,namespace=ns,property=p value="AQID" 1772600767890123456` + "\n",
		},
		{name: "NaN skipped", measurement: "m", fieldKey: "value", smp: sink.Sample{Namespace: "ns", Device: "d", Property: "p", Value: "NaN", Type: "float", Timestamp: t0}},
		{name: "non-number int skipped", measurement: "m", fieldKey: "value", smp: sink.Sample{Namespace: "ns", Device: "d", Property: "p", Value: "ON", Type: "int", Timestamp: t0}},
		{name: "non-bool skipped", measurement: "m", fieldKey: "value", smp: sink.Sample{Namespace: "ns", Device: "d", Property: "p", Value: "maybe", Type: "boolean", Timestamp: t0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{
				Influxdb2ClientConfig: ClientConfig{URL: "http://127.0.0.1:1", Org: "o", Bucket: "b"},
				Influxdb2DataConfig:   DataConfig{Measurement: tc.measurement, Tag: tc.tags, FieldKey: tc.fieldKey},
			}
			s, err := New(cfg, Options{LookupEnv: env("TOKEN", "t")})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Encode([]sink.Sample{tc.smp}); got != tc.want {
				t.Errorf("Encode\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestServerErrorsAndRecovery(t *testing.T) {
	f := &fakeInflux{token: "right"}
	srv := testserver.NewHTTP(t, f)
	ctx := context.Background()
	batch := []sink.Sample{{Namespace: "n", Device: "d", Property: "p", Value: "1", Type: "int", Timestamp: t0}}

	tokens := map[string]string{"TOKEN": "wrong"}
	lookup := func(k string) (string, bool) { v, ok := tokens[k]; return v, ok }
	s, err := New(config(srv.URL), Options{LookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	err = s.Write(ctx, batch)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "environment variable TOKEN") || !strings.Contains(err.Error(), "unauthorized access") {
		t.Fatalf("wrong token: %v", err)
	}
	tokens["TOKEN"] = "right" // the token is read for every request
	if err := s.Write(ctx, batch); err != nil {
		t.Fatalf("after fixing the token: %v", err)
	}

	cfg := config(srv.URL)
	cfg.Influxdb2ClientConfig.Bucket = "missing"
	s2, err := New(cfg, Options{LookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Write(ctx, batch); err == nil || !strings.Contains(err.Error(), "does bucket edge org/missing exist") {
		t.Errorf("missing bucket: %v", err)
	}

	srv.Stop()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	start := time.Now()
	err = s.Write(wctx, batch)
	cancel()
	if err == nil {
		t.Fatal("Write succeeded with the server down")
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("Write took %v to fail", d)
	}
	srv.Start()
	if err := s.Write(ctx, batch); err != nil {
		t.Fatalf("Write after the server came back: %v", err)
	}
	if n := len(f.got()); n != 2 {
		t.Errorf("server accepted %d batches, want 2", n)
	}
}

func TestConfigValidation(t *testing.T) {
	ok := config("http://127.0.0.1:8086")
	tests := []struct {
		name    string
		mut     func(*Config)
		lookup  secret.LookupEnv
		wantErr string
	}{
		{"no url", func(c *Config) { c.Influxdb2ClientConfig.URL = "" }, nil, "url is empty"},
		{"bad url", func(c *Config) { c.Influxdb2ClientConfig.URL = "127.0.0.1:8086" }, nil, "not an http(s) URL"},
		{"no org", func(c *Config) { c.Influxdb2ClientConfig.Org = "" }, nil, "org is empty"},
		{"no bucket", func(c *Config) { c.Influxdb2ClientConfig.Bucket = "" }, nil, "bucket is empty"},
		{"no measurement", func(c *Config) { c.Influxdb2DataConfig.Measurement = "" }, nil, "measurement is empty"},
		{"reserved", func(c *Config) { c.Influxdb2DataConfig.FieldKey = "_value" }, nil, "reserves"},
		{"reserved tag", func(c *Config) { c.Influxdb2DataConfig.Tag = map[string]string{"_x": "1"} }, nil, "reserves"},
		{"no token", func(*Config) {}, env(), "environment variable TOKEN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			cfg.Influxdb2DataConfig.Tag = map[string]string{"site": "x"}
			tc.mut(&cfg)
			lookup := tc.lookup
			if lookup == nil {
				lookup = env("TOKEN", "t")
			}
			if _, err := New(cfg, Options{LookupEnv: lookup}); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}
