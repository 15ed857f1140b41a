package mysqlsink

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/testserver"
	"github.com/verge-edge/verge/pkg/mapper/sink/secret"
)

const (
	dbName   = "verge"
	user     = "mapper"
	password = "p@ss:w/rd 'q'"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)

func env(kv ...string) secret.LookupEnv {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func open(t *testing.T, srv *testserver.Process) *sql.DB {
	t.Helper()
	c := mysql.NewConfig()
	c.Net, c.Addr, c.User, c.Passwd, c.DBName, c.ParseTime = "tcp", srv.Addr, user, password, dbName, true
	conn, err := mysql.NewConnector(c)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

type dbRow struct {
	ts    time.Time
	field string
}

func rowsOf(t *testing.T, db *sql.DB, table string) []dbRow {
	t.Helper()
	rs, err := db.Query("SELECT ts, field FROM " + quoteIdent(table) + " ORDER BY ts")
	if err != nil {
		t.Fatalf("reading %s: %v", table, err)
	}
	defer func() { _ = rs.Close() }()
	var out []dbRow
	for rs.Next() {
		var r dbRow
		if err := rs.Scan(&r.ts, &r.field); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func newSink(t *testing.T, srv *testserver.Process, opts Options) *Sink {
	t.Helper()
	if opts.LookupEnv == nil {
		opts.LookupEnv = env("PASSWORD", password)
	}
	s, err := New(Config{Addr: srv.Addr, Database: dbName, UserName: user}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestMySQL(t *testing.T) {
	srv := testserver.MariaDB(t, dbName, user, password)
	db := open(t, srv)
	ctx := context.Background()

	t.Run("tables per property, idempotent batches", func(t *testing.T) {
		s := newSink(t, srv, Options{})
		batch := []sink.Sample{
			{Namespace: "default", Device: "thermo-1", Property: "temperature", Value: "21.5", Type: "float", Timestamp: t0},
			{Namespace: "default", Device: "thermo-1", Property: "temperature", Value: "21.75", Type: "float", Timestamp: t0.Add(time.Second)},
			{Namespace: "default", Device: "thermo-1", Property: "note", Value: "it's \"hot\"; DROP TABLE x; -- ünïcode", Type: "string", Timestamp: t0},
		}
		for i := 0; i < 2; i++ {
			if err := s.Write(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		got := rowsOf(t, db, "default/thermo-1/temperature")
		want := []dbRow{{t0, "21.5"}, {t0.Add(time.Second), "21.75"}}
		if len(got) != len(want) {
			t.Fatalf("temperature rows %v, want %v", got, want)
		}
		for i := range want {
			if !got[i].ts.Equal(want[i].ts) || got[i].field != want[i].field {
				t.Errorf("row %d = %v, want %v (milliseconds kept, UTC)", i, got[i], want[i])
			}
		}
		if note := rowsOf(t, db, "default/thermo-1/note"); len(note) != 1 || note[0].field != batch[2].Value {
			t.Errorf("note rows %v, want the text stored verbatim", note)
		}
	})

	t.Run("large batch is chunked", func(t *testing.T) {
		s := newSink(t, srv, Options{})
		var batch []sink.Sample
		for i := 0; i < 1234; i++ {
			batch = append(batch, sink.Sample{Namespace: "bulk", Device: "meter", Property: "p", Value: fmt.Sprint(i), Type: "int", Timestamp: t0.Add(time.Duration(i) * time.Millisecond)})
		}
		if err := s.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM `bulk/meter/p`").Scan(&n); err != nil || n != 1234 {
			t.Errorf("count = %d, %v; want 1234", n, err)
		}
	})

	t.Run("long and odd names", func(t *testing.T) {
		s := newSink(t, srv, Options{})
		long := strings.Repeat("very-long-property-name-", 4)
		odd := "we`ird 'name'"
		batch := []sink.Sample{
			{Namespace: "default", Device: "thermo-1", Property: long, Value: "1", Type: "int", Timestamp: t0},
			{Namespace: "default", Device: "thermo-1", Property: odd, Value: "2", Type: "int", Timestamp: t0},
		}
		if err := s.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
		tbl := TableName("default", "thermo-1", long)
		if len(tbl) != 64 || !strings.HasPrefix(tbl, "default/thermo-1/very-long") || !strings.Contains(tbl, "~") {
			t.Errorf("long table name %q, want 64 characters ending in a hash", tbl)
		}
		if r := rowsOf(t, db, tbl); len(r) != 1 || r[0].field != "1" {
			t.Errorf("long-name rows %v", r)
		}
		if r := rowsOf(t, db, "default/thermo-1/"+odd); len(r) != 1 || r[0].field != "2" {
			t.Errorf("odd-name rows %v", r)
		}
	})

	t.Run("upstream table and dropped table", func(t *testing.T) {
		if _, err := db.Exec("CREATE TABLE `old/dev/p` (id INT AUTO_INCREMENT PRIMARY KEY, ts DATETIME NOT NULL, field TEXT)"); err != nil {
			t.Fatal(err)
		}
		s := newSink(t, srv, Options{})
		smp := []sink.Sample{{Namespace: "old", Device: "dev", Property: "p", Value: "7", Type: "int", Timestamp: t0}}
		if err := s.Write(ctx, smp); err != nil {
			t.Fatalf("writing into an upstream-created table: %v", err)
		}
		if _, err := db.Exec("DROP TABLE `old/dev/p`"); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(ctx, smp); err != nil {
			t.Fatalf("writing after the table was dropped: %v", err)
		}
		if r := rowsOf(t, db, "old/dev/p"); len(r) != 1 {
			t.Errorf("rows %v, want the table re-created with one row", r)
		}
	})

	t.Run("login and database errors say what to fix", func(t *testing.T) {
		s := newSink(t, srv, Options{LookupEnv: env("PASSWORD", "wrong")})
		smp := []sink.Sample{{Namespace: "n", Device: "d", Property: "p", Value: "1", Timestamp: t0}}
		if err := s.Write(ctx, smp); err == nil || !strings.Contains(err.Error(), "refused the login") || !strings.Contains(err.Error(), "PASSWORD") {
			t.Errorf("wrong password: %v", err)
		}
		s2, err := New(Config{Addr: srv.Addr, Database: "nope", UserName: user}, Options{LookupEnv: env("PASSWORD", password)})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s2.Close() }()
		if err := s2.Write(ctx, smp); err == nil || !strings.Contains(err.Error(), "nope") {
			t.Errorf("missing database: %v", err)
		}
	})

	t.Run("server down then back", func(t *testing.T) {
		s := newSink(t, srv, Options{})
		smp := func(v string, d time.Duration) []sink.Sample {
			return []sink.Sample{{Namespace: "ha", Device: "d", Property: "p", Value: v, Type: "int", Timestamp: t0.Add(d)}}
		}
		if err := s.Write(ctx, smp("1", 0)); err != nil {
			t.Fatal(err)
		}
		srv.Stop()
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		start := time.Now()
		err := s.Write(wctx, smp("2", time.Second))
		cancel()
		if err == nil {
			t.Fatal("Write succeeded with the server down")
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Errorf("Write took %v to fail", d)
		}
		srv.Start()
		if err := s.Write(ctx, smp("3", 2*time.Second)); err != nil {
			t.Fatalf("Write after the server came back: %v", err)
		}
		if r := rowsOf(t, open(t, srv), "ha/d/p"); len(r) != 2 || r[1].field != "3" {
			t.Errorf("rows %v, want 1 and 3", r)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		cfg     Config
		wantErr string
	}{
		{Config{Database: "d", UserName: "u"}, "addr is empty"},
		{Config{Addr: "h:3306", UserName: "u"}, "database is empty"},
		{Config{Addr: "h:3306", Database: "d"}, "userName is empty"},
		{Config{Addr: "h", Database: "d", UserName: "u"}, "not host:port"},
	}
	for _, tc := range tests {
		if _, err := New(tc.cfg, Options{}); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("New(%+v) = %v, want error containing %q", tc.cfg, err, tc.wantErr)
		}
	}
}
