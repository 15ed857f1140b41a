// Package v1alpha1 holds the sedna.io/v1alpha1 API types: datasets, models and the edge–cloud collaborative AI jobs (joint inference, federated, incremental and lifelong learning).
//
// Group, version, kind and field names match the upstream project so that
// existing manifests apply unchanged; additions are optional and additive.
// The package depends only on apimachinery so that verge-edge can import it
// without pulling in controller libraries.
//
// +kubebuilder:object:generate=true
// +groupName=sedna.io
package v1alpha1
