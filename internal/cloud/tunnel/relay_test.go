package tunnel_test

import (
	"context"
	"crypto/tls"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/verge-edge/verge/internal/cloud/tunnel"
	"github.com/verge-edge/verge/internal/nodecert"
	"github.com/verge-edge/verge/internal/pki"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
)

// sharedDirectory is an in-memory tunnel.Directory shared by the replicas
// of a test (verge-cloud keeps it in a Node annotation).
type sharedDirectory struct {
	mu sync.Mutex
	m  map[string]string
}

func newSharedDirectory() *sharedDirectory { return &sharedDirectory{m: map[string]string{}} }

type replicaDirectory struct {
	d    *sharedDirectory
	addr string
}

func (d *sharedDirectory) at(addr string) tunnel.Directory {
	return &replicaDirectory{d: d, addr: addr}
}

func (r *replicaDirectory) Announce(_ context.Context, node string) error {
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	r.d.m[node] = r.addr
	return nil
}

func (r *replicaDirectory) Lookup(node string) (string, bool) {
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	a, ok := r.d.m[node]
	return a, ok
}

func (d *sharedDirectory) lookup(node string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m[node]
}

// twoReplicas starts replicas "replica-a" and "replica-b" sharing a CA and
// a directory.
func twoReplicas(t *testing.T) (a, b *cloud, dir *sharedDirectory) {
	t.Helper()
	ca, err := pki.NewCA("test-verge-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir = newSharedDirectory()
	a = startReplica(t, tunnel.Config{Replica: "replica-a"}, ca, dir)
	b = startReplica(t, tunnel.Config{Replica: "replica-b"}, ca, dir)
	return a, b, dir
}

// A request reaching a replica the node is not connected to is relayed to
// the one it is connected to, bytes and half-closes intact, and follows
// the node when it moves.
func TestRelayBetweenReplicas(t *testing.T) {
	a, b, dir := twoReplicas(t)

	mux := nameHandler("edge-1")
	e := a.startEdge(t, "edge-1", mux, 0)
	eventually(t, "edge-1 is recorded at replica a", func() bool { return dir.lookup("edge-1") == a.addr })
	for _, c := range []*cloud{a, b, b} {
		if code, body := c.get(t, "edge-1", "/healthz"); code != 200 || body != "edge-1 /healthz" {
			t.Fatalf("GET through %s: %d %q", c.addr, code, body)
		}
	}
	if n := metric(t, b.reg, "verge_tunnel_dials_total"); n < 2 {
		t.Errorf("replica b counted %v dials", n)
	}

	// A large upload with a half-close, through the relay.
	e.stop()
	eventually(t, "edge-1 is gone from replica a", func() bool { return !a.svc.Connected("edge-1") })
	echo := a.startEdge(t, "edge-1", hijackEcho(), 0)
	conn, err := b.svc.Dial(context.Background(), "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	echoThrough(t, conn, 4<<20+7)

	// The node moves to replica b: replica a now relays to b.
	echo.stop()
	eventually(t, "edge-1 is gone from replica a", func() bool { return !a.svc.Connected("edge-1") })
	b.startEdge(t, "edge-1", nameHandler("edge-1"), 0)
	eventually(t, "edge-1 is recorded at replica b", func() bool { return dir.lookup("edge-1") == b.addr })
	if code, body := a.get(t, "edge-1", "/moved"); code != 200 || body != "edge-1 /moved" {
		t.Fatalf("GET through replica a after the move: %d %q", code, body)
	}
}

// The directory may be stale (the node went offline): the dial fails with
// both replicas' reasons and is not relayed any further.
func TestRelayToANodeThatLeft(t *testing.T) {
	a, b, dir := twoReplicas(t)
	e := a.startEdge(t, "edge-1", nameHandler("edge-1"), 0)
	eventually(t, "edge-1 is recorded", func() bool { return dir.lookup("edge-1") == a.addr })
	e.stop()
	eventually(t, "edge-1 is gone from replica a", func() bool { return !a.svc.Connected("edge-1") })
	_, err := b.svc.Dial(context.Background(), "edge-1")
	if err == nil || !strings.Contains(err.Error(), "replica-b") || !strings.Contains(err.Error(), "relaying through replica "+a.addr) || !strings.Contains(err.Error(), "replica-a") {
		t.Fatalf("dial of a node that left: %v", err)
	}
}

// Only a verge-cloud peer may relay: a node's certificate is refused.
func TestNodesCannotRelay(t *testing.T) {
	c := startCloud(t, tunnel.Config{})
	c.startEdge(t, "edge-1", nameHandler("edge-1"), 0)
	n := c.rawNode(t, c.credentials(t, "edge-2"))
	ctx := metadata.AppendToOutgoingContext(t.Context(), "verge-relay-node", "edge-1")
	stream, err := n.client.Relay(ctx)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "not a verge-cloud peer certificate") {
		t.Fatalf("a node calling Relay: %v", err)
	}
	// And a peer certificate is no node certificate.
	peerTLS, err := nodecert.PeerTLS(c.ca, "replica-x", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := c.rawNode(t, func() (*tls.Config, error) { return peerTLS, nil })
	ctl, err := p.client.Control(t.Context())
	if err == nil {
		_ = ctl.Send(&syncpb.TunnelEdgeMessage{Body: &syncpb.TunnelEdgeMessage_Hello{Hello: &syncpb.TunnelHello{ProtocolVersion: 1}}})
		_, err = ctl.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a peer certificate opening a node's control stream: %v", err)
	}
}
