// Package hubclient is verge-edge's end of the cloud–edge link. It keeps
// one Sync stream open to the hub (reconnecting with jittered exponential
// back-off), applies what the cloud sends to the edge store in sequence
// order — committing before acknowledging — and drains the store's outbox
// of status reports, deleting each only when the cloud says the API server
// took it (see downsync and upsync for the rules).
package hubclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/verge-edge/verge/internal/edge/cloudconn"
	"github.com/verge-edge/verge/internal/protocol/downsync"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
	"github.com/verge-edge/verge/internal/protocol/upsync"
	"github.com/verge-edge/verge/internal/protocol/wire"
	"github.com/verge-edge/verge/internal/reconnect"
)

// ProtocolVersion is the cloud–edge protocol this client speaks.
const ProtocolVersion = 1

// Object is an object as the store keeps it: raw (uncompressed) data in the
// encoding wire.EncodingFor(resource of Key).
type Object struct {
	Key, UID, ResourceVersion string
	Data                      []byte
}

// Op is one change to apply: an upsert of Object, or a delete of Object.Key
// (only if the stored UID is Object.UID, when set).
type Op struct {
	Delete bool
	Object Object
}

// Report is an outbox entry.
type Report struct {
	ID, Gen   int64
	Key, Kind string
	Data      []byte
}

// Store is what the client needs from the edge store.
type Store interface {
	Inventory(ctx context.Context) ([]downsync.Meta, error)
	Version(ctx context.Context, key string) (downsync.Version, bool, error)
	// Apply commits ops in one durable transaction.
	Apply(ctx context.Context, ops []Op) error
	Pending(ctx context.Context, n int, skip func(id int64) bool) ([]Report, error)
	Ack(ctx context.Context, id, gen int64) error
}

// Config configures the client.
type Config struct {
	// Address of the hub, host:port.
	Address string
	// Credentials returns the current TLS configuration (it changes when
	// the node certificate rotates; each connection asks again).
	Credentials func() (*tls.Config, error)
	// Conn, if set, is the node's connection to the hub, shared with the
	// tunnel client (cloudconn.Dial); Address and Credentials are then
	// unused. Otherwise Start dials its own.
	Conn  *grpc.ClientConn
	Store Store
	// AgentVersion is sent in Hello.
	AgentVersion string
	// Labels are the node's join labels, sent in Hello.
	Labels map[string]string
	// OnConnect runs at the start of each session, after the cloud's
	// Welcome (e.g. to queue a fresh node status).
	OnConnect func()
	// Applied is called after each committed batch with the keys it
	// changed, and with synced=true once the connect-time resync is done.
	Applied func(keys []string, synced bool)
	// Window bounds reports in flight.
	ReportWindow int
	// MinBackoff and MaxBackoff bound reconnect delays.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
	Registry               prometheus.Registerer
}

// Client maintains the link.
type Client struct {
	cfg     Config
	conn    *grpc.ClientConn // set by Start
	metrics *metrics
	kick    chan struct{}

	mu        sync.Mutex
	connected bool
	synced    bool
}

// New returns a client; Start runs it.
func New(cfg Config) *Client {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.ReportWindow <= 0 {
		cfg.ReportWindow = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Applied == nil {
		cfg.Applied = func([]string, bool) {}
	}
	if cfg.OnConnect == nil {
		cfg.OnConnect = func() {}
	}
	return &Client{cfg: cfg, metrics: newMetrics(cfg.Registry), kick: make(chan struct{}, 1)}
}

// Kick says the outbox has something new to send.
func (c *Client) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Connected reports whether a session is open.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// Synced reports whether the current session's resync has been applied.
func (c *Client) Synced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.synced
}

// Start connects and stays connected until ctx ends.
func (c *Client) Start(ctx context.Context) error {
	conn := c.cfg.Conn
	if conn == nil {
		var err error
		if conn, err = cloudconn.Dial(c.cfg.Address, c.cfg.Credentials); err != nil {
			return err
		}
		defer func() { _ = conn.Close() }()
	}
	c.conn = conn
	reconnect.Run(ctx, reconnect.Policy{Min: c.cfg.MinBackoff, Max: c.cfg.MaxBackoff}, func(ctx context.Context) error {
		err := c.session(ctx)
		c.setConnected(false, false)
		return err
	}, func(err error, retryIn time.Duration) {
		c.metrics.reconnects.Inc()
		c.cfg.Logger.Warn("link to the cloud lost; reconnecting", "error", err, "retryIn", retryIn.Round(time.Millisecond))
	})
	return nil
}

func (c *Client) setConnected(connected, synced bool) {
	c.mu.Lock()
	c.connected, c.synced = connected, synced
	c.mu.Unlock()
	v := 0.0
	if connected {
		v = 1
	}
	c.metrics.connected.Set(v)
}

// errSilent ends a session when the cloud stops talking.
var errSilent = errors.New("no heartbeat from the cloud")

// session runs one connection until it fails.
func (c *Client) session(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stream, err := syncpb.NewHubClient(c.conn).Sync(ctx)
	if err != nil {
		return err
	}
	inv, err := c.cfg.Store.Inventory(ctx)
	if err != nil {
		return fmt.Errorf("reading the store's inventory: %w", err)
	}
	hello := &syncpb.Hello{ProtocolVersion: ProtocolVersion, AgentVersion: c.cfg.AgentVersion, NodeLabels: c.cfg.Labels, Inventory: make([]*syncpb.InventoryEntry, 0, len(inv))}
	for _, m := range inv {
		hello.Inventory = append(hello.Inventory, &syncpb.InventoryEntry{Key: m.Key, Uid: m.UID, ResourceVersion: m.ResourceVersion})
	}
	if err := stream.Send(&syncpb.EdgeMessage{Body: &syncpb.EdgeMessage_Hello{Hello: hello}}); err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		if status.Code(err) == codes.FailedPrecondition || status.Code(err) == codes.Unauthenticated || status.Code(err) == codes.PermissionDenied {
			c.cfg.Logger.Error("the cloud refused this node", "error", status.Convert(err).Message())
		}
		return err
	}
	welcome := first.GetWelcome()
	if welcome == nil {
		return errors.New("the cloud's first message was not Welcome")
	}
	heartbeat := time.Duration(welcome.HeartbeatSeconds) * time.Second
	if heartbeat <= 0 {
		heartbeat = 15 * time.Second
	}
	c.setConnected(true, false)
	c.cfg.Logger.Info("connected to the cloud", "node", welcome.NodeName, "inventory", len(inv))
	c.cfg.OnConnect()

	s := &linkSession{c: c, stream: stream, recv: downsync.NewReceiver(), up: upsync.NewSender(c.cfg.ReportWindow),
		heard: make(chan struct{}, 1), results: make(chan []*syncpb.ReportResult, 16)}
	var sendMu sync.Mutex // one writer at a time on the stream
	s.send = func(m *syncpb.EdgeMessage) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	recvErr := make(chan error, 1)
	go func() { recvErr <- s.receive(ctx) }()
	err = s.drain(ctx, heartbeat, recvErr)
	cancel(err)
	return err
}

// linkSession is the state of one connection.
type linkSession struct {
	c       *Client
	stream  syncpb.Hub_SyncClient
	send    func(*syncpb.EdgeMessage) error
	recv    *downsync.Receiver
	up      *upsync.Sender // touched only by drain
	heard   chan struct{}
	results chan []*syncpb.ReportResult
}

// receive applies cloud messages until the stream fails.
func (s *linkSession) receive(ctx context.Context) error {
	for {
		m, err := s.stream.Recv()
		if err != nil {
			return err
		}
		select {
		case s.heard <- struct{}{}:
		default:
		}
		switch b := m.Body.(type) {
		case *syncpb.CloudMessage_Objects:
			if err := s.apply(ctx, b.Objects.Objects); err != nil {
				return err
			}
		case *syncpb.CloudMessage_Results:
			select {
			case s.results <- b.Results.Results:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// apply commits a batch of objects in one transaction, then acknowledges.
func (s *linkSession) apply(ctx context.Context, objs []*syncpb.Object) error {
	ops := make([]Op, 0, len(objs))
	keys := make([]string, 0, len(objs))
	var last uint64
	synced := false
	for _, o := range objs {
		m := downsync.Message{Seq: o.Seq, Key: o.Key, Version: downsync.Version{UID: o.Uid, ResourceVersion: o.ResourceVersion}}
		switch o.Op {
		case syncpb.Op_OP_UPSERT:
			m.Op = downsync.OpUpsert
		case syncpb.Op_OP_DELETE:
			m.Op = downsync.OpDelete
		case syncpb.Op_OP_SYNC_DONE:
			m.Op = downsync.OpSyncDone
		}
		if err := s.recv.Accept(m); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		last = o.Seq
		switch m.Op {
		case downsync.OpSyncDone:
			synced = true
		case downsync.OpDelete:
			ops = append(ops, Op{Delete: true, Object: Object{Key: o.Key, UID: o.Uid}})
			keys = append(keys, o.Key)
		case downsync.OpUpsert:
			if want := wire.EncodingFor(o.Key); want != o.Encoding {
				return status.Errorf(codes.InvalidArgument, "object %s arrived in encoding %v, want %v", o.Key, o.Encoding, want)
			}
			data, err := wire.Raw(o.Data, o.Compressed)
			if err != nil {
				return status.Errorf(codes.InvalidArgument, "object %s: %v", o.Key, err)
			}
			have, held, err := s.c.cfg.Store.Version(ctx, o.Key)
			if err != nil {
				return err
			}
			if !downsync.ShouldApply(have, held, m.Version) {
				continue
			}
			ops = append(ops, Op{Object: Object{Key: o.Key, UID: o.Uid, ResourceVersion: o.ResourceVersion, Data: data}})
			keys = append(keys, o.Key)
		}
	}
	start := time.Now()
	if len(ops) > 0 {
		if err := s.c.cfg.Store.Apply(ctx, ops); err != nil {
			return fmt.Errorf("committing %d objects: %w", len(ops), err)
		}
		s.c.metrics.commitSeconds.Observe(time.Since(start).Seconds())
		s.c.metrics.objectsApplied.Add(float64(len(ops)))
	}
	if synced {
		s.recv.SyncDone()
		s.c.setConnected(true, true)
		s.c.cfg.Logger.Info("resync with the cloud complete")
	}
	s.c.cfg.Applied(keys, synced)
	if ack, ok := s.recv.Committed(last); ok {
		return s.send(&syncpb.EdgeMessage{Body: &syncpb.EdgeMessage_Ack{Ack: &syncpb.Ack{Seq: ack}}})
	}
	return nil
}

// drain sends outbox reports and heartbeats, and handles report results.
func (s *linkSession) drain(ctx context.Context, heartbeat time.Duration, recvErr <-chan error) error {
	ticker := time.NewTicker(heartbeat)
	defer ticker.Stop()
	lastHeard := time.Now()
	var retry <-chan time.Time
	for {
		if err := s.sendReports(ctx); err != nil {
			return err
		}
		if at, ok := s.up.NextRetry(); ok {
			retry = time.After(time.Until(at))
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case err := <-recvErr:
			return err
		case <-s.heard:
			lastHeard = time.Now()
		case <-s.c.kick:
		case <-retry:
			retry = nil
		case results := <-s.results:
			now := time.Now()
			for _, r := range results {
				outcome := upsync.Retry
				switch r.Outcome {
				case syncpb.Outcome_OUTCOME_ACCEPTED:
					outcome = upsync.Accepted
				case syncpb.Outcome_OUTCOME_REJECTED:
					outcome = upsync.Rejected
					s.c.cfg.Logger.Warn("the cloud rejected a report; dropping it", "report", r.Id, "reason", r.Message)
				}
				s.c.metrics.reportResults.WithLabelValues(r.Outcome.String()).Inc()
				if s.up.Answer(r.Id, r.Gen, outcome, time.Duration(r.RetryAfterMs)*time.Millisecond, now) {
					if err := s.c.cfg.Store.Ack(ctx, r.Id, r.Gen); err != nil {
						return fmt.Errorf("removing delivered report %d: %w", r.Id, err)
					}
				}
			}
		case <-ticker.C:
			if time.Since(lastHeard) > 3*heartbeat {
				return errSilent
			}
			if err := s.send(&syncpb.EdgeMessage{Body: &syncpb.EdgeMessage_Heartbeat{Heartbeat: &syncpb.Heartbeat{SentUnixNano: time.Now().UnixNano()}}}); err != nil {
				return err
			}
		}
	}
}

// sendReports sends as many pending reports as the window allows.
func (s *linkSession) sendReports(ctx context.Context) error {
	for s.up.Room() > 0 {
		pending, err := s.c.cfg.Store.Pending(ctx, s.up.Room(), s.up.Skip(time.Now()))
		if err != nil {
			return fmt.Errorf("reading the outbox: %w", err)
		}
		if len(pending) == 0 {
			return nil
		}
		batch := &syncpb.Reports{Reports: make([]*syncpb.Report, 0, len(pending))}
		for _, r := range pending {
			enc, data, compressed, err := wire.EncodeRaw(wire.EncodingForReport(r.Kind), r.Data)
			if err != nil {
				return err
			}
			batch.Reports = append(batch.Reports, &syncpb.Report{Id: r.ID, Gen: r.Gen, Kind: r.Kind, Key: r.Key, Encoding: enc, Data: data, Compressed: compressed})
			s.up.Sent(r.ID, r.Gen)
		}
		if err := s.send(&syncpb.EdgeMessage{Body: &syncpb.EdgeMessage_Reports{Reports: batch}}); err != nil {
			return err
		}
		s.c.metrics.reportsSent.Add(float64(len(batch.Reports)))
	}
	return nil
}
