package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
)

// Device is one physical device, bound to the edge node that reaches it.
// Its spec says which model it is, how to connect to it and, per property,
// how to read it, how often, where to push the readings and what value it
// should have (desired). Readings go to the DeviceStatus of the same name;
// the Device's own status carries conditions and a summary.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.deviceModelRef.name`
// +kubebuilder:printcolumn:name="Protocol",type=string,JSONPath=`.spec.protocol.protocolName`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Last-Report",type=date,JSONPath=`.status.lastOnlineTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Device struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec devicespec.DeviceSpec `json:"spec"`
	// +optional
	Status DeviceInstanceStatus `json:"status,omitempty"`
}

// DeviceInstanceStatus is the status of a Device. Verge writes readings to
// the DeviceStatus object of the same name; here it keeps conditions, the
// device's state and when it was last online. The other fields are
// upstream's and kept so older manifests and clients work.
type DeviceInstanceStatus struct {
	// Twins held readings before upstream moved them to DeviceStatus;
	// Verge does not write them here.
	// +optional
	// +listType=map
	// +listMapKey=propertyName
	Twins []devicespec.Twin `json:"twins,omitempty"`
	// State of the device as its mapper reports it; see the DeviceState*
	// constants.
	// +optional
	State string `json:"state,omitempty"`
	// LastOnlineTime is when the device was last seen online. Verge writes
	// RFC 3339; upstream edges wrote "2006-01-02 15:04:05".
	// +optional
	LastOnlineTime string `json:"lastOnlineTime,omitempty"`
	// ReportToCloud and ReportCycle are the pre-1.23 way to configure state
	// reporting; spec.stateReport replaces them.
	// +optional
	ReportToCloud bool `json:"reportToCloud,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	ReportCycle int64 `json:"reportCycle,omitempty"`

	// Conditions are keyed by type; see the Condition* constants (Verge).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the spec generation the conditions describe
	// (Verge).
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// DeviceList is a list of Devices.
//
// +kubebuilder:object:root=true
type DeviceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Device `json:"items"`
}
