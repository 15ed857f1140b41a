// Package mqttbus is verge-edge's local event bus: KubeEdge's MQTT topics
// for devices, on an embedded broker (mochi-mqtt, loopback by default) or
// an external one, so apps and mappers written for KubeEdge keep working.
//
//	$hw/events/device/{ns}/{name}/twin/update           in:  expected (desired set on the node) / actual (readings)
//	$hw/events/device/{ns}/{name}/twin/update/result    out: the update's result (and every reading reported over DMI)
//	$hw/events/device/{ns}/{name}/twin/update/document  out: last and current state of changed properties
//	$hw/events/device/{ns}/{name}/twin/update/delta     out: the twin and expected values the device does not show yet
//	$hw/events/device/{ns}/{name}/twin/get              in:  a request; answered on …/twin/get/result
//	$hw/events/device/{ns}/{name}/state/update          in:  a device state (mappers speaking MQTT)
//	$hw/events/device/{ns}/{name}/state/update/result   out: the device's new state
//	$hw/events/node/{node}/membership/get               in:  a request; answered on …/membership/get/result
//	$hw/events/node/{node}/membership/updated           out: devices added to or removed from the node
//
// Payloads are KubeEdge's JSON (event_id, timestamp, twin: {prop:
// {expected: {value}, actual: {value}, metadata: {type}}}, …).
//
// It owns the broker (or the client of an external one) and nothing else:
// every change goes through the device twin (devicetwin), which makes it
// durable before the bus hears of it, and the bus publishes only after
// that. Messages are handled by a few workers, one per device, in order;
// their queues are bounded and overflow is counted, never blocking the
// broker. A broker that cannot start is retried; devices work without it.
package mqttbus
