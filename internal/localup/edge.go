package localup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/verge-edge/verge/internal/atomicfile"
	"github.com/verge-edge/verge/internal/cloud/bootstraptoken"
	"github.com/verge-edge/verge/internal/cloud/nodeca"
	"github.com/verge-edge/verge/internal/containerd"
	"github.com/verge-edge/verge/internal/edge/config"
	"github.com/verge-edge/verge/internal/edge/identity"
	"github.com/verge-edge/verge/internal/edge/podruntime"
	"github.com/verge-edge/verge/internal/imagebuild"
	"github.com/verge-edge/verge/internal/install"
	"github.com/verge-edge/verge/internal/logtail"
	"github.com/verge-edge/verge/internal/supervisor"
	"github.com/verge-edge/verge/internal/version"
)

// edgeSite is the local registry and edge nodes of a `verge up`: each
// node is a private containerd instance (own root, state, socket, bridge
// and pod CIDR) plus a verge-edge joined to the local verge-cloud.
type edgeSite struct {
	dir      string
	registry string // host:port
	log      *slog.Logger
	// runtimes runs the containerd instances, agents the verge-edge
	// processes; they stop separately so that pods can be removed in
	// between (nothing is left running after Ctrl-C).
	runtimes, agents *supervisor.Group
	nodes            []*localNode
	stopOnce         sync.Once
}

type localNode struct {
	name, dir string
	inst      *containerd.Instance
	cfg       config.Edge
}

// startRegistry runs `verge registry serve` on the registry port and waits
// until it answers.
func startRegistry(ctx context.Context, group *supervisor.Group, o Options, dir string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.RegistryPort))
	p, err := group.Start(supervisor.Spec{
		Name:    "registry",
		Path:    exe,
		Args:    []string{"registry", "serve", "--dir", filepath.Join(dir, "images"), "--listen", addr},
		LogPath: filepath.Join(dir, "logs", "registry.log"),
	})
	if err != nil {
		return "", err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.WaitHTTPReady(wctx, &http.Client{Timeout: 2 * time.Second}, "http://"+addr+"/v2/"); err != nil {
		return "", fmt.Errorf("the image registry did not start: %w (log: %s)", err, filepath.Join(dir, "logs", "registry.log"))
	}
	if err := atomicfile.Write(filepath.Join(dir, "registry"), []byte(addr+"\n"), 0o644); err != nil {
		return "", err
	}
	return addr, nil
}

// pushPause packages verge-pause as the sandbox image and pushes it.
func pushPause(ctx context.Context, registry, pauseBin string) (string, error) {
	img, err := imagebuild.BuildFile(pauseBin, nil)
	if err != nil {
		return "", fmt.Errorf("the pause image: %w", err)
	}
	ref := registry + "/verge/pause:" + strings.NewReplacer("+", "-", "/", "-").Replace(version.Version)
	if _, err := imagebuild.Push(ctx, img, ref); err != nil {
		return "", err
	}
	return ref, nil
}

// startEdge starts n edge nodes, joining the ones that have not joined
// yet, and waits until their Nodes are Ready.
func startEdge(ctx context.Context, o Options, dir string, kube kubernetes.Interface, registry, pauseRef, edgeBin string) (*edgeSite, error) {
	site := &edgeSite{dir: dir, registry: registry, log: o.Logger, runtimes: supervisor.NewGroup(o.Logger), agents: supervisor.NewGroup(o.Logger)}
	id := clusterID(dir)
	hub := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.HubPort))
	if err := edgePortsFree(o); err != nil {
		return nil, err
	}
	for i := 1; i <= o.EdgeNodes; i++ {
		name := fmt.Sprintf("edge-%d", i)
		if _, err := site.startNode(ctx, o, kube, id, i, name, pauseRef, hub, edgeBin); err != nil {
			site.stop(context.Background())
			return nil, fmt.Errorf("edge node %s: %w", name, err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for _, n := range site.nodes {
		if err := waitNodeReady(wctx, kube, n.name); err != nil {
			site.stop(context.Background())
			logPath := filepath.Join(dir, "logs", "verge-edge-"+n.name+".log")
			return nil, fmt.Errorf("edge node %s did not become Ready: %w\n--- last lines of %s ---\n%s--- full log: %s", n.name, err, logPath, logtail.Lines(logPath, 20), logPath)
		}
	}
	return site, nil
}

// edgePortsFree checks the loopback ports the edge nodes will listen on, so
// that a busy one is named before anything starts (verge-edge would exit
// and be restarted in vain).
func edgePortsFree(o Options) error {
	for i := 1; i <= o.EdgeNodes; i++ {
		for _, p := range []struct {
			port       int
			what, flag string
		}{
			{o.EdgeOpsBasePort + i, "/healthz and /metrics", "--edge-ops-base-port"},
			{o.MQTTBasePort + i, "MQTT bus", "--mqtt-base-port"},
		} {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)))
			if err != nil {
				return &UserError{fmt.Sprintf("port %d (edge-%d's %s) is in use: stop that program or choose another base with %s", p.port, i, p.what, p.flag)}
			}
			_ = l.Close()
		}
	}
	return nil
}

func (s *edgeSite) startNode(ctx context.Context, o Options, kube kubernetes.Interface, id string, i int, name, pauseRef, hub, edgeBin string) (*localNode, error) {
	nodeDir := filepath.Join(s.dir, "edge", name)
	if err := os.MkdirAll(nodeDir, 0o700); err != nil {
		return nil, err
	}
	inst, err := s.prepareRuntime(filepath.Join(nodeDir, "cri"), fmt.Sprintf("%s-%d", id, i), i, pauseRef)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(s.dir, "logs", "containerd-"+name+".log")
	if _, err := s.runtimes.Start(inst.Spec(logPath)); err != nil {
		return nil, err
	}
	n := &localNode{name: name, dir: nodeDir, inst: inst}
	s.nodes = append(s.nodes, n) // from here on, stop cleans it up
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := inst.WaitReady(rctx); err != nil {
		return nil, fmt.Errorf("%w\n--- last lines of %s ---\n%s", err, logPath, logtail.Lines(logPath, 20))
	}
	n.cfg, err = joinLocal(ctx, kube, nodeDir, name, hub, inst, o.EdgeOpsBasePort+i, o.MQTTBasePort+i)
	if err != nil {
		return nil, err
	}
	if _, err := s.agents.Start(supervisor.Spec{
		Name:        "verge-edge-" + name,
		Path:        edgeBin,
		Args:        []string{"--config", n.cfg.ConfigPath()},
		LogPath:     filepath.Join(s.dir, "logs", "verge-edge-"+name+".log"),
		StopTimeout: 20 * time.Second,
	}); err != nil {
		return nil, err
	}
	return n, nil
}

// prepareRuntime configures node i's containerd, keeping the pod CIDR it
// had before (its pods' addresses come from it).
func (s *edgeSite) prepareRuntime(dir, instName string, i int, pauseRef string) (*containerd.Instance, error) {
	cidrFile := filepath.Join(filepath.Dir(dir), "pod-cidr")
	var candidates []string
	if b, err := os.ReadFile(cidrFile); err == nil {
		candidates = []string{strings.TrimSpace(string(b))}
	} else if errors.Is(err, fs.ErrNotExist) {
		candidates = podCIDRCandidates(s.dir, i)
	} else {
		return nil, err
	}
	var lastErr error
	for _, cidr := range candidates {
		inst, err := containerd.New(containerd.Config{
			Name:         instName,
			Dir:          dir,
			PodCIDR:      cidr,
			SandboxImage: pauseRef,
			Registries:   []containerd.Registry{{Host: s.registry, PlainHTTP: true}},
		})
		if err == nil {
			err = inst.Prepare()
		}
		if err == nil {
			return inst, atomicfile.Write(cidrFile, []byte(cidr+"\n"), 0o644)
		}
		var ce *containerd.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "overlaps") {
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

// podCIDRCandidates proposes /24s in 10.100.0.0–10.199.255.0 for node i,
// spread by the data directory so two clusters on one host rarely collide
// (a collision with a route the host has is detected and skipped).
func podCIDRCandidates(dir string, i int) []string {
	sum := sha256.Sum256([]byte(dir))
	var out []string
	for k := range 16 {
		second := 100 + (int(sum[0])+k)%100
		third := (int(sum[1]) + 16*i + k) % 256
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(second), byte(third), 0}), 24).String())
	}
	return out
}

// clusterID names this data directory's host objects (bridges, cgroups)
// so that two `verge up` clusters on one host never share them.
func clusterID(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return "v" + hex.EncodeToString(sum[:3])
}

// joinLocal joins node name to the local cloud the way `verge join` does
// (a one-use token, the CA pinned by hash, a CSR), unless it has joined
// before; either way it (re)writes its configuration for this run.
func joinLocal(ctx context.Context, kube kubernetes.Interface, nodeDir, name, hub string, inst *containerd.Instance, opsPort, mqttPort int) (config.Edge, error) {
	cfg := config.Default()
	cfg.NodeName = name
	cfg.Labels = map[string]string{"verge.dev/local": "true"}
	cfg.Cloud.Address = hub
	cfg.DataDir = nodeDir
	cfg.OpsAddress = net.JoinHostPort("127.0.0.1", strconv.Itoa(opsPort))
	cfg.Devices.MQTT.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(mqttPort))
	cfg.Runtime.CRIEndpoint = inst.Endpoint()
	cfg.Runtime.CgroupParent = inst.CgroupParent()
	// Every local node shares the host's address; loopback keeps it
	// reachable for the API server's logs/exec requests.
	cfg.Runtime.NodeIP = "127.0.0.1"
	if _, err := identity.Load(cfg.PKIDir()); err != nil {
		caHash, err := waitCAHash(ctx, kube)
		if err != nil {
			return cfg, err
		}
		tok, err := bootstraptoken.Create(ctx, kube.CoreV1().Secrets(bootstraptoken.SecretNamespace), caHash,
			bootstraptoken.Options{TTL: 10 * time.Minute, Description: "verge up: " + name}, time.Now())
		if err != nil {
			return cfg, err
		}
		creds, err := identity.Join(ctx, hub, tok, name)
		if err != nil {
			return cfg, err
		}
		if err := creds.Save(cfg.PKIDir()); err != nil {
			return cfg, err
		}
	}
	return cfg, cfg.Save(cfg.ConfigPath())
}

// waitCAHash waits for verge-cloud to have created its CA.
func waitCAHash(ctx context.Context, kube kubernetes.Interface) (string, error) {
	for {
		h, err := nodeca.Hash(ctx, kube, install.Namespace)
		if err == nil || !errors.Is(err, nodeca.ErrNotCreated) {
			return h, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func waitNodeReady(ctx context.Context, kube kubernetes.Interface, name string) error {
	last := "no Node object yet"
	for {
		n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					if c.Status == corev1.ConditionTrue {
						return nil
					}
					last = fmt.Sprintf("Ready=%s: %s", c.Status, c.Message)
				}
			}
		}
		select {
		case <-ctx.Done():
			return errors.New(last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// stop stops the agents, removes every pod (so no container outlives
// `verge up`; the nodes' stores recreate them at the next start), stops
// containerd and cleans up what a crash may have left.
func (s *edgeSite) stop(ctx context.Context) {
	s.stopOnce.Do(func() { s.stopNow(ctx) })
}

func (s *edgeSite) stopNow(ctx context.Context) {
	s.agents.Stop()
	for _, n := range s.nodes {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := n.inst.RemoveAllPods(rctx); err != nil {
			s.log.Warn("removing the pods of an edge node failed", "node", n.name, "error", err)
		}
		cancel()
	}
	s.runtimes.Stop()
	for _, n := range s.nodes {
		if err := n.inst.CleanupHost(); err != nil {
			s.log.Warn("cleaning up after an edge node failed", "node", n.name, "error", err)
		}
		// Secret and projected volumes are tmpfs mounts that outlive the
		// pods; the next start mounts them again.
		if err := podruntime.UnmountVolumes(n.dir); err != nil {
			s.log.Warn("unmounting the pod volumes of an edge node failed", "node", n.name, "error", err)
		}
	}
}
