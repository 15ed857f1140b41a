// Package tdenginesink stores samples in TDengine through its REST API
// (taosAdapter, POST /rest/sql/<db>), the dbMethod.TDEngine destination of
// a device property. It needs no TDengine client library.
//
// Layout (upstream's, made to work): one super table per device named
// "<namespace>/<device>" with columns ts, deviceid, propertyname, data and
// type, and one table per property named "<namespace>/<device>/<property>"
// tagged with the property name. Upstream named the property table after
// the property alone, so two devices with a "temperature" property
// collided, and it left '/' unquoted, which TDengine rejects. Names are
// back-quoted; '.' (which TDengine never allows) becomes '_'; names longer
// than 192 bytes, or property names with characters TDengine cannot hold,
// end in "~" and a hash. A batch is one INSERT covering every table;
// TDengine keeps one row per table and timestamp, so a batch written twice
// is stored once.
package tdenginesink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/sinkutil"
	"github.com/verge-edge/verge/pkg/mapper/sink/secret"
)

// Config mirrors dbMethod.TDEngine.TDEngineClientConfig of the Device CRD.
type Config struct {
	// Addr is taosAdapter's host:port (usually port 6041), optionally
	// with an http:// or https:// scheme.
	Addr string `json:"addr,omitempty"`
	// DBName is an existing database.
	DBName string `json:"dbName,omitempty"`
}

// Options are the settings that are not in the CRD.
type Options struct {
	// Username and Password for HTTP basic authentication; the USERNAME
	// and PASSWORD environment variables (as upstream) when they name no
	// source. Read again for every request.
	Username, Password secret.Credential
	// LookupEnv reads environment variables; os.LookupEnv when nil.
	LookupEnv secret.LookupEnv
	// Timeout bounds one request; default 10 s.
	Timeout time.Duration
	// MaxStatementBytes splits a batch into several INSERTs; default
	// 512 KiB (TDengine accepts up to 1 MiB).
	MaxStatementBytes int
	// Transport replaces the default keep-alive transport.
	Transport http.RoundTripper
	// Logger receives skipped samples; discarded when nil.
	Logger *slog.Logger
	// Now stamps samples that carry no timestamp; time.Now when nil.
	Now func() time.Time
}

// Default credential sources.
var (
	DefaultUsername = secret.Credential{Env: "USERNAME"}
	DefaultPassword = secret.Credential{Env: "PASSWORD"}
)

var dbNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// Sink talks to one database. It is safe for concurrent use.
type Sink struct {
	base   string // scheme://host:port
	sqlURL string
	db     string
	opts   Options
	client *http.Client

	mu      sync.Mutex
	created map[string]bool // super tables known to exist
	skipped map[string]bool
}

var _ sink.Sink = (*Sink)(nil)

// New validates cfg and checks that the credentials are set. It does not
// connect.
func New(cfg Config, opts Options) (*Sink, error) {
	addr := strings.TrimSpace(cfg.Addr)
	if addr == "" {
		return nil, errors.New("dbMethod.TDEngine: addr is empty: set TDEngineClientConfig.addr to taosAdapter's host:port, e.g. 127.0.0.1:6041")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("dbMethod.TDEngine: addr %q is not host:port or an http(s) URL without a path", cfg.Addr)
	}
	if !dbNameRE.MatchString(cfg.DBName) {
		return nil, fmt.Errorf("dbMethod.TDEngine: dbName %q is not a TDengine database name (letters, digits and '_', not starting with a digit, at most 64)", cfg.DBName)
	}
	opts.Username = opts.Username.Or(DefaultUsername)
	opts.Password = opts.Password.Or(DefaultPassword)
	if _, _, err := credentials(opts); err != nil {
		return nil, fmt.Errorf("tdengine sink: %w", err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxStatementBytes <= 0 {
		opts.MaxStatementBytes = 512 << 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	rt := opts.Transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 4
		rt = t
	}
	base := u.Scheme + "://" + u.Host
	return &Sink{
		base:    base,
		sqlURL:  base + "/rest/sql/" + cfg.DBName,
		db:      cfg.DBName,
		opts:    opts,
		client:  &http.Client{Transport: rt, Timeout: opts.Timeout},
		created: map[string]bool{},
		skipped: map[string]bool{},
	}, nil
}

func credentials(opts Options) (string, string, error) {
	user, err := opts.Username.Require(opts.LookupEnv, "the TDengine user name")
	if err != nil {
		return "", "", err
	}
	pass, err := opts.Password.Require(opts.LookupEnv, "the TDengine password")
	if err != nil {
		return "", "", err
	}
	return user, pass, nil
}

// Name identifies the destination.
func (s *Sink) Name() string { return "tdengine " + s.base + "/" + s.db }

type tableRows struct {
	st, sub, property string
	values            []string // "(ts, deviceid, propertyname, data, type)"
}

// plan renders the batch: the super tables not yet known to exist and
// the INSERT statements, each at most MaxStatementBytes unless one row
// alone is longer.
func (s *Sink) plan(batch []sink.Sample) (superTables, inserts []string) {
	var order []string
	tables := map[string]*tableRows{}
	for _, smp := range batch {
		if why := s.unfit(smp); why != "" {
			s.skip(smp, why)
			continue
		}
		sub := subTableName(smp.Namespace, smp.Device, smp.Property)
		tr, ok := tables[sub]
		if !ok {
			tr = &tableRows{st: superTableName(smp.Namespace, smp.Device), sub: sub, property: smp.Property}
			tables[sub] = tr
			order = append(order, sub)
		}
		tr.values = append(tr.values, "("+strings.Join([]string{
			timeLiteral(sinkutil.Time(smp, s.opts.Now)),
			literal(smp.Namespace + "/" + smp.Device),
			literal(smp.Property),
			literal(smp.Value),
			literal(smp.Type),
		}, ", ")+")")
	}
	seen := map[string]bool{}
	s.mu.Lock()
	for _, sub := range order {
		st := tables[sub].st
		if !s.created[st] && !seen[st] {
			seen[st] = true
			superTables = append(superTables, st)
		}
	}
	s.mu.Unlock()

	const head = "INSERT INTO"
	var b strings.Builder
	rows := 0 // rows in the statement being built
	for _, sub := range order {
		tr := tables[sub]
		clause := " " + ident(tr.sub) + " USING " + ident(tr.st) + " TAGS (" + literal(tr.property) + ") VALUES"
		inStmt := false // clause written into the current statement
		for _, v := range tr.values {
			need := 1 + len(v)
			if !inStmt {
				need += len(clause)
			}
			if rows > 0 && b.Len()+need > s.opts.MaxStatementBytes {
				inserts = append(inserts, b.String())
				b.Reset()
				rows, inStmt = 0, false
			}
			if b.Len() == 0 {
				b.WriteString(head)
			}
			if !inStmt {
				b.WriteString(clause)
				inStmt = true
			}
			b.WriteByte(' ')
			b.WriteString(v)
			rows++
		}
	}
	if rows > 0 {
		inserts = append(inserts, b.String())
	}
	return superTables, inserts
}

// unfit says why a sample does not fit the super table's columns, or "".
func (s *Sink) unfit(smp sink.Sample) string {
	switch {
	case len(smp.Namespace)+1+len(smp.Device) > deviceIDLen:
		return fmt.Sprintf("namespace/device is longer than %d bytes", deviceIDLen)
	case len(smp.Property) > propertyLen:
		return fmt.Sprintf("the property name is longer than %d bytes", propertyLen)
	case len(smp.Value) > dataLen:
		return fmt.Sprintf("the value is longer than %d bytes", dataLen)
	case len(smp.Type) > typeLen:
		return fmt.Sprintf("the type is longer than %d bytes", typeLen)
	case strings.ContainsRune(smp.Value, 0):
		return "the value contains a NUL byte"
	}
	return ""
}

func (s *Sink) skip(smp sink.Sample, why string) {
	key := smp.Namespace + "/" + smp.Device + "/" + smp.Property
	s.mu.Lock()
	first := !s.skipped[key]
	s.skipped[key] = true
	s.mu.Unlock()
	if first {
		s.opts.Logger.Warn("tdengine sample skipped", "device", smp.Namespace+"/"+smp.Device, "property", smp.Property, "reason", why)
	}
}

// Write creates missing super tables and inserts the batch. If a super
// table was dropped behind its back, it creates it again and retries once.
func (s *Sink) Write(ctx context.Context, batch []sink.Sample) error {
	err := s.write(ctx, batch)
	var te *Error
	if errors.As(err, &te) && te.missingTable() {
		s.mu.Lock()
		clear(s.created)
		s.mu.Unlock()
		err = s.write(ctx, batch)
	}
	return err
}

func (s *Sink) write(ctx context.Context, batch []sink.Sample) error {
	superTables, inserts := s.plan(batch)
	for _, st := range superTables {
		if err := s.exec(ctx, createSuperTable(st)); err != nil {
			return err
		}
		s.mu.Lock()
		s.created[st] = true
		s.mu.Unlock()
	}
	for _, q := range inserts {
		if err := s.exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// Error is an error TDengine reported for a statement.
type Error struct {
	Status int // HTTP status
	Code   int // TDengine error code
	Desc   string
	hint   string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("tdengine: HTTP %d, code 0x%04x: %s", e.Status, e.Code, e.Desc)
	if e.hint != "" {
		msg += " (" + e.hint + ")"
	}
	return msg
}

func (e *Error) missingTable() bool {
	switch e.Code {
	case 0x2603, 0x2662, 0x0362: // table / super table does not exist
		return true
	}
	return strings.Contains(strings.ToLower(e.Desc), "table does not exist") ||
		strings.Contains(strings.ToLower(e.Desc), "stable not exist")
}

type response struct {
	Code *int   `json:"code"`
	Desc string `json:"desc"`
}

func (s *Sink) exec(ctx context.Context, stmt string) error {
	user, pass, err := credentials(s.opts)
	if err != nil {
		return fmt.Errorf("tdengine sink: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.sqlURL, strings.NewReader(stmt))
	if err != nil {
		return fmt.Errorf("tdengine sink: %w", err)
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("User-Agent", "verge-mapper")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("tdengine sink: POST %s: %w", s.sqlURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("tdengine sink: reading the reply from %s: %w", s.sqlURL, err)
	}
	var r response
	jsonErr := json.Unmarshal(bytes.TrimSpace(body), &r)
	if resp.StatusCode/100 == 2 && jsonErr == nil && r.Code != nil && *r.Code == 0 {
		return nil
	}
	if jsonErr != nil || r.Code == nil {
		return fmt.Errorf("tdengine sink: POST %s: %s: %s", s.sqlURL, resp.Status, sinkutil.Snippet(body, 512))
	}
	e := &Error{Status: resp.StatusCode, Code: *r.Code, Desc: r.Desc}
	low := strings.ToLower(r.Desc)
	switch {
	case resp.StatusCode == http.StatusUnauthorized || strings.Contains(low, "auth"):
		e.hint = fmt.Sprintf("check the user in %s and the password in %s", s.opts.Username, s.opts.Password)
	case strings.Contains(low, "database not exist") || strings.Contains(low, "db not exist"):
		e.hint = fmt.Sprintf("create database %s or fix TDEngineClientConfig.dbName", s.db)
	}
	return fmt.Errorf("tdengine sink: %w", e)
}

// Close drops idle connections.
func (s *Sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
