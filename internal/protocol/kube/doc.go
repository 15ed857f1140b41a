// Package kube holds the Kubernetes API objects that cross the cloud–edge
// link, as plain Go types for the edge: Pod, ConfigMap, Secret, Node and
// Event, with the field names, JSON names and protobuf field numbers of
// k8s.io/api, and a codec for Kubernetes' protobuf encoding.
//
// verge-edge uses these instead of k8s.io/api: linking k8s.io/api's
// generated code for every core type made up a fifth of the edge binary,
// and the binary's size is most of the agent's resident memory. The cloud
// keeps using k8s.io/api; both encode the same bytes.
//
// The struct types are generated from k8s.io/api by hack/kubemirror (fields
// of types the edge has no use for are left out, or kept as *Unsupported
// when they are pointers); Time, MicroTime, Duration, Quantity and
// IntOrString, with their own encodings, are written by hand, as are the
// constants. Tests check both encodings against k8s.io/api.
package kube

//go:generate go run ../../../hack/kubemirror -o zz_generated.types.go
