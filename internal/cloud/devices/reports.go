package devices

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	devicesv1beta1 "github.com/verge-edge/verge/api/devices/v1beta1"
	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
	"github.com/verge-edge/verge/internal/cloud/devices/devclient"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
	"github.com/verge-edge/verge/internal/protocol/wire"
)

// ApplyDeviceReport authorizes a node's device report and applies it: the
// readings, state and last-online time to the Device's DeviceStatus (at
// most one write per device per WriteInterval; a report arriving sooner is
// answered Retry with the time left, and the node then sends its newest
// snapshot), desired values set on the node to the Device, and what the
// node says about the mapper and the spec generation to the Device's
// conditions. A node may report only Devices bound to it. Safe for
// concurrent use; idempotent.
func (c *Controller) ApplyDeviceReport(ctx context.Context, node string, r *wire.DeviceReport) (syncpb.Outcome, string, time.Duration) {
	outcome, msg, wait := c.applyDeviceReport(ctx, node, r)
	switch {
	case outcome == syncpb.Outcome_OUTCOME_REJECTED:
		c.metrics.reports.WithLabelValues("rejected").Inc()
		c.o.Logger.Warn("device report refused", "node", node, "device", r.Namespace+"/"+r.Name, "reason", msg)
	case outcome == syncpb.Outcome_OUTCOME_RETRY && msg == coalescedMsg:
		c.metrics.reports.WithLabelValues("coalesced").Inc()
	case outcome == syncpb.Outcome_OUTCOME_RETRY:
		c.metrics.reports.WithLabelValues("failed").Inc()
	default:
		c.metrics.reports.WithLabelValues("written").Inc()
	}
	return outcome, msg, wait
}

const coalescedMsg = "coalesced: this device's status was written less than the write interval ago; send the newest snapshot when it is up"

func reject(format string, args ...any) (syncpb.Outcome, string, time.Duration) {
	return syncpb.Outcome_OUTCOME_REJECTED, fmt.Sprintf(format, args...), 0
}

func (c *Controller) applyDeviceReport(ctx context.Context, node string, r *wire.DeviceReport) (syncpb.Outcome, string, time.Duration) {
	if r.Namespace == "" || r.Name == "" {
		return reject("device report without namespace and name")
	}
	key := deviceKey(r.Namespace, r.Name)
	d, ok := c.o.Informers.Device(r.Namespace, r.Name)
	if !ok {
		// The cache may lag a Device just created; ask the API server.
		live, err := c.o.Client.GetDevice(ctx, r.Namespace, r.Name)
		if apierrors.IsNotFound(err) {
			return reject("device %s no longer exists", key)
		}
		if err != nil {
			return syncpb.Outcome_OUTCOME_RETRY, err.Error(), 2 * time.Second
		}
		d = live
	}
	if d.Spec.NodeName != node {
		return reject("node %s may not report device %s, which is bound to %q", node, key, d.Spec.NodeName)
	}
	if r.UID != "" && string(d.UID) != r.UID {
		return reject("device %s is now a different device (uid %s; the report is about %s)", key, d.UID, r.UID)
	}
	c.recordFacts(key, node, r)

	now := c.o.Clock.Now()
	c.mu.Lock()
	wait, previous := c.pacer.Admit(key, now)
	c.mu.Unlock()
	if wait > 0 {
		return syncpb.Outcome_OUTCOME_RETRY, coalescedMsg, wait
	}
	if err := c.writeDeviceStatus(ctx, node, d, r); err != nil {
		c.forgetWrite(key, now)
		if apierrors.IsNotFound(err) {
			return reject("device %s no longer exists", key)
		}
		return syncpb.Outcome_OUTCOME_RETRY, err.Error(), 2 * time.Second
	}
	c.observeLatency(r, previous, c.o.Clock.Now())
	if err := c.applyDesiredUpdates(ctx, d, r.DesiredUpdates); err != nil {
		return syncpb.Outcome_OUTCOME_RETRY, err.Error(), 2 * time.Second
	}
	return syncpb.Outcome_OUTCOME_ACCEPTED, "", 0
}

// forgetWrite undoes a pacer admission whose write failed.
func (c *Controller) forgetWrite(key string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pacer.last[key].Equal(at) {
		delete(c.pacer.last, key)
	}
}

// recordFacts keeps what the node says about the device for its
// conditions, and queues the Device when that changed (a moving
// lastOnlineTime too: the reconcile rewrites it only when a minute old).
func (c *Controller) recordFacts(key, node string, r *wire.DeviceReport) {
	f := &EdgeFacts{Node: node, Generation: r.Generation, Mapper: r.Mapper, State: r.State, Reason: r.Reason, LastOnlineTime: r.LastOnlineTime}
	c.mu.Lock()
	old := c.facts[key]
	c.facts[key] = f
	c.mu.Unlock()
	if old == nil || *old != *f {
		c.queue.Add(key)
	}
}

// DeviceStatusPatch is the merge patch a report makes to the DeviceStatus
// status: the whole twin list (a property no longer reported goes), the
// state, the last-online time and the node. Only properties of the
// Device's spec are kept. Pure.
func DeviceStatusPatch(node string, d *devicesv1beta1.Device, r *wire.DeviceReport) ([]byte, error) {
	twins := make([]devicespec.Twin, 0, len(r.Twins))
	seen := map[string]bool{}
	for _, t := range r.Twins {
		if d.Spec.Property(t.PropertyName) == nil || seen[t.PropertyName] {
			continue
		}
		seen[t.PropertyName] = true
		twins = append(twins, t)
	}
	status := map[string]any{"twins": twins, "nodeName": node, "state": nullIfEmpty(r.State), "lastOnlineTime": nullIfEmpty(r.LastOnlineTime)}
	if len(twins) == 0 {
		status["twins"] = nil
	}
	return json.Marshal(map[string]any{"status": status})
}

func (c *Controller) writeDeviceStatus(ctx context.Context, node string, d *devicesv1beta1.Device, r *wire.DeviceReport) error {
	body, err := DeviceStatusPatch(node, d, r)
	if err != nil {
		return err
	}
	patch := func() error {
		start := time.Now()
		err := c.o.Client.Patch(ctx, devclient.ResourceDeviceStatuses, d.Namespace, d.Name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: NodeFieldManager}, "status")
		c.metrics.writeTime.Observe(time.Since(start).Seconds())
		c.countWrite("devicestatuses/status", err)
		return err
	}
	err = patch()
	if apierrors.IsNotFound(err) {
		// The report overtook the controller creating the DeviceStatus.
		_, cerr := c.o.Client.CreateDeviceStatus(ctx, NewDeviceStatus(d), FieldManager)
		c.countWrite("devicestatuses", cerr)
		if cerr != nil && !apierrors.IsAlreadyExists(cerr) {
			return cerr
		}
		err = patch()
	}
	return err
}

// observeLatency records, for the readings taken since the device's
// previous write, the time from reading to this write.
func (c *Controller) observeLatency(r *wire.DeviceReport, previous, now time.Time) {
	for _, t := range r.Twins {
		ms, err := strconv.ParseInt(t.Reported.Metadata["timestamp"], 10, 64)
		if err != nil {
			continue
		}
		at := time.UnixMilli(ms)
		if !previous.IsZero() && !at.After(previous) {
			continue // carried in an earlier write already
		}
		c.metrics.latency.Observe(max(0, now.Sub(at).Seconds()))
	}
}

// applyDesiredUpdates writes desired values set on the node into the
// Device, each only while the Device still holds the value it replaced
// (a newer edit in the cloud wins), with server-side apply so the write
// owns just that field.
func (c *Controller) applyDesiredUpdates(ctx context.Context, d *devicesv1beta1.Device, updates []wire.DesiredUpdate) error {
	var props []map[string]any
	for _, u := range DesiredToApply(d, updates) {
		props = append(props, map[string]any{"name": u.Property, "desired": map[string]any{"value": u.Value}})
	}
	if len(props) == 0 {
		return nil
	}
	body, err := json.Marshal(map[string]any{
		"apiVersion": devicesv1beta1.SchemeGroupVersion.String(), "kind": "Device",
		"metadata": map[string]any{"name": d.Name, "namespace": d.Namespace},
		"spec":     map[string]any{"properties": props},
	})
	if err != nil {
		return err
	}
	err = c.o.Client.Patch(ctx, devclient.ResourceDevices, d.Namespace, d.Name, types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: NodeFieldManager + "-desired", Force: ptr.To(true)})
	c.countWrite("devices", err)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// DesiredToApply filters a node's desired updates to those the Device
// should take: the property exists, and its desired value is still the
// update's base (not already the new value, not changed in the cloud
// since). Pure.
func DesiredToApply(d *devicesv1beta1.Device, updates []wire.DesiredUpdate) []wire.DesiredUpdate {
	var out []wire.DesiredUpdate
	for _, u := range updates {
		p := d.Spec.Property(u.Property)
		if p == nil {
			continue
		}
		cur := ""
		if p.Desired != nil {
			cur = p.Desired.Value
		}
		if cur == u.Value || cur != u.Base {
			continue
		}
		out = append(out, u)
	}
	return out
}
