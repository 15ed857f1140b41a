package podruntime

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// runHook runs a postStart or preStop handler against a container and
// returns an error saying what failed.
func (r *Runtime) runHook(ctx context.Context, h *kube.LifecycleHandler, c *kube.Container, containerID, podIP string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case h.Exec != nil:
		resp, err := r.cri.execSync(ctx, containerID, h.Exec.Command, timeout)
		if err != nil {
			return fmt.Errorf("exec %q: %w", strings.Join(h.Exec.Command, " "), err)
		}
		if resp.ExitCode != 0 {
			out := strings.TrimSpace(string(resp.Stdout) + string(resp.Stderr))
			return fmt.Errorf("exec %q exited with %d: %s", strings.Join(h.Exec.Command, " "), resp.ExitCode, truncate(out, 256))
		}
		return nil
	case h.HTTPGet != nil:
		ok, msg := httpProbe(ctx, r.probes.transport, h.HTTPGet, probeTarget{Container: c, PodIP: podIP})
		if !ok {
			return fmt.Errorf("http hook: %s", msg)
		}
		return nil
	case h.Sleep != nil:
		select {
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
			return nil
		case <-ctx.Done():
			return nil // the grace period ended the sleep; that is its purpose
		}
	case h.TCPSocket != nil:
		// Deprecated and never run by the kubelet either.
		return nil
	}
	return fmt.Errorf("lifecycle handler has no action")
}
