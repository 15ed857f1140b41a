package nodecert

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/verge-edge/verge/internal/pki"
)

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("test-verge-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func nodeCert(t *testing.T, ca *pki.CA, name string) tls.Certificate {
	t.Helper()
	keyPEM, csrPEM, err := NewKeyAndCSR(name)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := Sign(ca, csrPEM, name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSignAndIdentity(t *testing.T) {
	ca := newCA(t)
	c := nodeCert(t, ca, "edge-1")
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	name, err := NodeName(leaf)
	if err != nil || name != "edge-1" {
		t.Fatalf("NodeName = %q, %v", name, err)
	}
	// The subject comes from the name the cloud approved, not the CSR.
	_, csr, _ := NewKeyAndCSR("edge-2")
	pemCert, err := Sign(ca, csr, "edge-9", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = pki.ParseCert(pemCert)
	if name, _ := NodeName(leaf); name != "edge-9" {
		t.Errorf("signed for %q, want edge-9", name)
	}
	// A server certificate from the same CA is not a node identity.
	kp, _ := ca.Issue(pki.Request{CommonName: "system:node:edge-1", Organization: []string{"system:nodes"}, Usage: pki.ServerAuth, Validity: time.Hour})
	srv, _ := pki.ParseCert(kp.CertPEM)
	if _, err := NodeName(srv); err == nil {
		t.Error("a server certificate passed as a node identity")
	}
	for _, bad := range []string{"", "Edge_1", strings.Repeat("a", 300)} {
		if _, _, err := NewKeyAndCSR(bad); err == nil {
			t.Errorf("node name %q accepted", bad)
		}
	}
	if _, err := Sign(ca, []byte("junk"), "edge-1", time.Hour); err == nil {
		t.Error("junk CSR signed")
	}
}

// handshake runs one TLS handshake between a hub config and a client config
// over a real loopback connection, returning the client's and the server's
// errors and the client certificate the server saw.
func handshake(t *testing.T, server, client *tls.Config, dialName string) (peer []*x509.Certificate, clientErr, serverErr error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := l.Accept()
		if err != nil {
			serverErr = err
			return
		}
		tc := tls.Server(conn, server)
		serverErr = tc.Handshake()
		peer = tc.ConnectionState().PeerCertificates
		_ = tc.Close()
	}()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := client.Clone()
	if c.ServerName == "" {
		c.ServerName = dialName
	}
	tc := tls.Client(conn, c)
	clientErr = tc.Handshake()
	if clientErr == nil {
		// TLS 1.3 reports client-certificate rejection on the first read.
		_ = tc.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, clientErr = tc.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(clientErr, &ne) && ne.Timeout() || clientErr != nil && strings.Contains(clientErr.Error(), "EOF") {
			clientErr = nil
		}
	}
	_ = tc.Close()
	<-done
	return peer, clientErr, serverErr
}

func TestHubAndNodeTLS(t *testing.T) {
	ca := newCA(t)
	server, err := ServerTLS(ca, []string{"hub.example.com", "10.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A node with a certificate reaches the hub under any dialed name and
	// the hub sees its identity.
	client, err := ClientTLS(ca.CertPEM, nodeCert(t, ca, "edge-1"))
	if err != nil {
		t.Fatal(err)
	}
	peer, cErr, sErr := handshake(t, server, client, "192.0.2.77")
	if cErr != nil || sErr != nil || len(peer) == 0 {
		t.Fatalf("mTLS handshake: client %v, server %v", cErr, sErr)
	}
	if name, _ := NodeName(peer[0]); name != "edge-1" {
		t.Errorf("hub saw node %q", name)
	}
	// A certificate from another CA is refused by the hub.
	other := newCA(t)
	stranger, _ := ClientTLS(ca.CertPEM, nodeCert(t, other, "edge-1"))
	if _, _, sErr := handshake(t, server, stranger, "x"); sErr == nil {
		t.Error("hub accepted a node certificate from a foreign CA")
	}
	// A node refuses a hub from another CA.
	foreignHub, _ := ServerTLS(other, nil, time.Hour)
	if _, cErr, _ := handshake(t, foreignHub, client, "x"); cErr == nil {
		t.Error("node accepted a hub from a foreign CA")
	}
}

func TestPinnedJoin(t *testing.T) {
	ca := newCA(t)
	server, _ := ServerTLS(ca, nil, time.Hour)
	var got *x509.Certificate
	if _, cErr, _ := handshake(t, server, PinnedTLS(pki.Hash(ca.Cert), &got), "any"); cErr != nil || got == nil || !got.Equal(ca.Cert) {
		t.Fatalf("pinned handshake: %v, CA %v", cErr, got)
	}
	got = nil
	wrong := pki.Hash(newCA(t).Cert)
	_, cErr, _ := handshake(t, server, PinnedTLS(wrong, &got), "any")
	if cErr == nil || !strings.Contains(cErr.Error(), "does not match the hash in the join token") || got != nil {
		t.Fatalf("mismatched pin: %v", cErr)
	}
}

// TestValidateNodeNameAgreesWithKubernetes compares with apimachinery's
// own check, which the API server applies to Node names.
func TestValidateNodeNameAgreesWithKubernetes(t *testing.T) {
	for _, name := range []string{"edge-1", "a", "factory.line-3", "x" + strings.Repeat("y", 252), "x" + strings.Repeat("y", 253),
		"", "Edge-1", "-edge", "edge-", "edge_1", "edge..1", ".edge", "edge.", "ed ge", "1234", "a.b-c.d9"} {
		ours := ValidateNodeName(name) == nil
		theirs := len(validation.IsDNS1123Subdomain(name)) == 0
		if ours != theirs {
			t.Errorf("%q: ours valid=%v, Kubernetes valid=%v", name, ours, theirs)
		}
	}
}
