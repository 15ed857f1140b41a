package kubeletapi_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	streamhttp "k8s.io/streaming/pkg/httpstream"

	"github.com/verge-edge/verge/internal/cloud/reports"
	"github.com/verge-edge/verge/internal/cloud/tunnel"
	"github.com/verge-edge/verge/internal/containerd/containerdtest"
	edgetunnel "github.com/verge-edge/verge/internal/edge/tunnel"
	"github.com/verge-edge/verge/internal/nodecert"
	"github.com/verge-edge/verge/internal/pki"
	edgekube "github.com/verge-edge/verge/internal/protocol/kube"
	"github.com/verge-edge/verge/internal/protocol/kube/kubeconv"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
	"github.com/verge-edge/verge/internal/protocol/wire"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// noPodCache makes the proxy read pods from the API server.
type noPodCache struct{}

func (noPodCache) Pod(string, string) (*corev1.Pod, bool) { return nil, false }

// startTunnels runs verge-cloud's tunnel service (on a gRPC server with
// the hub's TLS) and its proxy for the API server, and connects node's
// tunnel client serving h. It returns the proxy's port.
func startTunnels(t *testing.T, kube kubernetes.Interface, node string, h http.Handler) int32 {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ca, err := pki.NewCA("verge-test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := nodecert.ServerTLS(ca, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	svc := tunnel.New(tunnel.Config{Logger: logger})
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true})) // as the hub
	svc.Register(g)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)

	proxy, err := tunnel.NewProxy(tunnel.ProxyConfig{
		Listen: "127.0.0.1:0", Dial: svc.Dial, Pods: noPodCache{}, Kube: kube,
		Certificate: serverTLS.Certificates[0], Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	proxyDone := make(chan struct{})
	go func() { defer close(proxyDone); _ = proxy.Start(ctx) }()

	keyPEM, csrPEM, err := nodecert.NewKeyAndCSR(node)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := nodecert.Sign(ca, csrPEM, node, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	client := edgetunnel.NewClient(edgetunnel.ClientConfig{
		Address:     l.Addr().String(),
		Credentials: func() (*tls.Config, error) { return nodecert.ClientTLS(ca.CertPEM, cert) },
		Handler:     h,
		Logger:      logger,
	})
	clientDone := make(chan struct{})
	go func() { defer close(clientDone); _ = client.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-proxyDone; <-clientDone })

	addr, err := proxy.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the tunnel and the client CA", func() bool { return svc.Connected(node) && proxy.Ready() == nil })
	return int32(addr.(*net.TCPAddr).Port)
}

// TestThroughTheAPIServer runs kubectl's calls — logs, exec over SPDY
// and WebSocket, port-forward — against the real API server for a pod on
// an edge node whose Node object points the API server at the tunnel
// proxy, as verge-cloud sets it from the node's status reports.
func TestThroughTheAPIServer(t *testing.T) {
	kube := testenv.Client(t)
	restConfig := testenv.Start(t).RESTConfig()
	ns := testenv.Namespace(t)
	ctx := context.Background()
	nodeName := "tunnel-" + ns[strings.LastIndex(ns, "-")+1:]

	// The pod exists in the API first (its UID is the one the edge runs).
	var apiPod *corev1.Pod
	n := startNode(t, nodeName, func(images containerdtest.Images) []*edgekube.Pod {
		p := testPod(nodeName, images)
		p.Namespace, p.UID = ns, ""
		noToken := false
		p.Spec.AutomountServiceAccountToken = &noToken
		p.Spec.Containers = p.Spec.Containers[:1] // web
		var created corev1.Pod
		kubeconv.Must(p, &created)
		var err error
		if apiPod, err = kube.CoreV1().Pods(ns).Create(ctx, &created, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var edgePod edgekube.Pod
		kubeconv.Must(apiPod, &edgePod)
		return []*edgekube.Pod{&edgePod}
	})
	port := startTunnels(t, kube, nodeName, n.api)

	// The Node, and its status as the edge reports it (no kubelet port):
	// verge-cloud's report applier publishes the tunnel proxy's port.
	if _, err := kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.CoreV1().Nodes().Delete(context.Background(), nodeName, metav1.DeleteOptions{}) })
	status := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}, Status: corev1.NodeStatus{
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: nodeName}},
	}}
	enc, data, compressed, err := wire.Encode(status)
	if err != nil {
		t.Fatal(err)
	}
	applier := &reports.Applier{Kube: kube, Pods: noPodCache{}, Logger: slog.New(slog.DiscardHandler), KubeletPort: port}
	if outcome, msg, _ := applier.Apply(ctx, nodeName, &syncpb.Report{Kind: wire.ReportNodeStatus, Encoding: enc, Data: data, Compressed: compressed}); outcome != syncpb.Outcome_OUTCOME_ACCEPTED {
		t.Fatalf("node status: %v %s", outcome, msg)
	}
	node, err := kube.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil || node.Status.DaemonEndpoints.KubeletEndpoint.Port != port {
		t.Fatalf("the Node's kubelet port is %d, want the tunnel's %d (%v)", node.Status.DaemonEndpoints.KubeletEndpoint.Port, port, err)
	}
	waitUntil(t, 90*time.Second, "the web container running", func() bool {
		for _, cs := range n.sink.get(apiPod.UID).ContainerStatuses {
			if cs.State.Running != nil {
				return true
			}
		}
		return false
	})

	t.Run("logs", func(t *testing.T) {
		raw, err := kube.CoreV1().Pods(ns).GetLogs("web", &corev1.PodLogOptions{Container: "web"}).DoRaw(ctx)
		if err != nil || !strings.Contains(string(raw), "serving on :8080") {
			t.Fatalf("logs: %q, %v", raw, err)
		}
		tail := int64(1)
		raw, err = kube.CoreV1().Pods(ns).GetLogs("web", &corev1.PodLogOptions{Container: "web", TailLines: &tail, Timestamps: true}).DoRaw(ctx)
		if err != nil || strings.Count(string(raw), "\n") != 1 || !strings.HasSuffix(string(raw), " serving on :8080\n") {
			t.Fatalf("logs --tail=1 --timestamps: %q, %v", raw, err)
		}
		// A follow stays open until the client goes.
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		stream, err := kube.CoreV1().Pods(ns).GetLogs("web", &corev1.PodLogOptions{Container: "web", Follow: true}).Stream(fctx)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		got := ""
		for !strings.Contains(got, "serving on") {
			k, err := stream.Read(buf)
			if err != nil {
				t.Fatalf("follow: %q, %v", got, err)
			}
			got += string(buf[:k])
		}
		stream.Close()
	})

	execURL := func(container string, stdin bool, cmd ...string) *rest.Request {
		return kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name("web").SubResource("exec").
			VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdin: stdin, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	}
	run := func(t *testing.T, ex remotecommand.Executor, stdin io.Reader) (string, string, error) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err := ex.StreamWithContext(sctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: &stdout, Stderr: &stderr})
		return stdout.String(), stderr.String(), err
	}

	t.Run("exec over SPDY", func(t *testing.T) {
		ex, err := remotecommand.NewSPDYExecutor(restConfig, "POST", execURL("web", true, "/app", "cat", "/dev/stdin").URL())
		if err != nil {
			t.Fatal(err)
		}
		out, stderr, err := run(t, ex, strings.NewReader("through the API server"))
		if err != nil || out != "through the API server" {
			t.Fatalf("%q %q %v", out, stderr, err)
		}
	})

	t.Run("exec over WebSocket", func(t *testing.T) {
		// kubectl 1.30+: WebSocket v5 to the API server, which speaks SPDY
		// to the node.
		ex, err := remotecommand.NewWebSocketExecutor(restConfig, "GET", execURL("web", true, "/app", "cat", "/dev/stdin").URL().String())
		if err != nil {
			t.Fatal(err)
		}
		out, stderr, err := run(t, ex, strings.NewReader("websocket in, spdy out"))
		if err != nil || out != "websocket in, spdy out" {
			t.Fatalf("%q %q %v", out, stderr, err)
		}
		_, stderr, err = run(t, mustWS(t, restConfig, execURL("web", false, "/app", "cat", "/missing").URL().String()), nil)
		if ee, ok := err.(interface{ ExitStatus() int }); !ok || ee.ExitStatus() != 1 || !strings.Contains(stderr, "no such file") {
			t.Fatalf("exit status through the API server: %v, stderr %q", err, stderr)
		}
	})

	t.Run("port-forward", func(t *testing.T) {
		u := kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name("web").SubResource("portforward").URL()
		tr, upgrader, err := spdy.RoundTripperFor(restConfig)
		if err != nil {
			t.Fatal(err)
		}
		spdyDialer := spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: tr}, "POST", u)
		wsDialer, err := portforward.NewSPDYOverWebsocketDialerForStreaming(u, restConfig)
		if err != nil {
			t.Fatal(err)
		}
		for name, dialer := range map[string]streamhttp.Dialer{"SPDY": spdyDialer, "WebSocket": wsDialer} {
			stop, ready := make(chan struct{}), make(chan struct{})
			fw, err := portforward.NewOnAddressesForStreaming(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- fw.ForwardPorts() }()
			select {
			case <-ready:
			case err := <-errc:
				t.Fatalf("%s port-forward: %v", name, err)
			case <-time.After(30 * time.Second):
				t.Fatalf("%s port-forward not ready", name)
			}
			ports, err := fw.GetPorts()
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(int(ports[0].Local)) + "/")
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			close(stop)
			if !strings.HasPrefix(string(body), "hello from ") {
				t.Fatalf("%s: through the forward: %q", name, body)
			}
		}
	})

	t.Run("the node's message reaches the user", func(t *testing.T) {
		// As kubectl reads it: a JSON Status whose message is the node's.
		hc, err := rest.HTTPClientFor(restConfig)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Get(restConfig.Host + "/api/v1/namespaces/" + ns + "/pods/web/log?container=web&previous=true")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st metav1.Status
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 400 || !strings.Contains(st.Message, `has no previous terminated container "web"`) {
			t.Fatalf("previous logs of a container that never ended: %d %+v %v", resp.StatusCode, st, err)
		}
	})
}

func mustWS(t *testing.T, config *rest.Config, u string) remotecommand.Executor {
	t.Helper()
	ex, err := remotecommand.NewWebSocketExecutor(config, "GET", u)
	if err != nil {
		t.Fatal(fmt.Errorf("websocket executor: %w", err))
	}
	return ex
}
