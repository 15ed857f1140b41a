package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/verge-edge/verge/internal/edge/nodestatus"
	"github.com/verge-edge/verge/internal/edge/podruntime"
	"github.com/verge-edge/verge/internal/protocol/kube"
)

// nodeReporter reads the host and the runtime every period and queues the
// node's status when it changed, when refresh has passed since the last
// one, and on every new session with the cloud (Force). The node's
// liveness is its Lease, which the cloud renews while the link is up, so
// unchanged statuses need not be sent often.
type nodeReporter struct {
	name    string
	version string
	host    interface {
		Read(context.Context) (nodestatus.Host, error)
	}
	runtime interface {
		RuntimeState(context.Context) podruntime.RuntimeState
	}
	out     func(*kube.Node) error
	period  time.Duration
	refresh time.Duration
	now     func() time.Time
	log     *slog.Logger
	force   chan struct{}

	// Owned by Start's goroutine.
	prev     *kube.NodeStatus
	lastSent time.Time
}

func newNodeReporter(r nodeReporter) *nodeReporter {
	r.force = make(chan struct{}, 1)
	return &r
}

// Force asks for a status report now, changed or not.
func (r *nodeReporter) Force() {
	select {
	case r.force <- struct{}{}:
	default:
	}
}

// Start reports until ctx ends.
func (r *nodeReporter) Start(ctx context.Context) error {
	ticker := time.NewTicker(r.period)
	defer ticker.Stop()
	forced := true // the first status after a start always goes out
	for {
		r.step(ctx, forced)
		forced = false
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-r.force:
			forced = true
		}
	}
}

func (r *nodeReporter) step(ctx context.Context, forced bool) {
	h, err := r.host.Read(ctx)
	if err != nil {
		r.log.Warn("reading the host for the node status failed", "error", err)
		return
	}
	rs := r.runtime.RuntimeState(ctx)
	now := r.now()
	n := nodestatus.Compute(h, nodestatus.Runtime{Version: rs.Version, Ready: rs.Ready, Reason: rs.Reason},
		nodestatus.Options{NodeName: r.name, AgentVersion: r.version, Now: now}, r.prev)
	if !forced && !nodestatus.Changed(r.prev, &n.Status) && now.Sub(r.lastSent) < r.refresh {
		return
	}
	if err := r.out(n); err != nil {
		r.log.Warn("queuing the node status failed", "error", err)
		return
	}
	r.prev, r.lastSent = &n.Status, now
}
