// Package mysqlsink stores samples in MySQL or MariaDB, the
// dbMethod.mysql destination of a device property.
//
// Layout (upstream's table naming and columns, so existing queries keep
// working): one table per property named "<namespace>/<device>/<property>"
// with columns id (auto-increment key), ts (the sample time, UTC) and
// field (the value as text). Tables are created when missing. Unlike
// upstream, ts keeps milliseconds and is unique, and rows are written
// with "ON DUPLICATE KEY UPDATE", so a batch the SDK delivers twice is
// stored once. A batch is one transaction of multi-row, parameterized
// INSERTs.
//
// MySQL limits table names to 64 characters; a longer name is cut to 55
// and ends in "~" and 8 hex digits of its SHA-256, so it stays unique.
package mysqlsink

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/sinkutil"
	"github.com/verge-edge/verge/pkg/mapper/sink/secret"
)

// Config mirrors dbMethod.mysql.mysqlClientConfig of the Device CRD.
type Config struct {
	// Addr is the server's host:port, e.g. "127.0.0.1:3306".
	Addr string `json:"addr,omitempty"`
	// Database must exist; the sink creates tables in it.
	Database string `json:"database,omitempty"`
	// UserName to log in as; the password comes from Options.Password.
	UserName string `json:"userName,omitempty"`
}

// Options are the settings that are not in the CRD.
type Options struct {
	// Password; the PASSWORD environment variable (as upstream) when it
	// names no source. It is read again for every new connection.
	Password secret.Credential
	// LookupEnv reads environment variables; os.LookupEnv when nil.
	LookupEnv secret.LookupEnv
	// TLSConfig enables TLS to the server.
	TLSConfig *tls.Config
	// MaxOpenConns caps the pool; default 4.
	MaxOpenConns int
	// DialTimeout bounds a new connection; default 5 s.
	DialTimeout time.Duration
	// Logger receives the driver's messages at debug level.
	Logger *slog.Logger
	// Now stamps samples that carry no timestamp; time.Now when nil.
	Now func() time.Time
}

// DefaultPassword is where the password is read from by default.
var DefaultPassword = secret.Credential{Env: "PASSWORD"}

// maxRowsPerInsert keeps statements well under max_allowed_packet and the
// 65535-placeholder limit.
const maxRowsPerInsert = 500

// Sink is a connection pool to one database. It is safe for concurrent use.
type Sink struct {
	addr, database string
	opts           Options
	db             *sql.DB

	mu      sync.Mutex
	created map[string]bool // tables known to exist
}

var _ sink.Sink = (*Sink)(nil)

// New validates cfg and builds the pool. It does not connect: the first
// Write does, so a mapper starts while the database is down.
func New(cfg Config, opts Options) (*Sink, error) {
	switch {
	case cfg.Addr == "":
		return nil, errors.New("dbMethod.mysql: addr is empty: set mysqlClientConfig.addr to host:port, e.g. 127.0.0.1:3306")
	case cfg.Database == "":
		return nil, errors.New("dbMethod.mysql: database is empty: set mysqlClientConfig.database to an existing database")
	case cfg.UserName == "":
		return nil, errors.New("dbMethod.mysql: userName is empty: set mysqlClientConfig.userName (the password comes from the PASSWORD environment variable)")
	}
	if _, port, err := net.SplitHostPort(cfg.Addr); err != nil || port == "" {
		return nil, fmt.Errorf("dbMethod.mysql: addr %q is not host:port (e.g. 127.0.0.1:3306)", cfg.Addr)
	}
	opts.Password = opts.Password.Or(DefaultPassword)
	if opts.MaxOpenConns <= 0 {
		opts.MaxOpenConns = 4
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Sink{addr: cfg.Addr, database: cfg.Database, opts: opts, created: map[string]bool{}}

	mc := mysql.NewConfig()
	mc.Net = "tcp"
	mc.Addr = cfg.Addr
	mc.DBName = cfg.Database
	mc.User = cfg.UserName
	mc.Loc = time.UTC
	mc.ParseTime = true
	mc.Timeout = opts.DialTimeout
	mc.ReadTimeout = 30 * time.Second
	mc.WriteTimeout = 30 * time.Second
	mc.TLS = opts.TLSConfig
	mc.Logger = driverLogger{opts.Logger}
	err := mc.Apply(mysql.BeforeConnect(func(_ context.Context, c *mysql.Config) error {
		pw, _, err := s.opts.Password.Resolve(s.opts.LookupEnv)
		if err != nil {
			return err
		}
		c.Passwd = pw
		return nil
	}))
	if err != nil {
		return nil, fmt.Errorf("mysql sink: %w", err)
	}
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("mysql sink: %w", err)
	}
	s.db = sql.OpenDB(conn)
	s.db.SetMaxOpenConns(opts.MaxOpenConns)
	s.db.SetMaxIdleConns(min(2, opts.MaxOpenConns))
	s.db.SetConnMaxLifetime(5 * time.Minute)
	return s, nil
}

type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Print(v ...any) { d.l.Debug("mysql driver", "msg", fmt.Sprint(v...)) }

// Name identifies the destination.
func (s *Sink) Name() string { return "mysql " + s.addr + "/" + s.database }

// TableName is the table a property's samples go to.
func TableName(namespace, device, property string) string {
	name := namespace + "/" + device + "/" + property
	if utf8.RuneCountInString(name) <= 64 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	runes := []rune(name)
	return string(runes[:55]) + "~" + hex.EncodeToString(sum[:4])
}

func quoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

type row struct {
	ts    time.Time
	value string
}

// Write stores the batch in one transaction.
func (s *Sink) Write(ctx context.Context, batch []sink.Sample) error {
	if len(batch) == 0 {
		return nil
	}
	var tables []string
	rows := map[string][]row{}
	for _, smp := range batch {
		t := TableName(smp.Namespace, smp.Device, smp.Property)
		if _, ok := rows[t]; !ok {
			tables = append(tables, t)
		}
		rows[t] = append(rows[t], row{sinkutil.Time(smp, s.opts.Now).UTC().Truncate(time.Millisecond), smp.Value})
	}
	err := s.write(ctx, tables, rows)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1146 { // no such table: dropped behind our back
		s.mu.Lock()
		clear(s.created)
		s.mu.Unlock()
		err = s.write(ctx, tables, rows)
	}
	if err != nil {
		return s.explain(err)
	}
	return nil
}

func (s *Sink) write(ctx context.Context, tables []string, rows map[string][]row) error {
	// CREATE TABLE commits implicitly, so tables are made before the
	// transaction.
	for _, t := range tables {
		if err := s.ensureTable(ctx, t); err != nil {
			return err
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for _, t := range tables {
		rs := rows[t]
		for len(rs) > 0 {
			n := min(len(rs), maxRowsPerInsert)
			q, args := insertStatement(t, rs[:n])
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return err
			}
			rs = rs[n:]
		}
	}
	return tx.Commit()
}

func insertStatement(table string, rs []row) (string, []any) {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(quoteIdent(table))
	b.WriteString(" (ts, field) VALUES ")
	args := make([]any, 0, 2*len(rs))
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?)")
		args = append(args, r.ts, r.value)
	}
	b.WriteString(" ON DUPLICATE KEY UPDATE field = VALUES(field)")
	return b.String(), args
}

func (s *Sink) ensureTable(ctx context.Context, table string) error {
	s.mu.Lock()
	ok := s.created[table]
	s.mu.Unlock()
	if ok {
		return nil
	}
	q := "CREATE TABLE IF NOT EXISTS " + quoteIdent(table) + " (" +
		"id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, " +
		"ts DATETIME(3) NOT NULL, " +
		"field TEXT, " +
		"UNIQUE KEY ts (ts)" +
		") DEFAULT CHARSET=utf8mb4"
	if _, err := s.db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("creating table %s: %w", table, err)
	}
	s.mu.Lock()
	s.created[table] = true
	s.mu.Unlock()
	return nil
}

// explain adds what to do to the server errors a user can fix.
func (s *Sink) explain(err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1045:
			return fmt.Errorf("mysql sink: %s refused the login: check mysqlClientConfig.userName and the password in %s: %w", s.addr, s.opts.Password, err)
		case 1049:
			return fmt.Errorf("mysql sink: database %q does not exist on %s: create it or fix mysqlClientConfig.database: %w", s.database, s.addr, err)
		case 1044, 1142:
			return fmt.Errorf("mysql sink: the user may not create tables or write rows in %q: grant CREATE, INSERT and UPDATE on it: %w", s.database, err)
		}
	}
	return fmt.Errorf("mysql sink: writing to %s/%s: %w", s.addr, s.database, err)
}

// Close closes the pool.
func (s *Sink) Close() error { return s.db.Close() }
