package store

import (
	"context"
	"fmt"
	"time"
)

// Report is an outbox entry: a status report waiting for the cloud.
type Report struct {
	// ID names the entry for Ack; it is never reused.
	ID int64
	// Key identifies what the report is about (e.g. a pod); one entry per
	// key.
	Key, Kind string
	// Priority orders delivery, lower first.
	Priority int
	// Gen counts the payloads enqueued under this entry, from 1.
	Gen     int64
	Payload []byte
	// Enqueued is when the key was first queued (its place in line);
	// Updated when its current payload was.
	Enqueued, Updated time.Time
}

// ReportRef names one generation of an outbox entry.
type ReportRef struct{ ID, Gen int64 }

// Enqueue queues payload for the cloud under key and is durable when it
// returns. If key is already queued its payload, kind and priority are
// replaced and its generation incremented; it keeps its place in line.
// A new key fails with ErrOutboxFull when the outbox is at OutboxLimit, and
// evicts the oldest entry of its kind when that kind is at its
// OutboxKindLimits cap.
func (s *Store) Enqueue(ctx context.Context, key, kind string, priority int, payload []byte) error {
	if key == "" || kind == "" {
		return fmt.Errorf("%w: an outbox report needs a key and a kind (got key %q, kind %q)", ErrInvalid, key, kind)
	}
	if payload == nil {
		payload = []byte{}
	}
	now := s.opts.Clock.Now().UnixNano()
	return s.write(ctx, func(tx *writeTx) error {
		n, err := tx.execN("UPDATE outbox SET kind = ?, priority = ?, gen = gen + 1, payload = ?, updated_ns = ? WHERE key = ?",
			kind, priority, payload, now, key)
		if err != nil || n > 0 {
			return err
		}
		if limit, ok := s.opts.OutboxKindLimits[kind]; ok {
			if err := s.evict(tx, kind, limit); err != nil {
				return err
			}
		}
		if int(s.depth.Load())+tx.depthDelta >= s.opts.OutboxLimit {
			s.metrics.full.Inc()
			return fmt.Errorf("%w: %d reports are waiting for the cloud (OutboxLimit); %s %s was not queued", ErrOutboxFull, int(s.depth.Load())+tx.depthDelta, kind, key)
		}
		if err := tx.exec("INSERT INTO outbox (key, kind, priority, gen, payload, enqueued_ns, updated_ns) VALUES (?, ?, ?, 1, ?, ?, ?)",
			key, kind, priority, payload, now, now); err != nil {
			return err
		}
		tx.depthDelta++
		return nil
	})
}

// evict makes room for one more entry of kind under its cap by removing
// the oldest ones.
func (s *Store) evict(tx *writeTx, kind string, limit int) error {
	var count int
	if err := queryRow(tx.ctx, tx.c, "SELECT count(*) FROM outbox WHERE kind = ?", []any{kind}, &count); err != nil {
		return err
	}
	over := count - limit + 1
	if over <= 0 {
		return nil
	}
	n, err := tx.execN("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE kind = ? ORDER BY id LIMIT ?)", kind, over)
	if err != nil {
		return err
	}
	tx.depthDelta -= int(n)
	if tx.evicted == nil {
		tx.evicted = map[string]int{}
	}
	tx.evicted[kind] += int(n)
	return nil
}

// Pending returns up to n entries in delivery order: by priority, lower
// first, then by first enqueue. Entries for which skip (if not nil)
// returns true are passed over, e.g. those already in flight.
func (s *Store) Pending(ctx context.Context, n int, skip func(id int64) bool) ([]Report, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: Pending needs n >= 1, got %d", ErrInvalid, n)
	}
	db, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT id, key, kind, priority, gen, payload, enqueued_ns, updated_ns FROM outbox ORDER BY priority, id")
	if err != nil {
		return nil, s.readErr("reading the outbox", err)
	}
	defer func() { _ = rows.Close() }() // errors surface through rows.Err
	var out []Report
	for len(out) < n && rows.Next() {
		var r Report
		var enq, upd int64
		if err := rows.Scan(&r.ID, &r.Key, &r.Kind, &r.Priority, &r.Gen, &r.Payload, &enq, &upd); err != nil {
			return nil, s.readErr("reading the outbox", err)
		}
		if skip != nil && skip(r.ID) {
			continue
		}
		r.Enqueued, r.Updated = time.Unix(0, enq), time.Unix(0, upd)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr("reading the outbox", err)
	}
	return out, nil
}

// Ack removes entry id if its generation is still gen, durably; a newer
// payload enqueued meanwhile stays queued. Acknowledging an entry that is
// gone is not an error (acks repeat after a reconnect).
func (s *Store) Ack(ctx context.Context, id, gen int64) error {
	return s.AckMany(ctx, []ReportRef{{ID: id, Gen: gen}})
}

// AckMany is Ack for several entries in one transaction (one fsync).
func (s *Store) AckMany(ctx context.Context, refs []ReportRef) error {
	if len(refs) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *writeTx) error {
		for _, r := range refs {
			n, err := tx.execN("DELETE FROM outbox WHERE id = ? AND gen = ?", r.ID, r.Gen)
			if err != nil {
				return err
			}
			tx.depthDelta -= int(n)
		}
		return nil
	})
}

// OutboxDepth is the number of entries waiting, as of the last commit.
func (s *Store) OutboxDepth(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.closed.Load() {
		return 0, ErrClosed
	}
	return int(s.depth.Load()), nil
}
