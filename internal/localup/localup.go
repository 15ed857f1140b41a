// Package localup runs an all-in-one Verge cluster on this host for `verge
// up`: the upstream control plane (via devcluster) plus verge-cloud, in the
// foreground, until the context ends; and stops one for `verge down`.
//
// The data directory holds everything:
//
//	verge.lock    flock held for the life of `verge up` (one per directory)
//	verge.pid     the pid of that `verge up`, for `verge down`
//	kubeconfig    cluster-admin kubeconfig for the user
//	cluster/      the control plane's state (see devcluster)
//	cloud/        verge-cloud's identity
//	logs/         verge-cloud's log
//
// A second `up` on the same directory resumes the cluster with its data.
package localup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/verge-edge/verge/internal/atomicfile"
	"github.com/verge-edge/verge/internal/devcluster"
	"github.com/verge-edge/verge/internal/install"
	"github.com/verge-edge/verge/internal/k8sbin"
	"github.com/verge-edge/verge/internal/loopback"
	"github.com/verge-edge/verge/internal/supervisor"
	"github.com/verge-edge/verge/internal/version"
)

// Options configure `verge up`.
type Options struct {
	DataDir string
	// APIServerPort is the kube-apiserver's loopback port.
	APIServerPort int
	// CloudOpsPort is verge-cloud's /healthz, /readyz, /metrics port.
	CloudOpsPort int
	// HubPort is where edge nodes connect to verge-cloud.
	HubPort int
	// ControlPlaneSource is the tools/controlplane module; empty finds it
	// from the working directory or the verge executable.
	ControlPlaneSource string
	// CloudBinary is the verge-cloud executable; empty uses the one next to
	// the verge executable, building it from source if missing. The same
	// goes for EdgeBinary (verge-edge) and PauseBinary (verge-pause, the
	// sandbox process of every edge pod).
	CloudBinary, EdgeBinary, PauseBinary string
	// EdgeNodes is how many edge nodes to run on this host (edge-1 …
	// edge-N); they need root. Zero runs only the cloud side.
	EdgeNodes int
	// RegistryPort is the loopback port of the local image registry the
	// edge nodes pull from (started only with edge nodes).
	RegistryPort int
	// EdgeOpsBasePort + i is edge-i's /healthz and /metrics port.
	EdgeOpsBasePort int
	// TunnelPort is where the API server reaches the edge nodes' kubelet
	// API through verge-cloud (kubectl logs, exec); all interfaces.
	TunnelPort int
	// MQTTBasePort + i is edge-i's MQTT bus on loopback (default
	// DefaultMQTTBasePort).
	MQTTBasePort int
	// Demo also deploys a demo: DemoDevices runs a simulated Modbus
	// thermostat and its mapper on edge-1 (see demo.go).
	Demo string
	// DemoModbusPort is the simulated device's loopback port.
	DemoModbusPort int
	// DevsimBinary and MapperBinary are verge-devsim and
	// verge-mapper-modbus for the devices demo (found or built like the
	// others).
	DevsimBinary, MapperBinary string
	// Out receives progress and the final instructions.
	Out io.Writer
	// Logger receives supervision events (restarts of dead processes).
	Logger *slog.Logger
}

// Defaults for the ports a user may need to change.
const (
	DefaultAPIServerPort = 6443
	DefaultCloudOpsPort  = 10260
	DefaultHubPort       = 10000
	DefaultRegistryPort  = 10500
	DefaultTunnelPort    = 10350
	DefaultEdgeOpsBase   = 10270
)

// UserError is a failure the user can fix; its message says how.
type UserError struct{ Msg string }

func (e *UserError) Error() string { return e.Msg }

// Up starts the cluster and verge-cloud, prints "ready" and next steps, and
// keeps them running (restarting what dies) until ctx ends; then stops all
// of it. Whatever fails, nothing it started is left running.
func Up(ctx context.Context, o Options) (err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(o.Out, nil))
	}
	dir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		return err
	}
	if err := checkDemo(o); err != nil {
		return err
	}
	if o.MQTTBasePort == 0 {
		o.MQTTBasePort = DefaultMQTTBasePort
	}
	if o.DemoModbusPort == 0 {
		o.DemoModbusPort = DefaultDemoModbusPort
	}
	unlock, err := lock(dir)
	if err != nil {
		return err
	}
	defer unlock()

	type portUse struct {
		port int
		what string
		flag string
	}
	ports := []portUse{
		{o.APIServerPort, "kube-apiserver", "--apiserver-port"},
		{o.CloudOpsPort, "verge-cloud's ops endpoint", "--cloud-ops-port"},
		{o.HubPort, "verge-cloud's hub", "--hub-port"},
		{o.TunnelPort, "verge-cloud's logs/exec tunnel", "--tunnel-port"},
	}
	if o.EdgeNodes > 0 {
		if os.Geteuid() != 0 {
			return &UserError{fmt.Sprintf("edge nodes run containers (containerd, CNI) and need root: run verge up as root, or pass --edge-nodes 0 for the cloud side alone (asked for %d edge node(s))", o.EdgeNodes)}
		}
		ports = append(ports, portUse{o.RegistryPort, "the local image registry", "--registry-port"})
		for i := 1; i <= o.EdgeNodes; i++ {
			ports = append(ports, portUse{o.EdgeOpsBasePort + i, fmt.Sprintf("edge-%d's ops endpoint", i), "--edge-ops-base-port"})
			ports = append(ports, portUse{o.MQTTBasePort + i, fmt.Sprintf("edge-%d's MQTT bus", i), "--mqtt-base-port"})
		}
	}
	if o.Demo == DemoDevices {
		ports = append(ports, portUse{o.DemoModbusPort, "the demo's simulated Modbus device", "--demo-modbus-port"})
	}
	for _, p := range ports {
		if !loopback.PortFree(p.port) {
			return &UserError{fmt.Sprintf("port %d (for %s) on 127.0.0.1 is already in use by another program: stop that program or choose another port with %s", p.port, p.what, p.flag)}
		}
	}

	bins, verge, err := ensureBinaries(ctx, o, dir)
	if err != nil {
		return err
	}

	fmt.Fprintf(o.Out, "starting the Kubernetes %s control plane\n", bins.KubernetesVersion)
	cluster, err := devcluster.Start(ctx, devcluster.Config{
		Dir:           filepath.Join(dir, "cluster"),
		Binaries:      bins,
		APIServerPort: o.APIServerPort,
		KeepData:      true,
		Logger:        o.Logger,
	})
	if err != nil {
		var busy *devcluster.PortInUseError
		if errors.As(err, &busy) {
			return &UserError{busy.Error() + ": stop that program or choose another port with --apiserver-port"}
		}
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() {
		// Deferred calls stop the rest first: edge nodes, then verge-cloud
		// and the registry, then (here) the control plane.
		if stopErr := cluster.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
		if ctx.Err() != nil && err == nil {
			fmt.Fprintln(o.Out, "stopped")
		}
	}()
	adminKubeconfig, err := os.ReadFile(cluster.AdminKubeconfig())
	if err != nil {
		return err
	}
	userKubeconfig := filepath.Join(dir, "kubeconfig")
	if err := atomicfile.Write(userKubeconfig, adminKubeconfig, 0o600); err != nil {
		return err
	}

	cloudKubeconfig, err := prepareCloudIdentity(ctx, cluster, dir)
	if err != nil {
		return err
	}
	hubAddr := net.JoinHostPort("", strconv.Itoa(o.HubPort))
	group := supervisor.NewGroup(o.Logger)
	defer group.Stop()
	fmt.Fprintln(o.Out, "starting verge-cloud")
	opsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.CloudOpsPort))
	cloud, err := group.Start(supervisor.Spec{
		Name: "verge-cloud",
		Path: verge.cloud,
		Args: []string{"--kubeconfig=" + cloudKubeconfig, "--ops-address=" + opsAddr, "--hub-listen=" + hubAddr,
			"--tunnel-listen=" + net.JoinHostPort("", strconv.Itoa(o.TunnelPort)),
			// A second replica started against this cluster can then relay
			// logs/exec to nodes connected here (docs/logs-exec.md).
			"--tunnel-peer-address=" + net.JoinHostPort("127.0.0.1", strconv.Itoa(o.HubPort))},
		LogPath:     filepath.Join(dir, "logs", "verge-cloud.log"),
		StopTimeout: 30 * time.Second,
	})
	if err != nil {
		return err
	}
	readyCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := cloud.WaitHTTPReady(readyCtx, &http.Client{Timeout: 5 * time.Second}, "http://"+opsAddr+"/readyz"); err != nil {
		return err
	}

	if err := atomicfile.Write(filepath.Join(dir, "hub"), []byte(fmt.Sprintf("127.0.0.1:%d\n", o.HubPort)), 0o644); err != nil {
		return err
	}
	edgeSummary := ""
	if o.EdgeNodes > 0 {
		fmt.Fprintln(o.Out, "starting the image registry")
		registry, err := startRegistry(ctx, group, o, dir)
		if err != nil {
			return err
		}
		pauseRef, err := pushPause(ctx, registry, verge.pause)
		if err != nil {
			return err
		}
		kube, err := kubernetes.NewForConfig(cluster.RESTConfig())
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "starting %d edge node(s)\n", o.EdgeNodes)
		site, err := startEdge(ctx, o, dir, kube, registry, pauseRef, verge.edge)
		if err != nil {
			return err
		}
		names := make([]string, len(site.nodes))
		for i, n := range site.nodes {
			names[i] = n.name
		}
		edgeSummary = fmt.Sprintf("  Edge nodes:      %s (Ready)\n  Image registry:  %s (verge image build --binary FILE --name NAME:TAG)\n", strings.Join(names, ", "), registry)
		defer func() {
			fmt.Fprintln(o.Out, "stopping the edge nodes and their pods")
			site.stop(context.Background())
		}()
		if o.Demo == DemoDevices {
			fmt.Fprintln(o.Out, "deploying the devices demo")
			demo, err := devicesDemo(ctx, group, o, dir, registry, verge, cluster.RESTConfig(), site)
			if err != nil {
				return err
			}
			edgeSummary += demo
		}
	}
	fmt.Fprintf(o.Out, `ready
  Kubernetes API:  %s
  Edge hub:        port %d (all interfaces)
%s  kubeconfig:      %s
  kubectl %s:  %s
Next:
  export KUBECONFIG=%s
  kubectl get --raw /readyz
Logs are in %s and %s.
Stop with Ctrl-C, or from another shell: verge down --data-dir %s
`, cluster.APIServerURL(), o.HubPort, edgeSummary, userKubeconfig, bins.KubernetesVersion, bins.Kubectl, userKubeconfig,
		filepath.Join(dir, "logs"), filepath.Join(dir, "cluster", "logs"), dir)

	<-ctx.Done()
	fmt.Fprintln(o.Out, "stopping")
	return nil
}

// Down asks the `verge up` running from dataDir to stop and waits until it
// has.
func Down(ctx context.Context, dataDir string, out io.Writer) error {
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, "verge.lock"), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return &UserError{fmt.Sprintf("no Verge cluster has run from %s (no verge.lock there)", dir)}
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
		return &UserError{fmt.Sprintf("no Verge cluster is running from %s", dir)}
	}
	pid, err := readPID(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "stopping verge up (pid %d)\n", pid)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("signalling pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("verge up (pid %d) did not stop within 2 minutes; its logs are in %s", pid, filepath.Join(dir, "logs"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	fmt.Fprintln(out, "stopped")
	return nil
}

// lock takes the data directory's lock and records our pid, or explains
// which `verge up` holds it.
func lock(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "verge.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		holder := "another verge up"
		if pid, err := readPID(dir); err == nil {
			holder = fmt.Sprintf("verge up (pid %d)", pid)
		}
		return nil, &UserError{fmt.Sprintf("a Verge cluster is already running from %s (%s): stop it with `verge down --data-dir %s` or Ctrl-C in its terminal, or use another --data-dir", dir, holder, dir)}
	}
	pidPath := filepath.Join(dir, "verge.pid")
	if err := atomicfile.Write(pidPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		os.Remove(pidPath)
		f.Close() // releases the flock
	}, nil
}

func readPID(dir string) (int, error) {
	data, err := os.ReadFile(filepath.Join(dir, "verge.pid"))
	if err != nil {
		return 0, fmt.Errorf("reading the pid of verge up: %w", err)
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// vergeBinaries are the Verge programs `verge up` runs.
type vergeBinaries struct{ cloud, edge, pause, devsim, mapper string }

// ensureBinaries finds or builds the control plane and Verge's programs.
func ensureBinaries(ctx context.Context, o Options, dir string) (*k8sbin.Binaries, vergeBinaries, error) {
	exe, _ := os.Executable()
	src := o.ControlPlaneSource
	if src == "" {
		var err error
		if src, err = findSource(exe); err != nil {
			return nil, vergeBinaries{}, err
		}
	}
	cache, err := k8sbin.DefaultCacheDir()
	if err != nil {
		return nil, vergeBinaries{}, err
	}
	bins, err := k8sbin.Ensure(ctx, k8sbin.Options{SourceDir: src, CacheDir: cache, Progress: o.Out})
	if err != nil {
		return nil, vergeBinaries{}, err
	}
	repo := filepath.Dir(filepath.Dir(src))
	var vb vergeBinaries
	for _, b := range []struct {
		path *string
		flag string
		name string
		need bool
	}{
		{&vb.cloud, o.CloudBinary, "verge-cloud", true},
		{&vb.edge, o.EdgeBinary, "verge-edge", o.EdgeNodes > 0},
		{&vb.pause, o.PauseBinary, "verge-pause", o.EdgeNodes > 0},
		{&vb.devsim, o.DevsimBinary, "verge-devsim", o.Demo == DemoDevices},
		{&vb.mapper, o.MapperBinary, "verge-mapper-modbus", o.Demo == DemoDevices},
	} {
		if !b.need {
			continue
		}
		if *b.path, err = vergeBinary(ctx, o, exe, repo, dir, b.flag, b.name); err != nil {
			return nil, vergeBinaries{}, err
		}
	}
	return bins, vb, nil
}

// vergeBinary returns the given path, or name next to the verge
// executable, or builds it (static) from the checkout into dir/bin.
func vergeBinary(ctx context.Context, o Options, exe, repo, dir, given, name string) (string, error) {
	if given != "" {
		return given, nil
	}
	p := filepath.Join(filepath.Dir(exe), name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	// Running from a checkout without `make build`: build it.
	p = filepath.Join(dir, "bin", name)
	fmt.Fprintf(o.Out, "building %s into %s\n", name, p)
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", version.BuildTags, "-trimpath", "-o", p, "./cmd/"+name)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", name, err, out)
	}
	return p, nil
}

// findSource looks for tools/controlplane from the working directory, then
// from the verge executable's location (bin/ inside a checkout).
func findSource(exe string) (string, error) {
	wd, _ := os.Getwd()
	src, err := k8sbin.FindSource(wd)
	if err == nil {
		return src, nil
	}
	if exe != "" {
		if s, err2 := k8sbin.FindSource(filepath.Dir(exe)); err2 == nil {
			return s, nil
		}
	}
	return "", &UserError{"cannot find the Kubernetes control-plane pin (tools/controlplane): run verge up inside a Verge source checkout, or pass --controlplane-source DIR"}
}

// prepareCloudIdentity installs verge-cloud's ServiceAccount and roles
// (deploy/verge-cloud) and writes a kubeconfig for it, so the local cluster
// runs verge-cloud with exactly the rights of a real installation.
func prepareCloudIdentity(ctx context.Context, cluster *devcluster.Cluster, dir string) (string, error) {
	if err := install.CloudIdentity(ctx, cluster.RESTConfig()); err != nil {
		return "", err
	}
	data, err := install.CloudKubeconfig(ctx, cluster.RESTConfig(), cluster.APIServerURL(), cluster.CA().CertPEM)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "cloud", "kubeconfig")
	return path, atomicfile.Write(path, data, 0o600)
}
