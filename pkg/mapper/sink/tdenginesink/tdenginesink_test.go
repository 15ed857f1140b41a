package tdenginesink

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/testserver"
	"github.com/verge-edge/verge/pkg/mapper/sink/secret"
)

// fakeTaos answers POST /rest/sql/<db> like taosAdapter: basic
// authentication, one statement per request, a JSON reply with "code" (0
// on success) and "desc". It tracks super tables so an INSERT … USING an
// unknown one fails as TDengine's does. No TDengine server can be
// installed from Debian, so the sink is checked against the exact SQL.
type fakeTaos struct {
	mu      sync.Mutex
	stmts   []string
	stables map[string]bool
}

var (
	createRE = regexp.MustCompile("^CREATE STABLE IF NOT EXISTS `([^`]+)` \\(ts TIMESTAMP, deviceid VARCHAR\\(320\\), propertyname VARCHAR\\(256\\), data VARCHAR\\(16384\\), `type` VARCHAR\\(32\\)\\) TAGS \\(property VARCHAR\\(256\\)\\)$")
	usingRE  = regexp.MustCompile("USING `([^`]+)`")
)

func (f *fakeTaos) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reply := func(status int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
	if u, p, ok := r.BasicAuth(); !ok || u != "root" || p != "taos data" {
		reply(http.StatusUnauthorized, `{"code":65535,"desc":"Authentication failure"}`)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/rest/sql/verge" {
		reply(http.StatusNotFound, `{"code":65535,"desc":"not found"}`)
		return
	}
	b, _ := io.ReadAll(r.Body)
	stmt := string(b)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stmts = append(f.stmts, stmt)
	switch {
	case createRE.MatchString(stmt):
		f.stables[createRE.FindStringSubmatch(stmt)[1]] = true
		reply(http.StatusOK, `{"code":0,"column_meta":[["affected_rows","INT",4]],"data":[[0]],"rows":1}`)
	case strings.HasPrefix(stmt, "INSERT INTO `"):
		for _, m := range usingRE.FindAllStringSubmatch(stmt, -1) {
			if !f.stables[m[1]] {
				reply(http.StatusOK, `{"code":9731,"desc":"Table does not exist"}`)
				return
			}
		}
		reply(http.StatusOK, fmt.Sprintf(`{"code":0,"column_meta":[["affected_rows","INT",4]],"data":[[%d]],"rows":1}`, strings.Count(stmt, "+00:00'")))
	default:
		reply(http.StatusOK, `{"code":9729,"desc":"syntax error near '`+stmt+`'"}`)
	}
}

func (f *fakeTaos) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stmts
	f.stmts = nil
	return s
}

func (f *fakeTaos) drop(st string) {
	f.mu.Lock()
	delete(f.stables, st)
	f.mu.Unlock()
}

func env(kv ...string) secret.LookupEnv {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

var (
	t0      = time.Date(2026, 3, 4, 5, 6, 7, 890_123_456, time.UTC)
	goodEnv = env("USERNAME", "root", "PASSWORD", "taos data")
)

func newSink(t *testing.T, addr string, opts Options) *Sink {
	t.Helper()
	if opts.LookupEnv == nil {
		opts.LookupEnv = goodEnv
	}
	s, err := New(Config{Addr: addr, DBName: "verge"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestExactSQL(t *testing.T) {
	f := &fakeTaos{stables: map[string]bool{}}
	srv := testserver.NewHTTP(t, f)
	s := newSink(t, srv.Addr, Options{})
	batch := []sink.Sample{
		{Namespace: "plant-a", Device: "thermo.1", Property: "temperature", Value: "21.5", Type: "float", Timestamp: t0},
		{Namespace: "plant-a", Device: "valve-2", Property: "label", Value: "it's a \\ \"path\"\nnext", Type: "string", Timestamp: t0},
		{Namespace: "plant-a", Device: "thermo.1", Property: "temperature", Value: "21.75", Type: "float", Timestamp: t0.Add(time.Second)},
	}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CREATE STABLE IF NOT EXISTS `plant-a/thermo_1` (ts TIMESTAMP, deviceid VARCHAR(320), propertyname VARCHAR(256), data VARCHAR(16384), `type` VARCHAR(32)) TAGS (property VARCHAR(256))",
		"CREATE STABLE IF NOT EXISTS `plant-a/valve-2` (ts TIMESTAMP, deviceid VARCHAR(320), propertyname VARCHAR(256), data VARCHAR(16384), `type` VARCHAR(32)) TAGS (property VARCHAR(256))",
		"INSERT INTO `plant-a/thermo_1/temperature` USING `plant-a/thermo_1` TAGS ('temperature') VALUES" +
			" ('2026-03-04T05:06:07.890+00:00', 'plant-a/thermo.1', 'temperature', '21.5', 'float')" +
			" ('2026-03-04T05:06:08.890+00:00', 'plant-a/thermo.1', 'temperature', '21.75', 'float')" +
			" `plant-a/valve-2/label` USING `plant-a/valve-2` TAGS ('label') VALUES" +
			` ('2026-03-04T05:06:07.890+00:00', 'plant-a/valve-2', 'label', 'it\'s a \\ "path"\nnext', 'string')`,
	}
	got := f.take()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("statements\n got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Known super tables are not created again; a repeated batch is the
	// same INSERT (TDengine keeps one row per table and timestamp).
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if got := f.take(); len(got) != 1 || got[0] != want[2] {
		t.Errorf("second write sent %q, want only the INSERT", got)
	}
}

func TestDroppedSuperTableIsRecreated(t *testing.T) {
	f := &fakeTaos{stables: map[string]bool{}}
	srv := testserver.NewHTTP(t, f)
	s := newSink(t, srv.Addr, Options{})
	batch := []sink.Sample{{Namespace: "n", Device: "d", Property: "p", Value: "1", Type: "int", Timestamp: t0}}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	f.take()
	f.drop("n/d")
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatalf("write after the super table was dropped: %v", err)
	}
	got := f.take()
	if len(got) != 3 || !strings.HasPrefix(got[0], "INSERT") || !strings.HasPrefix(got[1], "CREATE STABLE IF NOT EXISTS `n/d`") || got[2] != got[0] {
		t.Errorf("statements %q, want a failed INSERT, the CREATE, the INSERT again", got)
	}
}

func TestLargeBatchesAreSplit(t *testing.T) {
	f := &fakeTaos{stables: map[string]bool{}}
	srv := testserver.NewHTTP(t, f)
	s := newSink(t, srv.Addr, Options{MaxStatementBytes: 1000})
	var batch []sink.Sample
	for i := 0; i < 60; i++ {
		batch = append(batch, sink.Sample{Namespace: "n", Device: fmt.Sprintf("d%d", i%3), Property: "p", Value: fmt.Sprint(i), Type: "int", Timestamp: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	rows := 0
	inserts := 0
	clauseRE := regexp.MustCompile("^INSERT INTO( `[^`]+` USING `[^`]+` TAGS \\('p'\\) VALUES( \\('[^']+', '[^']+', 'p', '[0-9]+', 'int'\\))+)+$")
	for _, st := range f.take() {
		if !strings.HasPrefix(st, "INSERT") {
			continue
		}
		inserts++
		if len(st) > 1000 {
			t.Errorf("statement of %d bytes, limit 1000", len(st))
		}
		if !clauseRE.MatchString(st) {
			t.Errorf("malformed statement: %s", st)
		}
		rows += strings.Count(st, "+00:00'")
	}
	if inserts < 2 || rows != 60 {
		t.Errorf("%d INSERTs carrying %d rows, want several carrying 60", inserts, rows)
	}
}

func TestCredentialsAndErrors(t *testing.T) {
	f := &fakeTaos{stables: map[string]bool{}}
	srv := testserver.NewHTTP(t, f)
	batch := []sink.Sample{{Namespace: "n", Device: "d", Property: "p", Value: "1", Type: "int", Timestamp: t0}}

	if _, err := New(Config{Addr: srv.Addr, DBName: "verge"}, Options{LookupEnv: env("USERNAME", "root")}); err == nil || !strings.Contains(err.Error(), "environment variable PASSWORD") {
		t.Errorf("New without PASSWORD = %v", err)
	}
	s := newSink(t, srv.Addr, Options{LookupEnv: env("USERNAME", "root", "PASSWORD", "nope")})
	err := s.Write(context.Background(), batch)
	if err == nil || !strings.Contains(err.Error(), "Authentication failure") || !strings.Contains(err.Error(), "environment variable USERNAME") {
		t.Errorf("wrong password: %v", err)
	}
	s2 := newSink(t, "http://"+srv.Addr, Options{
		Username:  secret.Credential{Env: "TD_USER"},
		Password:  secret.Credential{Env: "TD_PASS"},
		LookupEnv: env("TD_USER", "root", "TD_PASS", "taos data"),
	})
	if err := s2.Write(context.Background(), batch); err != nil {
		t.Errorf("credentials from TD_USER/TD_PASS: %v", err)
	}
}

func TestServerDownThenBack(t *testing.T) {
	f := &fakeTaos{stables: map[string]bool{}}
	srv := testserver.NewHTTP(t, f)
	s := newSink(t, srv.Addr, Options{})
	batch := []sink.Sample{{Namespace: "n", Device: "d", Property: "p", Value: "1", Type: "int", Timestamp: t0}}
	ctx := context.Background()
	if err := s.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	start := time.Now()
	err := s.Write(wctx, batch)
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
}

func TestTableNames(t *testing.T) {
	long := strings.Repeat("p", 300)
	tests := []struct {
		ns, dev, prop string
		wantSuper     string
		wantSub       string
	}{
		{"default", "thermo-1", "temperature", "default/thermo-1", "default/thermo-1/temperature"},
		{"default", "a.b.c", "x-y_z", "default/a_b_c", "default/a_b_c/x-y_z"},
		{"default", "d", "has space", "default/d", "default/d/has_space~" + hashOf("default/d/has space")},
		{"default", "d", "a.b", "default/d", "default/d/a_b~" + hashOf("default/d/a.b")},
		{"default", "d", long, "default/d", ("default/d/" + long)[:183] + "~" + hashOf("default/d/"+long)},
	}
	for _, tc := range tests {
		if got := superTableName(tc.ns, tc.dev); got != tc.wantSuper {
			t.Errorf("superTableName(%s, %s) = %s, want %s", tc.ns, tc.dev, got, tc.wantSuper)
		}
		got := subTableName(tc.ns, tc.dev, tc.prop)
		if got != tc.wantSub {
			t.Errorf("subTableName(%s) = %s, want %s", tc.prop, got, tc.wantSub)
		}
		if len(got) > maxNameLen {
			t.Errorf("%s is longer than %d bytes", got, maxNameLen)
		}
	}
	if subTableName("n", "d", "a.b") == subTableName("n", "d", "a_b") {
		t.Error("a.b and a_b share a table")
	}
}

func hashOf(s string) string {
	n := hashed(s, "")
	return n[1:]
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg     Config
		wantErr string
	}{
		{Config{DBName: "verge"}, "addr is empty"},
		{Config{Addr: "ftp://h:6041", DBName: "verge"}, "not host:port"},
		{Config{Addr: "h:6041/rest", DBName: "verge"}, "not host:port"},
		{Config{Addr: "h:6041"}, "dbName"},
		{Config{Addr: "h:6041", DBName: "a/b"}, "not a TDengine database name"},
	} {
		if _, err := New(tc.cfg, Options{LookupEnv: goodEnv}); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("New(%+v) = %v, want error containing %q", tc.cfg, err, tc.wantErr)
		}
	}
}
