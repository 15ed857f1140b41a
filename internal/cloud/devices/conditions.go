package devices

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	devicesv1beta1 "github.com/verge-edge/verge/api/devices/v1beta1"
	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
	"github.com/verge-edge/verge/internal/protocol/wire"
	"github.com/verge-edge/verge/pkg/mapper/value"
)

// NodeState is what the controller knows about a Device's node.
type NodeState int

// Node states.
const (
	NodeMissing NodeState = iota
	NodeOffline
	NodeOnline
)

// EdgeFacts are what the Device's node last reported about it.
type EdgeFacts struct {
	Node       string
	Generation int64
	Mapper     wire.DeviceMapper
	State      string
	Reason     string
	// LastOnlineTime is the report's (RFC 3339).
	LastOnlineTime string
}

// StatusInput is everything the Device's status is computed from.
type StatusInput struct {
	Device *devicesv1beta1.Device
	// Model is the DeviceModel the Device names, nil when absent.
	Model *devicesv1beta1.DeviceModel
	Node  NodeState
	// Facts are the node's last report in this process, nil when none
	// arrived since verge-cloud started.
	Facts *EdgeFacts
	// State and LastOnlineTime are the device's state as last written to
	// its DeviceStatus (used when Facts is nil).
	State, LastOnlineTime string
}

// DesiredStatus computes a Device's status from in: conditions (with
// observedGeneration), state and lastOnlineTime. It starts from the
// current status so that lastTransitionTime only moves when a condition
// changes, and keeps what the node reported earlier (MapperAvailable,
// Synced) when no fresher report is known. Pure.
func DesiredStatus(in StatusInput, now metav1.Time) devicesv1beta1.DeviceInstanceStatus {
	d := in.Device
	out := *d.Status.DeepCopy()
	gen := d.Generation
	set := func(typ string, status metav1.ConditionStatus, reason, msg string) {
		c := metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen, LastTransitionTime: now}
		meta.SetStatusCondition(&out.Conditions, c)
	}
	prev := func(typ string) *metav1.Condition { return meta.FindStatusCondition(d.Status.Conditions, typ) }

	// ModelResolved: only the cloud can tell.
	st, reason, msg := modelResolved(d, in.Model)
	set(devicespec.ConditionModelResolved, st, reason, msg)

	protocol := d.Spec.Protocol.ProtocolName
	if protocol == "" && in.Model != nil {
		protocol = in.Model.Spec.Protocol
	}
	node := d.Spec.NodeName

	// MapperAvailable and Synced: the node tells.
	switch {
	case node == "":
		set(devicespec.ConditionMapperAvailable, metav1.ConditionFalse, devicespec.ReasonNoNodeName, "spec.nodeName is empty: no node serves this device; set it to the edge node that reaches the device")
		set(devicespec.ConditionSynced, metav1.ConditionFalse, devicespec.ReasonNoNodeName, "spec.nodeName is empty")
	case in.Node == NodeMissing:
		msg := fmt.Sprintf("node %s does not exist: join it (verge join) or change spec.nodeName", node)
		set(devicespec.ConditionMapperAvailable, metav1.ConditionFalse, devicespec.ReasonNodeNotFound, msg)
		set(devicespec.ConditionSynced, metav1.ConditionFalse, devicespec.ReasonNodeNotFound, msg)
	case protocol == "" && in.Model != nil:
		set(devicespec.ConditionMapperAvailable, metav1.ConditionFalse, devicespec.ReasonNoProtocol, "neither spec.protocol.protocolName nor the DeviceModel's spec.protocol names a protocol, so no mapper can serve the device")
		synced(set, in, prev, gen, node)
	case in.Node == NodeOffline:
		set(devicespec.ConditionMapperAvailable, metav1.ConditionUnknown, devicespec.ReasonNodeOffline, fmt.Sprintf("node %s is not connected; it keeps serving the device with the spec it has", node))
		set(devicespec.ConditionSynced, metav1.ConditionFalse, devicespec.ReasonNodeOffline, fmt.Sprintf("node %s is not connected; it keeps serving the spec it has", node))
	default:
		switch f := in.Facts; {
		case f != nil && f.Node == node && f.Mapper.Available:
			set(devicespec.ConditionMapperAvailable, metav1.ConditionTrue, devicespec.ReasonMapperRegistered, fmt.Sprintf("mapper %s serves protocol %s on node %s", f.Mapper.Name, protocol, node))
		case f != nil && f.Node == node:
			reason := f.Mapper.Reason
			if reason == "" {
				reason = devicespec.ReasonNoMapperForProtocol
			}
			set(devicespec.ConditionMapperAvailable, metav1.ConditionFalse, reason, f.Mapper.Message)
		default:
			if p := prev(devicespec.ConditionMapperAvailable); p == nil || !fromNode(p.Reason) {
				set(devicespec.ConditionMapperAvailable, metav1.ConditionUnknown, devicespec.ReasonSyncPending, fmt.Sprintf("waiting for node %s to report whether a mapper serves protocol %s", node, protocol))
			}
		}
		synced(set, in, prev, gen, node)
	}

	// Ready: everything above, and the device itself.
	state, lastOnline := in.State, in.LastOnlineTime
	stateReason := ""
	if in.Facts != nil && in.Facts.Node == node {
		state, stateReason = in.Facts.State, in.Facts.Reason
		if in.Facts.LastOnlineTime != "" {
			lastOnline = in.Facts.LastOnlineTime
		}
	}
	ready := metav1.Condition{Type: devicespec.ConditionReady, Status: metav1.ConditionTrue, Reason: devicespec.ReasonReady, Message: "the device is served and reports " + state}
	for _, typ := range []string{devicespec.ConditionModelResolved, devicespec.ConditionMapperAvailable, devicespec.ConditionSynced} {
		if c := meta.FindStatusCondition(out.Conditions, typ); c.Status != metav1.ConditionTrue {
			ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, c.Reason, c.Message
			break
		}
	}
	if ready.Status == metav1.ConditionTrue && state != devicespec.DeviceStateOK && state != devicespec.DeviceStateOnline {
		ready.Status, ready.Reason = metav1.ConditionFalse, devicespec.ReasonDeviceNotOK
		ready.Message = "the mapper reports the device " + orUnknown(state)
		if stateReason != "" {
			ready.Message += ": " + stateReason
		}
	}
	set(ready.Type, ready.Status, ready.Reason, ready.Message)

	out.ObservedGeneration = gen
	out.State = state
	out.LastOnlineTime = lastOnlineForDevice(d.Status.LastOnlineTime, lastOnline, d.Status.State != state)
	return out
}

// synced sets the Synced condition from the node's reported generation,
// or keeps an earlier True for the same generation.
func synced(set func(string, metav1.ConditionStatus, string, string), in StatusInput, prev func(string) *metav1.Condition, gen int64, node string) {
	if f := in.Facts; f != nil && f.Node == node {
		if f.Generation >= gen {
			set(devicespec.ConditionSynced, metav1.ConditionTrue, devicespec.ReasonSynced, fmt.Sprintf("node %s serves generation %d", node, gen))
			return
		}
		set(devicespec.ConditionSynced, metav1.ConditionFalse, devicespec.ReasonSyncPending, fmt.Sprintf("node %s serves generation %d; generation %d not applied yet", node, f.Generation, gen))
		return
	}
	if p := prev(devicespec.ConditionSynced); p != nil && p.Status == metav1.ConditionTrue && p.ObservedGeneration == gen {
		return
	}
	set(devicespec.ConditionSynced, metav1.ConditionFalse, devicespec.ReasonSyncPending, fmt.Sprintf("generation %d sent to node %s, not acknowledged yet", gen, node))
}

// fromNode reports whether a MapperAvailable reason came from the node.
func fromNode(reason string) bool {
	return reason == devicespec.ReasonMapperRegistered || reason == devicespec.ReasonNoMapperForProtocol
}

func orUnknown(s string) string {
	if s == "" {
		return devicespec.DeviceStateUnknown
	}
	return s
}

// lastOnlineRefresh is how stale Device.status.lastOnlineTime may get
// before it is rewritten: the DeviceStatus carries the exact time; the
// Device's copy is for `kubectl get devices` and would otherwise cost one
// write per report.
const lastOnlineRefresh = 60

// lastOnlineForDevice picks the Device's lastOnlineTime: the reported one
// when the state changed or the stored one is over a minute behind it.
func lastOnlineForDevice(stored, reported string, stateChanged bool) string {
	if reported == "" {
		return stored
	}
	if stored == "" || stateChanged {
		return reported
	}
	s, err1 := devicespec.ParseLastOnlineTime(stored)
	r, err2 := devicespec.ParseLastOnlineTime(reported)
	if err1 != nil || err2 != nil || r.Sub(s).Seconds() >= lastOnlineRefresh || r.Before(s) {
		return reported
	}
	return stored
}

// modelResolved checks a Device against its model.
func modelResolved(d *devicesv1beta1.Device, m *devicesv1beta1.DeviceModel) (metav1.ConditionStatus, string, string) {
	if m == nil {
		return metav1.ConditionFalse, devicespec.ReasonModelNotFound,
			fmt.Sprintf("DeviceModel %s not found in namespace %s: create it, or fix spec.deviceModelRef.name", d.Spec.DeviceModelRef.Name, d.Namespace)
	}
	if p := d.Spec.Protocol.ProtocolName; p != "" && m.Spec.Protocol != "" && p != m.Spec.Protocol {
		return metav1.ConditionFalse, devicespec.ReasonProtocolMismatch,
			fmt.Sprintf("spec.protocol.protocolName is %q but DeviceModel %s has protocol %q", p, m.Name, m.Spec.Protocol)
	}
	var missing []string
	for _, p := range d.Spec.Properties {
		if m.Spec.Property(p.Name) == nil {
			missing = append(missing, p.Name)
		}
	}
	for _, meth := range d.Spec.Methods {
		for _, pn := range meth.PropertyNames {
			if m.Spec.Property(pn) == nil {
				missing = append(missing, fmt.Sprintf("%s (method %s)", pn, meth.Name))
			}
		}
	}
	if len(missing) > 0 {
		return metav1.ConditionFalse, devicespec.ReasonPropertyNotInModel,
			fmt.Sprintf("DeviceModel %s does not define %s: add them to the model or remove them from the device", m.Name, strings.Join(missing, ", "))
	}
	for _, p := range d.Spec.Properties {
		if p.Desired == nil || p.Desired.Value == "" {
			continue
		}
		if err := checkDesired(m.Spec.Property(p.Name), p.Desired.Value); err != nil {
			return metav1.ConditionFalse, devicespec.ReasonInvalidDesiredValue, fmt.Sprintf("property %s: %v", p.Name, err)
		}
	}
	if _, err := devicespec.ResolveDevice(&d.Spec, &m.Spec); err != nil {
		return metav1.ConditionFalse, devicespec.ReasonInvalidConfigData, err.Error()
	}
	return metav1.ConditionTrue, devicespec.ReasonModelFound, fmt.Sprintf("DeviceModel %s defines every property", m.Name)
}

// checkDesired checks a desired value against its model property: the
// mapper would refuse it otherwise.
func checkDesired(mp *devicespec.ModelProperty, v string) error {
	if mp.AccessMode != devicespec.ReadWrite {
		return fmt.Errorf("desired value %q set on a ReadOnly property: make it ReadWrite in the model or remove desired", v)
	}
	t, err := value.ParseType(string(mp.Type))
	if err != nil {
		return err
	}
	parsed, err := value.Parse(t, v)
	if err != nil {
		return fmt.Errorf("desired value %q: %w", v, err)
	}
	limits, err := value.ParseLimits(t, mp.Minimum, mp.Maximum)
	if err != nil {
		return err
	}
	if err := limits.Check(parsed); err != nil {
		return fmt.Errorf("desired value %q: %w", v, err)
	}
	return nil
}
