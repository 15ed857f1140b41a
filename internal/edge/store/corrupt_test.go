package store

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// populated writes a store with enough objects to span many pages and
// closes it, so that everything is checkpointed into the main file.
func populated(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ops []Op
	for i := range 200 {
		ops = append(ops, put(obj(fmt.Sprintf("pods/ns/p%03d", i), "u", "1", strings.Repeat(fmt.Sprint(i%10), 1500))))
	}
	mustApply(t, s, ops...)
	if err := s.Enqueue(ctx, "node", "nodestatus", 0, []byte("n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("closing did not checkpoint the WAL into the main file: %v", err)
	}
	return path
}

func TestCorruptFilesAreRefusedWithTheRecovery(t *testing.T) {
	tests := []struct {
		name       string
		make       func(t *testing.T) string
		wantDetail string
	}{{
		name: "not SQLite at all",
		make: func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "store.db")
			if err := os.WriteFile(path, bytes.Repeat([]byte("this is not a database\n"), 300), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		},
		wantDetail: "file is not a database",
	}, {
		name: "damaged pages",
		make: func(t *testing.T) string {
			path := populated(t)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, 3*4096), 6*4096); err != nil {
				t.Fatal(err)
			}
			return path
		},
		wantDetail: "",
	}, {
		name: "truncated",
		make: func(t *testing.T) string {
			path := populated(t)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
			return path
		},
	}, {
		name: "SQLite database of another application",
		make: func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "store.db")
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = db.Close() }()
			if _, err := db.Exec("PRAGMA application_id = 1234; CREATE TABLE notes (body TEXT)"); err != nil {
				t.Fatal(err)
			}
			return path
		},
		wantDetail: "another application",
	}, {
		name: "SQLite database without an application id",
		make: func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "store.db")
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = db.Close() }()
			if _, err := db.Exec("CREATE TABLE notes (body TEXT)"); err != nil {
				t.Fatal(err)
			}
			return path
		},
		wantDetail: "not an edge store",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.make(t)
			before := fileHash(t, path)
			s, err := Open(path, Options{})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open accepted a damaged file")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			msg := err.Error()
			for _, want := range []string{path, tc.wantDetail, "stop verge-edge", path + "-wal", "keep them for diagnosis", "re-syncs everything from the cloud"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error message lacks %q:\n%s", want, msg)
				}
			}
			if fileHash(t, path) != before {
				t.Error("Open modified the damaged file")
			}
			// The documented recovery: move the files aside, start again.
			dir, err := MoveAside(path, time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC))
			if err != nil {
				t.Fatal(err)
			}
			if fileHash(t, filepath.Join(dir, "store.db")) != before {
				t.Error("the file moved aside is not the damaged file as it was")
			}
			s = openAt(t, path, Options{})
			if inv, err := s.Inventory(ctx); err != nil || len(inv) != 0 {
				t.Errorf("store after recovery: %d objects, %v; want an empty store", len(inv), err)
			}
			mustApply(t, s, put(obj("pods/ns/a", "u", "1", "resynced")))
		})
	}
}

// A damaged file with a WAL beside it (as after a power cut): neither the
// file nor the WAL is touched by the failed Open — closing a writable
// connection would have checkpointed the WAL into the file and deleted it.
func TestCorruptFileWithWALIsLeftAlone(t *testing.T) {
	src := populated(t)
	s := openAt(t, src, Options{})
	mustApply(t, s, put(obj("pods/ns/late", "u", "1", "only in the WAL")))
	// Copy the committed state while the store is open: a crash image.
	path := filepath.Join(t.TempDir(), "store.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(src + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0x5a}, 2*4096), 8*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db, wal := fileHash(t, path), fileHash(t, path+"-wal")
	if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
	if fileHash(t, path) != db {
		t.Error("the damaged file was modified")
	}
	if _, err := os.Stat(path + "-wal"); err != nil || fileHash(t, path+"-wal") != wal {
		t.Errorf("the WAL beside the damaged file was modified or removed: %v", err)
	}
}

// The recovery in docs/edge-store.md, run as written (minus the systemctl
// lines), brings a node with a damaged store back.
func TestDocumentedRecovery(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/edge-store.md")
	if err != nil {
		t.Fatalf("reading the edge store doc: %v", err)
	}
	_, after, ok := strings.Cut(string(doc), "<!-- recovery -->\n```sh\n")
	if !ok {
		t.Fatal("docs/edge-store.md has no ```sh block after <!-- recovery -->")
	}
	snippet, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatal("the recovery block is not closed")
	}
	dataDir := t.TempDir()
	var script []string
	for _, line := range strings.Split(snippet, "\n") {
		switch {
		case strings.HasPrefix(line, "systemctl "):
			continue
		case line == "cd /var/lib/verge":
			line = "cd " + dataDir
		}
		script = append(script, line)
	}

	path := filepath.Join(dataDir, "store.db")
	s := openAt(t, path, Options{})
	mustApply(t, s, put(obj("pods/ns/a", "u", "1", "a")))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Damage the file, and leave a WAL beside it as a crash would.
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xff}, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+"-wal", []byte("left over"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of the damaged store: %v, want ErrCorrupt", err)
	}
	cmd := exec.Command("sh", "-eu", "-c", strings.Join(script, "\n"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the documented recovery failed: %v\n%s\nscript:\n%s", err, out, strings.Join(script, "\n"))
	}
	for _, name := range []string{"store.db", "store.db-wal"} {
		aside, _ := filepath.Glob(filepath.Join(dataDir, "store.db.aside-*", name))
		if len(aside) != 1 {
			t.Fatalf("%s was not kept aside: %v", name, aside)
		}
	}
	s = openAt(t, path, Options{})
	if inv, err := s.Inventory(ctx); err != nil || len(inv) != 0 {
		t.Errorf("after recovery: %d objects, %v; want an empty store", len(inv), err)
	}
}

func TestMoveAsideKeepsCompanions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "store.db")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.WriteFile(path+suffix, []byte("x"+suffix), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	aside, err := MoveAside(path, time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if want := path + ".aside-20260501T100000Z"; aside != want {
		t.Errorf("moved to %s, want %s", aside, want)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if b, err := os.ReadFile(filepath.Join(aside, "store.db"+suffix)); err != nil || string(b) != "x"+suffix {
			t.Errorf("store.db%s aside: %q %v", suffix, b, err)
		}
		if _, err := os.Stat(path + suffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("store.db%s still in place", suffix)
		}
	}
	if _, err := MoveAside(path, time.Now()); err == nil {
		t.Error("MoveAside of a missing store succeeded")
	}
}
