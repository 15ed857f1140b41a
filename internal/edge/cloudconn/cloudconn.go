// Package cloudconn opens an edge node's connection to verge-cloud's hub:
// one gRPC client connection over mutually authenticated TLS that the sync
// stream and the tunnel streams share, so each node costs the cloud one
// TLS connection. The node's credentials are read at every handshake, so a
// renewed or re-joined certificate is used at the next reconnection with
// nothing to restart.
package cloudconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// MaxMessage bounds one message from the cloud (a resync batch).
const MaxMessage = 64 << 20

// Dial returns a client connection to the hub at address (connecting
// lazily, and again after failures, as gRPC does). creds returns the
// node's current TLS configuration.
func Dial(address string, creds func() (*tls.Config, error)) (*grpc.ClientConn, error) {
	if address == "" || creds == nil {
		return nil, errors.New("cloud connection: an address and credentials are required")
	}
	return grpc.NewClient(address,
		grpc.WithTransportCredentials(&currentTLS{creds: creds}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessage)),
	)
}

// currentTLS is TLS with the configuration creds returns at each
// handshake.
type currentTLS struct {
	creds func() (*tls.Config, error)
}

func (c *currentTLS) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cfg, err := c.creds()
	if err != nil {
		return nil, nil, fmt.Errorf("node credentials: %w", err)
	}
	return credentials.NewTLS(cfg).ClientHandshake(ctx, authority, raw)
}

func (c *currentTLS) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("cloudconn: client-side credentials only")
}

func (c *currentTLS) Info() credentials.ProtocolInfo {
	if cfg, err := c.creds(); err == nil {
		return credentials.NewTLS(cfg).Info()
	}
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (c *currentTLS) Clone() credentials.TransportCredentials { return &currentTLS{creds: c.creds} }

//nolint:staticcheck // required by the interface; the server name comes from the configuration
func (c *currentTLS) OverrideServerName(string) error { return nil }
