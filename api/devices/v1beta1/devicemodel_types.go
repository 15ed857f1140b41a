package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
)

// DeviceModel describes a kind of device: the properties every device of
// that kind exposes and the protocol it speaks. Devices name their model in
// spec.deviceModelRef; the model must be in the same namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="Protocol",type=string,JSONPath=`.spec.protocol`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DeviceModel struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec devicespec.DeviceModelSpec `json:"spec"`
}

// DeviceModelList is a list of DeviceModels.
//
// +kubebuilder:object:root=true
type DeviceModelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DeviceModel `json:"items"`
}
