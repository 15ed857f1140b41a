// Package nodecert holds the rules for edge node certificates, shared by
// verge-cloud (which signs them and reads identities from them) and
// verge-edge (which requests them and uses them):
//
//   - A node certificate is a client certificate from the Verge CA with
//     subject CN=system:node:<name>, O=system:nodes. Its CN is the node's
//     only identity; nothing a node sends can claim another.
//   - The hub's serving certificate carries the DNS name "verge-hub" and
//     server usage. Nodes verify the hub by its chain to the Verge CA and
//     that name — not by the address they dialed — so a hub behind a load
//     balancer or NAT needs no extra SANs.
//   - A joining node has no CA yet: it pins the CA by the hash in its join
//     token and checks the chain the hub presents against it.
package nodecert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/verge-edge/verge/internal/pki"
)

// HubServerName is the DNS name every hub serving certificate carries.
const HubServerName = "verge-hub"

const (
	userPrefix = "system:node:"
	nodesGroup = "system:nodes"
)

// dns1123Subdomain is the form of a Kubernetes Node name (RFC 1123
// subdomain: dot-separated lower-case labels of letters, digits and '-'
// that start and end with a letter or digit).
var dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// ValidateNodeName checks that name can be a Kubernetes Node name. (Written
// here rather than taken from apimachinery's validation package, which
// would pull klog and more into verge-edge.)
func ValidateNodeName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("node name is empty: give one with --node-name")
	case len(name) > 253:
		return fmt.Errorf("node name %q is not valid: it is longer than 253 characters", name)
	case !dns1123Subdomain.MatchString(name):
		return fmt.Errorf("node name %q is not valid: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (for example edge-1)", name)
	}
	return nil
}

// NewKeyAndCSR creates a node key and a signing request for it.
func NewKeyAndCSR(nodeName string) (keyPEM, csrPEM []byte, err error) {
	if err := ValidateNodeName(nodeName); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: userPrefix + nodeName, Organization: []string{nodesGroup}},
	}, key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = pki.EncodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return keyPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// Sign checks a CSR's signature and issues a node certificate for nodeName.
// The subject is set from nodeName, whatever the CSR asked for.
func Sign(ca *pki.CA, csrPEM []byte, nodeName string, validity time.Duration) ([]byte, error) {
	if err := ValidateNodeName(nodeName); err != nil {
		return nil, err
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("no PEM certificate request found")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature: %w", err)
	}
	return ca.SignPublicKey(pki.Request{
		CommonName:   userPrefix + nodeName,
		Organization: []string{nodesGroup},
		Usage:        pki.ClientAuth,
		Validity:     validity,
	}, csr.PublicKey)
}

// NodeName returns the node a verified client certificate belongs to.
func NodeName(cert *x509.Certificate) (string, error) {
	name, ok := strings.CutPrefix(cert.Subject.CommonName, userPrefix)
	if !ok || !slices.Contains(cert.Subject.Organization, nodesGroup) || !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return "", fmt.Errorf("certificate %q is not a node certificate", cert.Subject.CommonName)
	}
	if err := ValidateNodeName(name); err != nil {
		return "", err
	}
	return name, nil
}

// Cloud peers: verge-cloud replicas relaying tunnels to one another. Sign
// (the only way a node gets a certificate) always writes the node subject,
// so no node can hold a certificate in peersGroup.
const (
	peerPrefix = "verge:cloud-peer:"
	peersGroup = "verge:cloud-peers"
)

// PeerTLS returns a verge-cloud replica's TLS configuration for calling
// another replica's hub: a fresh client certificate from ca naming the
// replica as a cloud peer, and the CA to verify the other hub.
func PeerTLS(ca *pki.CA, replica string, validity time.Duration) (*tls.Config, error) {
	kp, err := ca.Issue(pki.Request{CommonName: peerPrefix + replica, Organization: []string{peersGroup}, Usage: pki.ClientAuth, Validity: validity})
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		return nil, err
	}
	return ClientTLS(ca.CertPEM, cert)
}

// PeerName returns the replica a verified cloud peer certificate names, or
// an error for any other certificate (a node's included).
func PeerName(cert *x509.Certificate) (string, error) {
	name, ok := strings.CutPrefix(cert.Subject.CommonName, peerPrefix)
	if !ok || name == "" || !slices.Contains(cert.Subject.Organization, peersGroup) || !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return "", fmt.Errorf("certificate %q is not a verge-cloud peer certificate", cert.Subject.CommonName)
	}
	return name, nil
}

// ServerTLS returns the hub's TLS configuration: a fresh serving certificate
// from ca (for HubServerName plus extra names/IPs), presented with the CA so
// joining nodes can pin it; client certificates verified if given (Join
// comes without one; everything else requires one).
func ServerTLS(ca *pki.CA, extra []string, validity time.Duration) (*tls.Config, error) {
	req := pki.Request{CommonName: HubServerName, DNSNames: []string{HubServerName}, Usage: pki.ServerAuth, Validity: validity}
	for _, n := range extra {
		if ip := net.ParseIP(n); ip != nil {
			req.IPs = append(req.IPs, ip)
		} else if n != "" {
			req.DNSNames = append(req.DNSNames, n)
		}
	}
	kp, err := ca.Issue(req)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(append(kp.CertPEM, ca.CertPEM...), kp.KeyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"h2"},
	}, nil
}

// ClientTLS returns a node's TLS configuration for the hub: its certificate
// and the Verge CA, verifying the hub by chain and HubServerName.
func ClientTLS(caPEM []byte, cert tls.Certificate) (*tls.Config, error) {
	ca, err := pki.ParseCert(caPEM)
	if err != nil {
		return nil, fmt.Errorf("reading the Verge CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   HubServerName,
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"h2"},
	}, nil
}

// PinnedTLS returns the TLS configuration for joining: the hub's presented
// chain must contain a CA whose pki.Hash is caHash and that signed a
// HubServerName server certificate. On success the CA is stored in *ca.
func PinnedTLS(caHash string, ca **x509.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{"h2"},
		InsecureSkipVerify: true, //nolint:gosec // verified below against the pinned CA hash instead
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the hub presented no certificate")
			}
			var pinned *x509.Certificate
			for _, c := range cs.PeerCertificates[1:] {
				if c.IsCA && pki.Hash(c) == caHash {
					pinned = c
				}
			}
			if pinned == nil {
				return fmt.Errorf("the hub's CA does not match the hash in the join token (%s): the token is for another cloud, or someone is in between", caHash)
			}
			pool := x509.NewCertPool()
			pool.AddCert(pinned)
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: HubServerName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return fmt.Errorf("the hub's certificate is not valid under the pinned CA: %w", err)
			}
			*ca = pinned
			return nil
		},
	}
}
