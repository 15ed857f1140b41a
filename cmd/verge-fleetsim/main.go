// Command verge-fleetsim benchmarks verge-cloud with a fleet of simulated
// edge nodes in one process (see internal/fleetsim). Point it at a running
// cluster, e.g. one from `verge up`:
//
//	verge-fleetsim --kubeconfig .verge/kubeconfig --hub 127.0.0.1:10000 \
//	  --cloud-metrics http://127.0.0.1:10260/metrics --scenario delivery --nodes 1000 --pods 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/verge-edge/verge/internal/cloud/nodeca"
	"github.com/verge-edge/verge/internal/fleetsim"
	"github.com/verge-edge/verge/internal/pki"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "verge-fleetsim:", err)
		os.Exit(1)
	}
}

func run() error {
	kubeconfig := flag.String("kubeconfig", ".verge/kubeconfig", "cluster-admin kubeconfig")
	hub := flag.String("hub", "127.0.0.1:10000", "verge-cloud's hub address")
	metrics := flag.String("cloud-metrics", "http://127.0.0.1:10260/metrics", "verge-cloud's /metrics URL")
	namespace := flag.String("namespace", "verge-system", "verge-cloud's namespace (where the Verge CA is)")
	scenario := flag.String("scenario", "delivery", "delivery, wire or restart")
	nodes := flag.Int("nodes", 1000, "simulated nodes")
	pods := flag.Int("pods", 1000, "pods (delivery) or pod updates (wire)")
	prefix := flag.String("prefix", "sim", "simulated node name prefix")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rc, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	rc.QPS, rc.Burst = 500, 1000
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	s, err := kube.CoreV1().Secrets(*namespace).Get(ctx, nodeca.SecretName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading the Verge CA (is verge-cloud running?): %w", err)
	}
	ca, err := pki.ParseCA(s.Data["tls.crt"], s.Data["tls.key"])
	if err != nil {
		return err
	}
	b := &fleetsim.Bench{Kube: kube, Hub: *hub, CA: ca, CloudMetrics: *metrics, Out: os.Stdout, Prefix: *prefix,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}
	switch *scenario {
	case "delivery":
		_, err = b.Delivery(ctx, *nodes, *pods)
	case "wire":
		err = b.WireBytes(ctx, *nodes, *pods)
	case "restart":
		err = b.MemoryAndRestart(ctx, *nodes, killCloud)
	default:
		err = fmt.Errorf("unknown scenario %q: use delivery, wire or restart", *scenario)
	}
	return err
}

// killCloud SIGKILLs the local verge-cloud process; the supervisor of
// `verge up` (or systemd, or Kubernetes) brings it back.
func killCloud() error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	var found []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(cmdline), "\x00")
		if filepath.Base(argv0) == "verge-cloud" {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		return fmt.Errorf("want exactly one verge-cloud process on this host, found %d", len(found))
	}
	return syscall.Kill(found[0], syscall.SIGKILL)
}
