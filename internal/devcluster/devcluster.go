// Package devcluster runs a real, single-host Kubernetes control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler) on loopback, with
// generated TLS material, for tests and for `verge up`.
//
// It owns one state directory:
//
//	pki/          CA, front-proxy CA and service-account key (kept across
//	              restarts), leaf certificates (reissued at every start)
//	etcd/         etcd data
//	kubeconfigs/  admin and component kubeconfigs
//	logs/         one log per component
//	ports.json    the loopback ports of the last run, reused when free
//
// Starting a cluster on a directory that already holds one resumes it with
// its data. Stop ends exactly the processes Start launched.
package devcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/verge-edge/verge/internal/atomicfile"
	"github.com/verge-edge/verge/internal/k8sbin"
	"github.com/verge-edge/verge/internal/loopback"
	"github.com/verge-edge/verge/internal/pki"
	"github.com/verge-edge/verge/internal/supervisor"
)

// Config says where and how to run the cluster.
type Config struct {
	// Dir holds the cluster's state; it is created if missing.
	Dir string
	// Binaries are the upstream executables to run.
	Binaries *k8sbin.Binaries
	// APIServerPort is the kube-apiserver's loopback port; 0 picks a free
	// one (the previous run's port when it is still free).
	APIServerPort int
	// KeepData leaves Dir in place on Stop, so a later Start resumes it.
	KeepData bool
	// Logger receives supervision events (child restarts).
	Logger *slog.Logger
	// ReadyTimeout bounds the whole start; default 3 minutes.
	ReadyTimeout time.Duration
}

// PortInUseError says a port the caller asked for is taken.
type PortInUseError struct {
	Port      int
	Component string
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port %d (for %s) on 127.0.0.1 is already in use by another program", e.Port, e.Component)
}

// Cluster is a running control plane.
type Cluster struct {
	cfg    Config
	group  *supervisor.Group
	pki    *clusterPKI
	ports  ports
	config *rest.Config
}

type ports struct {
	EtcdClient        int `json:"etcdClient"`
	EtcdPeer          int `json:"etcdPeer"`
	APIServer         int `json:"apiServer"`
	ControllerManager int `json:"controllerManager"`
	Scheduler         int `json:"scheduler"`
}

// Start launches the control plane and returns once the API server is ready
// and the controller-manager and scheduler are healthy. On failure nothing
// it started is left running.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if cfg.Binaries == nil {
		return nil, errors.New("devcluster: no binaries given")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 3 * time.Minute
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	for _, sub := range []string{"", "etcd", "kubeconfigs", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	c := &Cluster{cfg: cfg}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	if c.pki, err = preparePKI(filepath.Join(dir, "pki")); err != nil {
		return nil, fmt.Errorf("preparing certificates: %w", err)
	}
	if c.ports, err = choosePorts(filepath.Join(dir, "ports.json"), cfg.APIServerPort); err != nil {
		return nil, err
	}
	c.config = &rest.Config{
		Host: c.APIServerURL(),
		TLSClientConfig: rest.TLSClientConfig{
			CAFile:   c.pki.path("ca.crt"),
			CertFile: c.pki.path("admin.crt"),
			KeyFile:  c.pki.path("admin.key"),
		},
		QPS:   200,
		Burst: 400,
	}
	if err := c.writeKubeconfigs(); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.ReadyTimeout)
	defer cancel()
	c.group = supervisor.NewGroup(cfg.Logger)
	etcd, err := c.start("etcd", cfg.Binaries.Etcd, c.etcdArgs())
	if err != nil {
		return nil, err
	}
	if err := c.waitHealthy(ctx, etcd, fmt.Sprintf("https://127.0.0.1:%d/health", c.ports.EtcdClient), true); err != nil {
		return nil, err
	}
	apiserver, err := c.start("kube-apiserver", cfg.Binaries.KubeAPIServer, c.apiserverArgs())
	if err != nil {
		return nil, err
	}
	if err := c.waitHealthy(ctx, apiserver, c.APIServerURL()+"/readyz", true); err != nil {
		return nil, err
	}
	kcm, err := c.start("kube-controller-manager", cfg.Binaries.KubeControllerManager, c.controllerManagerArgs())
	if err != nil {
		return nil, err
	}
	sched, err := c.start("kube-scheduler", cfg.Binaries.KubeScheduler, c.schedulerArgs())
	if err != nil {
		return nil, err
	}
	var g errgroup.Group
	g.Go(func() error {
		return c.waitHealthy(ctx, kcm, fmt.Sprintf("https://127.0.0.1:%d/healthz", c.ports.ControllerManager), false)
	})
	g.Go(func() error {
		return c.waitHealthy(ctx, sched, fmt.Sprintf("https://127.0.0.1:%d/healthz", c.ports.Scheduler), false)
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Pods cannot be created until the controller-manager has made the
	// namespace's default ServiceAccount; callers expect to create pods.
	if err := c.waitDefaultServiceAccount(ctx, kcm); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) waitDefaultServiceAccount(ctx context.Context, kcm *supervisor.Process) error {
	cs, err := kubernetes.NewForConfig(c.config)
	if err != nil {
		return err
	}
	for {
		_, err := cs.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		select {
		case <-kcm.Done():
			return kcm.ExitError()
		case <-ctx.Done():
			return fmt.Errorf("the default ServiceAccount was not created within %s (last error: %w); see %s", c.cfg.ReadyTimeout, err, c.logPath("kube-controller-manager"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop ends every process Start launched (API clients first, etcd last) and
// removes the state directory unless KeepData was set. It is safe to call
// more than once.
func (c *Cluster) Stop() error {
	if c.group != nil {
		c.group.Stop()
	}
	if !c.cfg.KeepData {
		return os.RemoveAll(c.cfg.Dir)
	}
	return nil
}

// RESTConfig returns a cluster-admin client configuration.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.config) }

// AdminKubeconfig is the path of a self-contained cluster-admin kubeconfig.
func (c *Cluster) AdminKubeconfig() string {
	return filepath.Join(c.cfg.Dir, "kubeconfigs", "admin.kubeconfig")
}

// APIServerURL is the API server's https URL on loopback.
func (c *Cluster) APIServerURL() string {
	return fmt.Sprintf("https://127.0.0.1:%d", c.ports.APIServer)
}

// CA returns the cluster CA that signed the API server's and the clients'
// certificates; callers use it to issue further client identities.
func (c *Cluster) CA() *pki.CA { return c.pki.ca }

// Dir is the cluster's state directory.
func (c *Cluster) Dir() string { return c.cfg.Dir }

// PIDs lists the process IDs of the running components.
func (c *Cluster) PIDs() []int { return c.group.PIDs() }

// PID returns the process ID of a running component (e.g. "etcd"), or 0.
func (c *Cluster) PID(component string) int {
	if p := c.group.Current(component); p != nil {
		return p.PID()
	}
	return 0
}

// Restarts reports how often a component (e.g. "kube-apiserver") was
// restarted after dying.
func (c *Cluster) Restarts(component string) int { return c.group.Restarts(component) }

func (c *Cluster) logPath(name string) string { return filepath.Join(c.cfg.Dir, "logs", name+".log") }

func (c *Cluster) start(name, path string, args []string) (*supervisor.Process, error) {
	return c.group.Start(supervisor.Spec{Name: name, Path: path, Args: args, LogPath: c.logPath(name), StopTimeout: 15 * time.Second})
}

func (c *Cluster) etcdArgs() []string {
	client := fmt.Sprintf("https://127.0.0.1:%d", c.ports.EtcdClient)
	peer := fmt.Sprintf("http://127.0.0.1:%d", c.ports.EtcdPeer)
	return []string{
		"--name=verge",
		"--data-dir=" + filepath.Join(c.cfg.Dir, "etcd"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=verge=" + peer,
		"--cert-file=" + c.pki.path("etcd-server.crt"),
		"--key-file=" + c.pki.path("etcd-server.key"),
		"--trusted-ca-file=" + c.pki.path("ca.crt"),
		"--client-cert-auth=true",
		"--log-level=warn",
	}
}

func (c *Cluster) apiserverArgs() []string {
	p := c.pki.path
	return []string{
		"--advertise-address=127.0.0.1",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.ports.APIServer),
		fmt.Sprintf("--etcd-servers=https://127.0.0.1:%d", c.ports.EtcdClient),
		"--etcd-cafile=" + p("ca.crt"),
		"--etcd-certfile=" + p("apiserver-etcd-client.crt"),
		"--etcd-keyfile=" + p("apiserver-etcd-client.key"),
		"--client-ca-file=" + p("ca.crt"),
		"--tls-cert-file=" + p("apiserver.crt"),
		"--tls-private-key-file=" + p("apiserver.key"),
		"--kubelet-client-certificate=" + p("apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + p("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p("sa.pub"),
		"--service-account-signing-key-file=" + p("sa.key"),
		"--service-cluster-ip-range=" + serviceCIDR,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--enable-bootstrap-token-auth=true",
		"--allow-privileged=true",
		"--requestheader-client-ca-file=" + p("front-proxy-ca.crt"),
		"--requestheader-allowed-names=" + frontProxyClientName,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + p("front-proxy-client.crt"),
		"--proxy-client-key-file=" + p("front-proxy-client.key"),
		// A loopback address cannot be published as the kubernetes
		// Service's endpoint; nothing in-cluster dials it here.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}
}

// componentArgs are the flags kube-controller-manager and kube-scheduler
// share: their kubeconfig, delegated authn/authz and loopback serving.
func (c *Cluster) componentArgs(name string, port int) []string {
	kubeconfig := filepath.Join(c.cfg.Dir, "kubeconfigs", name+".kubeconfig")
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + c.pki.path(name+"-serving.crt"),
		"--tls-private-key-file=" + c.pki.path(name+"-serving.key"),
		"--client-ca-file=" + c.pki.path("ca.crt"),
		"--requestheader-client-ca-file=" + c.pki.path("front-proxy-ca.crt"),
		"--leader-elect=false",
	}
}

func (c *Cluster) controllerManagerArgs() []string {
	return append(c.componentArgs("controller-manager", c.ports.ControllerManager),
		"--cluster-name=verge",
		"--root-ca-file="+c.pki.path("ca.crt"),
		"--service-account-private-key-file="+c.pki.path("sa.key"),
		"--use-service-account-credentials=true",
		"--cluster-signing-cert-file="+c.pki.path("ca.crt"),
		"--cluster-signing-key-file="+c.pki.path("ca.key"),
		// bootstrapsigner and tokencleaner serve bootstrap-token joins.
		"--controllers=*,bootstrapsigner,tokencleaner",
	)
}

func (c *Cluster) schedulerArgs() []string {
	return c.componentArgs("scheduler", c.ports.Scheduler)
}

// waitHealthy polls a component's health URL until it answers 200.
// withClientCert presents the admin certificate (etcd and the API server's
// /readyz need it; the other components allow anonymous /healthz).
func (c *Cluster) waitHealthy(ctx context.Context, p *supervisor.Process, url string, withClientCert bool) error {
	client, err := c.httpClient(withClientCert)
	if err != nil {
		return err
	}
	return p.WaitHTTPReady(ctx, client, url)
}

func (c *Cluster) httpClient(withClientCert bool) (*http.Client, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.pki.ca.CertPEM)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if withClientCert {
		cert, err := tls.LoadX509KeyPair(c.pki.path("admin.crt"), c.pki.path("admin.key"))
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

// choosePorts returns the ports for this run: the requested API server port
// (which must be free), and for the rest the previous run's ports when still
// free, else fresh ones. The choice is saved for the next run.
func choosePorts(stateFile string, apiServerPort int) (ports, error) {
	var prev ports
	if data, err := os.ReadFile(stateFile); err == nil {
		_ = json.Unmarshal(data, &prev) // a damaged file only costs new ports
	}
	var p ports
	taken := map[int]bool{}
	pick := func(preferred int) (int, error) {
		if preferred != 0 && !taken[preferred] && loopback.PortFree(preferred) {
			taken[preferred] = true
			return preferred, nil
		}
		for range 100 {
			port, err := loopback.FreePort()
			if err != nil {
				return 0, err
			}
			if !taken[port] {
				taken[port] = true
				return port, nil
			}
		}
		return 0, errors.New("no free loopback port found")
	}
	if apiServerPort != 0 {
		if !loopback.PortFree(apiServerPort) {
			return p, &PortInUseError{Port: apiServerPort, Component: "kube-apiserver"}
		}
		taken[apiServerPort] = true
		p.APIServer = apiServerPort
	}
	var err error
	for _, f := range []struct {
		dst       *int
		preferred int
	}{
		{&p.EtcdClient, prev.EtcdClient},
		{&p.EtcdPeer, prev.EtcdPeer},
		{&p.APIServer, prev.APIServer},
		{&p.ControllerManager, prev.ControllerManager},
		{&p.Scheduler, prev.Scheduler},
	} {
		if *f.dst != 0 {
			continue
		}
		if *f.dst, err = pick(f.preferred); err != nil {
			return p, err
		}
	}
	data, _ := json.MarshalIndent(p, "", "  ")
	return p, atomicfile.Write(stateFile, data, 0o600)
}
