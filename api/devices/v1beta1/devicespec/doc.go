// Package devicespec holds the parts of the devices.kubeedge.io/v1beta1 API
// that are not Kubernetes objects: the Device and DeviceModel specs with
// everything under them (properties, visitors, push methods, free-form
// configuration), twins, the status vocabulary (condition types, reasons,
// device states) and the helpers both sides use (ResolveDevice,
// MergeConfigData, FindTwin, the lastOnlineTime format).
//
// The object types (Device, DeviceModel, DeviceStatus and their lists) stay
// in the parent package, api/devices/v1beta1, with ObjectMeta, conditions
// and scheme registration. They are split so that verge-edge, which reads
// Devices and DeviceModels as JSON into its own small envelopes (see
// internal/protocol/wire), can use the specs without linking apimachinery's
// object machinery: the edge binary's size is most of its resident memory.
// This package therefore imports the standard library only.
//
// Field and JSON names are those of the parent package's API: a manifest
// decodes into these types exactly as it always did, and the CRD manifests
// generated from the parent package are unchanged.
//
// +kubebuilder:object:generate=true
package devicespec
