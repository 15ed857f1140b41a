package devicetwin

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
)

// callTimeout bounds one DMI call to a mapper.
const callTimeout = 10 * time.Second

// mapperRunner keeps one mapper in step with the devices bound to it, over
// one long-lived connection to its socket (re-dialled by gRPC with
// backoff when the mapper restarts).
type mapperRunner struct {
	s    *Service
	name string
	wake chan struct{}
	stop context.CancelFunc
	done chan struct{}

	// Guarded by s.mu.
	pushed Pushed
	gen    int // bumped when pushed is replaced (a registration)

	connMu sync.Mutex
	target string
	cc     *grpc.ClientConn
	client dmi.DeviceMapperServiceClient
}

// startRunnerLocked returns the runner of mapper name, starting it if the
// Service runs.
func (s *Service) startRunnerLocked(name string) *mapperRunner {
	r := s.runners[name]
	if r == nil {
		r = &mapperRunner{s: s, name: name, wake: make(chan struct{}, 1), pushed: NewPushed()}
		if m := s.mappers[name]; m != nil && m.Pushed != nil {
			r.pushed = *m.Pushed // what it held before verge-edge restarted
			if r.pushed.Models == nil {
				r.pushed.Models = map[string]string{}
			}
			if r.pushed.Devices == nil {
				r.pushed.Devices = map[string]string{}
			}
		}
		s.runners[name] = r
	}
	if r.stop == nil && s.runCtx != nil {
		ctx, cancel := context.WithCancel(s.runCtx)
		r.stop, r.done = cancel, make(chan struct{})
		if m := s.mappers[name]; m != nil && r.target == "" {
			r.reconnect(mapperSocket(m.Address, m.PID))
		}
		go r.run(ctx)
	}
	signal(r.wake)
	return r
}

func (s *Service) wakeRunnersLocked() {
	for _, r := range s.runners {
		signal(r.wake)
	}
}

func (s *Service) stopRunners() {
	s.mu.Lock()
	runners := make([]*mapperRunner, 0, len(s.runners))
	for _, r := range s.runners {
		runners = append(runners, r)
	}
	s.mu.Unlock()
	for _, r := range runners {
		if r.stop != nil {
			r.stop()
			<-r.done
		}
		r.closeConn()
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func timeOrZero(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// reconnect points the runner at the mapper's socket (a new connection
// when it moved).
func (r *mapperRunner) reconnect(target string) {
	r.connMu.Lock()
	defer r.connMu.Unlock()
	if r.target == target && r.cc != nil {
		return
	}
	if r.cc != nil {
		_ = r.cc.Close()
	}
	r.target = target
	cc, err := grpc.NewClient("unix://"+target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 200 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 10 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithIdleTimeout(0),
	)
	if err != nil {
		r.cc, r.client = nil, nil
		r.s.log.Warn("mapper socket cannot be dialled", "mapper", r.name, "socket", target, "error", err)
		return
	}
	r.cc, r.client = cc, dmi.NewDeviceMapperServiceClient(cc)
}

func (r *mapperRunner) closeConn() {
	r.connMu.Lock()
	defer r.connMu.Unlock()
	if r.cc != nil {
		_ = r.cc.Close()
		r.cc, r.client = nil, nil
	}
}

func (r *mapperRunner) dmiClient() dmi.DeviceMapperServiceClient {
	r.connMu.Lock()
	defer r.connMu.Unlock()
	return r.client
}

// run pushes plans until ctx ends; a failed call is retried with
// jittered backoff (1 s doubling to 30 s).
func (r *mapperRunner) run(ctx context.Context) {
	defer close(r.done)
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		r.s.mu.Lock()
		calls := Plan(r.pushed, r.s.wantLocked(r.name))
		gen := r.gen
		r.s.mu.Unlock()
		var err error
		for _, c := range calls {
			if err = r.call(ctx, c); err != nil {
				break
			}
			r.s.mu.Lock()
			if r.gen == gen {
				r.pushed.Record(c)
			}
			r.s.mu.Unlock()
		}
		if len(calls) > 0 {
			if perr := r.s.persistRegistry(ctx); perr != nil && err == nil {
				err = fmt.Errorf("recording what mapper %s holds: %w", r.name, perr)
			}
		}
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		delay := jitter(min(30*time.Second, time.Second<<min(failures-1, 5)))
		lvl := r.s.log.Debug
		if failures == 3 {
			lvl = r.s.log.Warn
		}
		lvl("pushing devices to a mapper failed; retrying", "mapper", r.name, "error", err, "retryIn", delay.Round(time.Millisecond))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
			signal(r.wake)
		}
	}
}

// call makes one DMI call.
func (r *mapperRunner) call(ctx context.Context, c Call) error {
	client := r.dmiClient()
	if client == nil {
		return fmt.Errorf("mapper %s has no reachable socket", r.name)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	ns, name := splitKey(c.Key)
	var err error
	switch c.Op {
	case OpCreateModel:
		_, err = client.CreateDeviceModel(ctx, &dmi.CreateDeviceModelRequest{Model: c.Model})
	case OpUpdateModel:
		_, err = client.UpdateDeviceModel(ctx, &dmi.UpdateDeviceModelRequest{Model: c.Model})
	case OpRegisterDevice:
		_, err = client.RegisterDevice(ctx, &dmi.RegisterDeviceRequest{Device: c.Device})
	case OpUpdateDevice:
		_, err = client.UpdateDevice(ctx, &dmi.UpdateDeviceRequest{Device: c.Device})
	case OpRemoveDevice:
		_, err = client.RemoveDevice(ctx, &dmi.RemoveDeviceRequest{DeviceNamespace: ns, DeviceName: name})
	case OpRemoveModel:
		_, err = client.RemoveDeviceModel(ctx, &dmi.RemoveDeviceModelRequest{ModelNamespace: ns, ModelName: name})
	}
	result := "ok"
	if err != nil {
		result = "error"
		err = fmt.Errorf("%s %s: %w", c.Op, c.Key, err)
	}
	r.s.metrics.pushCalls.WithLabelValues(c.Op.String(), result).Inc()
	return err
}

func splitKey(k string) (ns, name string) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return k[:i], k[i+1:]
		}
	}
	return "", k
}
