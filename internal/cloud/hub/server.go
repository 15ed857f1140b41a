// Package hub is verge-cloud's end of the cloud–edge link: a gRPC server
// edge nodes connect to over mutually authenticated TLS.
//
// A node's identity is the subject of its client certificate (see
// nodecert); no message field can claim another node. Each connected node
// gets a session that runs the downsync state machine over the node's view
// (nodeview) and hands its status reports to a bounded worker pool (Reports
// authorizes and applies them). A second connection for the same node
// replaces the first. The hub keeps no state of its own beyond its sessions:
// any replica can serve any node.
package hub

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/kubernetes"

	"github.com/verge-edge/verge/internal/cloud/nodeview"
	"github.com/verge-edge/verge/internal/nodecert"
	"github.com/verge-edge/verge/internal/pki"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
)

// ProtocolVersion is the cloud–edge protocol this hub speaks.
const ProtocolVersion = 1

// Reports authorizes and applies status reports from nodes. Apply must be
// safe for concurrent use; it returns the outcome for the edge, a message,
// and for Retry how long to wait.
type Reports interface {
	Apply(ctx context.Context, node string, r *syncpb.Report) (syncpb.Outcome, string, time.Duration)
}

// Nodes hears about node sessions, for node lifecycle (Node object, Lease).
type Nodes interface {
	Connected(ctx context.Context, node string, hello *syncpb.Hello)
	Heartbeat(node string)
	Disconnected(node string)
}

// Config configures the hub.
type Config struct {
	// Listen is the address to serve on, e.g. ":10000".
	Listen string
	// AdvertiseNames are extra DNS names or IPs for the serving certificate.
	AdvertiseNames []string
	CA             *pki.CA
	// NodeCertValidity is the lifetime of certificates signed for nodes.
	NodeCertValidity time.Duration
	// Heartbeat is how often both sides send heartbeats; a session silent
	// for three of them is closed.
	Heartbeat time.Duration
	// Window is the most objects unacknowledged per node.
	Window int
	// BatchSize is the most objects per Objects message.
	BatchSize int
	// ReportWorkers apply reports concurrently; ReportQueue bounds the
	// reports waiting for them (beyond it, nodes are told to retry).
	ReportWorkers, ReportQueue int

	Kube    kubernetes.Interface
	View    *nodeview.View
	Reports Reports
	Nodes   Nodes
	// Services register further gRPC services on the hub's server (same
	// port and TLS; e.g. the tunnel service).
	Services []func(*grpc.Server)

	Logger   *slog.Logger
	Registry prometheus.Registerer
	Now      func() time.Time
}

func (c *Config) defaults() {
	if c.NodeCertValidity <= 0 {
		c.NodeCertValidity = defaultNodeCertValidity
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.Window <= 0 {
		c.Window = 512
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 128
	}
	if c.ReportWorkers <= 0 {
		c.ReportWorkers = 32
	}
	if c.ReportQueue <= 0 {
		c.ReportQueue = 4096
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is the hub.
type Server struct {
	cfg     Config
	metrics *metrics
	grpc    *grpc.Server
	addr    chan net.Addr
	reports chan reportJob

	mu       sync.Mutex
	sessions map[string]*session
	nextID   uint64
}

type reportJob struct {
	ctx    context.Context
	node   string
	report *syncpb.Report
	done   func(*syncpb.ReportResult)
}

// New builds the hub; Start serves it.
func New(cfg Config) (*Server, error) {
	cfg.defaults()
	if cfg.CA == nil || cfg.Kube == nil || cfg.View == nil || cfg.Reports == nil || cfg.Nodes == nil {
		return nil, errors.New("hub: CA, Kube, View, Reports and Nodes are required")
	}
	tlsConfig, err := nodecert.ServerTLS(cfg.CA, cfg.AdvertiseNames, 365*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("hub serving certificate: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		addr:     make(chan net.Addr, 1),
		reports:  make(chan reportJob, cfg.ReportQueue),
		sessions: map[string]*session{},
	}
	s.metrics = newMetrics(cfg.Registry, s)
	s.grpc = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsConfig)),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(64<<20),
		// Thousands of mostly idle node connections: per-connection
		// transport buffers dominate memory, and edge links are slow
		// (write buffers are shared between connections by default).
		grpc.ReadBufferSize(8<<10),
		grpc.WriteBufferSize(8<<10),
	)
	syncpb.RegisterHubServer(s.grpc, &hubService{s: s})
	syncpb.RegisterBootstrapServer(s.grpc, &bootstrapService{s: s})
	for _, register := range cfg.Services {
		register(s.grpc)
	}
	return s, nil
}

// Addr returns the address the hub listens on, once Start has bound it.
func (s *Server) Addr(ctx context.Context) (net.Addr, error) {
	select {
	case a := <-s.addr:
		s.addr <- a
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Connected returns the names of the nodes with a session here.
func (s *Server) Connected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.sessions))
	for n := range s.sessions {
		out = append(out, n)
	}
	return out
}

// Start serves until ctx ends, then closes every session.
func (s *Server) Start(ctx context.Context) error {
	l, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("hub: listening on %s: %w", s.cfg.Listen, err)
	}
	s.addr <- l.Addr()
	s.cfg.Logger.Info("hub serving", "address", l.Addr().String())
	var workers sync.WaitGroup
	workerCtx, stopWorkers := context.WithCancel(context.Background())
	for range s.cfg.ReportWorkers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			s.applyReports(workerCtx)
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- s.grpc.Serve(l) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			s.grpc.Stop()
		}
		err = nil
	}
	stopWorkers()
	workers.Wait()
	return err
}

// applyReports is one report worker.
func (s *Server) applyReports(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-s.reports:
			s.metrics.reportQueueDepth.Set(float64(len(s.reports)))
			outcome, msg, retry := s.cfg.Reports.Apply(job.ctx, job.node, job.report)
			s.metrics.reports.WithLabelValues(job.report.Kind, outcome.String()).Inc()
			job.done(&syncpb.ReportResult{Id: job.report.Id, Gen: job.report.Gen, Outcome: outcome, Message: msg, RetryAfterMs: uint32(retry / time.Millisecond)})
		}
	}
}

// submitReport queues a report for the workers, or answers Retry at once
// when the queue is full: a slow API server slows nodes down instead of
// piling up memory here.
func (s *Server) submitReport(job reportJob) {
	select {
	case s.reports <- job:
		s.metrics.reportQueueDepth.Set(float64(len(s.reports)))
	default:
		s.metrics.reports.WithLabelValues(job.report.Kind, "queue_full").Inc()
		job.done(&syncpb.ReportResult{Id: job.report.Id, Gen: job.report.Gen, Outcome: syncpb.Outcome_OUTCOME_RETRY,
			Message: "verge-cloud is busy", RetryAfterMs: 2000})
	}
}

// NodeFromContext returns the node name from the verified client
// certificate of a gRPC call on the hub's server — never from anything the
// node sends. Services registered on the hub (Config.Services) use it too.
func NodeFromContext(ctx context.Context) (string, error) {
	return IdentityFromContext(ctx, nodecert.NodeName, "a node certificate is required: join the node first (verge join)")
}

// IdentityFromContext applies name (nodecert.NodeName, nodecert.PeerName)
// to the verified client certificate of a gRPC call on the hub's server;
// missing says what a caller without one lacks.
func IdentityFromContext(ctx context.Context, name func(*x509.Certificate) (string, error), missing string) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "no peer information")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.PeerCertificates) == 0 {
		return "", status.Error(codes.Unauthenticated, missing)
	}
	id, err := name(info.State.PeerCertificates[0])
	if err != nil {
		return "", status.Error(codes.PermissionDenied, err.Error())
	}
	return id, nil
}
