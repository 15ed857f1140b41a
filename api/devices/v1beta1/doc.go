// Package v1beta1 holds the devices.kubeedge.io/v1beta1 API types: device models, devices and their reported status.
//
// Group, version, kind and field names (JSON names included, such as the
// capitalised TDEngine and Kwdb database keys) match the upstream project,
// so existing manifests apply unchanged; additions are optional and
// additive. The package depends only on apimachinery so that verge-edge can
// import it without pulling in controller libraries.
//
// Who writes what:
//
//   - DeviceModel and Device spec: users. The API server checks what it can
//     see in one object (enums, unique property and method names, minimum
//     not above maximum, non-negative cycles).
//   - Device status: the device controller. It writes the Condition*
//     conditions for what needs other objects (the model, the node, its
//     mappers), with observedGeneration, and a summary of the device's
//     state and lastOnlineTime.
//   - DeviceStatus status: the readings (twins), the state and
//     lastOnlineTime reported by the device's node. One DeviceStatus per
//     Device, same name, owned by it.
//
// Device and DeviceStatus have a status subresource: status is written
// only through it, and writing it does not change metadata.generation.
//
// Free-form configuration (protocol and visitor configData, the model's
// protocolConfigData, anomalyDetection, extensions) is a CustomizedValue:
// the API server and this package keep every key as written.
//
// +kubebuilder:object:generate=true
// +groupName=devices.kubeedge.io
package v1beta1
