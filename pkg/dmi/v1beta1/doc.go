// Package v1beta1 is the Device Management Interface (DMI) between a Verge
// edge node and its device mappers: the generated Go code for api.proto
// (messages, DeviceManagerService served by the edge, DeviceMapperService
// served by each mapper), wire-compatible with KubeEdge's DMI v1beta1, plus
// helpers to move free-form configuration (CustomizedValue) in and out of
// Go maps.
//
// Edit api.proto and run hack/gen-proto.sh pkg/dmi/v1beta1/api.proto; a test
// fails while the generated files are stale.
package v1beta1
