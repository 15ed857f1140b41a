package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Meta identifies one state of an object. Key is
// "<resource>/<namespace>/<name>" ("<resource>//<name>" for cluster-scoped
// objects).
type Meta struct {
	Key, UID, ResourceVersion string
}

// Object is an object as the cloud sent it. Data is opaque to the store.
type Object struct {
	Meta
	Kind string
	Data []byte
	// Revision is the local revision of the object's last change; set by
	// Get and List, ignored by Apply.
	Revision int64
}

// Op is one change in an Apply: an upsert of Object, or with Delete a
// removal of Object.Key — only if the stored UID equals Object.UID when
// that is set.
type Op struct {
	Delete bool
	Object Object
}

// ChangeType says what a change did.
type ChangeType uint8

// Change types.
const (
	Added ChangeType = iota + 1
	Modified
	Deleted
)

func (t ChangeType) String() string {
	switch t {
	case Added:
		return "added"
	case Modified:
		return "modified"
	case Deleted:
		return "deleted"
	}
	return fmt.Sprintf("change(%d)", uint8(t))
}

// Change is one entry of the revision log: the object after the change,
// or its last state for Deleted.
type Change struct {
	Revision int64
	Type     ChangeType
	Object   Object
}

// defaultChangesPerCall bounds what one Changes call returns so that a
// watcher far behind does not pull the whole log into memory at once.
const defaultChangesPerCall = 1000

// ValidKey reports whether key has the form "<resource>/<namespace>/<name>"
// with a resource and a name.
func ValidKey(key string) error {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return fmt.Errorf("%w: object key %q is malformed: want \"<resource>/<namespace>/<name>\" (\"<resource>//<name>\" for cluster-scoped objects)", ErrInvalid, key)
	}
	return nil
}

// Apply commits ops in one transaction, in order, and is durable when it
// returns. An upsert whose UID and ResourceVersion equal the stored ones
// (and, when ResourceVersion is empty, whose kind and data do too) changes
// nothing. It returns the store's revision after the commit: the revision
// of the last change made, or the unchanged current revision when every op
// was a no-op. On error nothing was applied.
func (s *Store) Apply(ctx context.Context, ops []Op) (int64, error) {
	for i, op := range ops {
		if err := ValidKey(op.Object.Key); err != nil {
			return 0, fmt.Errorf("op %d: %w", i, err)
		}
	}
	var rev int64
	err := s.write(ctx, func(tx *writeTx) error {
		for i, op := range ops {
			var err error
			if op.Delete {
				err = s.applyDelete(tx, op.Object)
			} else {
				err = s.applyUpsert(tx, op.Object)
			}
			if err != nil {
				return fmt.Errorf("applying op %d (%s): %w", i, op.Object.Key, err)
			}
		}
		rev = tx.rev
		return nil
	})
	if err != nil {
		return 0, err
	}
	return rev, nil
}

func (s *Store) applyDelete(tx *writeTx, o Object) error {
	old, found, err := tx.getObject(o.Key)
	if err != nil || !found {
		return err
	}
	if o.UID != "" && old.UID != o.UID {
		return nil // the key now holds another object; leave it
	}
	if err := tx.exec("DELETE FROM objects WHERE key = ?", o.Key); err != nil {
		return err
	}
	return tx.logChange(Deleted, old)
}

func (s *Store) applyUpsert(tx *writeTx, o Object) error {
	// Read the stored data only when the decision needs it: most upserts
	// are a newer version of the same object.
	var old Meta
	err := queryRow(tx.ctx, tx.c, "SELECT uid, resource_version FROM objects WHERE key = ?", []any{o.Key}, &old.UID, &old.ResourceVersion)
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	typ := Added
	if found {
		same := old.UID == o.UID && old.ResourceVersion == o.ResourceVersion
		if same && o.ResourceVersion != "" {
			return nil
		}
		if same || old.UID != o.UID {
			full, _, err := tx.getObject(o.Key)
			if err != nil {
				return err
			}
			if same && full.Kind == o.Kind && bytes.Equal(full.Data, o.Data) {
				return nil
			}
			if old.UID != o.UID {
				// A new UID under the same key is a different object:
				// watchers see the old one go before the new one comes.
				if err := tx.logChange(Deleted, full); err != nil {
					return err
				}
			}
		}
		if old.UID == o.UID {
			typ = Modified
		}
	}
	data := o.Data
	if data == nil {
		data = []byte{}
	}
	if err := tx.exec(`INSERT INTO objects (key, uid, resource_version, kind, data, revision) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET uid = excluded.uid, resource_version = excluded.resource_version,
			kind = excluded.kind, data = excluded.data, revision = excluded.revision`,
		o.Key, o.UID, o.ResourceVersion, o.Kind, data, tx.rev+1); err != nil {
		return err
	}
	o.Data = data
	return tx.logChange(typ, o)
}

func (tx *writeTx) getObject(key string) (Object, bool, error) {
	o := Object{Meta: Meta{Key: key}}
	err := queryRow(tx.ctx, tx.c, "SELECT uid, resource_version, kind, data, revision FROM objects WHERE key = ?", []any{key},
		&o.UID, &o.ResourceVersion, &o.Kind, &o.Data, &o.Revision)
	if errors.Is(err, sql.ErrNoRows) {
		return Object{}, false, nil
	}
	return o, err == nil, err
}

// logChange gives the change the next revision and records it.
func (tx *writeTx) logChange(t ChangeType, o Object) error {
	tx.rev++
	data := o.Data
	if data == nil {
		data = []byte{}
	}
	return tx.exec("INSERT INTO changes (revision, type, key, uid, resource_version, kind, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
		tx.rev, int(t), o.Key, o.UID, o.ResourceVersion, o.Kind, data)
}

// Get returns the object stored under key.
func (s *Store) Get(ctx context.Context, key string) (Object, bool, error) {
	db, err := s.reader()
	if err != nil {
		return Object{}, false, err
	}
	o := Object{Meta: Meta{Key: key}}
	err = db.QueryRowContext(ctx, "SELECT uid, resource_version, kind, data, revision FROM objects WHERE key = ?", key).
		Scan(&o.UID, &o.ResourceVersion, &o.Kind, &o.Data, &o.Revision)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Object{}, false, nil
	case err != nil:
		return Object{}, false, s.readErr("reading "+key, err)
	}
	return o, true, nil
}

// GetMeta returns the key, UID and resourceVersion stored under key,
// without reading the object's data.
func (s *Store) GetMeta(ctx context.Context, key string) (Meta, bool, error) {
	db, err := s.reader()
	if err != nil {
		return Meta{}, false, err
	}
	m := Meta{Key: key}
	err = db.QueryRowContext(ctx, "SELECT uid, resource_version FROM objects WHERE key = ?", key).Scan(&m.UID, &m.ResourceVersion)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Meta{}, false, nil
	case err != nil:
		return Meta{}, false, s.readErr("reading "+key, err)
	}
	return m, true, nil
}

// List returns the objects whose keys start with keyPrefix (all of them
// for ""), ordered by key. "pods/" lists every pod, "pods/default/" the
// pods of one namespace.
func (s *Store) List(ctx context.Context, keyPrefix string) ([]Object, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	q, args := prefixQuery("SELECT key, uid, resource_version, kind, data, revision FROM objects", keyPrefix)
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.readErr("listing "+keyPrefix, err)
	}
	defer func() { _ = rows.Close() }() // errors surface through rows.Err
	var out []Object
	for rows.Next() {
		var o Object
		if err := rows.Scan(&o.Key, &o.UID, &o.ResourceVersion, &o.Kind, &o.Data, &o.Revision); err != nil {
			return nil, s.readErr("listing "+keyPrefix, err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr("listing "+keyPrefix, err)
	}
	return out, nil
}

// prefixQuery adds a key range for prefix to a SELECT: a range on the
// primary key rather than LIKE, which would treat '_' and '%' as patterns
// and not use the index.
func prefixQuery(sel, prefix string) (string, []any) {
	if prefix == "" {
		return sel + " ORDER BY key", nil
	}
	if end, ok := prefixEnd(prefix); ok {
		return sel + " WHERE key >= ? AND key < ? ORDER BY key", []any{prefix, end}
	}
	return sel + " WHERE key >= ? ORDER BY key", []any{prefix}
}

// prefixEnd is the smallest string greater than every string with prefix
// (false when there is none: the prefix is all 0xff bytes).
func prefixEnd(prefix string) (string, bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// Inventory returns the key, UID and resourceVersion of every object held,
// ordered by key: what the edge tells the cloud when it connects.
func (s *Store) Inventory(ctx context.Context) ([]Meta, error) {
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT key, uid, resource_version FROM objects ORDER BY key")
	if err != nil {
		return nil, s.readErr("reading the inventory", err)
	}
	defer func() { _ = rows.Close() }() // errors surface through rows.Err
	var out []Meta
	for rows.Next() {
		var m Meta
		if err := rows.Scan(&m.Key, &m.UID, &m.ResourceVersion); err != nil {
			return nil, s.readErr("reading the inventory", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr("reading the inventory", err)
	}
	return out, nil
}

// Revision is the last committed revision.
func (s *Store) Revision() int64 { return s.rev.Load() }

// Changes returns the changes after revision since, in revision order, and
// the revision they bring the caller to. At most 1000 changes are returned
// per call; when more are waiting the returned revision is that of the
// last one returned and the caller calls again. When since is older than
// the log keeps (or is not a revision of this store file) it returns
// ErrCompacted: list again and continue from Revision().
func (s *Store) Changes(ctx context.Context, since int64) ([]Change, int64, error) {
	if since < 0 {
		return nil, 0, fmt.Errorf("%w: revision %d is negative", ErrInvalid, since)
	}
	db, err := s.reader()
	if err != nil {
		return nil, 0, err
	}
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, s.readErr("reading changes", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to undo
	var rev, compacted int64
	if err := tx.QueryRowContext(ctx, "SELECT (SELECT value FROM counters WHERE name = 'revision'), (SELECT value FROM counters WHERE name = 'compacted')").
		Scan(&rev, &compacted); err != nil {
		return nil, 0, s.readErr("reading changes", err)
	}
	switch {
	case since < compacted:
		return nil, 0, fmt.Errorf("%w: changes up to revision %d were dropped and %d is older; list again from revision %d", ErrCompacted, compacted, since, rev)
	case since > rev:
		return nil, 0, fmt.Errorf("%w: revision %d is ahead of this store (at %d), it belongs to a replaced store file; list again from revision %d", ErrCompacted, since, rev, rev)
	case since == rev:
		return nil, rev, nil
	}
	rows, err := tx.QueryContext(ctx, "SELECT revision, type, key, uid, resource_version, kind, data FROM changes WHERE revision > ? ORDER BY revision LIMIT ?",
		since, s.opts.changesPerCall)
	if err != nil {
		return nil, 0, s.readErr("reading changes", err)
	}
	defer func() { _ = rows.Close() }() // errors surface through rows.Err
	var out []Change
	for rows.Next() {
		var c Change
		if err := rows.Scan(&c.Revision, &c.Type, &c.Object.Key, &c.Object.UID, &c.Object.ResourceVersion, &c.Object.Kind, &c.Object.Data); err != nil {
			return nil, 0, s.readErr("reading changes", err)
		}
		c.Object.Revision = c.Revision
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, s.readErr("reading changes", err)
	}
	if len(out) == s.opts.changesPerCall {
		rev = out[len(out)-1].Revision
	}
	return out, rev, nil
}

// Changed returns a channel closed at the next commit that adds revisions
// (or when the store closes). Take it before calling Changes so that no
// commit is missed between the two.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Wait blocks until the store's revision is greater than since, and
// returns it. It returns ctx's error when ctx ends and ErrClosed when the
// store closes.
func (s *Store) Wait(ctx context.Context, since int64) (int64, error) {
	for {
		ch := s.Changed()
		if s.closed.Load() {
			return 0, ErrClosed
		}
		if rev := s.rev.Load(); rev > since {
			return rev, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
