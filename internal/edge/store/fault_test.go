package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

var errInjected = errors.New("injected fault")

// faultConn sits on the writer seam and fails one statement on purpose:
// the failAt-th statement after arm, either before it runs or after it ran
// (its effect is then inside the open transaction and must be undone).
// ROLLBACK is never failed or counted. It can also hold COMMIT until
// released.
type faultConn struct {
	conn
	mu      sync.Mutex
	seen    int
	failAt  int // -1: never
	after   bool
	fired   bool
	hold    chan struct{} // if set, COMMIT waits for it to close
	holding chan struct{} // closed when a COMMIT starts waiting
}

func (f *faultConn) arm(at int, after bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen, f.failAt, f.after, f.fired = 0, at, after, false
}

func (f *faultConn) didFire() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fired
}

// step decides the fate of one statement: fail before, fail after, or run.
func (f *faultConn) step(query string) (failBefore, failAfter bool, hold chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if query == "ROLLBACK" {
		return false, false, nil
	}
	if query == "COMMIT" && f.hold != nil {
		hold = f.hold
		close(f.holding)
		f.hold = nil
	}
	n := f.seen
	f.seen++
	if n != f.failAt {
		return false, false, hold
	}
	f.fired = true
	// A failed COMMIT that had in fact committed is not a fault the store
	// can undo; fail it before it runs.
	if f.after && query != "COMMIT" {
		return false, true, hold
	}
	return true, false, hold
}

func (f *faultConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	before, after, hold := f.step(query)
	if before {
		return nil, fmt.Errorf("%w before %q", errInjected, query)
	}
	if hold != nil {
		<-hold
	}
	res, err := f.conn.ExecContext(ctx, query, args...)
	if err == nil && after {
		return nil, fmt.Errorf("%w after %q", errInjected, query)
	}
	return res, err
}

func (f *faultConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	before, after, _ := f.step(query)
	if before {
		return nil, fmt.Errorf("%w before %q", errInjected, query)
	}
	rows, err := f.conn.QueryContext(ctx, query, args...)
	if err == nil && after {
		_ = rows.Close()
		return nil, fmt.Errorf("%w after %q", errInjected, query)
	}
	return rows, err
}

func openFaulty(t *testing.T, opts Options) (*Store, *faultConn) {
	t.Helper()
	fc := &faultConn{failAt: -1}
	opts.wrapWriter = func(c conn) conn {
		fc.conn = c
		return fc
	}
	return openT(t, opts), fc
}

// dump renders every table, the in-memory counters and the outbox depth,
// so that "unchanged" can be checked exactly.
func dump(t *testing.T, s *Store) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"objects", "changes", "outbox", "state", "counters", "info", "sqlite_sequence"} {
		rows, err := s.rdb.QueryContext(ctx, "SELECT * FROM "+table+" ORDER BY 1")
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %q\n", table, vals)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		_ = rows.Close()
	}
	d, _ := s.OutboxDepth(ctx)
	fmt.Fprintf(&b, "revision %d depth %d\n", s.Revision(), d)
	return b.String()
}

func TestFailedWritesChangeNothing(t *testing.T) {
	setup := func(t *testing.T, s *Store) {
		mustApply(t, s, put(obj("pods/ns/keep", "k1", "1", "keep")), put(obj("pods/ns/mod", "m1", "1", "m")),
			put(obj("pods/ns/recreate", "r1", "1", "r")), put(obj("pods/ns/gone", "g1", "1", "g")))
		for _, e := range []enq{{"node", "nodestatus", 0, "n"}, {"pod/a", "podstatus", 1, "a"}, {"ev/1", "event", 2, "1"}, {"ev/2", "event", 2, "2"}} {
			if err := s.Enqueue(ctx, e.key, e.kind, e.prio, []byte(e.payload)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PutState(ctx, "session", []byte("s1")); err != nil {
			t.Fatal(err)
		}
	}
	refs := func(t *testing.T, s *Store) []ReportRef {
		var out []ReportRef
		for _, r := range pending(t, s, 2, nil) {
			out = append(out, ReportRef{r.ID, r.Gen})
		}
		return out
	}
	tests := []struct {
		name string
		op   func(t *testing.T, s *Store) error
	}{
		{"apply: add, modify, recreate, delete, compact", func(t *testing.T, s *Store) error {
			_, err := s.Apply(ctx, []Op{put(obj("pods/ns/new", "n1", "1", "new")), put(obj("pods/ns/mod", "m1", "2", "m2")),
				put(obj("pods/ns/recreate", "r2", "1", "r2")), del("pods/ns/gone", "g1"), del("pods/ns/keep", "other-uid")})
			return err
		}},
		{"enqueue a new key", func(t *testing.T, s *Store) error { return s.Enqueue(ctx, "pod/b", "podstatus", 1, []byte("b")) }},
		{"enqueue over a queued key", func(t *testing.T, s *Store) error { return s.Enqueue(ctx, "pod/a", "podstatus", 1, []byte("a2")) }},
		{"enqueue an event at its cap", func(t *testing.T, s *Store) error { return s.Enqueue(ctx, "ev/3", "event", 2, []byte("3")) }},
		{"ack two", func(t *testing.T, s *Store) error { return s.AckMany(ctx, refs(t, s)) }},
		{"put state", func(t *testing.T, s *Store) error { return s.PutState(ctx, "session", []byte("s2")) }},
		{"delete state", func(t *testing.T, s *Store) error { return s.DeleteState(ctx, "session") }},
	}
	for _, tc := range tests {
		for _, after := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fail-after=%v", tc.name, after), func(t *testing.T) {
				s, fc := openFaulty(t, Options{ChangeRetention: 3, OutboxKindLimits: map[string]int{"event": 2}})
				setup(t, s)
				before := dump(t, s)
				failures := 0
				for k := 0; ; k++ {
					if k > 50 {
						t.Fatal("the operation never completed")
					}
					changed := s.Changed()
					fc.arm(k, after)
					err := tc.op(t, s)
					fired := fc.didFire()
					fc.arm(-1, false)
					if !fired {
						if err != nil {
							t.Fatalf("with no fault left to inject: %v", err)
						}
						break
					}
					failures++
					if !errors.Is(err, errInjected) {
						t.Fatalf("statement %d failed, but the operation returned %v", k, err)
					}
					if got := dump(t, s); got != before {
						t.Fatalf("statement %d failed and the store changed:\nbefore:\n%s\nafter:\n%s", k, before, got)
					}
					select {
					case <-changed:
						t.Fatalf("statement %d failed but watchers were woken", k)
					default:
					}
				}
				if failures < 2 {
					t.Fatalf("only %d statements could be failed; the seam is not in the write path", failures)
				}
				if dump(t, s) == before {
					t.Error("the operation succeeded in the end but changed nothing")
				}
				if got := metricValue(t, s.metrics.commitErrors); got != float64(failures) {
					t.Errorf("commit error metric %v, want %d", got, failures)
				}
			})
		}
	}
}

// Readers use their own connections: they answer, with the last committed
// state, while a write transaction is open; a second writer waits instead
// of failing with "database is locked".
func TestReadersDoNotWaitForTheWriter(t *testing.T) {
	s, fc := openFaulty(t, Options{})
	mustApply(t, s, put(obj("pods/ns/a", "u", "1", "old")))
	if err := s.Enqueue(ctx, "pod/a", "podstatus", 1, []byte("old")); err != nil {
		t.Fatal(err)
	}
	fc.mu.Lock()
	fc.hold, fc.holding = make(chan struct{}), make(chan struct{})
	release, holding := fc.hold, fc.holding
	fc.mu.Unlock()

	applied := make(chan error, 1)
	go func() {
		_, err := s.Apply(ctx, []Op{put(obj("pods/ns/a", "u", "2", "new"))})
		applied <- err
	}()
	<-holding // the writer is inside its transaction, at COMMIT

	second := make(chan error, 1)
	go func() { second <- s.Enqueue(ctx, "pod/b", "podstatus", 1, nil) }()

	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	o, _, err := s.Get(rctx, "pods/ns/a")
	if err != nil || string(o.Data) != "old" {
		t.Errorf("Get during a write = %q, %v; want the committed \"old\"", o.Data, err)
	}
	if objs, err := s.List(rctx, "pods/"); err != nil || len(objs) != 1 {
		t.Errorf("List during a write: %d, %v", len(objs), err)
	}
	if rs, err := s.Pending(rctx, 10, nil); err != nil || len(rs) != 1 {
		t.Errorf("Pending during a write: %d, %v", len(rs), err)
	}
	if _, err := s.Inventory(rctx); err != nil {
		t.Errorf("Inventory during a write: %v", err)
	}
	select {
	case err := <-second:
		t.Fatalf("a second writer finished while the first held the transaction: %v", err)
	default:
	}
	close(release)
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Errorf("the waiting writer failed: %v", err)
	}
	if o, _, _ := s.Get(ctx, "pods/ns/a"); string(o.Data) != "new" {
		t.Errorf("after commit Get = %q", o.Data)
	}
}

func TestWriterWaitHonoursContext(t *testing.T) {
	s, fc := openFaulty(t, Options{})
	fc.mu.Lock()
	fc.hold, fc.holding = make(chan struct{}), make(chan struct{})
	release, holding := fc.hold, fc.holding
	fc.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- s.PutState(ctx, "a", []byte("1")) }()
	<-holding
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := s.PutState(cctx, "b", []byte("2")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting writer with an ending context: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.GetState(ctx, "b"); ok {
		t.Error("a write that gave up waiting was applied")
	}
}

// Many goroutines writing and reading at once: no "database is locked",
// nothing lost.
func TestConcurrentCallers(t *testing.T) {
	s := openT(t, Options{})
	const writers, each = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers*each*3+100)
	stop := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := fmt.Sprintf("pods/ns/w%d-%d", w, i)
				if _, err := s.Apply(ctx, []Op{put(obj(key, "u", "1", key))}); err != nil {
					errs <- err
				}
				if err := s.Enqueue(ctx, key, "podstatus", 1, []byte(key)); err != nil {
					errs <- err
				}
				if err := s.PutState(ctx, fmt.Sprintf("w%d", w), []byte(fmt.Sprint(i))); err != nil {
					errs <- err
				}
			}
		}()
	}
	var rg sync.WaitGroup
	for range 2 {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.List(ctx, "pods/"); err != nil {
					errs <- err
				}
				if _, _, err := s.Changes(ctx, 0); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent call failed: %v", err)
	}
	if objs := list(t, s, "pods/"); len(objs) != writers*each {
		t.Errorf("%d objects, want %d", len(objs), writers*each)
	}
	if d, _ := s.OutboxDepth(ctx); d != writers*each {
		t.Errorf("outbox depth %d, want %d", d, writers*each)
	}
	if s.Revision() != writers*each {
		t.Errorf("revision %d, want %d", s.Revision(), writers*each)
	}
}
