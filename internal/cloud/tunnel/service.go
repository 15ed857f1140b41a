// Package tunnel is verge-cloud's end of the tunnels to edge nodes, through
// which the API server reaches the kubelet-compatible endpoints each node
// serves (kubectl logs, exec, attach, port-forward) although only the node
// can open connections.
//
// Service is a gRPC service (syncpb.Tunnel) registered on the hub's server,
// so it shares the hub's port and mutual TLS: a node's identity is the
// subject of its verified client certificate, exactly as for the hub, and
// nothing in a message can claim another node. Each node keeps one Control
// stream; DialNode asks the node, on that stream, to open a Data stream for
// a fresh connection id, and pairs the two only if the Data stream comes
// from the same node. A node cannot answer, read or refuse another node's
// connections. Tunnels per node are limited (pending and open together);
// over the limit a dial fails at once with ErrTooManyTunnels.
//
// Proxy is the HTTPS server the API server calls instead of a kubelet: it
// requires a client certificate signed by the cluster's client CA (read
// from the extension-apiserver-authentication ConfigMap and refreshed) and
// forwards each request to the node the named pod is bound to — never
// anywhere else — over a tunnel.
//
// Only the replica a node is connected to can reach it over its tunnel.
// With several verge-cloud replicas, each records in a Directory (an
// annotation on the Node) where a node is connected, and a request that
// arrives at another replica is relayed there over a Relay stream between
// the replicas' hubs (relay.go). Without a Directory such a request fails
// with 502 and a message naming the limit (see docs/logs-exec.md).
package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/verge-edge/verge/internal/cloud/hub"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
	"github.com/verge-edge/verge/internal/protocol/tunnelconn"
)

// ProtocolVersion is the tunnel protocol this side speaks.
const ProtocolVersion = 1

// ErrTooManyTunnels is returned by DialNode when the node has
// Config.MaxTunnelsPerNode tunnels pending or open.
var ErrTooManyTunnels = errors.New("too many tunnels to this node")

// NotConnectedError says the node has no tunnel control stream to this
// replica.
type NotConnectedError struct {
	Node    string
	Replica string
}

func (e *NotConnectedError) Error() string {
	return fmt.Sprintf("node %s is not connected to this verge-cloud replica (%s): it is offline, its tunnel is still being set up, "+
		"or it is connected to another replica (a request must reach the replica the node is connected to; see docs/logs-exec.md)", e.Node, e.Replica)
}

// RefusedError says the node refused to open a tunnel.
type RefusedError struct{ Node, Message string }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("node %s refused the tunnel: %s", e.Node, e.Message)
}

// Config configures the Service.
type Config struct {
	// MaxTunnelsPerNode bounds the connections, pending and open, to one
	// node (default 32).
	MaxTunnelsPerNode int
	// DialTimeout bounds how long DialNode waits for the node to answer
	// (default 15 s).
	DialTimeout time.Duration
	// Replica names this verge-cloud replica in errors (default: the host
	// name).
	Replica string
	// Relay, when its Directory is set, lets a request reach a node
	// connected to another replica.
	Relay    RelayConfig
	Logger   *slog.Logger
	Registry prometheus.Registerer
}

// Service is the gRPC tunnel service and the registry of connected nodes.
type Service struct {
	syncpb.UnimplementedTunnelServer
	cfg     Config
	metrics *metrics

	mu      sync.Mutex
	nodes   map[string]*control
	pending map[uint64]*pendingDial
	active  map[string]int // per node: pending and open tunnels
	nextID  uint64

	peersMu sync.Mutex
	peers   map[string]*grpc.ClientConn // other replicas, by address
}

// control is one node's Control stream.
type control struct {
	node  string
	opens chan uint64 // room for MaxTunnelsPerNode: never blocks
	stop  context.CancelCauseFunc
}

type pendingDial struct {
	node   string
	ctl    *control
	result chan dialResult // room for one
}

type dialResult struct {
	conn *tunnelconn.Conn
	err  error
}

// New returns the service; Register it on the hub's gRPC server.
func New(cfg Config) *Service {
	if cfg.MaxTunnelsPerNode <= 0 {
		cfg.MaxTunnelsPerNode = 32
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 15 * time.Second
	}
	if cfg.Replica == "" {
		cfg.Replica, _ = os.Hostname()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, nodes: map[string]*control{}, pending: map[uint64]*pendingDial{}, active: map[string]int{}, peers: map[string]*grpc.ClientConn{}}
	s.metrics = newMetrics(cfg.Registry, s)
	return s
}

// Register registers the service on a gRPC server (the hub's).
func (s *Service) Register(g *grpc.Server) { syncpb.RegisterTunnelServer(g, s) }

// Connected reports whether node has a control stream here.
func (s *Service) Connected(node string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodes[node] != nil
}

// errReplaced ends a control stream whose node connected again.
var errReplaced = errors.New("replaced by a newer tunnel control stream from the same node")

// Control serves one node's control stream.
func (s *Service) Control(stream syncpb.Tunnel_ControlServer) error {
	node, err := hub.NodeFromContext(stream.Context())
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message on the tunnel control stream must be TunnelHello")
	}
	if hello.ProtocolVersion != ProtocolVersion {
		return status.Errorf(codes.FailedPrecondition, "tunnel protocol version %d is not supported: this verge-cloud speaks %d; upgrade verge-edge", hello.ProtocolVersion, ProtocolVersion)
	}
	ctx, stop := context.WithCancelCause(stream.Context())
	defer stop(nil)
	ctl := &control{node: node, opens: make(chan uint64, s.cfg.MaxTunnelsPerNode), stop: stop}
	s.register(ctl)
	defer s.unregister(ctl)
	if err := stream.Send(&syncpb.TunnelCloudMessage{Body: &syncpb.TunnelCloudMessage_Welcome{Welcome: &syncpb.TunnelWelcome{ProtocolVersion: ProtocolVersion, NodeName: node}}}); err != nil {
		return err
	}
	s.cfg.Logger.Debug("tunnel control stream open", "node", node)
	go s.announce(ctx, node)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				stop(err)
				return
			}
			if r := msg.GetRefuse(); r != nil {
				s.refused(node, r.Id, r.Message)
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			cause := context.Cause(ctx)
			s.cfg.Logger.Debug("tunnel control stream closed", "node", node, "reason", cause)
			if errors.Is(cause, errReplaced) {
				return status.Error(codes.Aborted, cause.Error())
			}
			return nil
		case id := <-ctl.opens:
			if err := stream.Send(&syncpb.TunnelCloudMessage{Body: &syncpb.TunnelCloudMessage_Open{Open: &syncpb.TunnelOpen{Id: id}}}); err != nil {
				return err
			}
		}
	}
}

func (s *Service) register(ctl *control) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.nodes[ctl.node]; old != nil {
		old.stop(errReplaced)
	}
	s.nodes[ctl.node] = ctl
	s.metrics.nodes.Set(float64(len(s.nodes)))
}

// unregister removes ctl (unless replaced) and fails the dials waiting on
// it.
func (s *Service) unregister(ctl *control) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nodes[ctl.node] == ctl {
		delete(s.nodes, ctl.node)
	}
	s.metrics.nodes.Set(float64(len(s.nodes)))
	for id, pd := range s.pending {
		if pd.ctl == ctl {
			s.dropPendingLocked(id, pd)
			pd.result <- dialResult{err: fmt.Errorf("node %s disconnected before the tunnel opened", ctl.node)}
		}
	}
}

// refused fails a pending dial the node refused; ids of other nodes are
// ignored.
func (s *Service) refused(node string, id uint64, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pd := s.pending[id]
	if pd == nil || pd.node != node {
		return
	}
	s.dropPendingLocked(id, pd)
	pd.result <- dialResult{err: &RefusedError{Node: node, Message: msg}}
}

func (s *Service) dropPendingLocked(id uint64, pd *pendingDial) {
	delete(s.pending, id)
	s.releaseLocked(pd.node)
}

func (s *Service) releaseLocked(node string) {
	if s.active[node]--; s.active[node] <= 0 {
		delete(s.active, node)
	}
}

// DialNode opens a connection to the node's kubelet-compatible server.
func (s *Service) DialNode(ctx context.Context, node string) (*tunnelconn.Conn, error) {
	s.mu.Lock()
	ctl := s.nodes[node]
	if ctl == nil {
		s.mu.Unlock()
		s.metrics.dials.WithLabelValues("not_connected").Inc()
		return nil, &NotConnectedError{Node: node, Replica: s.cfg.Replica}
	}
	if s.active[node] >= s.cfg.MaxTunnelsPerNode {
		s.mu.Unlock()
		s.metrics.dials.WithLabelValues("limit").Inc()
		return nil, fmt.Errorf("node %s: %w (%d pending or open; raise tunnel.maxPerNode or wait for some to close)", node, ErrTooManyTunnels, s.cfg.MaxTunnelsPerNode)
	}
	s.nextID++
	id := s.nextID
	pd := &pendingDial{node: node, ctl: ctl, result: make(chan dialResult, 1)}
	s.pending[id] = pd
	s.active[node]++
	ctl.opens <- id // room for every tunnel the limit allows
	s.mu.Unlock()

	timer := time.NewTimer(s.cfg.DialTimeout)
	defer timer.Stop()
	var why error
	select {
	case r := <-pd.result:
		if r.err != nil {
			s.metrics.dials.WithLabelValues(dialOutcome(r.err)).Inc()
			return nil, r.err
		}
		s.metrics.dials.WithLabelValues("ok").Inc()
		return r.conn, nil
	case <-ctx.Done():
		why = ctx.Err()
	case <-timer.C:
		why = fmt.Errorf("node %s did not open the tunnel within %s", node, s.cfg.DialTimeout)
	}
	s.mu.Lock()
	if _, ok := s.pending[id]; ok {
		s.dropPendingLocked(id, pd)
		s.mu.Unlock()
	} else {
		// Paired (or failed) meanwhile: the result is there or coming.
		s.mu.Unlock()
		if r := <-pd.result; r.conn != nil {
			r.conn.Abort()
		}
	}
	s.metrics.dials.WithLabelValues("timeout").Inc()
	return nil, why
}

// Dial opens a connection to node for ProxyConfig.Dial: over its tunnel
// here, or relayed through the replica it is connected to (Config.Relay).
// A failed dial returns a nil net.Conn, not a nil *tunnelconn.Conn in one.
func (s *Service) Dial(ctx context.Context, node string) (net.Conn, error) {
	conn, err := s.dialAnywhere(ctx, node)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

func dialOutcome(err error) string {
	var refused *RefusedError
	if errors.As(err, &refused) {
		return "refused"
	}
	return "disconnected"
}

// Data serves one tunnelled connection from a node.
func (s *Service) Data(stream syncpb.Tunnel_DataServer) error {
	node, err := hub.NodeFromContext(stream.Context())
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if first.OpenId == 0 || len(first.Data) > 0 || first.Close || first.CloseWrite {
		return status.Error(codes.InvalidArgument, "the first frame of a tunnel must carry only open_id")
	}
	id := first.OpenId
	s.mu.Lock()
	pd := s.pending[id]
	switch {
	case pd == nil:
		s.mu.Unlock()
		return status.Errorf(codes.NotFound, "no tunnel %d is waiting (it timed out or was cancelled)", id)
	case pd.node != node:
		// Leave it pending: the right node may still answer.
		s.mu.Unlock()
		s.cfg.Logger.Warn("a node tried to answer another node's tunnel", "node", node, "owner", pd.node, "tunnel", id)
		return status.Errorf(codes.PermissionDenied, "tunnel %d is not for node %s", id, node)
	}
	delete(s.pending, id)
	end := newServerEnd(stream, "verge-cloud", fmt.Sprintf("node %s tunnel %d", node, id))
	pd.result <- dialResult{conn: end.conn}
	s.metrics.open.Inc()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.releaseLocked(node)
		s.mu.Unlock()
		s.metrics.open.Dec()
	}()

	return end.wait(stream.Context())
}

// serverEnd is the connection carried by a stream this side serves (Data,
// Relay): the RPC lasts as long as the connection.
type serverEnd struct {
	conn              *tunnelconn.Conn
	finished, aborted chan struct{}
}

func newServerEnd(stream tunnelconn.Stream, local, remote string) *serverEnd {
	e := &serverEnd{finished: make(chan struct{}), aborted: make(chan struct{})}
	e.conn = tunnelconn.New(stream, tunnelconn.Config{
		Finish: sync.OnceFunc(func() { close(e.finished) }),
		Abort:  sync.OnceFunc(func() { close(e.aborted) }),
		Local:  tunnelconn.Addr(local),
		Remote: tunnelconn.Addr(remote),
	})
	return e
}

// wait returns when the RPC may end: nil once the connection closed or the
// stream ended, Aborted after a reset, and the RPC's error if it ended
// first (the connection and also are aborted then).
func (e *serverEnd) wait(ctx context.Context, also ...*tunnelconn.Conn) error {
	select {
	case <-e.finished:
		return nil
	case <-e.conn.Done():
		return nil
	case <-e.aborted:
		return status.Error(codes.Aborted, "connection reset by verge-cloud")
	case <-ctx.Done():
		e.conn.Abort()
		for _, c := range also {
			c.Abort()
		}
		return ctx.Err()
	}
}
