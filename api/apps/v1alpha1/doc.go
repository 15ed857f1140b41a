// Package v1alpha1 holds the apps.kubeedge.io/v1alpha1 API types: node groups and applications spread over them.
//
// Group, version, kind and field names match the upstream project so that
// existing manifests apply unchanged; additions are optional and additive.
// The package depends only on apimachinery so that verge-edge can import it
// without pulling in controller libraries.
//
// +kubebuilder:object:generate=true
// +groupName=apps.kubeedge.io
package v1alpha1
