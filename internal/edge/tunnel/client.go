// Package tunnel is verge-edge's end of the tunnels from verge-cloud (see
// tunnel.proto): it keeps a Control stream open to the hub's port with the
// node's certificate, opens a Data stream for each connection the cloud
// asks for, and serves those connections with an http.Handler — the
// kubelet-compatible endpoints of package kubeletapi — as if they had been
// accepted from a socket. The node listens on no port.
//
// The Control stream reconnects with jittered exponential back-off over the
// node's one connection to the hub, shared with the sync stream (package
// cloudconn reads the credentials at every handshake, so a rotated
// certificate is picked up); connections of a lost session fail.
// At most ClientConfig.MaxTunnels connections are served at once; the cloud
// is told why further ones are refused.
package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/verge-edge/verge/internal/edge/cloudconn"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
	"github.com/verge-edge/verge/internal/protocol/tunnelconn"
	"github.com/verge-edge/verge/internal/reconnect"
)

// ProtocolVersion is the tunnel protocol this side speaks.
const ProtocolVersion = 1

// ClientConfig configures the edge's tunnel client.
type ClientConfig struct {
	// Address of the hub, host:port (tunnels share its port).
	Address string
	// Credentials returns the node's current TLS configuration, as for
	// the hub client (asked again on every reconnect).
	Credentials func() (*tls.Config, error)
	// Conn, if set, is the node's connection to the hub shared with the
	// hub client (cloudconn.Dial); Address and Credentials are then
	// unused. Otherwise Start dials its own.
	Conn *grpc.ClientConn
	// Handler serves the tunnelled connections (kubeletapi.New).
	Handler http.Handler
	// MaxTunnels bounds connections served at once (default 32).
	MaxTunnels int
	// MinBackoff and MaxBackoff bound reconnect delays (default 1 s, 1 min).
	MinBackoff, MaxBackoff time.Duration
	// CloseLinger bounds how long a closed connection waits for the cloud
	// to finish before the stream is cancelled (default 30 s).
	CloseLinger time.Duration
	Logger      *slog.Logger
	Registry    prometheus.Registerer
}

// Client keeps the node's tunnel control stream up.
type Client struct {
	cfg     ClientConfig
	metrics *metrics
	conns   chan net.Conn

	mu        sync.Mutex
	connected bool
}

// NewClient returns a client; Start runs it.
func NewClient(cfg ClientConfig) *Client {
	if cfg.MaxTunnels <= 0 {
		cfg.MaxTunnels = 32
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.CloseLinger <= 0 {
		cfg.CloseLinger = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, metrics: newMetrics(cfg.Registry), conns: make(chan net.Conn)}
}

// Connected reports whether the control stream is open.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

func (c *Client) setConnected(v bool) {
	c.mu.Lock()
	c.connected = v
	c.mu.Unlock()
	c.metrics.connected.Set(map[bool]float64{false: 0, true: 1}[v])
}

// Start serves tunnels until ctx ends.
func (c *Client) Start(ctx context.Context) error {
	if c.cfg.Handler == nil {
		return errors.New("tunnel client: a Handler is required")
	}
	conn := c.cfg.Conn
	if conn == nil {
		var err error
		if conn, err = cloudconn.Dial(c.cfg.Address, c.cfg.Credentials); err != nil {
			return fmt.Errorf("tunnel client: %w", err)
		}
		defer func() { _ = conn.Close() }()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l := &listener{conns: c.conns, done: ctx.Done(), closed: make(chan struct{})}
	srv := &http.Server{
		Handler:           c.cfg.Handler,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(c.cfg.Logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(l) }()
	defer func() {
		_ = srv.Close()
		<-served
	}()

	reconnect.Run(ctx, reconnect.Policy{Min: c.cfg.MinBackoff, Max: c.cfg.MaxBackoff}, func(ctx context.Context) error {
		err := c.session(ctx, conn)
		c.setConnected(false)
		return err
	}, func(err error, retryIn time.Duration) {
		c.metrics.reconnects.Inc()
		c.cfg.Logger.Warn("tunnel control stream lost; reconnecting", "error", err, "retryIn", retryIn.Round(time.Millisecond))
	})
	return nil
}

// session runs one control stream until it fails.
func (c *Client) session(ctx context.Context, conn *grpc.ClientConn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	client := syncpb.NewTunnelClient(conn)
	ctl, err := client.Control(ctx)
	if err != nil {
		return err
	}
	if err := ctl.Send(&syncpb.TunnelEdgeMessage{Body: &syncpb.TunnelEdgeMessage_Hello{Hello: &syncpb.TunnelHello{ProtocolVersion: ProtocolVersion}}}); err != nil {
		return err
	}
	first, err := ctl.Recv()
	if err != nil {
		return err
	}
	if first.GetWelcome() == nil {
		return errors.New("the cloud's first tunnel message was not TunnelWelcome")
	}
	c.setConnected(true)
	c.cfg.Logger.Info("tunnel control stream open", "node", first.GetWelcome().NodeName)

	var sendMu sync.Mutex
	refuse := func(id uint64, msg string) {
		sendMu.Lock()
		defer sendMu.Unlock()
		_ = ctl.Send(&syncpb.TunnelEdgeMessage{Body: &syncpb.TunnelEdgeMessage_Refuse{Refuse: &syncpb.TunnelRefuse{Id: id, Message: msg}}})
	}
	slots := make(chan struct{}, c.cfg.MaxTunnels)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for {
		msg, err := ctl.Recv()
		if err != nil {
			return err
		}
		open := msg.GetOpen()
		if open == nil {
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			c.metrics.tunnels.WithLabelValues("refused").Inc()
			refuse(open.Id, fmt.Sprintf("the node already serves %d tunnels, its limit", c.cfg.MaxTunnels))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.serve(ctx, client, open.Id, func() { <-slots }, refuse)
		}()
	}
}

// serve opens the Data stream for tunnel id and hands it to the HTTP
// server as an accepted connection.
func (c *Client) serve(ctx context.Context, client syncpb.TunnelClient, id uint64, release func(), refuse func(uint64, string)) {
	sctx, cancel := context.WithCancel(ctx)
	stream, err := client.Data(sctx)
	if err == nil {
		err = stream.Send(&syncpb.TunnelFrame{OpenId: id})
	}
	if err != nil {
		cancel()
		release()
		c.metrics.tunnels.WithLabelValues("failed").Inc()
		refuse(id, "opening the data stream: "+err.Error())
		return
	}
	var conn *tunnelconn.Conn
	closed := make(chan struct{})
	markClosed := sync.OnceFunc(func() { close(closed) })
	conn = tunnelconn.New(stream, tunnelconn.Config{
		Finish: func() {
			markClosed()
			_ = stream.CloseSend()
			go func() {
				select {
				case <-conn.Done():
				case <-time.After(c.cfg.CloseLinger):
				}
				cancel()
			}()
		},
		Abort: func() {
			markClosed()
			cancel()
		},
		Local:  tunnelconn.Addr("verge-edge"),
		Remote: tunnelconn.Addr(fmt.Sprintf("verge-cloud tunnel %d", id)),
	})
	c.metrics.tunnels.WithLabelValues("opened").Inc()
	c.metrics.open.Inc()
	select {
	case c.conns <- conn:
	case <-ctx.Done():
		conn.Abort()
	}
	// The slot is free once the server closed the connection (or the
	// stream ended under it).
	select {
	case <-closed:
	case <-conn.Done():
		cancel()
	}
	c.metrics.open.Dec()
	release()
}

// listener hands tunnelled connections to an http.Server.
type listener struct {
	conns     chan net.Conn
	done      <-chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *listener) Addr() net.Addr { return tunnelconn.Addr("verge-edge tunnels") }
