package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rawDB opens the file directly, bypassing the store, to look at or tamper
// with what the store wrote.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestSchemaTooNewIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s := openAt(t, path, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	if _, err := db.Exec("INSERT INTO schema_version (version, name, applied_unix) VALUES (99, 'from the future', 0)"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before := fileHash(t, path)
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrSchemaTooNew) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{path, "version 99", "up to 1", "newer verge-edge"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
	if fileHash(t, path) != before {
		t.Error("Open modified a file from a newer schema")
	}
}

func TestMigrationsRunForwardInTransactions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s := openAt(t, path, Options{})
	mustApply(t, s, put(obj("pods/ns/a", "u", "1", "a")))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db := rawDB(t, path)
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	now := time.Unix(1700000000, 0)
	v2 := migration{version: 2, name: "add a column", stmts: []string{`ALTER TABLE state ADD COLUMN note TEXT NOT NULL DEFAULT ''`}}
	v3bad := migration{version: 3, name: "half good", stmts: []string{`CREATE TABLE extra (x INTEGER)`, `THIS IS NOT SQL`}}
	v3 := migration{version: 3, name: "extra table", stmts: []string{`CREATE TABLE extra (x INTEGER)`}}

	from, to, err := migrate(ctx, c, path, append(schema(), v2), now)
	if err != nil || from != 1 || to != 2 {
		t.Fatalf("migrating 1→2: %d→%d, %v", from, to, err)
	}
	_, to, err = migrate(ctx, c, path, append(schema(), v2, v3bad), now)
	if err == nil || to != 2 || !strings.Contains(err.Error(), "stays at version 2") {
		t.Fatalf("failing migration 3: to=%d, %v; want an error saying the file stays at 2", to, err)
	}
	var n int
	if err := c.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE name = 'extra'").Scan(&n); err != nil || n != 0 {
		t.Errorf("a statement of the failed migration survived (tables named extra: %d, %v)", n, err)
	}
	from, to, err = migrate(ctx, c, path, append(schema(), v2, v3), now)
	if err != nil || from != 2 || to != 3 {
		t.Fatalf("migrating 2→3: %d→%d, %v", from, to, err)
	}
	from, to, err = migrate(ctx, c, path, append(schema(), v2, v3), now)
	if err != nil || from != 3 || to != 3 {
		t.Errorf("migrating an up-to-date file: %d→%d, %v", from, to, err)
	}
	var versions []int
	rows, err := c.QueryContext(ctx, "SELECT version FROM schema_version ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	_ = rows.Close()
	if len(versions) != 3 {
		t.Errorf("schema_version rows %v, want 1 2 3", versions)
	}
	// The data written under version 1 is still there.
	var data []byte
	if err := c.QueryRowContext(ctx, "SELECT data FROM objects WHERE key = 'pods/ns/a'").Scan(&data); err != nil || string(data) != "a" {
		t.Errorf("object after migrations: %q, %v", data, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// This verge-edge only knows version 1 and refuses the migrated file.
	if _, err := Open(path, Options{}); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Open after migrating past the known schema: %v", err)
	}
}

func TestOpenSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "store.db")
	s := openAt(t, path, Options{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("store file mode %v, want 0600 (it holds Secrets)", fi.Mode().Perm())
	}
	mustApply(t, s, put(obj("secrets/ns/s", "u", "1", "secret")))
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("WAL file: %v, %v; want mode 0600", fi, err)
	}
	for _, tc := range []struct{ pragma, want string }{
		{"journal_mode", "wal"}, {"synchronous", "2"}, {"busy_timeout", "10000"}, {"application_id", "1448232773"},
	} {
		var got string
		if err := queryRow(ctx, s.wconn, "PRAGMA "+tc.pragma, nil, &got); err != nil || got != tc.want {
			t.Errorf("writer PRAGMA %s = %q, %v; want %q", tc.pragma, got, err, tc.want)
		}
	}
	var qo string
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA query_only").Scan(&qo); err != nil || qo != "1" {
		t.Errorf("reader PRAGMA query_only = %q, %v", qo, err)
	}
	if s.ID() == "" || len(s.ID()) != 32 {
		t.Errorf("store ID %q", s.ID())
	}

	// A loosely permitted existing file is tightened.
	loose := filepath.Join(t.TempDir(), "store.db")
	if err := os.WriteFile(loose, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	openAt(t, loose, Options{})
	if fi, _ := os.Stat(loose); fi.Mode().Perm() != 0o600 {
		t.Errorf("existing file left at mode %v", fi.Mode().Perm())
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	openAt(t, path, Options{})
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "another verge-edge") {
		t.Errorf("second Open: %v, want ErrInUse", err)
	}
}

func TestClosedStore(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "store.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	checks := map[string]error{}
	_, checks["Apply"] = s.Apply(ctx, []Op{put(obj("pods/ns/a", "u", "1", "a"))})
	_, _, checks["Get"] = s.Get(ctx, "pods/ns/a")
	_, checks["List"] = s.List(ctx, "")
	_, checks["Inventory"] = s.Inventory(ctx)
	_, _, checks["Changes"] = s.Changes(ctx, 0)
	checks["Enqueue"] = s.Enqueue(ctx, "k", "event", 2, nil)
	_, checks["Pending"] = s.Pending(ctx, 1, nil)
	checks["Ack"] = s.Ack(ctx, 1, 1)
	_, checks["OutboxDepth"] = s.OutboxDepth(ctx)
	_, _, checks["GetState"] = s.GetState(ctx, "k")
	checks["PutState"] = s.PutState(ctx, "k", nil)
	_, checks["Wait"] = s.Wait(context.Background(), 0)
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s on a closed store: %v, want ErrClosed", name, err)
		}
	}
}

func TestOptionsAndPathsAreChecked(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		path string
		opts Options
		want string
	}{
		{"no path", "", Options{}, "no path"},
		{"URI characters", filepath.Join(dir, "a?b.db"), Options{}, "'?'"},
		{"a directory", dir, Options{}, "not a regular file"},
		{"negative readers", filepath.Join(dir, "x.db"), Options{Readers: -1}, "Readers"},
		{"tiny busy timeout", filepath.Join(dir, "x.db"), Options{BusyTimeout: time.Microsecond}, "BusyTimeout"},
		{"zero kind cap", filepath.Join(dir, "x.db"), Options{OutboxKindLimits: map[string]int{"event": 0}}, "OutboxKindLimits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.path, tc.opts)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v, want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
}
