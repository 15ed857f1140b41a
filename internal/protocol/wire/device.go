package wire

import (
	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
	"github.com/verge-edge/verge/internal/protocol/kube"
)

// Device is a devices.kubeedge.io/v1beta1 Device as a node reads it. The
// cloud sends the Device object itself (api/devices/v1beta1, without
// status or managedFields) as JSON; the node keeps metadata and spec. It
// has its own type because the object type's ObjectMeta and status
// conditions would make verge-edge link apimachinery's object machinery,
// and binary size is the agent's resident memory.
type Device struct {
	kube.ObjectMeta `json:"metadata,omitempty"`
	Spec            devicespec.DeviceSpec `json:"spec"`
}

// DeviceModel is a devices.kubeedge.io/v1beta1 DeviceModel as a node reads
// it (see Device).
type DeviceModel struct {
	kube.ObjectMeta `json:"metadata,omitempty"`
	Spec            devicespec.DeviceModelSpec `json:"spec"`
}

// ReportDevice carries a *DeviceReport under the Device's key
// ("devices/<namespace>/<name>").
const ReportDevice = "device"

// DeviceReport is what a node knows about one of its Devices: a snapshot,
// not a delta. The node keeps one outbox entry per device, so while the
// cloud is unreachable each new snapshot replaces the unsent one (latest
// value wins per property) and nothing older needs to survive.
type DeviceReport struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// UID is the Device the node serves; a report about an earlier Device
	// of the same name is refused.
	UID string `json:"uid,omitempty"`
	// Generation is the Device spec generation the node serves (the
	// Synced condition compares it with metadata.generation).
	Generation int64 `json:"generation,omitempty"`
	// Twins hold every property's last reading and the desired value the
	// mapper applied when it read it; properties never read are absent.
	Twins []devicespec.Twin `json:"twins,omitempty"`
	// State is the device state the mapper reported (DeviceState*), and
	// Reason why, when it is not healthy.
	State  string `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
	// LastOnlineTime is when the device was last seen working (RFC 3339).
	LastOnlineTime string `json:"lastOnlineTime,omitempty"`
	// Mapper says whether a mapper on the node serves the device.
	Mapper DeviceMapper `json:"mapper"`
	// DesiredUpdates are desired values set on the node (by an app over
	// the MQTT twin/update topic) that the Device does not show yet.
	DesiredUpdates []DesiredUpdate `json:"desiredUpdates,omitempty"`
}

// DeviceMapper is the node's binding of a device to a mapper.
type DeviceMapper struct {
	// Name of the mapper serving the device, if any.
	Name string `json:"name,omitempty"`
	// Available is true when a registered mapper serves the device's
	// protocol; Reason and Message say why not (condition reasons of
	// devicespec, e.g. ReasonNoMapperForProtocol).
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
	Message   string `json:"message,omitempty"`
}

// DesiredUpdate is one desired value set on the node. Base is the
// Device's desired value when it was set: the cloud applies the update
// only while the Device still says Base, so a newer edit in the cloud
// wins over an older one on the node.
type DesiredUpdate struct {
	Property string `json:"property"`
	Value    string `json:"value"`
	Base     string `json:"base"`
}
