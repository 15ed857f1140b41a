package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// CorruptError says that the store file is damaged or is not an edge store,
// and what to do about it. It wraps ErrCorrupt.
type CorruptError struct {
	// Path is the store file.
	Path string
	// Detail is what SQLite or the check found.
	Detail string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("edge store %s is corrupt: %s. To recover: stop verge-edge; move %s and, if present, %s-wal and %s-shm "+
		"out of the way together (keep them for diagnosis, do not delete them); start verge-edge again: it creates an empty store "+
		"and re-syncs everything from the cloud (see docs/edge-store.md)", e.Path, e.Detail, e.Path, e.Path, e.Path)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// classify turns SQLite's "this is not a database" and "the database is
// malformed" results into a CorruptError, leaving other errors as they are.
func (s *Store) classify(err error) error {
	if err == nil {
		return nil
	}
	var ce *CorruptError
	if errors.As(err, &ce) {
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			s.metrics.corrupt.Inc()
			return &CorruptError{Path: s.path, Detail: se.Error()}
		}
	}
	return err
}

// MoveAside carries out the documented recovery for a store that is not
// open: it moves path and its -wal and -shm companions (those present)
// into a new directory next to it named "<file>.aside-<UTC time>", and
// returns that directory. Nothing is deleted. The caller must make sure
// no verge-edge has the store open.
func MoveAside(path string, now time.Time) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("moving edge store aside: %w", err)
	}
	dest := fmt.Sprintf("%s.aside-%s", abs, now.UTC().Format("20060102T150405Z"))
	if err := os.Mkdir(dest, 0o700); err != nil {
		return "", fmt.Errorf("moving edge store aside: %w", err)
	}
	// The companions go first: a -wal left next to a fresh store file
	// would be replayed into it.
	for _, suffix := range []string{"-wal", "-shm", ""} {
		src := abs + suffix
		err := os.Rename(src, filepath.Join(dest, filepath.Base(src)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return dest, fmt.Errorf("moving %s aside: %w", src, err)
		}
	}
	if err := syncDir(filepath.Dir(abs)); err != nil {
		return dest, err
	}
	return dest, nil
}
