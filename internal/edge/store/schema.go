package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// applicationID marks the file as a Verge edge store in the SQLite header
// ("VRGE"), so that tools like file(1) and our own Open recognise it.
const applicationID = 0x56524745

// migration is one forward step of the schema. Migrations are never edited
// once released; a change is a new migration.
type migration struct {
	version int
	name    string
	stmts   []string
}

// schema returns every migration, in version order.
func schema() []migration {
	return []migration{{
		version: 1,
		name:    "objects, revision log, outbox, node state",
		stmts: []string{
			`CREATE TABLE schema_version (
				version INTEGER PRIMARY KEY,
				name TEXT NOT NULL,
				applied_unix INTEGER NOT NULL
			) STRICT`,
			`CREATE TABLE info (name TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT`,
			`INSERT INTO info (name, value) VALUES ('store_id', lower(hex(randomblob(16))))`,
			// revision: last revision given out; compacted: the change log
			// holds nothing at or below it.
			`CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT`,
			`INSERT INTO counters (name, value) VALUES ('revision', 0), ('compacted', 0)`,
			`CREATE TABLE objects (
				key TEXT PRIMARY KEY,
				uid TEXT NOT NULL,
				resource_version TEXT NOT NULL,
				kind TEXT NOT NULL,
				data BLOB NOT NULL,
				revision INTEGER NOT NULL
			) STRICT`,
			`CREATE TABLE changes (
				revision INTEGER PRIMARY KEY,
				type INTEGER NOT NULL,
				key TEXT NOT NULL,
				uid TEXT NOT NULL,
				resource_version TEXT NOT NULL,
				kind TEXT NOT NULL,
				data BLOB NOT NULL
			) STRICT`,
			// AUTOINCREMENT: an id is never reused, so a late Ack for a
			// removed entry cannot remove a newer one.
			`CREATE TABLE outbox (
				id INTEGER PRIMARY KEY AUTOINCREMENT,
				key TEXT NOT NULL UNIQUE,
				kind TEXT NOT NULL,
				priority INTEGER NOT NULL,
				gen INTEGER NOT NULL,
				payload BLOB NOT NULL,
				enqueued_ns INTEGER NOT NULL,
				updated_ns INTEGER NOT NULL
			) STRICT`,
			`CREATE INDEX outbox_order ON outbox (priority, id)`,
			`CREATE INDEX outbox_kind ON outbox (kind, id)`,
			`CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT`,
			fmt.Sprintf(`PRAGMA application_id = %d`, applicationID),
		},
	}}
}

// schemaVersion is the highest migration applied to the file (0 for a new
// file).
func schemaVersion(ctx context.Context, c conn) (int, error) {
	var n int
	if err := queryRow(ctx, c, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'", nil, &n); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	var v int
	err := queryRow(ctx, c, "SELECT coalesce(max(version), 0) FROM schema_version", nil, &v)
	return v, err
}

// migrate brings the file at path up to the last of migs, one transaction
// per migration, and returns the versions before and after. A failed
// migration leaves the file at the previous version.
func migrate(ctx context.Context, c conn, path string, migs []migration, now time.Time) (from, to int, err error) {
	from, err = schemaVersion(ctx, c)
	if err != nil {
		return 0, 0, fmt.Errorf("reading edge store %s schema version: %w", path, err)
	}
	latest := 0
	if len(migs) > 0 {
		latest = migs[len(migs)-1].version
	}
	if from > latest {
		return from, from, fmt.Errorf("%w: %s has schema version %d but this verge-edge knows versions up to %d, so it was written by a newer verge-edge. "+
			"Run that newer version, or move the file aside as for a corrupt store and let the node re-sync from the cloud", ErrSchemaTooNew, path, from, latest)
	}
	to = from
	for i, m := range migs {
		if i > 0 && m.version != migs[i-1].version+1 {
			return from, to, fmt.Errorf("edge store migrations out of sequence at version %d", m.version)
		}
		if m.version <= to {
			continue
		}
		if err := applyMigration(ctx, c, m, now); err != nil {
			return from, to, fmt.Errorf("edge store %s: schema migration %d (%s) failed, the file stays at version %d: %w", path, m.version, m.name, to, err)
		}
		to = m.version
	}
	return from, to, nil
}

func applyMigration(ctx context.Context, c conn, m migration, now time.Time) (err error) {
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if rerr := rollback(ctx, c); rerr != nil {
				err = errors.Join(err, fmt.Errorf("rolling back: %w", rerr))
			}
		}
	}()
	for _, stmt := range m.stmts {
		if _, err := c.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	if _, err := c.ExecContext(ctx, "INSERT INTO schema_version (version, name, applied_unix) VALUES (?, ?, ?)", m.version, m.name, now.Unix()); err != nil {
		return err
	}
	_, err = c.ExecContext(context.WithoutCancel(ctx), "COMMIT")
	return err
}
