package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	"modernc.org/sqlite"
)

// Errors callers branch on. Each is wrapped with the detail that explains
// it.
var (
	// ErrCorrupt: the file is damaged or is not an edge store. The wrapped
	// error (a *CorruptError) names the file and the recovery.
	ErrCorrupt = errors.New("edge store is corrupt")
	// ErrSchemaTooNew: the file was written by a newer verge-edge.
	ErrSchemaTooNew = errors.New("edge store schema is newer than this verge-edge")
	// ErrInUse: another process has the file open as a store.
	ErrInUse = errors.New("edge store is in use by another process")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("edge store is closed")
	// ErrInvalid: the caller passed something the store cannot hold.
	ErrInvalid = errors.New("invalid edge store request")
	// ErrCompacted: Changes cannot answer from the given revision (the log
	// no longer holds it, or it belongs to another store file); the caller
	// must list again and continue from the returned revision.
	ErrCompacted = errors.New("edge store revision is compacted")
	// ErrOutboxFull: the outbox holds Options.OutboxLimit entries.
	ErrOutboxFull = errors.New("edge store outbox is full")
)

// Defaults for Options.
const (
	DefaultBusyTimeout = 10 * time.Second
	// Each SQLite connection holds its own page cache, lookaside and
	// prepared statements (about half a MiB once warm); the edge's reads are
	// short indexed lookups, so two connections rarely make one wait.
	DefaultReaders         = 2
	DefaultChangeRetention = 10000
	DefaultOutboxLimit     = 100000
)

// Options tunes a Store. The zero value is ready to use.
type Options struct {
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection (a WAL checkpoint, a diagnostic sqlite3 shell) before
	// failing. Default DefaultBusyTimeout.
	BusyTimeout time.Duration
	// Readers is the number of read connections. Default DefaultReaders.
	Readers int
	// ChangeRetention is how many changes the revision log keeps for
	// watchers that fall behind. Default DefaultChangeRetention.
	ChangeRetention int
	// OutboxLimit bounds the outbox: enqueueing a key not already queued
	// fails with ErrOutboxFull while it holds this many entries. Default
	// DefaultOutboxLimit.
	OutboxLimit int
	// OutboxKindLimits caps the entries of some kinds (meant for
	// low-priority ones such as events): enqueueing a new key of a kind at
	// its cap evicts that kind's oldest entry, counted in
	// verge_edge_store_outbox_evicted_total. Kinds not listed are bounded
	// only by OutboxLimit.
	OutboxKindLimits map[string]int
	// Clock stamps outbox entries. Default: the real clock.
	Clock clock.PassiveClock
	// Logger receives open, migration and recovery messages. Default:
	// discard.
	Logger *slog.Logger
	// Metrics, if set, receives the store's metrics.
	Metrics prometheus.Registerer

	// wrapWriter, set only by tests in this package, wraps the writer
	// connection so that a fault-injecting conn can fail statements (and
	// COMMIT) on purpose.
	wrapWriter func(conn) conn
	// synchronousNormal, set only by benchmarks, measures what relaxing
	// durability would buy; never set in production code.
	synchronousNormal bool
	// changesPerCall is how many changes one Changes call returns at most
	// (default defaultChangesPerCall); tests lower it.
	changesPerCall int
}

func (o Options) withDefaults() Options {
	if o.BusyTimeout == 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.Readers == 0 {
		o.Readers = DefaultReaders
	}
	if o.ChangeRetention == 0 {
		o.ChangeRetention = DefaultChangeRetention
	}
	if o.OutboxLimit == 0 {
		o.OutboxLimit = DefaultOutboxLimit
	}
	if o.changesPerCall == 0 {
		o.changesPerCall = defaultChangesPerCall
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports the first problem with o (after defaults).
func (o Options) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch {
	case o.BusyTimeout < time.Millisecond:
		return bad("BusyTimeout %v is too short: use at least 1ms (default %v)", o.BusyTimeout, DefaultBusyTimeout)
	case o.Readers < 1:
		return bad("Readers %d must be at least 1 (default %d)", o.Readers, DefaultReaders)
	case o.ChangeRetention < 1:
		return bad("ChangeRetention %d must be at least 1 (default %d)", o.ChangeRetention, DefaultChangeRetention)
	case o.OutboxLimit < 1:
		return bad("OutboxLimit %d must be at least 1 (default %d)", o.OutboxLimit, DefaultOutboxLimit)
	}
	for kind, n := range o.OutboxKindLimits {
		if kind == "" || n < 1 {
			return bad("OutboxKindLimits[%q] = %d: each entry needs a kind and a cap of at least 1", kind, n)
		}
	}
	return nil
}

// conn is the narrow seam between the store and SQLite on the writer
// side: everything a write does goes through it, including BEGIN, COMMIT
// and ROLLBACK, so a wrapper can fail any step.
type conn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// stmtConn is the real writer conn: it prepares each distinct statement
// once (preparing costs more than running most of ours). Only the writer
// goroutine holding wsem uses it.
type stmtConn struct {
	c     *sql.Conn
	stmts map[string]*sql.Stmt
}

func (c *stmtConn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	st, err := c.c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.stmts[query] = st
	return st, nil
}

func (c *stmtConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (c *stmtConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (c *stmtConn) close() error {
	var errs []error
	for _, st := range c.stmts {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// Store is an open edge store. Its methods are safe for concurrent use.
type Store struct {
	path    string
	opts    Options
	log     *slog.Logger
	metrics *metrics
	id      string
	lock    *os.File // holds the flock that keeps a second process out

	wdb   *sql.DB
	wconn *sql.Conn
	sc    *stmtConn     // wconn with cached statements
	w     conn          // sc, possibly wrapped by a test
	wsem  chan struct{} // one writer at a time; a channel so waiting honours ctx
	rdb   *readConn

	closed atomic.Bool
	rev    atomic.Int64 // last committed revision

	mu      sync.Mutex
	changed chan struct{} // closed and replaced after each commit that adds revisions
	depth   atomic.Int64  // committed outbox entries; written under wsem
}

// Open opens the store at path, creating the file (mode 0600) and its
// directory if needed, checking its integrity and bringing its schema up
// to date. A damaged file yields an error wrapping ErrCorrupt; a file from
// a newer verge-edge, ErrSchemaTooNew; a file another process has open,
// ErrInUse. Open never modifies a file it finds damaged.
func Open(path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, fmt.Errorf("%w: no path given for the edge store (set the data directory in the edge config)", ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("edge store path %q: %w", path, err)
	}
	if strings.ContainsAny(abs, "?#") {
		return nil, fmt.Errorf("%w: edge store path %q contains '?' or '#', which SQLite would read as URI syntax; choose a path without them", ErrInvalid, abs)
	}
	lock, err := createAndLock(abs)
	if err != nil {
		return nil, err
	}
	s := &Store{
		path:    abs,
		opts:    opts,
		log:     opts.Logger.With("path", abs),
		metrics: newMetrics(opts.Metrics),
		lock:    lock,
		wsem:    make(chan struct{}, 1),
		changed: make(chan struct{}),
	}
	if err := s.open(context.Background()); err != nil {
		_ = s.closeAll() // the open error says what went wrong
		return nil, err
	}
	return s, nil
}

// createAndLock creates the file if missing (mode 0600, directory synced
// so the new name survives power loss) and takes an exclusive flock on it.
// SQLite's own locks are fcntl locks, which flock does not interfere with.
func createAndLock(path string) (*os.File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the edge store directory: %w", err)
	}
	fi, err := os.Stat(path)
	var f *os.File
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%w: edge store %s is not a regular file; point the data directory elsewhere", ErrInvalid, path)
	case err == nil:
		if f, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
			return nil, fmt.Errorf("opening edge store %s: %w", path, err)
		}
		// The store holds Secrets: nobody but verge-edge may read it.
		if fi.Mode().Perm()&0o077 != 0 {
			if err := f.Chmod(0o600); err != nil {
				f.Close()
				return nil, fmt.Errorf("restricting edge store %s to mode 0600: %w", path, err)
			}
		}
	case errors.Is(err, fs.ErrNotExist):
		if f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			return nil, fmt.Errorf("creating edge store %s: %w", path, err)
		}
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, err
		}
	default:
		return nil, fmt.Errorf("opening edge store %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is open in another process; is another verge-edge running with the same data directory? Stop it first", ErrInUse, path)
		}
		return nil, fmt.Errorf("locking edge store %s: %w", path, err)
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing edge store directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing edge store directory %s: %w", dir, err)
	}
	return nil
}

func (s *Store) dsn(extra ...string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", s.opts.BusyTimeout.Milliseconds()))
	// Detect damaged b-tree cells when they are read instead of acting on
	// them; the cost is small next to an fsync.
	q.Add("_pragma", "cell_size_check(1)")
	for _, p := range extra {
		q.Add("_pragma", p)
	}
	return s.path + "?" + q.Encode()
}

func (s *Store) open(ctx context.Context) error {
	// Check before anything writes: switching to WAL, migrating, or even
	// closing a writable connection (which checkpoints the WAL into the
	// main file and deletes it) would modify a damaged file. The check runs
	// on a read-only connection.
	if err := s.check(ctx); err != nil {
		return err
	}

	// The writer: one connection, held for the store's lifetime. FULL makes
	// each commit fsync the WAL before returning (see docs/edge-store.md
	// for why we do not relax this as KubeEdge's PR #2271 did).
	syncPragma := "synchronous(FULL)"
	if s.opts.synchronousNormal {
		syncPragma = "synchronous(NORMAL)"
	}
	wc, err := sqlite.NewConnector(s.dsn(syncPragma))
	if err != nil {
		return fmt.Errorf("edge store %s: %w", s.path, err)
	}
	s.wdb = sql.OpenDB(wc)
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wconn, err = s.wdb.Conn(ctx)
	if err != nil {
		return s.classify(fmt.Errorf("opening edge store %s: %w", s.path, err))
	}
	s.sc = &stmtConn{c: s.wconn, stmts: map[string]*sql.Stmt{}}
	s.w = s.sc
	if s.opts.wrapWriter != nil {
		s.w = s.opts.wrapWriter(s.sc)
	}
	var mode string
	if err := queryRow(ctx, s.wconn, "PRAGMA journal_mode=WAL", nil, &mode); err != nil {
		return s.classify(fmt.Errorf("switching edge store %s to WAL: %w", s.path, err))
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("edge store %s: SQLite refused WAL mode (journal_mode is %q); the file system may not support shared memory, use a local disk", s.path, mode)
	}
	var sync int
	if err := queryRow(ctx, s.wconn, "PRAGMA synchronous", nil, &sync); err != nil {
		return s.classify(fmt.Errorf("edge store %s: %w", s.path, err))
	}
	if sync != 2 && !s.opts.synchronousNormal {
		return fmt.Errorf("edge store %s: synchronous is %d, want 2 (FULL)", s.path, sync)
	}
	from, to, err := migrate(ctx, s.w, s.path, schema(), s.opts.Clock.Now())
	if err != nil {
		return s.classify(err)
	}
	if from != to {
		s.log.Info("edge store schema migrated", "from", from, "to", to)
	}
	if err := s.loadCounters(ctx); err != nil {
		return s.classify(err)
	}

	rc, err := sqlite.NewConnector(s.dsn("query_only(1)"))
	if err != nil {
		return fmt.Errorf("edge store %s: %w", s.path, err)
	}
	s.rdb = &readConn{DB: sql.OpenDB(rc), stmts: map[string]*sql.Stmt{}}
	s.rdb.SetMaxOpenConns(s.opts.Readers)
	s.rdb.SetMaxIdleConns(s.opts.Readers)
	s.rdb.SetConnMaxLifetime(0)
	if err := s.rdb.PingContext(ctx); err != nil {
		return s.classify(fmt.Errorf("opening edge store %s for reading: %w", s.path, err))
	}
	s.metrics.depth.Set(float64(s.depth.Load()))
	s.metrics.revision.Set(float64(s.rev.Load()))
	s.log.Info("edge store opened", "schema", to, "revision", s.rev.Load(), "outbox", s.depth.Load())
	return nil
}

// check opens the file read-only (as a file: URI with mode=ro, so that
// SQLite neither writes nor checkpoints it) and runs the integrity and
// ownership checks.
func (s *Store) check(ctx context.Context) error {
	u := url.URL{Scheme: "file", Path: s.path}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", s.opts.BusyTimeout.Milliseconds()))
	u.RawQuery = q.Encode()
	c, err := sqlite.NewConnector(u.String())
	if err != nil {
		return fmt.Errorf("edge store %s: %w", s.path, err)
	}
	db := sql.OpenDB(c)
	defer func() { _ = db.Close() }()
	rc, err := db.Conn(ctx)
	if err != nil {
		return s.classify(fmt.Errorf("opening edge store %s: %w", s.path, err))
	}
	defer func() { _ = rc.Close() }() // read-only; nothing to lose
	if err := s.checkIntegrity(ctx, rc); err != nil {
		return err
	}
	return s.checkOwner(ctx, rc)
}

// checkIntegrity runs PRAGMA quick_check (every page and index entry is
// read and checked for consistency; O(size), fine for a node's store).
func (s *Store) checkIntegrity(ctx context.Context, c *sql.Conn) error {
	rows, err := c.QueryContext(ctx, "PRAGMA quick_check(20)")
	if err != nil {
		return s.classify(fmt.Errorf("checking edge store %s: %w", s.path, err))
	}
	defer func() { _ = rows.Close() }() // errors surface through rows.Err
	var problems []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return s.classify(fmt.Errorf("checking edge store %s: %w", s.path, err))
		}
		if p != "ok" {
			problems = append(problems, p)
		}
	}
	if err := rows.Err(); err != nil {
		return s.classify(fmt.Errorf("checking edge store %s: %w", s.path, err))
	}
	if len(problems) > 0 {
		return &CorruptError{Path: s.path, Detail: "integrity check failed: " + strings.Join(problems, "; ")}
	}
	return nil
}

// checkOwner refuses an SQLite file that belongs to another application,
// so that a mistyped path never gets our tables added to it.
func (s *Store) checkOwner(ctx context.Context, c *sql.Conn) error {
	var app int64
	if err := queryRow(ctx, c, "PRAGMA application_id", nil, &app); err != nil {
		return s.classify(fmt.Errorf("reading edge store %s: %w", s.path, err))
	}
	if app == applicationID {
		return nil
	}
	if app != 0 {
		return &CorruptError{Path: s.path, Detail: fmt.Sprintf("the file is an SQLite database of another application (application_id %#x)", app)}
	}
	var tables int
	if err := queryRow(ctx, c, "SELECT count(*) FROM sqlite_schema", nil, &tables); err != nil {
		return s.classify(fmt.Errorf("reading edge store %s: %w", s.path, err))
	}
	if tables > 0 {
		return &CorruptError{Path: s.path, Detail: "the file is an SQLite database but not an edge store (it has tables and no Verge application id)"}
	}
	return nil
}

func (s *Store) loadCounters(ctx context.Context) error {
	if err := queryRow(ctx, s.wconn, "SELECT value FROM info WHERE name = 'store_id'", nil, &s.id); err != nil {
		return fmt.Errorf("reading edge store %s: %w", s.path, err)
	}
	var rev int64
	if err := queryRow(ctx, s.wconn, "SELECT value FROM counters WHERE name = 'revision'", nil, &rev); err != nil {
		return fmt.Errorf("reading edge store %s: %w", s.path, err)
	}
	s.rev.Store(rev)
	var depth int64
	if err := queryRow(ctx, s.wconn, "SELECT count(*) FROM outbox", nil, &depth); err != nil {
		return fmt.Errorf("reading edge store %s: %w", s.path, err)
	}
	s.depth.Store(depth)
	return nil
}

// Path is the absolute path of the store file.
func (s *Store) Path() string { return s.path }

// ID identifies this store file; a file created after recovery from
// corruption has a new one.
func (s *Store) ID() string { return s.id }

// Close waits for a write in progress, then closes the file. Watchers
// blocked in Wait return ErrClosed.
func (s *Store) Close() error {
	s.wsem <- struct{}{}
	defer func() { <-s.wsem }()
	if s.closed.Swap(true) {
		return nil
	}
	err := s.closeAll()
	s.mu.Lock()
	close(s.changed)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("closing edge store %s: %w", s.path, err)
	}
	return nil
}

func (s *Store) closeAll() error {
	var errs []error
	if s.rdb != nil {
		errs = append(errs, s.rdb.close())
	}
	if s.sc != nil {
		errs = append(errs, s.sc.close())
	}
	if s.wconn != nil {
		errs = append(errs, s.wconn.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close()) // releases the flock
	}
	return errors.Join(errs...)
}

// writeTx is one write transaction on the writer connection. The function
// passed to write records here what to publish once the commit succeeds;
// nothing in memory changes before that.
type writeTx struct {
	ctx        context.Context
	c          conn
	rev        int64 // revision at the start; advanced by each change
	startRev   int64
	depthDelta int
	evicted    map[string]int
}

// write runs fn in one IMMEDIATE transaction on the single writer
// connection and commits it durably. On any error the transaction is rolled
// back and nothing is published.
func (s *Store) write(ctx context.Context, fn func(tx *writeTx) error) error {
	select {
	case s.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.wsem }()
	if s.closed.Load() {
		return ErrClosed
	}
	start := time.Now()
	tx := &writeTx{ctx: ctx, c: s.w, rev: s.rev.Load()}
	tx.startRev = tx.rev
	err := s.runTx(tx, fn)
	s.metrics.commitSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		s.metrics.commitErrors.Inc()
		return s.classify(err)
	}
	s.publish(tx)
	return nil
}

func (s *Store) runTx(tx *writeTx, fn func(tx *writeTx) error) error {
	if _, err := tx.c.ExecContext(tx.ctx, "BEGIN IMMEDIATE"); err != nil {
		// A failed BEGIN can leave nothing open, but make sure.
		s.rollback(tx)
		return fmt.Errorf("starting a write transaction: %w", err)
	}
	err := fn(tx)
	if err == nil && tx.rev != tx.startRev {
		err = tx.exec("UPDATE counters SET value = ? WHERE name = 'revision'", tx.rev)
		if err == nil {
			err = s.compact(tx)
		}
	}
	if err == nil {
		// Once COMMIT starts it must not be interrupted by the caller's
		// context: its outcome must be known.
		_, err = tx.c.ExecContext(context.WithoutCancel(tx.ctx), "COMMIT")
		if err != nil {
			err = fmt.Errorf("committing: %w", err)
		}
	}
	if err != nil {
		s.rollback(tx)
		return err
	}
	return nil
}

func (s *Store) rollback(tx *writeTx) {
	// A failed rollback leaves the connection inside the transaction; the
	// next BEGIN then fails, and its own rollback tries again.
	if err := rollback(tx.ctx, tx.c); err != nil {
		s.log.Warn("edge store rollback failed", "err", err)
	}
}

// rollback ends the open transaction, if any. SQLite has already rolled
// back after some failures; "no transaction is active" is then expected.
func rollback(ctx context.Context, c conn) error {
	_, err := c.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	if err != nil && strings.Contains(err.Error(), "no transaction is active") {
		return nil
	}
	return err
}

// compact drops changes beyond the retention window.
func (s *Store) compact(tx *writeTx) error {
	upTo := tx.rev - int64(s.opts.ChangeRetention)
	if upTo <= 0 {
		return nil
	}
	res, err := tx.c.ExecContext(tx.ctx, "DELETE FROM changes WHERE revision <= ?", upTo)
	if err != nil {
		return fmt.Errorf("compacting the change log: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return tx.exec("UPDATE counters SET value = ? WHERE name = 'compacted'", upTo)
	}
	return nil
}

func (s *Store) publish(tx *writeTx) {
	if tx.depthDelta != 0 {
		d := s.depth.Add(int64(tx.depthDelta))
		s.metrics.depth.Set(float64(d))
	}
	for kind, n := range tx.evicted {
		s.metrics.evicted.WithLabelValues(kind).Add(float64(n))
		s.log.Debug("edge store outbox evicted oldest entries", "kind", kind, "count", n)
	}
	if tx.rev != tx.startRev {
		s.rev.Store(tx.rev)
		s.metrics.revision.Set(float64(tx.rev))
		s.mu.Lock()
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
}

func (tx *writeTx) exec(query string, args ...any) error {
	_, err := tx.c.ExecContext(tx.ctx, query, args...)
	return err
}

func (tx *writeTx) execN(query string, args ...any) (int64, error) {
	res, err := tx.c.ExecContext(tx.ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// queryRow scans the first row of query into dest; errNoRows when there is
// none.
func queryRow(ctx context.Context, c interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, query string, args []any, dest ...any) error {
	rows, err := c.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }() // errors surface through rows.Err
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// readConn is the read pool with each distinct statement prepared once
// (database/sql re-prepares it on each pool connection as needed).
type readConn struct {
	*sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func (r *readConn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, ok := r.stmts[query]; ok {
		return st, nil
	}
	st, err := r.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	r.stmts[query] = st
	return st, nil
}

// QueryContext runs a cached statement.
func (r *readConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := r.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// rowResult is a *sql.Row or the error that kept it from being one.
type rowResult struct {
	row *sql.Row
	err error
}

func (r rowResult) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.row.Scan(dest...)
}

// QueryRowContext runs a cached single-row statement.
func (r *readConn) QueryRowContext(ctx context.Context, query string, args ...any) rowResult {
	st, err := r.stmt(ctx, query)
	if err != nil {
		return rowResult{err: err}
	}
	return rowResult{row: st.QueryRowContext(ctx, args...)}
}

func (r *readConn) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, st := range r.stmts {
		errs = append(errs, st.Close())
	}
	return errors.Join(append(errs, r.Close())...)
}

// reader returns the read pool, or ErrClosed.
func (s *Store) reader() (*readConn, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return s.rdb, nil
}

// readErr turns a read failure into what callers should see.
func (s *Store) readErr(what string, err error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.classify(fmt.Errorf("edge store %s: %s: %w", s.path, what, err))
}
