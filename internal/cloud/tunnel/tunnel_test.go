package tunnel_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/verge-edge/verge/internal/cloud/tunnel"
	edgetunnel "github.com/verge-edge/verge/internal/edge/tunnel"
	"github.com/verge-edge/verge/internal/nodecert"
	"github.com/verge-edge/verge/internal/pki"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
)

var testLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// cloud is a gRPC server with the hub's TLS and the tunnel service.
type cloud struct {
	ca   *pki.CA
	svc  *tunnel.Service
	addr string
	reg  *prometheus.Registry
}

func startCloud(t *testing.T, cfg tunnel.Config) *cloud {
	t.Helper()
	ca, err := pki.NewCA("test-verge-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Replica = "replica-under-test"
	return startReplica(t, cfg, ca, nil)
}

// startReplica starts a cloud with ca; with dir set it relays to and for
// the other replicas started with the same dir.
func startReplica(t *testing.T, cfg tunnel.Config, ca *pki.CA, dir *sharedDirectory) *cloud {
	t.Helper()
	tlsConfig, err := nodecert.ServerTLS(ca, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg.Registry = reg
	cfg.Logger = testLogger
	if dir != nil {
		addr := l.Addr().String()
		cfg.Relay = tunnel.RelayConfig{
			Address:     addr,
			Directory:   dir.at(addr),
			Credentials: func() (*tls.Config, error) { return nodecert.PeerTLS(ca, cfg.Replica, time.Hour) },
		}
	}
	svc := tunnel.New(cfg)
	t.Cleanup(svc.Close)
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsConfig)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true})) // as the hub
	svc.Register(g)
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	return &cloud{ca: ca, svc: svc, addr: l.Addr().String(), reg: reg}
}

// credentials returns a node's TLS configuration for the cloud.
func (c *cloud) credentials(t *testing.T, node string) func() (*tls.Config, error) {
	t.Helper()
	keyPEM, csrPEM, err := nodecert.NewKeyAndCSR(node)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := nodecert.Sign(c.ca, csrPEM, node, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return func() (*tls.Config, error) { return nodecert.ClientTLS(c.ca.CertPEM, cert) }
}

// edge runs an edge tunnel client until stopped or the test ends.
type edge struct {
	client *edgetunnel.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func (c *cloud) startEdge(t *testing.T, node string, h http.Handler, maxTunnels int) *edge {
	t.Helper()
	client := edgetunnel.NewClient(edgetunnel.ClientConfig{
		Address: c.addr, Credentials: c.credentials(t, node), Handler: h, MaxTunnels: maxTunnels,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Logger: testLogger,
	})
	ctx, cancel := context.WithCancel(context.Background())
	e := &edge{client: client, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(e.done); _ = client.Start(ctx) }()
	t.Cleanup(e.stop)
	eventually(t, node+" connects its tunnel", func() bool { return c.svc.Connected(node) })
	return e
}

func (e *edge) stop() {
	e.cancel()
	<-e.done
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// get sends one HTTP request over a tunnel to node.
func (c *cloud) get(t *testing.T, node, path string) (int, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return c.svc.Dial(ctx, node) },
		DisableKeepAlives: true,
	}, Timeout: 20 * time.Second}
	resp, err := client.Get("http://" + node + path)
	if err != nil {
		t.Fatalf("GET %s on %s: %v", path, node, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func nameHandler(node string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", node, r.URL.Path)
	})
}

func TestRequestReachesTheNode(t *testing.T) {
	c := startCloud(t, tunnel.Config{})
	c.startEdge(t, "edge-a", nameHandler("edge-a"), 0)
	c.startEdge(t, "edge-b", nameHandler("edge-b"), 0)
	for _, n := range []string{"edge-a", "edge-b", "edge-a"} {
		code, body := c.get(t, n, "/healthz")
		if code != 200 || body != n+" /healthz" {
			t.Fatalf("GET via %s: %d %q", n, code, body)
		}
	}
	_, err := c.svc.DialNode(context.Background(), "edge-c")
	var nc *tunnel.NotConnectedError
	if !errors.As(err, &nc) || !strings.Contains(err.Error(), "replica-under-test") || !strings.Contains(err.Error(), "another replica") {
		t.Fatalf("dialing an unconnected node: %v", err)
	}
}

// hijackEcho answers /echo by reading everything until the client's
// half-close, then writing back its SHA-256 and the data, and closing.
func hijackEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer func() { _ = conn.Close() }()
		data, err := io.ReadAll(brw)
		if err != nil {
			fmt.Fprintf(conn, "read error %v", err)
			return
		}
		sum := sha256.Sum256(data)
		_, _ = conn.Write(sum[:])
		_, _ = conn.Write(data)
	})
}

func TestHalfCloseAndLargeTransfers(t *testing.T) {
	c := startCloud(t, tunnel.Config{})
	c.startEdge(t, "edge-a", hijackEcho(), 0)
	conn, err := c.svc.DialNode(context.Background(), "edge-a")
	if err != nil {
		t.Fatal(err)
	}
	echoThrough(t, conn, 8<<20+123)
}

// echoThrough sends size random bytes to hijackEcho over conn, half-closes,
// and checks what comes back until the edge closes.
func echoThrough(t *testing.T, conn net.Conn, size int) {
	t.Helper()
	defer func() { _ = conn.Close() }()
	payload := make([]byte, size)
	_, _ = rand.Read(payload)
	if _, err := io.WriteString(conn, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("more")); err == nil {
		t.Fatal("a write after CloseWrite succeeded")
	}
	back, err := io.ReadAll(conn) // ends with io.EOF once the edge closed
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	sum := sha256.Sum256(payload)
	if len(back) != 32+len(payload) || !bytes.Equal(back[:32], sum[:]) || !bytes.Equal(back[32:], payload) {
		t.Fatalf("echo differs: got %d bytes, want %d", len(back), 32+len(payload))
	}
}

func TestConcurrentTunnelsAndLimits(t *testing.T) {
	c := startCloud(t, tunnel.Config{MaxTunnelsPerNode: 4, DialTimeout: 5 * time.Second})
	release := make(chan struct{})
	var inflight sync.WaitGroup
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			inflight.Done()
			<-release
		}
		fmt.Fprint(w, r.URL.Path)
	})
	c.startEdge(t, "edge-a", h, 3) // the edge allows fewer than the cloud

	// Many short requests at once all succeed (dials over a limit are
	// retried, as the API server's client would be).
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			for {
				conn, err := c.svc.Dial(ctx, "edge-a")
				var refused *tunnel.RefusedError
				if errors.Is(err, tunnel.ErrTooManyTunnels) || errors.As(err, &refused) {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				return conn, err
			}
		},
		DisableKeepAlives: true,
	}}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			resp, err := client.Get(fmt.Sprintf("http://edge-a/r%d", i))
			if err != nil {
				errs <- err
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != fmt.Sprintf("/r%d", i) {
				errs <- fmt.Errorf("request %d got %q", i, body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Three blocked requests fill the edge's limit: the fourth is refused
	// by the node, with its reason.
	inflight.Add(3)
	var blocked sync.WaitGroup
	for range 3 {
		blocked.Go(func() {
			resp, err := client.Get("http://edge-a/block")
			if err != nil {
				t.Error(err)
				inflight.Done()
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	inflight.Wait()
	_, err := c.svc.DialNode(context.Background(), "edge-a")
	var refused *tunnel.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("a tunnel over the node's limit: %v", err)
	}
	close(release)
	blocked.Wait()
	eventually(t, "the blocked tunnels are released", func() bool {
		return metric(t, c.reg, "verge_tunnel_open") == 0
	})
	resp, err := client.Get("http://edge-a/after")
	if err != nil {
		t.Fatalf("after the limit cleared: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "/after" {
		t.Fatalf("after the limit cleared: %q", body)
	}
}

func TestCloudLimitPerNode(t *testing.T) {
	c := startCloud(t, tunnel.Config{MaxTunnelsPerNode: 2})
	c.startEdge(t, "edge-a", hijackEcho(), 10)
	c.startEdge(t, "edge-b", hijackEcho(), 10)
	var conns []net.Conn
	for range 2 {
		conn, err := c.svc.DialNode(context.Background(), "edge-a")
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	if _, err := c.svc.DialNode(context.Background(), "edge-a"); !errors.Is(err, tunnel.ErrTooManyTunnels) || !strings.Contains(err.Error(), "edge-a") {
		t.Fatalf("third tunnel to edge-a: %v", err)
	}
	// The limit is per node.
	other, err := c.svc.DialNode(context.Background(), "edge-b")
	if err != nil {
		t.Fatalf("edge-b is limited by edge-a's tunnels: %v", err)
	}
	_ = other.Close()
	_ = conns[0].Close()
	eventually(t, "a closed tunnel frees its slot", func() bool {
		conn, err := c.svc.DialNode(context.Background(), "edge-a")
		if err != nil {
			return false
		}
		_ = conn.Close()
		return true
	})
	_ = conns[1].Close()
}

// rawNode is a node speaking the tunnel protocol by hand.
type rawNode struct {
	client syncpb.TunnelClient
	ctl    syncpb.Tunnel_ControlClient
}

func (c *cloud) rawNode(t *testing.T, creds func() (*tls.Config, error)) *rawNode {
	t.Helper()
	tlsConfig, err := creds()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawNode{client: syncpb.NewTunnelClient(conn)}
}

func (n *rawNode) connect(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ctl, err := n.client.Control(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Send(&syncpb.TunnelEdgeMessage{Body: &syncpb.TunnelEdgeMessage_Hello{Hello: &syncpb.TunnelHello{ProtocolVersion: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Recv(); err != nil {
		t.Fatalf("control stream: %v", err)
	}
	n.ctl = ctl
}

func (n *rawNode) nextOpen(t *testing.T) uint64 {
	t.Helper()
	msg, err := n.ctl.Recv()
	if err != nil || msg.GetOpen() == nil {
		t.Fatalf("waiting for an Open: %v %v", msg, err)
	}
	return msg.GetOpen().Id
}

// answer opens the data stream for id and returns the first error.
func (n *rawNode) answer(t *testing.T, id uint64) (syncpb.Tunnel_DataClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	stream, err := n.client.Data(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&syncpb.TunnelFrame{OpenId: id}); err != nil {
		return nil, err
	}
	return stream, nil
}

func TestNodeIdentity(t *testing.T) {
	c := startCloud(t, tunnel.Config{DialTimeout: 10 * time.Second})
	victim := c.rawNode(t, c.credentials(t, "edge-a"))
	victim.connect(t)
	thief := c.rawNode(t, c.credentials(t, "edge-b"))
	thief.connect(t)

	type result struct {
		conn net.Conn
		err  error
	}
	dialed := make(chan result, 1)
	go func() {
		conn, err := c.svc.DialNode(context.Background(), "edge-a")
		dialed <- result{conn, err}
	}()
	id := victim.nextOpen(t)

	// Another node can neither refuse nor answer edge-a's tunnel.
	if err := thief.ctl.Send(&syncpb.TunnelEdgeMessage{Body: &syncpb.TunnelEdgeMessage_Refuse{Refuse: &syncpb.TunnelRefuse{Id: id, Message: "no"}}}); err != nil {
		t.Fatal(err)
	}
	stolen, err := thief.answer(t, id)
	if err == nil {
		_, err = stolen.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("edge-b answering edge-a's tunnel: %v", err)
	}
	select {
	case r := <-dialed:
		t.Fatalf("the dial ended after another node's answer: %v", r.err)
	case <-time.After(200 * time.Millisecond):
	}

	// The right node still can.
	stream, err := victim.answer(t, id)
	if err != nil {
		t.Fatal(err)
	}
	r := <-dialed
	if r.err != nil {
		t.Fatal(r.err)
	}
	go func() { _, _ = r.conn.Write([]byte("to edge-a")) }()
	f, err := stream.Recv()
	if err != nil || string(f.Data) != "to edge-a" {
		t.Fatalf("edge-a reads %q, %v", f.GetData(), err)
	}
	_ = r.conn.Close()

	// An id nobody waits for, and a client without a node certificate.
	if s, err := victim.answer(t, 987654); err == nil {
		if _, err = s.Recv(); status.Code(err) != codes.NotFound {
			t.Fatalf("answering an unknown tunnel: %v", err)
		}
	}
	anon := c.rawNode(t, func() (*tls.Config, error) {
		cfg, err := c.credentials(t, "edge-a")()
		cfg.Certificates = nil
		return cfg, err
	})
	ctl, err := anon.client.Control(t.Context())
	if err == nil {
		_ = ctl.Send(&syncpb.TunnelEdgeMessage{Body: &syncpb.TunnelEdgeMessage_Hello{Hello: &syncpb.TunnelHello{ProtocolVersion: 1}}})
		_, err = ctl.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a control stream without a certificate: %v", err)
	}
}

func TestWrongProtocolVersionIsRefused(t *testing.T) {
	c := startCloud(t, tunnel.Config{})
	n := c.rawNode(t, c.credentials(t, "edge-a"))
	ctl, err := n.client.Control(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_ = ctl.Send(&syncpb.TunnelEdgeMessage{Body: &syncpb.TunnelEdgeMessage_Hello{Hello: &syncpb.TunnelHello{ProtocolVersion: 99}}})
	_, err = ctl.Recv()
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "speaks 1") {
		t.Fatalf("version 99: %v", err)
	}
}

// link forwards TCP connections to the cloud until cut, like a network
// path that can fail.
type link struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func (c *cloud) link(t *testing.T) *link {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	k := &link{addr: l.Addr().String()}
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", c.addr)
			if err != nil {
				_ = in.Close()
				continue
			}
			k.mu.Lock()
			k.conns = append(k.conns, in, out)
			k.mu.Unlock()
			go func() { _, _ = io.Copy(out, in) }()
			go func() { _, _ = io.Copy(in, out) }()
		}
	}()
	return k
}

// cut drops every connection through the link at once.
func (k *link) cut() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.conns {
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	}
	k.conns = nil
}

func TestNodeDisconnectMidStream(t *testing.T) {
	c := startCloud(t, tunnel.Config{})
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A log follow that never ends by itself.
		w.WriteHeader(200)
		fmt.Fprintln(w, "line 1")
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
	})
	k := c.link(t)
	client := edgetunnel.NewClient(edgetunnel.ClientConfig{
		Address: k.addr, Credentials: c.credentials(t, "edge-a"), Handler: h,
		MinBackoff: time.Hour, MaxBackoff: time.Hour, Logger: testLogger, // no reconnect in this test
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = client.Start(ctx) }()
	eventually(t, "edge-a connects", func() bool { return c.svc.Connected("edge-a") })
	conn, err := c.svc.DialNode(context.Background(), "edge-a")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := io.WriteString(conn, "GET /containerLogs/ns/p/c?follow=true HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "line 1\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	<-started
	k.cut() // the node's link fails mid-stream

	readErr := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		readErr <- err
	}()
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("the stream ended cleanly although the node vanished")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read hangs after the node disconnected")
	}
	eventually(t, "the node is no longer connected", func() bool { return !c.svc.Connected("edge-a") })
	if _, err := c.svc.DialNode(context.Background(), "edge-a"); err == nil {
		t.Fatal("dialing a disconnected node succeeded")
	}
}

func TestReadDeadline(t *testing.T) {
	c := startCloud(t, tunnel.Config{})
	c.startEdge(t, "edge-a", hijackEcho(), 0)
	conn, err := c.svc.DialNode(context.Background(), "edge-a")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := conn.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	// The connection still works after the deadline is lifted.
	_ = conn.SetReadDeadline(time.Time{})
	if _, err := io.WriteString(conn, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	_ = conn.CloseWrite()
	back, err := io.ReadAll(conn)
	if err != nil || !bytes.HasSuffix(back, []byte("abc")) {
		t.Fatalf("after the deadline: %q, %v", back, err)
	}
}

func TestNewerControlStreamReplacesOlder(t *testing.T) {
	c := startCloud(t, tunnel.Config{})
	older := c.rawNode(t, c.credentials(t, "edge-a"))
	older.connect(t)
	newer := c.rawNode(t, c.credentials(t, "edge-a"))
	newer.connect(t)
	if _, err := older.ctl.Recv(); status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("the older control stream: %v", err)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.svc.DialNode(ctx, "edge-a")
	}()
	newer.nextOpen(t)
}

// metric returns a gauge's or counter's value (no labels).
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) > 0 {
			m := mf.Metric[0]
			if m.Gauge != nil {
				return m.Gauge.GetValue()
			}
			return m.Counter.GetValue()
		}
	}
	return 0
}
