// Package v1beta1 holds the devices.kubeedge.io/v1beta1 API types: device models, devices and their reported status.
//
// Group, version, kind and field names (JSON names included, such as the
// capitalised TDEngine and Kwdb database keys) match the upstream project,
// so existing manifests apply unchanged; additions are optional and
// additive.
//
// This package holds the Kubernetes objects (Device, DeviceModel,
// DeviceStatus, their lists and the Device's status with its conditions)
// and their scheme registration. Everything below the objects (specs,
// twins, condition types and reasons, device states, ResolveDevice) is in
// devicespec, which needs no apimachinery: verge-edge uses that package
// and never links this one.
//
// Who writes what:
//
//   - DeviceModel and Device spec: users. The API server checks what it can
//     see in one object (enums, unique property and method names, minimum
//     not above maximum, non-negative cycles).
//   - Device status: the device controller. It writes the
//     devicespec.Condition* conditions for what needs other objects (the
//     model, the node, its mappers), with observedGeneration, and a summary
//     of the device's state and lastOnlineTime.
//   - DeviceStatus status: the readings (twins), the state and
//     lastOnlineTime reported by the device's node. One DeviceStatus per
//     Device, same name, owned by it.
//
// Device and DeviceStatus have a status subresource: status is written
// only through it, and writing it does not change metadata.generation.
//
// Free-form configuration (protocol and visitor configData, the model's
// protocolConfigData, anomalyDetection, extensions) is a
// devicespec.CustomizedValue: the API server and the Go types keep every
// key as written.
//
// +kubebuilder:object:generate=true
// +groupName=devices.kubeedge.io
package v1beta1
