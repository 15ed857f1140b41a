// Package v1alpha1 holds the operations.kubeedge.io/v1alpha1 API types: fleet operations such as node upgrades and image pre-pulls.
//
// Group, version, kind and field names match the upstream project so that
// existing manifests apply unchanged; additions are optional and additive.
// The package depends only on apimachinery so that verge-edge can import it
// without pulling in controller libraries.
//
// +kubebuilder:object:generate=true
// +groupName=operations.kubeedge.io
package v1alpha1
