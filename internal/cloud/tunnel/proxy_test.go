package tunnel_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/verge-edge/verge/internal/cloud/tunnel"
	"github.com/verge-edge/verge/internal/pki"
)

// podIndex is a PodLookup over a fixed set of pods.
type podIndex map[string]*corev1.Pod

func (p podIndex) Pod(ns, name string) (*corev1.Pod, bool) {
	pod, ok := p[ns+"/"+name]
	return pod, ok
}

func boundPod(ns, name, node string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)}, Spec: corev1.PodSpec{NodeName: node}}
}

func newCA(t *testing.T, name string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func clientCert(t *testing.T, ca *pki.CA, cn string) tls.Certificate {
	t.Helper()
	kp, err := ca.Issue(pki.Request{CommonName: cn, Organization: []string{"system:masters"}, Usage: pki.ClientAuth, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func authConfigMap(ca *pki.CA) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "extension-apiserver-authentication"},
		Data:       map[string]string{"client-ca-file": string(ca.CertPEM)},
	}
}

type proxyEnv struct {
	addr    string
	kube    *fake.Clientset
	serving *pki.CA
}

func startProxy(t *testing.T, c *cloud, clusterCA *pki.CA, pods podIndex) *proxyEnv {
	t.Helper()
	serving := newCA(t, "serving")
	kp, err := serving.Issue(pki.Request{CommonName: "verge-cloud", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Usage: pki.ServerAuth, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	kube := fake.NewClientset(authConfigMap(clusterCA))
	// The API server's answer to SubjectAccessReviews: cluster admins
	// (the API server's kubelet client) may use every node's kubelet API.
	kube.PrependReactor("create", "subjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		sar := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		ra := sar.Spec.ResourceAttributes
		sar.Status.Allowed = slices.Contains(sar.Spec.Groups, "system:masters") && ra != nil && ra.Resource == "nodes" && ra.Subresource == "proxy" && ra.Name != ""
		if !sar.Status.Allowed {
			sar.Status.Reason = "no RBAC rule allows it"
		}
		return true, sar, nil
	})
	p, err := tunnel.NewProxy(tunnel.ProxyConfig{
		Listen:          "127.0.0.1:0",
		Dial:            c.svc.Dial,
		Pods:            pods,
		Kube:            kube,
		Certificate:     cert,
		ClientCARefresh: 100 * time.Millisecond,
		Logger:          testLogger,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	addr, err := p.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the client CA is loaded", func() bool { return p.Ready() == nil })
	return &proxyEnv{addr: addr.String(), kube: kube, serving: serving}
}

// get calls the proxy as the API server would, with cert (or none).
func (p *proxyEnv) get(t *testing.T, cert *tls.Certificate, path string) (int, string, error) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.serving.Cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 20 * time.Second}
	resp, err := client.Get("https://" + p.addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestProxyRoutesToThePodsNode(t *testing.T) {
	c := startCloud(t, tunnel.Config{})
	c.startEdge(t, "edge-a", nameHandler("edge-a"), 0)
	c.startEdge(t, "edge-b", nameHandler("edge-b"), 0)
	clusterCA := newCA(t, "cluster")
	pods := podIndex{
		"ns/on-a":      boundPod("ns", "on-a", "edge-a"),
		"ns/on-b":      boundPod("ns", "on-b", "edge-b"),
		"ns/offline":   boundPod("ns", "offline", "edge-gone"),
		"ns/unbound":   boundPod("ns", "unbound", ""),
		"ns/elsewhere": boundPod("ns", "elsewhere", "edge-b"),
	}
	p := startProxy(t, c, clusterCA, pods)
	apiserver := clientCert(t, clusterCA, "kube-apiserver-kubelet-client")

	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/containerLogs/ns/on-a/c?follow=true", 200, "edge-a /containerLogs/ns/on-a/c"},
		{"/containerLogs/ns/on-b/c", 200, "edge-b /containerLogs/ns/on-b/c"},
		{"/exec/ns/on-a/c?command=ls", 200, "edge-a /exec/ns/on-a/c"},
		{"/exec/ns/on-b/uid-on-b/c", 200, "edge-b /exec/ns/on-b/uid-on-b/c"},
		{"/attach/ns/on-a/c", 200, "edge-a /attach/ns/on-a/c"},
		{"/portForward/ns/on-b", 200, "edge-b /portForward/ns/on-b"},
		// The path names the pod; the pod names the node. A node is never
		// picked from anything else in the request.
		{"/portForward/ns/elsewhere", 200, "edge-b /portForward/ns/elsewhere"},
		{"/exec/ns/on-b/uid-other/c", 404, "has uid uid-on-b, not uid-other"},
		{"/containerLogs/ns/missing/c", 404, `"ns/missing" not found`},
		{"/containerLogs/ns/unbound/c", 404, "not bound to a node"},
		{"/containerLogs/ns/offline/c", 502, "node edge-gone is not connected to this verge-cloud replica (replica-under-test)"},
		{"/stats/summary", 404, "not served for edge nodes"},
		{"/containerLogs/ns/on-a", 404, "not served"},
	} {
		code, body, err := p.get(t, &apiserver, tc.path)
		if err != nil || code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q %v; want %d with %q", tc.path, code, body, err, tc.code, tc.want)
		}
	}

	// A certificate from the cluster's CA proves who the caller is, not
	// that it may reach pods: the API server decides, as for a kubelet.
	user, err := clusterCA.Issue(pki.Request{CommonName: "jane", Organization: []string{"developers"}, Usage: pki.ClientAuth, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	jane, err := tls.X509KeyPair(user.CertPEM, user.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if code, body, err := p.get(t, &jane, "/containerLogs/ns/on-a/c"); err != nil || code != 403 || !strings.Contains(body, "jane may not get nodes/proxy of node edge-a") {
		t.Errorf("a user without rights: %d %q %v; want 403 naming the user, verb and node", code, body, err)
	}

	// Without a client certificate, or with one from another CA, the TLS
	// handshake fails.
	if _, _, err := p.get(t, nil, "/containerLogs/ns/on-a/c"); err == nil {
		t.Error("a request without a client certificate was served")
	}
	stranger := clientCert(t, newCA(t, "other"), "kube-apiserver-kubelet-client")
	if _, _, err := p.get(t, &stranger, "/containerLogs/ns/on-a/c"); err == nil {
		t.Error("a client certificate from another CA was accepted")
	}

	// The client CA is re-read: after a rotation the new CA's clients are
	// accepted and the old CA's are not.
	rotated := newCA(t, "cluster-2")
	if _, err := p.kube.CoreV1().ConfigMaps("kube-system").Update(context.Background(), authConfigMap(rotated), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	newClient := clientCert(t, rotated, "kube-apiserver-kubelet-client")
	eventually(t, "the rotated client CA is used", func() bool {
		code, _, err := p.get(t, &newClient, "/containerLogs/ns/on-a/c")
		return err == nil && code == 200
	})
	if _, _, err := p.get(t, &apiserver, "/containerLogs/ns/on-a/c"); err == nil {
		t.Error("a client of the replaced CA is still accepted")
	}
}

func TestProxyPodNotInCacheIsReadFromTheAPIServer(t *testing.T) {
	c := startCloud(t, tunnel.Config{})
	c.startEdge(t, "edge-a", nameHandler("edge-a"), 0)
	clusterCA := newCA(t, "cluster")
	p := startProxy(t, c, clusterCA, podIndex{})
	if _, err := p.kube.CoreV1().Pods("ns").Create(context.Background(), boundPod("ns", "fresh", "edge-a"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	apiserver := clientCert(t, clusterCA, "apiserver")
	code, body, err := p.get(t, &apiserver, "/containerLogs/ns/fresh/c")
	if err != nil || code != 200 || body != fmt.Sprintf("edge-a %s", "/containerLogs/ns/fresh/c") {
		t.Fatalf("%d %q %v", code, body, err)
	}
}
