package redissink

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/testserver"
	"github.com/verge-edge/verge/pkg/mapper/sink/secret"
)

const password = "s3cret pass"

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)

func env(kv ...string) secret.LookupEnv {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func reader(t *testing.T, srv *testserver.Process, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: password, DB: db, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func batch() []sink.Sample {
	return []sink.Sample{
		{Namespace: "default", Device: "thermo-1", Property: "temperature", Value: "21.5", Type: "float", Timestamp: t0},
		{Namespace: "default", Device: "thermo-1", Property: "humidity", Value: "40", Type: "int", Timestamp: t0},
		{Namespace: "default", Device: "valve-2", Property: "open", Value: "true", Type: "boolean", Timestamp: t0.Add(time.Second)},
	}
}

func TestRedis(t *testing.T) {
	srv := testserver.Redis(t, password)
	ctx := context.Background()

	t.Run("upstream layout, idempotent", func(t *testing.T) {
		s, err := New(Config{Addr: srv.Addr, DB: 1, Poolsize: 4, MinIdleConns: 1}, Options{LookupEnv: env("PASSWORD", password)})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Close() }()
		for i := 0; i < 2; i++ { // the SDK may deliver a batch twice
			if err := s.Write(ctx, batch()); err != nil {
				t.Fatal(err)
			}
		}
		r := reader(t, srv, 1)
		got, err := r.ZRangeWithScores(ctx, "thermo-1", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		want := []redis.Z{
			{Score: float64(t0.UnixMilli()), Member: `{"DeviceName":"thermo-1","PropertyName":"humidity","Namespace":"default","Value":"40","Type":"int","TimeStamp":1772600767890}`},
			{Score: float64(t0.UnixMilli()), Member: `{"DeviceName":"thermo-1","PropertyName":"temperature","Namespace":"default","Value":"21.5","Type":"float","TimeStamp":1772600767890}`},
		}
		if len(got) != len(want) {
			t.Fatalf("thermo-1 has %d members, want %d: %v", len(got), len(want), got)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("member %d = %v, want %v", i, got[i], want[i])
			}
		}
		if n, _ := r.ZCard(ctx, "valve-2").Result(); n != 1 {
			t.Errorf("valve-2 has %d members, want 1", n)
		}
	})

	t.Run("key template and retention", func(t *testing.T) {
		now := t0.Add(time.Hour)
		s, err := New(Config{Addr: srv.Addr, DB: 2}, Options{
			LookupEnv: env("PASSWORD", password),
			Key:       "{namespace}/{device}/{property}",
			Retention: 30 * time.Minute,
			Now:       func() time.Time { return now },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Close() }()
		old := sink.Sample{Namespace: "default", Device: "thermo-1", Property: "temperature", Value: "1", Type: "int", Timestamp: t0}
		recent := old
		recent.Value, recent.Timestamp = "2", now.Add(-time.Minute)
		if err := s.Write(ctx, []sink.Sample{old, recent}); err != nil {
			t.Fatal(err)
		}
		got, err := reader(t, srv, 2).ZRange(ctx, "default/thermo-1/temperature", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !strings.Contains(got[0], `"Value":"2"`) {
			t.Errorf("after retention: %v, want only the recent sample", got)
		}
	})

	t.Run("credentials", func(t *testing.T) {
		s, err := New(Config{Addr: srv.Addr}, Options{LookupEnv: env("PASSWORD", "wrong")})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Close() }()
		err = s.Write(ctx, batch())
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "pass") {
			t.Fatalf("wrong password: %v, want an authentication error", err)
		}
		s2, err := New(Config{Addr: srv.Addr}, Options{Password: secret.Credential{Env: "REDIS_PASSWORD"}, LookupEnv: env("PASSWORD", "wrong", "REDIS_PASSWORD", password)})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s2.Close() }()
		if err := s2.Write(ctx, batch()); err != nil {
			t.Fatalf("password from REDIS_PASSWORD: %v", err)
		}
	})

	t.Run("server down then back", func(t *testing.T) {
		s, err := New(Config{Addr: srv.Addr, DB: 3}, Options{LookupEnv: env("PASSWORD", password)})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Close() }()
		if err := s.Write(ctx, batch()); err != nil {
			t.Fatal(err)
		}
		srv.Stop()
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		start := time.Now()
		err = s.Write(wctx, batch())
		cancel()
		if err == nil {
			t.Fatal("Write succeeded with Redis down")
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Errorf("Write took %v to fail", d)
		}
		srv.Start()
		if err := s.Write(ctx, batch()); err != nil {
			t.Fatalf("Write after Redis came back: %v", err)
		}
		if n, _ := reader(t, srv, 3).ZCard(ctx, "thermo-1").Result(); n != 2 {
			t.Errorf("thermo-1 has %d members after restart, want 2", n)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		opts    Options
		wantErr string
	}{
		{name: "empty", cfg: Config{}, wantErr: "addr is empty"},
		{name: "no port", cfg: Config{Addr: "redis.local"}, wantErr: "not host:port"},
		{name: "negative db", cfg: Config{Addr: "h:1", DB: -1}, wantErr: "db -1"},
		{name: "idle over pool", cfg: Config{Addr: "h:1", Poolsize: 2, MinIdleConns: 3}, wantErr: "more than poolsize"},
		{name: "key", cfg: Config{Addr: "h:1"}, opts: Options{Key: "{node}"}, wantErr: "unknown placeholder"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}
