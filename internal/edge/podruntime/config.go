package podruntime

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// Config configures a Runtime.
type Config struct {
	// NodeName is the node's name (spec.nodeName of its pods).
	NodeName string
	// NodeIP is the node's address: status.hostIP, and the pod IP of
	// hostNetwork pods.
	NodeIP string
	// CRIEndpoint is the unix socket of this node's CRI runtime
	// ("/path/containerd.sock" or "unix:///path/containerd.sock").
	CRIEndpoint string
	// RootDir holds per-pod directories: volumes (configMap, secret,
	// emptyDir, projected, downwardAPI) and termination message files.
	RootDir string
	// PodLogDir holds the containers' CRI log files.
	PodLogDir string
	// CgroupParent is the cgroup (cgroupfs path) all pods go under,
	// unique per node on a shared host, e.g. /verge/edge-1.
	CgroupParent string
	// ReconcilePeriod is how often the full CRI-versus-desired reconcile
	// (ghost removal, volume refresh) runs besides Trigger; default 10 s.
	ReconcilePeriod time.Duration
	// RelistPeriod is how often container states are polled from CRI to
	// notice exits; default 1 s.
	RelistPeriod time.Duration
	// ClusterDNS and ClusterDomain configure pods with dnsPolicy
	// ClusterFirst; with no ClusterDNS such pods get the host's resolver
	// (as with dnsPolicy Default) and an event says so.
	ClusterDNS    []string
	ClusterDomain string
	// CrashLoopBackOff bounds restart delays; zero fields take the defaults
	// (10 s, 5 min, reset after 10 min of running).
	CrashLoopBackOff BackoffPolicy
	// ImagePullBackOff bounds retry delays of failed pulls; same defaults.
	ImagePullBackOff BackoffPolicy
	// ContainerLogMaxSize is the size at which a container's log is
	// rotated (default 10 MiB); ContainerLogMaxFiles counts the files kept
	// per container, the current one included (default 5).
	ContainerLogMaxSize  int64
	ContainerLogMaxFiles int
	// Allocatable is what resourceFieldRef reports for a limit the
	// container does not set; default: the host's CPUs and memory.
	Allocatable kube.ResourceList
	// Metrics, if set, receives the runtime's metrics.
	Metrics prometheus.Registerer
	// Clock reads the time for status and back-off decisions; default real.
	Clock clock.PassiveClock
}

// Source is the desired state, backed by the edge store.
type Source interface {
	// Pods returns the pods bound to this node, including those with a
	// deletionTimestamp. An error (never an empty list) when it cannot.
	Pods(ctx context.Context) ([]*kube.Pod, error)
	// ConfigMap and Secret return an error wrapping ErrNotFound
	// for objects that do not exist.
	ConfigMap(ctx context.Context, namespace, name string) (*kube.ConfigMap, error)
	Secret(ctx context.Context, namespace, name string) (*kube.Secret, error)
	// ServiceAccountToken returns a bound token for a pod's projected
	// volume.
	ServiceAccountToken(ctx context.Context, namespace, podName, serviceAccount string, audiences []string, expirationSeconds int64) (string, error)
}

// Sink receives what the runtime observes.
type Sink interface {
	// PodStatus is called when the pod's status changed.
	PodStatus(pod types.NamespacedName, uid types.UID, status kube.PodStatus)
	// PodTerminated is called when a pod with a deletionTimestamp has no
	// running containers and its sandbox is stopped: the cloud may delete
	// it now.
	PodTerminated(pod types.NamespacedName, uid types.UID)
	// Event reports something an operator should see.
	Event(ref kube.ObjectReference, eventType, reason, message string)
}

// ConfigError is a configuration mistake; its message says what to fix.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

func withDefaults(c Config) Config {
	if c.ReconcilePeriod <= 0 {
		c.ReconcilePeriod = 10 * time.Second
	}
	if c.RelistPeriod <= 0 {
		c.RelistPeriod = time.Second
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	c.CrashLoopBackOff = c.CrashLoopBackOff.withDefaults()
	c.ImagePullBackOff = c.ImagePullBackOff.withDefaults()
	if c.ContainerLogMaxSize <= 0 {
		c.ContainerLogMaxSize = defaultLogMaxSize
	}
	if c.ContainerLogMaxFiles <= 0 {
		c.ContainerLogMaxFiles = defaultLogMaxFiles
	}
	if c.Allocatable == nil {
		c.Allocatable = hostAllocatable()
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	c.CRIEndpoint = strings.TrimPrefix(c.CRIEndpoint, "unix://")
	return c
}

// Validate reports the first problem with c (after defaults).
func (c Config) Validate() error {
	bad := func(format string, args ...any) error { return &ConfigError{Msg: fmt.Sprintf(format, args...)} }
	if c.NodeName == "" {
		return bad("pod runtime: NodeName is required")
	}
	if _, err := netip.ParseAddr(c.NodeIP); err != nil {
		return bad("pod runtime: NodeIP %q is not an IP address", c.NodeIP)
	}
	if !filepath.IsAbs(c.CRIEndpoint) {
		return bad("pod runtime: CRIEndpoint %q must be the absolute path of a unix socket (e.g. /var/lib/verge/containerd/containerd.sock)", c.CRIEndpoint)
	}
	if !filepath.IsAbs(c.RootDir) || !filepath.IsAbs(c.PodLogDir) {
		return bad("pod runtime: RootDir %q and PodLogDir %q must be absolute paths", c.RootDir, c.PodLogDir)
	}
	if !strings.HasPrefix(c.CgroupParent, "/") || c.CgroupParent == "/" || strings.Contains(c.CgroupParent, "..") {
		return bad("pod runtime: CgroupParent %q must be an absolute cgroup path below the root, e.g. /verge/%s", c.CgroupParent, c.NodeName)
	}
	if c.ContainerLogMaxFiles < 2 {
		return bad("pod runtime: ContainerLogMaxFiles must be at least 2 (the current log and one rotated), got %d", c.ContainerLogMaxFiles)
	}
	for _, ip := range c.ClusterDNS {
		if _, err := netip.ParseAddr(ip); err != nil {
			return bad("pod runtime: ClusterDNS entry %q is not an IP address", ip)
		}
	}
	return nil
}

// hostAllocatable reads the host's CPUs and memory.
func hostAllocatable() kube.ResourceList {
	rl := kube.ResourceList{
		kube.ResourceCPU: *kube.NewQuantity(int64(runtime.NumCPU()), kube.DecimalSI),
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			var kb int64
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				rl[kube.ResourceMemory] = *kube.NewQuantity(kb*1024, kube.BinarySI)
				break
			}
		}
	}
	return rl
}

// ErrNotFound is what Source.ConfigMap and Source.Secret wrap for an
// object that does not exist.
var ErrNotFound = errors.New("not found")
