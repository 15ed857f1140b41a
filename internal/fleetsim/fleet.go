package fleetsim

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/verge-edge/verge/internal/edge/hubclient"
	"github.com/verge-edge/verge/internal/nodecert"
	"github.com/verge-edge/verge/internal/pki"
	"github.com/verge-edge/verge/internal/protocol/wire"
	"github.com/verge-edge/verge/internal/version"
)

// Config describes a simulated fleet.
type Config struct {
	// Hub is verge-cloud's hub address.
	Hub string
	// CA signs the simulated nodes' certificates (the simulator runs with
	// the rights of a cluster admin, so it reads the Verge CA).
	CA *pki.CA
	// Nodes is how many nodes to simulate, named Prefix-0 … Prefix-(N-1).
	Nodes  int
	Prefix string
	// Labels go on every simulated Node.
	Labels map[string]string
	// OnCommit sees every batch a node commits (for latency measurements).
	OnCommit func(node string, ops []hubclient.Op, at time.Time)
	Logger   *slog.Logger
}

// Node is one simulated edge node.
type Node struct {
	Name   string
	Store  *SimStore
	Client *hubclient.Client
	// reported tracks pod versions already reported Running.
	mu       sync.Mutex
	reported map[string]string
}

// Fleet is a running simulated fleet.
type Fleet struct {
	Nodes  []*Node
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start creates the nodes and connects them. Node certificates are signed
// up front so the connection storm measures the hub, not the signing.
func Start(ctx context.Context, cfg Config) (*Fleet, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "sim"
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &Fleet{cancel: cancel}
	for i := range cfg.Nodes {
		name := fmt.Sprintf("%s-%d", cfg.Prefix, i)
		tlsConfig, err := nodeTLS(cfg.CA, name)
		if err != nil {
			cancel()
			return nil, err
		}
		n := &Node{Name: name, Store: NewSimStore(), reported: map[string]string{}}
		if cfg.OnCommit != nil {
			n.Store.OnApply = func(ops []hubclient.Op, at time.Time) { cfg.OnCommit(name, ops, at) }
		}
		n.Client = hubclient.New(hubclient.Config{
			Address:      cfg.Hub,
			Credentials:  func() (*tls.Config, error) { return tlsConfig, nil },
			Store:        n.Store,
			AgentVersion: version.Version + "-fleetsim",
			Labels:       cfg.Labels,
			Applied:      func(keys []string, synced bool) { f.applied(n, keys, synced) },
			OnConnect:    func() { n.reportNode() },
			Logger:       cfg.Logger,
		})
		f.Nodes = append(f.Nodes, n)
	}
	for _, n := range f.Nodes {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			_ = n.Client.Start(ctx)
		}()
	}
	return f, nil
}

// Stop disconnects every node; it is safe to call more than once.
func (f *Fleet) Stop() {
	f.cancel()
	f.wg.Wait()
}

// Connected counts connected nodes; Synced those whose resync is done.
func (f *Fleet) Connected() (connected, synced int) {
	for _, n := range f.Nodes {
		if n.Client.Connected() {
			connected++
		}
		if n.Client.Synced() {
			synced++
		}
	}
	return connected, synced
}

func nodeTLS(ca *pki.CA, name string) (*tls.Config, error) {
	keyPEM, csrPEM, err := nodecert.NewKeyAndCSR(name)
	if err != nil {
		return nil, err
	}
	certPEM, err := nodecert.Sign(ca, csrPEM, name, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return nodecert.ClientTLS(ca.CertPEM, cert)
}

// applied is the simulated runtime: every pod version that arrives is
// reported Running and Ready at once.
func (f *Fleet) applied(n *Node, keys []string, _ bool) {
	kicked := false
	for _, k := range keys {
		if !strings.HasPrefix(k, "pods/") {
			continue
		}
		o, ok := n.Store.Object(k)
		if !ok {
			continue
		}
		n.mu.Lock()
		done := n.reported[k] == o.UID
		n.reported[k] = o.UID
		n.mu.Unlock()
		if done {
			continue
		}
		var pod corev1.Pod
		if err := wire.Decode(wire.EncodingFor(k), o.Data, false, &pod); err != nil {
			continue
		}
		status := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}, Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.ContainersReady, Status: corev1.ConditionTrue}},
			StartTime:  ptrTime(metav1.Now()),
		}}
		if _, data, err := wire.Marshal(status); err == nil {
			n.Store.Enqueue(k, wire.ReportPodStatus, data)
			kicked = true
		}
	}
	if kicked {
		n.Client.Kick()
	}
}

// reportNode queues a Ready node status, as a node does on each connect.
func (n *Node) reportNode() {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name}, Status: corev1.NodeStatus{
		Capacity: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110"),
		},
		Allocatable: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110"),
		},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "SimulatedReady",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
		NodeInfo: corev1.NodeSystemInfo{KubeletVersion: version.Version + "-fleetsim", OperatingSystem: "linux", Architecture: "amd64", ContainerRuntimeVersion: "simulated://0"},
	}}
	if _, data, err := wire.Marshal(node); err == nil {
		n.Store.Enqueue("nodes//"+n.Name, wire.ReportNodeStatus, data)
		n.Client.Kick()
	}
}

func ptrTime(t metav1.Time) *metav1.Time { return &t }
