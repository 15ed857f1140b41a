package mapper

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/pki"
	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper/dmitest"
)

// With mTLS the REST API may listen beyond loopback, and answers only
// clients with a certificate from the configured CA.
func TestRESTOverMTLS(t *testing.T) {
	dir := dmitest.ShortDir(t)
	ca, err := pki.NewCA("mapper-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srvKP, err := ca.Issue(pki.Request{CommonName: "mapper", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Usage: pki.ServerAuth, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cliKP, err := ca.Issue(pki.Request{CommonName: "operator", Usage: pki.ClientAuth, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	edge := dmitest.NewEdge([]*dmi.DeviceModel{testModel()}, []*dmi.Device{testDevice(t, 100)})
	edge.Serve(t, filepath.Join(dir, "dmi.sock"))
	cfg := Config{
		Name: "tls", Protocol: "fake", EdgeSocket: filepath.Join(dir, "dmi.sock"), Socket: filepath.Join(dir, "m.sock"),
		REST: RESTConfig{Address: "127.0.0.1:0", CertFile: write("srv.crt", srvKP.CertPEM), KeyFile: write("srv.key", srvKP.KeyPEM), ClientCAFile: write("ca.crt", ca.CertPEM)},
	}
	d := newFakeDriver()
	d.set("temperature", 20.0)
	m, err := New(cfg, d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	addr, err := m.RESTAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	url := "https://" + addr.String() + "/api/v1/ping"

	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if resp, err := anon.Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("a client without a certificate got %d", resp.StatusCode)
	}
	cert, err := tls.X509KeyPair(cliKP.CertPEM, cliKP.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("client with a certificate: %d", resp.StatusCode)
	}
}
