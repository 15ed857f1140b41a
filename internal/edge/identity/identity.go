// Package identity gives an edge node its certificate and keeps it valid.
//
// Join runs once: it pins the Verge CA by the hash in the join token,
// redeems the token with a certificate signing request (the key never
// leaves the node), and returns the credentials without writing anything —
// the caller saves them only on success, so a failed join leaves no trace.
//
// Manager then serves the current credentials to the hub client and renews
// the certificate at a random point between 70 % and 90 % of its lifetime
// (spread, so a fleet joined together does not renew together), using the
// current certificate as proof. A certificate that expired while the node
// was offline cannot be renewed; the node is re-joined with a fresh token,
// which replaces only the credentials and keeps the node's store.
package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/verge-edge/verge/internal/atomicfile"
	"github.com/verge-edge/verge/internal/jointoken"
	"github.com/verge-edge/verge/internal/nodecert"
	"github.com/verge-edge/verge/internal/pki"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
)

// File names in the credentials directory. The node's certificate and key
// share one file so that replacing them is a single atomic rename: a crash
// during renewal leaves the old pair or the new one, never a mix.
const (
	CAFile   = "ca.crt"
	NodeFile = "node.pem"
)

// Credentials are a node's CA, certificate and key, PEM-encoded.
type Credentials struct {
	CAPEM, CertPEM, KeyPEM []byte
}

// Certificate parses the node certificate.
func (c *Credentials) Certificate() (*x509.Certificate, error) { return pki.ParseCert(c.CertPEM) }

// Save writes the credentials into dir (readable only by their owner).
func (c *Credentials) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, CAFile), c.CAPEM, 0o644); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, NodeFile), append(append([]byte(nil), c.CertPEM...), c.KeyPEM...), 0o600)
}

// Load reads credentials saved by Save.
func Load(dir string) (*Credentials, error) {
	ca, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("reading node credentials: %w (has this node joined? run verge join)", err)
	}
	bundle, err := os.ReadFile(filepath.Join(dir, NodeFile))
	if err != nil {
		return nil, fmt.Errorf("reading node credentials: %w (has this node joined? run verge join)", err)
	}
	c := &Credentials{CAPEM: ca}
	for rest := bundle; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			c.CertPEM = append(c.CertPEM, pem.EncodeToMemory(block)...)
		} else {
			c.KeyPEM = pem.EncodeToMemory(block)
		}
	}
	if _, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM); err != nil {
		return nil, fmt.Errorf("node credentials in %s do not form a key pair: %w (re-join the node with verge join)", dir, err)
	}
	return c, nil
}

// JoinError is a refusal the user must act on.
type JoinError struct{ Msg string }

func (e *JoinError) Error() string { return e.Msg }

// Join obtains the first certificate for nodeName from the hub at address.
func Join(ctx context.Context, address string, tok jointoken.Token, nodeName string) (*Credentials, error) {
	keyPEM, csrPEM, err := nodecert.NewKeyAndCSR(nodeName)
	if err != nil {
		return nil, &JoinError{err.Error()}
	}
	var ca *x509.Certificate
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(credentials.NewTLS(nodecert.PinnedTLS(tok.CAHash, &ca))))
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := syncpb.NewBootstrapClient(conn).Join(ctx, &syncpb.JoinRequest{
		TokenId: tok.ID, TokenSecret: tok.Secret, NodeName: nodeName, CsrPem: csrPEM,
	}, grpc.WaitForReady(false))
	if err != nil {
		return nil, &JoinError{fmt.Sprintf("joining %s as %s: %s", address, nodeName, status.Convert(err).Message())}
	}
	if ca == nil || pki.Hash(ca) != tok.CAHash {
		return nil, &JoinError{"the hub's CA could not be verified against the join token"}
	}
	if got, err := pki.ParseCert(resp.CaPem); err != nil || !got.Equal(ca) {
		return nil, &JoinError{"the hub sent a CA different from the one it presented"}
	}
	return &Credentials{CAPEM: resp.CaPem, CertPEM: resp.CertificatePem, KeyPEM: keyPEM}, nil
}

// Manager holds a node's live credentials and renews them.
type Manager struct {
	dir     string
	address string
	logger  *slog.Logger
	now     func() time.Time

	mu    sync.Mutex
	creds *Credentials
	cert  tls.Certificate
	leaf  *x509.Certificate
}

// ErrExpired means the node certificate can no longer be used or renewed.
var ErrExpired = errors.New("node certificate expired")

// NewManager loads the credentials in dir for the hub at address.
func NewManager(dir, address string, logger *slog.Logger) (*Manager, error) {
	creds, err := Load(dir)
	if err != nil {
		return nil, err
	}
	m := &Manager{dir: dir, address: address, logger: logger, now: time.Now}
	if err := m.set(creds); err != nil {
		return nil, err
	}
	if m.now().After(m.leaf.NotAfter) {
		return nil, fmt.Errorf("%w at %s while the node was offline: re-join it with a fresh token (verge token create; verge join --cloud %s --token … --data-dir …); its store is kept", ErrExpired, m.leaf.NotAfter.Format(time.RFC3339), address)
	}
	return m, nil
}

func (m *Manager) set(c *Credentials) error {
	cert, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.creds, m.cert, m.leaf = c, cert, leaf
	m.mu.Unlock()
	return nil
}

// NodeName is the node the certificate identifies.
func (m *Manager) NodeName() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	name, _ := nodecert.NodeName(m.leaf)
	return name
}

// TLS returns the TLS configuration for the hub with the current
// certificate.
func (m *Manager) TLS() (*tls.Config, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return nodecert.ClientTLS(m.creds.CAPEM, m.cert)
}

// NotAfter is when the current certificate expires.
func (m *Manager) NotAfter() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leaf.NotAfter
}

// RenewAt picks the renewal time for a certificate valid from notBefore to
// notAfter: uniformly between 70 % and 90 % of its lifetime.
func RenewAt(notBefore, notAfter time.Time, r *rand.Rand) time.Time {
	life := notAfter.Sub(notBefore)
	return notBefore.Add(time.Duration(float64(life) * (0.7 + 0.2*r.Float64())))
}

// Start renews the certificate when due until ctx ends; onRenewed runs after
// each renewal (e.g. to reconnect with the new certificate).
func (m *Manager) Start(ctx context.Context, onRenewed func()) error {
	r := rand.New(rand.NewPCG(uint64(m.now().UnixNano()), 0))
	for {
		m.mu.Lock()
		due := RenewAt(m.leaf.NotBefore, m.leaf.NotAfter, r)
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(due)):
		}
		backoff := 2 * time.Second
		for {
			err := m.Renew(ctx)
			if err == nil {
				onRenewed()
				break
			}
			if ctx.Err() != nil {
				return nil //nolint:nilerr // shutting down
			}
			m.logger.Warn("renewing the node certificate failed; retrying", "error", err, "expires", m.NotAfter(), "retryIn", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Minute)
		}
	}
}

// Renew gets a new certificate (and key) now, proving identity with the
// current certificate, and saves it.
func (m *Manager) Renew(ctx context.Context) error {
	keyPEM, csrPEM, err := nodecert.NewKeyAndCSR(m.NodeName())
	if err != nil {
		return err
	}
	tlsConfig, err := m.TLS()
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(m.address, grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig)))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := syncpb.NewBootstrapClient(conn).Renew(ctx, &syncpb.RenewRequest{CsrPem: csrPEM})
	if err != nil {
		return fmt.Errorf("renewing at %s: %s", m.address, status.Convert(err).Message())
	}
	m.mu.Lock()
	next := &Credentials{CAPEM: m.creds.CAPEM, CertPEM: resp.CertificatePem, KeyPEM: keyPEM}
	m.mu.Unlock()
	if err := next.Save(m.dir); err != nil {
		return fmt.Errorf("saving the renewed certificate: %w", err)
	}
	if err := m.set(next); err != nil {
		return err
	}
	m.logger.Info("node certificate renewed", "expires", m.NotAfter())
	return nil
}
