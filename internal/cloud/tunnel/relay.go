package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/verge-edge/verge/internal/cloud/hub"
	"github.com/verge-edge/verge/internal/nodecert"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
	"github.com/verge-edge/verge/internal/protocol/tunnelconn"
)

// relayNodeKey is the gRPC metadata naming the node a Relay stream is for.
const relayNodeKey = "verge-relay-node"

// Directory records which replica each node's tunnel is connected to, so
// that any replica can reach any node.
type Directory interface {
	// Announce records that node's tunnel is connected to this replica.
	Announce(ctx context.Context, node string) error
	// Lookup returns the peer address of the replica node's tunnel was
	// last announced at.
	Lookup(node string) (string, bool)
}

// RelayConfig lets replicas reach nodes connected to one another.
type RelayConfig struct {
	// Address is this replica's hub as the other replicas reach it
	// (host:port); relayed connections for it are served locally.
	Address string
	// Directory records and finds where nodes are connected.
	Directory Directory
	// Credentials returns the TLS configuration to call another replica
	// (nodecert.PeerTLS).
	Credentials func() (*tls.Config, error)
}

// announce records node at this replica until it succeeds or ctx ends (the
// Node may not exist yet when its first tunnel connects).
func (s *Service) announce(ctx context.Context, node string) {
	if s.cfg.Relay.Directory == nil {
		return
	}
	wait := time.Second
	for {
		err := s.cfg.Relay.Directory.Announce(ctx, node)
		if err == nil || ctx.Err() != nil {
			return
		}
		s.cfg.Logger.Warn("recording where a node's tunnel is connected failed; other replicas cannot relay to it yet", "node", node, "error", err, "retryIn", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// dialAnywhere opens a connection to node's kubelet-compatible server:
// over the node's own tunnel if it is connected here, otherwise relayed
// through the replica the directory says it is connected to.
func (s *Service) dialAnywhere(ctx context.Context, node string) (*tunnelconn.Conn, error) {
	conn, err := s.DialNode(ctx, node)
	var nc *NotConnectedError
	if err == nil || !errors.As(err, &nc) || s.cfg.Relay.Directory == nil {
		return conn, err
	}
	addr, ok := s.cfg.Relay.Directory.Lookup(node)
	if !ok || addr == s.cfg.Relay.Address {
		return nil, err
	}
	conn, rerr := s.relayTo(ctx, addr, node)
	if rerr != nil {
		s.metrics.dials.WithLabelValues("relay_failed").Inc()
		return nil, fmt.Errorf("node %s is not connected to this verge-cloud replica (%s), and relaying through replica %s failed: %w", node, s.cfg.Replica, addr, rerr)
	}
	s.metrics.dials.WithLabelValues("relayed").Inc()
	return conn, nil
}

// relayTo opens a Relay stream to the replica at addr for node.
func (s *Service) relayTo(ctx context.Context, addr, node string) (*tunnelconn.Conn, error) {
	cc, err := s.peerConn(addr)
	if err != nil {
		return nil, err
	}
	// The stream outlives the dial: it ends when the connection does.
	sctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), relayNodeKey, node))
	stop := context.AfterFunc(ctx, cancel) // until the dial is done
	stream, err := syncpb.NewTunnelClient(cc).Relay(sctx)
	if err == nil {
		// The serving replica sends one empty frame once the node's
		// end is connected, or fails the RPC with the reason.
		var first *syncpb.TunnelFrame
		if first, err = stream.Recv(); err == nil && (len(first.Data) > 0 || first.Close || first.CloseWrite) {
			err = errors.New("the replica's first relay frame carried data")
		}
	}
	if !stop() || err != nil {
		cancel()
		if err == nil {
			err = ctx.Err()
		}
		if st, ok := status.FromError(err); ok {
			err = errors.New(st.Message())
		}
		return nil, err
	}
	var conn *tunnelconn.Conn
	conn = tunnelconn.New(stream, tunnelconn.Config{
		Finish: func() {
			_ = stream.CloseSend()
			// The serving replica ends the RPC after the peer's close; do
			// not hold the stream forever if it never does.
			go func() {
				select {
				case <-conn.Done():
				case <-time.After(30 * time.Second):
				}
				cancel()
			}()
		},
		Abort:  cancel,
		Local:  tunnelconn.Addr("verge-cloud " + s.cfg.Replica),
		Remote: tunnelconn.Addr(fmt.Sprintf("node %s relayed by %s", node, addr)),
	})
	return conn, nil
}

// peerConn returns the (shared, lazily connecting) client connection to
// the replica at addr.
func (s *Service) peerConn(addr string) (*grpc.ClientConn, error) {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	if cc := s.peers[addr]; cc != nil {
		return cc, nil
	}
	if s.cfg.Relay.Credentials == nil {
		return nil, errors.New("no credentials to call other replicas")
	}
	tlsConfig, err := s.cfg.Relay.Credentials()
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig)))
	if err != nil {
		return nil, err
	}
	s.peers[addr] = cc
	return cc, nil
}

// Close releases the connections to other replicas.
func (s *Service) Close() {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	for addr, cc := range s.peers {
		_ = cc.Close()
		delete(s.peers, addr)
	}
}

// Relay serves a connection to a node connected here for another replica.
// Only a cloud peer may call it, and only nodes connected to this replica
// are dialled (never relayed on again, so a stale directory cannot loop).
func (s *Service) Relay(stream syncpb.Tunnel_RelayServer) error {
	ctx := stream.Context()
	caller, err := hub.IdentityFromContext(ctx, nodecert.PeerName, "relaying needs a verge-cloud peer certificate")
	if err != nil {
		return err
	}
	var node string
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(relayNodeKey)) == 1 {
		node = md.Get(relayNodeKey)[0]
	}
	if node == "" {
		return status.Errorf(codes.InvalidArgument, "a relay stream names its node in the %q metadata", relayNodeKey)
	}
	nodeConn, err := s.DialNode(ctx, node)
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	if err := stream.Send(&syncpb.TunnelFrame{}); err != nil {
		nodeConn.Abort()
		return err
	}
	s.cfg.Logger.Debug("relaying a tunnel for another replica", "node", node, "peer", caller)
	end := newServerEnd(stream, "verge-cloud "+s.cfg.Replica, "verge-cloud "+caller)
	go splice(end.conn, nodeConn)
	return end.wait(ctx, nodeConn)
}

// splice copies both ways between a and b, passing half-closes on, and
// closes both when both directions are done (aborting both on an error).
func splice(a, b *tunnelconn.Conn) {
	var wg sync.WaitGroup
	copyHalf := func(dst, src *tunnelconn.Conn) {
		defer wg.Done()
		if _, err := io.Copy(dst, src); err != nil {
			dst.Abort()
			src.Abort()
			return
		}
		_ = dst.CloseWrite()
	}
	wg.Add(2)
	go copyHalf(a, b)
	go copyHalf(b, a)
	wg.Wait()
	_ = a.Close()
	_ = b.Close()
}
