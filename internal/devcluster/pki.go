package devcluster

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/verge-edge/verge/internal/atomicfile"
	"github.com/verge-edge/verge/internal/pki"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
)

// serviceIP is the first address of serviceCIDR: the `kubernetes` Service.
const (
	serviceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1"
)

// Identities of the control-plane clients, as the API server's bootstrap
// RBAC policy knows them.
const (
	adminUser             = "verge-admin"
	controllerManagerUser = "system:kube-controller-manager"
	schedulerUser         = "system:kube-scheduler"
	mastersGroup          = "system:masters"
	frontProxyClientName  = "front-proxy-client"
)

// clusterPKI holds the long-lived roots (created once per Dir and reused so
// that kubeconfigs and service-account tokens stay valid across restarts)
// and where the leaf certificates for this run were written.
type clusterPKI struct {
	dir        string
	ca         *pki.CA
	frontProxy *pki.CA
}

func (p *clusterPKI) path(name string) string { return filepath.Join(p.dir, name) }

// loadOrCreateCA reuses name.crt/name.key in dir or creates them.
func loadOrCreateCA(dir, name, commonName string) (*pki.CA, error) {
	certPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	ca, err := pki.LoadCA(certPath, keyPath)
	if err == nil {
		if time.Until(ca.Cert.NotAfter) < 30*24*time.Hour {
			return nil, fmt.Errorf("CA %s expires on %s: remove the data directory to start a fresh cluster", certPath, ca.Cert.NotAfter.Format(time.DateOnly))
		}
		return ca, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading CA %s: %w", certPath, err)
	}
	ca, err = pki.NewCA(commonName, caValidity)
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.EncodeKey(ca.Key)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(certPath, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// preparePKI creates the roots if missing and issues fresh leaf certificates
// for every component.
func preparePKI(dir string) (*clusterPKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := loadOrCreateCA(dir, "ca", "verge-dev-cluster-ca")
	if err != nil {
		return nil, err
	}
	frontProxy, err := loadOrCreateCA(dir, "front-proxy-ca", "verge-dev-front-proxy-ca")
	if err != nil {
		return nil, err
	}
	p := &clusterPKI{dir: dir, ca: ca, frontProxy: frontProxy}
	if _, err := os.Stat(p.path("sa.key")); errors.Is(err, fs.ErrNotExist) {
		priv, pub, err := pki.NewSigningKey()
		if err != nil {
			return nil, err
		}
		if err := atomicfile.Write(p.path("sa.pub"), pub, 0o644); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(p.path("sa.key"), priv, 0o600); err != nil {
			return nil, err
		}
	}
	loopback := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	leaves := []struct {
		name string
		ca   *pki.CA
		req  pki.Request
	}{
		{"etcd-server", ca, pki.Request{CommonName: "etcd", DNSNames: []string{"localhost"}, IPs: loopback, Usage: pki.ServerAuth | pki.ClientAuth}},
		{"apiserver-etcd-client", ca, pki.Request{CommonName: "kube-apiserver-etcd-client", Usage: pki.ClientAuth}},
		{"apiserver", ca, pki.Request{
			CommonName: "kube-apiserver",
			DNSNames:   []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
			IPs:        append([]net.IP{net.ParseIP(serviceIP)}, loopback...),
			Usage:      pki.ServerAuth,
		}},
		{"apiserver-kubelet-client", ca, pki.Request{CommonName: "kube-apiserver-kubelet-client", Organization: []string{mastersGroup}, Usage: pki.ClientAuth}},
		{"front-proxy-client", frontProxy, pki.Request{CommonName: frontProxyClientName, Usage: pki.ClientAuth}},
		{"admin", ca, pki.Request{CommonName: adminUser, Organization: []string{mastersGroup}, Usage: pki.ClientAuth}},
		{"controller-manager-client", ca, pki.Request{CommonName: controllerManagerUser, Usage: pki.ClientAuth}},
		{"scheduler-client", ca, pki.Request{CommonName: schedulerUser, Usage: pki.ClientAuth}},
		{"controller-manager-serving", ca, pki.Request{CommonName: "kube-controller-manager", DNSNames: []string{"localhost"}, IPs: loopback, Usage: pki.ServerAuth}},
		{"scheduler-serving", ca, pki.Request{CommonName: "kube-scheduler", DNSNames: []string{"localhost"}, IPs: loopback, Usage: pki.ServerAuth}},
	}
	for _, l := range leaves {
		l.req.Validity = leafValidity
		kp, err := l.ca.Issue(l.req)
		if err != nil {
			return nil, fmt.Errorf("issuing %s certificate: %w", l.name, err)
		}
		if err := pki.WriteKeyPair(dir, l.name, kp); err != nil {
			return nil, err
		}
	}
	return p, nil
}
