package containerd

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/verge-edge/verge/internal/atomicfile"
	"github.com/verge-edge/verge/internal/supervisor"
)

// Instance is one configured containerd. It does not run the process
// itself: Spec hands that to a supervisor, which restarts it if it dies.
type Instance struct {
	cfg Config
}

// New validates cfg (after filling defaults) and returns the instance.
func New(cfg Config) (*Instance, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Instance{cfg: cfg}, nil
}

// Config returns the instance's configuration with defaults filled in.
func (i *Instance) Config() Config { return i.cfg }

// Endpoint is the CRI socket path (for the pod runtime's CRIEndpoint).
func (i *Instance) Endpoint() string { return i.cfg.socketPath() }

// CgroupParent is the cgroup the pod runtime should place this node's pods
// under.
func (i *Instance) CgroupParent() string { return i.cfg.CgroupParent }

// NetworkName is the CNI network name; CNI-created iptables rules carry it
// in their comments.
func (i *Instance) NetworkName() string { return i.cfg.networkName() }

// Prepare creates Dir's layout and (re)writes config.toml, the CNI network
// and the registry hosts files. It refuses a pod CIDR that overlaps a route
// the host already has on another interface, since pods would then be
// unreachable or shadow that network.
func (i *Instance) Prepare() error {
	c := i.cfg
	if err := checkRoutes(c); err != nil {
		return err
	}
	for _, d := range []string{c.Dir, c.rootDir(), c.stateDir(), c.cniConfDir(), c.ipamDir(), c.hostsDir(), c.optDir(), c.tempDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("containerd instance %s: %w", c.Name, err)
		}
	}
	if err := atomicfile.Write(c.configPath(), c.renderConfig(), 0o600); err != nil {
		return fmt.Errorf("containerd instance %s: writing config: %w", c.Name, err)
	}
	cni, err := c.renderCNI()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(c.cniConfPath(), cni, 0o644); err != nil {
		return fmt.Errorf("containerd instance %s: writing CNI config: %w", c.Name, err)
	}
	// Drop hosts files of registries no longer configured.
	keep := map[string]bool{}
	for _, r := range c.registryHosts() {
		keep[r.Host] = true
		if err := atomicfile.Write(c.hostsTOMLPath(r.Host), r.renderHostsTOML(), 0o644); err != nil {
			return fmt.Errorf("containerd instance %s: writing registry hosts for %s: %w", c.Name, r.Host, err)
		}
	}
	entries, _ := os.ReadDir(c.hostsDir())
	for _, e := range entries {
		if !keep[e.Name()] {
			os.RemoveAll(filepath.Join(c.hostsDir(), e.Name()))
		}
	}
	return nil
}

// Spec describes the containerd process for a supervisor.Group. Its log goes
// to logPath.
func (i *Instance) Spec(logPath string) supervisor.Spec {
	return supervisor.Spec{
		Name:    "containerd-" + i.cfg.Name,
		Path:    i.cfg.ContainerdPath,
		Args:    []string{"--config", i.cfg.configPath()},
		LogPath: logPath,
		// containerd flushes its metadata store on SIGTERM; give it time.
		StopTimeout: 20 * time.Second,
	}
}

// Dial opens a CRI connection to the instance's socket.
func (i *Instance) Dial() (*grpc.ClientConn, error) {
	return grpc.NewClient("unix://"+i.cfg.socketPath(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
}

// WaitReady polls until containerd's CRI reports RuntimeReady and
// NetworkReady, or ctx ends (the error then carries the last answer).
func (i *Instance) WaitReady(ctx context.Context) error {
	conn, err := i.Dial()
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	var last string
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := rt.Status(cctx, &runtimeapi.StatusRequest{})
		cancel()
		if err == nil {
			var notReady []string
			for _, cond := range resp.GetStatus().GetConditions() {
				if !cond.Status {
					notReady = append(notReady, fmt.Sprintf("%s (%s: %s)", cond.Type, cond.Reason, cond.Message))
				}
			}
			if len(notReady) == 0 {
				return nil
			}
			last = "not ready: " + strings.Join(notReady, "; ")
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd instance %s at %s did not become ready (%s): %w", i.cfg.Name, i.cfg.socketPath(), last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RemoveAllPods stops and removes every pod sandbox (and so every container
// and its network set-up) through CRI. containerd must be running.
func (i *Instance) RemoveAllPods(ctx context.Context) error {
	conn, err := i.Dial()
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	var errs []error
	ctrs, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return fmt.Errorf("containerd instance %s: listing containers: %w", i.cfg.Name, err)
	}
	for _, c := range ctrs.Containers {
		if _, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.Id, Timeout: 0}); err != nil {
			errs = append(errs, err)
		}
		if _, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id}); err != nil {
			errs = append(errs, err)
		}
	}
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("containerd instance %s: listing sandboxes: %w", i.cfg.Name, err)
	}
	for _, s := range sbs.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, err)
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkRoutes fails if the pod CIDR overlaps an IPv4 route on an interface
// other than this instance's bridge.
func checkRoutes(c Config) error {
	pod, err := parsePodCIDR(c.PodCIDR)
	if err != nil {
		return err
	}
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil // not Linux-like /proc; nothing to check against
	}
	defer f.Close()
	routes, err := parseRouteTable(f)
	if err != nil {
		return fmt.Errorf("reading /proc/net/route: %w", err)
	}
	for _, r := range routes {
		if r.iface == c.BridgeName || r.prefix.Bits() == 0 {
			continue
		}
		if r.prefix.Overlaps(pod) {
			return configErrorf("containerd instance %s: pod CIDR %s overlaps the host route %s on %s; choose a pod CIDR no other network or edge node uses", c.Name, pod, r.prefix, r.iface)
		}
	}
	return nil
}

type route struct {
	iface  string
	prefix netip.Prefix
}

// parseRouteTable reads /proc/net/route: destination and mask are
// little-endian hex IPv4 addresses.
func parseRouteTable(f *os.File) ([]route, error) {
	var out []route
	sc := bufio.NewScanner(f)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 {
			continue
		}
		dst, err1 := parseHexIPv4(fields[1])
		mask, err2 := parseHexIPv4(fields[7])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("unexpected line %q", sc.Text())
		}
		bits := 0
		for m := binary.BigEndian.Uint32(mask[:]); m != 0; m <<= 1 {
			bits++
		}
		p, err := netip.AddrFrom4(dst).Prefix(bits)
		if err != nil {
			return nil, err
		}
		out = append(out, route{iface: fields[0], prefix: p})
	}
	return out, sc.Err()
}

func parseHexIPv4(s string) ([4]byte, error) {
	var a [4]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 4 {
		return a, fmt.Errorf("bad address %q", s)
	}
	binary.BigEndian.PutUint32(a[:], binary.LittleEndian.Uint32(b))
	return a, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
