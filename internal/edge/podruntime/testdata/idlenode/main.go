// Command idlenode runs only the pod runtime against a CRI socket with the
// pods of a JSON file, printing "status <name> <phase> <ready>" lines. The
// idle-memory benchmark measures its resident set: the pod runtime's share
// of verge-edge's memory.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/apimachinery/pkg/types"

	"github.com/verge-edge/verge/internal/edge/podruntime"
	"github.com/verge-edge/verge/internal/protocol/kube"
)

type source struct{ pods []*kube.Pod }

func (s source) Pods(context.Context) ([]*kube.Pod, error) { return s.pods, nil }
func (source) ConfigMap(_ context.Context, _, name string) (*kube.ConfigMap, error) {
	return nil, fmt.Errorf("configmap %q: %w", name, podruntime.ErrNotFound)
}
func (source) Secret(_ context.Context, _, name string) (*kube.Secret, error) {
	return nil, fmt.Errorf("secret %q: %w", name, podruntime.ErrNotFound)
}
func (source) ServiceAccountToken(context.Context, string, string, string, []string, int64) (string, error) {
	return "token", nil
}

type sink struct{}

func (sink) PodStatus(pod types.NamespacedName, _ types.UID, st kube.PodStatus) {
	ready := false
	for _, c := range st.Conditions {
		if c.Type == kube.PodReady && c.Status == kube.ConditionTrue {
			ready = true
		}
	}
	fmt.Printf("status %s %s %v\n", pod.Name, st.Phase, ready)
}
func (sink) PodTerminated(types.NamespacedName, types.UID)      {}
func (sink) Event(kube.ObjectReference, string, string, string) {}

func main() {
	var cfg podruntime.Config
	podsFile := flag.String("pods", "", "JSON list of pods")
	flag.StringVar(&cfg.CRIEndpoint, "endpoint", "", "CRI socket")
	flag.StringVar(&cfg.RootDir, "root", "", "root dir")
	flag.StringVar(&cfg.PodLogDir, "logs", "", "log dir")
	flag.StringVar(&cfg.CgroupParent, "cgroup", "", "cgroup parent")
	flag.Parse()
	cfg.NodeName, cfg.NodeIP = "edge-idle", "127.0.0.1"
	data, err := os.ReadFile(*podsFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var pods []*kube.Pod
	if err := json.Unmarshal(data, &pods); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rt, err := podruntime.New(cfg, source{pods}, sink{}, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := rt.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
