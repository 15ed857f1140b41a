package podruntime

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// rotatedSuffixFormat names rotated logs <attempt>.log.<UTC time>; the
// format sorts chronologically as text.
const rotatedSuffixFormat = "20060102-150405.000000000"

// containerLogPath is where a container's CRI log goes.
func containerLogPath(logRoot string, pod *kube.Pod, name string, attempt uint32) string {
	return filepath.Join(podLogDir(logRoot, pod), name, strconv.FormatUint(uint64(attempt), 10)+".log")
}

// rotatedToDelete returns the rotated files beyond the newest keep ones.
func rotatedToDelete(rotated []string, keep int) []string {
	sorted := append([]string(nil), rotated...)
	sort.Strings(sorted)
	if len(sorted) <= keep {
		return nil
	}
	return sorted[:len(sorted)-keep]
}

// rotateLogs rotates the logs of the pod's running containers that grew
// past the limit: the file is renamed aside, the runtime reopens a fresh
// one, and only MaxFiles-1 rotated files are kept. containerd never
// rotates, and a device's disk is small.
func (w *podWorker) rotateLogs(ctx context.Context, pod *kube.Pod, obs *podObs) {
	r := w.rt
	maxSize, maxFiles := r.cfg.ContainerLogMaxSize, r.cfg.ContainerLogMaxFiles
	for _, c := range obs.Containers {
		if c.State != stateRunning {
			continue
		}
		path := containerLogPath(r.cfg.PodLogDir, pod, c.Name, c.Attempt)
		info, err := os.Stat(path)
		if err != nil || info.Size() < maxSize {
			continue
		}
		rotated := path + "." + r.cfg.Clock.Now().UTC().Format(rotatedSuffixFormat)
		if err := os.Rename(path, rotated); err != nil {
			r.metrics.syncErrors.WithLabelValues("log_rotation").Inc()
			continue
		}
		if err := r.cri.reopenLog(ctx, c.ID); err != nil {
			// The runtime still writes to the renamed file; put it back.
			_ = os.Rename(rotated, path)
			r.metrics.syncErrors.WithLabelValues("log_rotation").Inc()
			continue
		}
		old, _ := filepath.Glob(path + ".*")
		for _, f := range rotatedToDelete(old, maxFiles-1) {
			os.Remove(f)
		}
	}
}

// removeContainerLogs deletes a removed container's log and its rotations.
func removeContainerLogs(path string) {
	os.Remove(path)
	old, _ := filepath.Glob(path + ".*")
	for _, f := range old {
		os.Remove(f)
	}
}

func (c *criClient) reopenLog(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, criQuickTimeout)
	defer cancel()
	_, err := c.rt.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: id})
	return err
}

// logRotationDefaults are the kubelet's.
const (
	defaultLogMaxSize  = 10 << 20
	defaultLogMaxFiles = 5
)
