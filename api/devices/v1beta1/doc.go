// Package v1beta1 holds the devices.kubeedge.io/v1beta1 API types: device models, devices and their reported status.
//
// Group, version, kind and field names match the upstream project so that
// existing manifests apply unchanged; additions are optional and additive.
// The package depends only on apimachinery so that verge-edge can import it
// without pulling in controller libraries.
//
// +kubebuilder:object:generate=true
// +groupName=devices.kubeedge.io
package v1beta1
