// Package devicetwin is verge-edge's device twin and DMI server.
//
// It owns, in the edge store's state table, each Device's twin (last
// reading per property, state, last-online time, desired values set on the
// node; key "devicetwin/twin/<ns>/<name>") and the mapper registry
// ("devicetwin/mappers"), and it owns the DMI directory (0750) with the
// edge's socket dmi.sock (0660). It reads Devices and DeviceModels from the
// store (what the cloud sent) and never writes them; it never talks to the
// cloud except through outbox entries (kind "device", one per device,
// keyed like the Device).
//
// DMI is KubeEdge's DMI v1beta1 (pkg/dmi/v1beta1), so upstream mappers
// register unchanged. Connections are checked with SO_PEERCRED (allowed
// users/groups) and the registering process's PID locates the mapper's
// socket inside its own mount namespace (/proc/<pid>/root). Mappers are
// keyed by name, so several may serve one protocol; a Device is bound to
// the mapper its devices.verge.dev/mapper annotation names, or else to the
// protocol's mapper named like the protocol, or the first by name. Each
// mapper has a runner with one long-lived connection that pushes a pure
// Plan (models, then devices added/changed, then removals) whenever what
// it should hold changes: a Device update whose only change is a desired
// value becomes UpdateDevice with the whole Device, and the mapper (the
// SDK) writes just that property without reconnecting.
//
// Ordering contract:
//
//   - Durable before acknowledged: a ReportDeviceStatus/ReportDeviceStates
//     or an MQTT twin update returns only after the flush that persisted
//     it (group commit every FlushInterval; one twin write and one outbox
//     write per changed device).
//   - Twin before report: a flush writes the twin, then the device's outbox
//     entry; after a crash between the two, Start reports every device
//     again from its twin.
//   - Latest wins: the outbox entry of a device is a snapshot of the whole
//     twin that each flush replaces, so an outage keeps one entry per
//     device with the newest value of every property.
//   - Events (the MQTT bus) are published after the flush that made them
//     durable.
package devicetwin
