package mapper

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/utils/clock"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper/fanout"
)

// edgeClient is the mapper's one long-lived connection to the edge's
// DeviceManagerService. gRPC re-dials a lost Unix socket with jittered
// exponential backoff; calls fail fast while it is down and their callers
// (the fan-out, the state reporter, the registration loop) retry.
type edgeClient struct {
	cc      *grpc.ClientConn
	api     dmi.DeviceManagerServiceClient
	timeout time.Duration
}

func dialEdge(socket string) (*edgeClient, error) {
	cc, err := grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 500 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 20 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
		// Stay connected: an idle channel would look like an edge restart.
		grpc.WithIdleTimeout(0),
	)
	if err != nil {
		return nil, fmt.Errorf("edge DMI socket %s: %w", socket, err)
	}
	return &edgeClient{cc: cc, api: dmi.NewDeviceManagerServiceClient(cc), timeout: 5 * time.Second}, nil
}

func (e *edgeClient) close() error { return e.cc.Close() }

func (e *edgeClient) register(ctx context.Context, info *dmi.MapperInfo) (*dmi.MapperRegisterResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	return e.api.MapperRegister(ctx, &dmi.MapperRegisterRequest{WithData: true, Mapper: info}, grpc.WaitForReady(true))
}

func (e *edgeClient) ReportDeviceStatus(ctx context.Context, req *dmi.ReportDeviceStatusRequest) error {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	_, err := e.api.ReportDeviceStatus(ctx, req)
	return err
}

func (e *edgeClient) reportState(ctx context.Context, req *dmi.ReportDeviceStatesRequest) error {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	_, err := e.api.ReportDeviceStates(ctx, req)
	return err
}

// waitDisconnected returns when the connection leaves READY (the edge went
// away or restarted) or ctx ends.
func (e *edgeClient) waitDisconnected(ctx context.Context) {
	for {
		st := e.cc.GetState()
		if st != connectivity.Ready {
			return
		}
		if !e.cc.WaitForStateChange(ctx, st) {
			return
		}
	}
}

// stateReporter sends device states to the edge, latest state per device
// wins, retrying with jittered backoff while the edge is unreachable.
type stateReporter struct {
	send    func(ctx context.Context, req *dmi.ReportDeviceStatesRequest) error
	clock   clock.Clock
	jitter  func() float64
	log     *slog.Logger
	metrics *coreMetrics

	mu      sync.Mutex
	pending map[string]*dmi.ReportDeviceStatesRequest
	order   []string
	wake    chan struct{}
}

func newStateReporter(send func(context.Context, *dmi.ReportDeviceStatesRequest) error, clk clock.Clock, jitter func() float64, log *slog.Logger, m *coreMetrics) *stateReporter {
	return &stateReporter{send: send, clock: clk, jitter: jitter, log: log, metrics: m,
		pending: map[string]*dmi.ReportDeviceStatesRequest{}, wake: make(chan struct{}, 1)}
}

func (s *stateReporter) report(namespace, name, state, reason string) {
	k := deviceKey(namespace, name)
	s.mu.Lock()
	if _, ok := s.pending[k]; !ok {
		s.order = append(s.order, k)
	}
	s.pending[k] = &dmi.ReportDeviceStatesRequest{DeviceNamespace: namespace, DeviceName: name, State: state, Reason: reason}
	s.mu.Unlock()
	signal(s.wake)
}

func (s *stateReporter) run(ctx context.Context) {
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		for {
			s.mu.Lock()
			if len(s.order) == 0 {
				s.mu.Unlock()
				break
			}
			k := s.order[0]
			req := s.pending[k]
			s.mu.Unlock()
			err := s.send(ctx, req)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				s.metrics.stateReports.WithLabelValues("error").Inc()
				failures++
				s.log.Debug("device state report failed", "device", k, "err", err)
				t := s.clock.NewTimer(fanout.Backoff(500*time.Millisecond, 30*time.Second, failures, s.jitter()))
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C():
				}
				continue
			}
			s.metrics.stateReports.WithLabelValues("ok").Inc()
			failures = 0
			s.mu.Lock()
			if s.pending[k] == req { // not replaced meanwhile
				delete(s.pending, k)
				s.order = s.order[1:]
			}
			s.mu.Unlock()
		}
	}
}
