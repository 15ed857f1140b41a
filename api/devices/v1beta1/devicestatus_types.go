package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
)

// DeviceStatus holds the readings of one Device: it has the Device's name
// and namespace and is owned by it (a controller owner reference), so it
// goes when the Device goes. Readings change often; keeping them off the
// Device keeps status writes from conflicting with spec edits.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Device",type=string,JSONPath=`.metadata.ownerReferences[?(@.kind=="Device")].name`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.nodeName`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Last-Report",type=date,JSONPath=`.status.lastOnlineTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DeviceStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec DeviceStatusSpec `json:"spec,omitempty"`
	// +optional
	Status DeviceStatusStatus `json:"status,omitempty"`
}

// DeviceStatusSpec is empty: the owner reference says which Device the
// status belongs to.
type DeviceStatusSpec struct{}

// DeviceStatusStatus is what the device's node reported.
type DeviceStatusStatus struct {
	// Twins hold, per property, the last reading and the desired value the
	// mapper was applying when it read it.
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
	// Extensions carry further results (for example of anomaly detection),
	// free-form.
	// +optional
	Extensions *devicespec.CustomizedValue `json:"extensions,omitempty"`
	// NodeName is the node that reported this status (Verge).
	// +optional
	NodeName string `json:"nodeName,omitempty"`
}

// DeviceStatusList is a list of DeviceStatuses.
//
// +kubebuilder:object:root=true
type DeviceStatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DeviceStatus `json:"items"`
}
