// Package devices is verge-cloud's device controller
// (devices.kubeedge.io/v1beta1). It owns:
//
//   - one DeviceStatus per Device (same name and namespace, a controller
//     owner reference to the Device, so the garbage collector deletes it
//     with the Device); it creates one that is missing and leaves a stale
//     one (an earlier Device's) to the garbage collector;
//   - each Device's status: conditions (ModelResolved, MapperAvailable,
//     Synced, Ready, with observedGeneration), state and lastOnlineTime,
//     computed by the pure DesiredStatus from the informer caches and the
//     node's last report, and written only when they change;
//   - the nodes' device reports (ApplyDeviceReport, called by the report
//     applier): readings, state and last-online time go to the
//     DeviceStatus status, desired values set on the node to the Device's
//     spec, mapper availability and the served generation to the
//     conditions.
//
// It must not write a Device's spec except for desired values a node
// reports (and then only while the Device still holds the value the node
// replaced), nor the DeviceStatus of a Device bound to another node.
//
// Ordering and rate: a device's DeviceStatus is written at most once per
// WriteInterval (Pacer). A report arriving sooner is answered Retry with
// the time left; the node keeps one outbox entry per device that newer
// readings replace, so the report that comes back carries every reading
// taken meanwhile, in one write. Nothing is acknowledged before the API
// server has it, so a verge-cloud restart loses nothing. Device status is
// reconciled by a de-duplicating work queue with several workers; a
// conflict re-reads the Device.
package devices
