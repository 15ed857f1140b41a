package podruntime

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// probeTarget is what a probe of one container needs to reach it.
type probeTarget struct {
	PodUID      types.UID
	Pod         types.NamespacedName
	Container   *kube.Container
	ContainerID string
	StartedAt   time.Time
	PodIP       string
}

type probeKey struct {
	containerID string
	kind        probeKind
}

// probeManager runs one goroutine per (container, probe kind) and keeps
// the results. A changed result wakes the pod's worker.
type probeManager struct {
	rt *Runtime

	// transport serves HTTP probes; it never keeps connections, and
	// skips certificate checks (probes check liveness, not identity, as
	// the kubelet's do).
	transport *http.Transport

	mu      sync.Mutex
	workers map[probeKey]*probeWorker
	results map[probeKey]probeResult
}

type probeWorker struct {
	key    probeKey
	podUID types.UID
	stop   chan struct{}
}

func newProbeManager(rt *Runtime) *probeManager {
	return &probeManager{
		rt:        rt,
		transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}, //nolint:gosec // see the field's comment
		workers:   map[probeKey]*probeWorker{},
		results:   map[probeKey]probeResult{},
	}
}

// seedFunc returns a result to resume for a container's probe.
type seedFunc func(containerID string, kind probeKind) probeResult

// ensure makes the set of probe workers for pod uid exactly those of
// targets (running containers of the pod's current sandbox), stopping the
// others and forgetting their results.
func (m *probeManager) ensure(ctx context.Context, uid types.UID, targets []probeTarget, seed seedFunc) {
	want := map[probeKey]probeTarget{}
	probes := map[probeKey]*kube.Probe{}
	for _, t := range targets {
		for kind, p := range map[probeKind]*kube.Probe{liveness: t.Container.LivenessProbe, readiness: t.Container.ReadinessProbe, startup: t.Container.StartupProbe} {
			if p != nil {
				k := probeKey{t.ContainerID, kind}
				want[k] = t
				probes[k] = p
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, w := range m.workers {
		if w.podUID == uid {
			if _, ok := want[k]; !ok {
				close(w.stop)
				delete(m.workers, k)
				delete(m.results, k)
			}
		}
	}
	for k, t := range want {
		if _, ok := m.workers[k]; ok {
			continue
		}
		w := &probeWorker{key: k, podUID: uid, stop: make(chan struct{})}
		m.workers[k] = w
		s := resultUnknown
		if seed != nil {
			s = seed(k.containerID, k.kind)
		}
		machine := newProbeMachine(k.kind, probes[k], s)
		m.results[k] = machine.result
		m.rt.wg.Add(1)
		go func() {
			defer m.rt.wg.Done()
			m.run(ctx, w, t, probes[k], machine)
		}()
	}
}

// forget stops every worker of pod uid.
func (m *probeManager) forget(uid types.UID) { m.ensure(context.Background(), uid, nil, nil) }

// result returns the current result for a container's probe.
func (m *probeManager) result(containerID string, kind probeKind) (probeResult, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.results[probeKey{containerID, kind}]
	return r, ok
}

func (m *probeManager) run(ctx context.Context, w *probeWorker, t probeTarget, p *kube.Probe, machine probeMachine) {
	timing := machine.timing
	wait := time.Until(timing.firstProbe(t.StartedAt, time.Now()))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.stop:
			return
		case <-timer.C:
		}
		timer.Reset(timing.Period)
		if machine.done() {
			continue
		}
		if w.key.kind != startup && t.Container.StartupProbe != nil {
			// Liveness and readiness wait for the startup probe.
			if r, _ := m.result(t.ContainerID, startup); r != resultSuccess {
				continue
			}
		}
		ok, msg := m.probeOnce(ctx, w.key.kind, t, p, timing.Timeout)
		if !ok {
			m.rt.metrics.probeFailures.WithLabelValues(strings.ToLower(w.key.kind.String())).Inc()
			m.rt.event(t.PodUID, t.Pod, kube.EventTypeWarning, "Unhealthy", fmt.Sprintf("%s probe failed: %s", w.key.kind, msg))
		}
		if !machine.observe(ok) {
			continue
		}
		m.mu.Lock()
		if cur, live := m.workers[w.key]; !live || cur != w {
			m.mu.Unlock()
			return
		}
		m.results[w.key] = machine.result
		m.mu.Unlock()
		m.rt.wake(t.PodUID)
	}
}

// probeOnce runs one probe; msg explains a failure.
func (m *probeManager) probeOnce(ctx context.Context, kind probeKind, t probeTarget, p *kube.Probe, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.Exec != nil:
		resp, err := m.rt.cri.execSync(ctx, t.ContainerID, p.Exec.Command, timeout)
		if err != nil {
			if ctx.Err() != nil {
				return false, fmt.Sprintf("command %q timed out", strings.Join(p.Exec.Command, " "))
			}
			return false, err.Error()
		}
		if resp.ExitCode != 0 {
			out := strings.TrimSpace(string(resp.Stdout) + string(resp.Stderr))
			return false, fmt.Sprintf("command %q exited with %d: %s", strings.Join(p.Exec.Command, " "), resp.ExitCode, truncate(out, 256))
		}
		return true, ""
	case p.HTTPGet != nil:
		return httpProbe(ctx, m.transport, p.HTTPGet, t)
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, t.Container)
		if err != nil {
			return false, err.Error()
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = t.PodIP
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, fmt.Sprintf("dial tcp %s: %v", net.JoinHostPort(host, strconv.Itoa(port)), err)
		}
		_ = conn.Close()
		return true, ""
	case p.GRPC != nil:
		return grpcProbe(ctx, p.GRPC, t)
	}
	return false, "probe has no handler (exec, httpGet, tcpSocket or grpc)"
}

// httpProbe GETs the probe's URL; 2xx and 3xx are success (redirects are
// not followed: the kubelet too counts a redirect elsewhere as success).
func httpProbe(ctx context.Context, tr http.RoundTripper, g *kube.HTTPGetAction, t probeTarget) (bool, string) {
	port, err := resolvePort(g.Port, t.Container)
	if err != nil {
		return false, err.Error()
	}
	host := g.Host
	if host == "" {
		host = t.PodIP
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	if pu, err := url.Parse(path); err == nil {
		u.Path, u.RawQuery = pu.Path, pu.RawQuery
	} else {
		u.Path = path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "kube-probe/verge")
	req.Header.Set("Accept", "*/*")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return false, fmt.Sprintf("Get %q: %v", u.String(), err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 10<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return true, ""
	}
	return false, fmt.Sprintf("HTTP probe failed with statuscode: %d: %s", resp.StatusCode, truncate(strings.TrimSpace(string(body)), 256))
}

func grpcProbe(ctx context.Context, g *kube.GRPCAction, t probeTarget) (bool, string) {
	addr := net.JoinHostPort(t.PodIP, strconv.Itoa(int(g.Port)))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false, err.Error()
	}
	defer func() { _ = conn.Close() }()
	svc := ""
	if g.Service != nil {
		svc = *g.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
	if err != nil {
		return false, fmt.Sprintf("gRPC health check on %s: %v", addr, err)
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		return false, fmt.Sprintf("service unhealthy (responded with %q)", resp.Status)
	}
	return true, ""
}

// resolvePort turns a number or a named container port into a number.
func resolvePort(p kube.IntOrString, c *kube.Container) (int, error) {
	if p.Type == kube.Int {
		if p.IntVal <= 0 || p.IntVal > 65535 {
			return 0, fmt.Errorf("port %d is out of range", p.IntVal)
		}
		return int(p.IntVal), nil
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, errors.New("no container port named " + strconv.Quote(p.StrVal))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
