package devicespec

// MaxConditions bounds the condition list of a Device: conditions are keyed
// by type, so the list never grows beyond the number of types.
const MaxConditions = 8

// Condition types of a Device (status.conditions). The API server cannot
// check what lies outside the object (does the model exist, does the node
// have a mapper for the protocol), so the device controller does and
// reports it here, with observedGeneration set to the spec it checked.
const (
	// ConditionModelResolved is True when spec.deviceModelRef names a
	// DeviceModel in the Device's namespace and the Device agrees with it:
	// same protocol, every property defined by the model, every desired
	// value of the model property's type and within its range.
	ConditionModelResolved = "ModelResolved"
	// ConditionMapperAvailable is True when the Device's node has a mapper
	// registered for the Device's protocol.
	ConditionMapperAvailable = "MapperAvailable"
	// ConditionSynced is True when the Device's node runs the current spec
	// generation.
	ConditionSynced = "Synced"
	// ConditionReady is True when the other conditions are True and the
	// mapper reports the device ok or online. When False, its reason is
	// that of the first condition that is not True, or ReasonDeviceNotOK.
	ConditionReady = "Ready"
)

// Reasons of ConditionModelResolved.
const (
	// ReasonModelFound: the model exists and the Device agrees with it.
	ReasonModelFound = "ModelFound"
	// ReasonModelNotFound: no DeviceModel of that name in the namespace.
	ReasonModelNotFound = "ModelNotFound"
	// ReasonProtocolMismatch: spec.protocol.protocolName differs from the
	// model's spec.protocol.
	ReasonProtocolMismatch = "ProtocolMismatch"
	// ReasonPropertyNotInModel: a device property (or a property a method
	// names) is not defined by the model; the message names it.
	ReasonPropertyNotInModel = "PropertyNotInModel"
	// ReasonInvalidDesiredValue: a desired value does not parse as the
	// model property's type, is outside its minimum and maximum, or is set
	// on a ReadOnly property; the message names the property.
	ReasonInvalidDesiredValue = "InvalidDesiredValue"
	// ReasonInvalidConfigData: configData (protocol, visitors or the
	// model's defaults) cannot be merged or decoded.
	ReasonInvalidConfigData = "InvalidConfigData"
)

// Reasons of ConditionMapperAvailable.
const (
	// ReasonMapperRegistered: a mapper for the protocol is registered on
	// the node.
	ReasonMapperRegistered = "MapperRegistered"
	// ReasonNoMapperForProtocol: the node has no mapper for the protocol;
	// the message names the protocol and the node.
	ReasonNoMapperForProtocol = "NoMapperForProtocol"
	// ReasonNoProtocol: neither the Device nor its model names a protocol.
	ReasonNoProtocol = "NoProtocol"
)

// Reasons of ConditionSynced (and of ConditionMapperAvailable when the node
// cannot be asked).
const (
	// ReasonSynced: the node acknowledged the current spec generation.
	ReasonSynced = "Synced"
	// ReasonSyncPending: the spec was sent and not yet acknowledged.
	ReasonSyncPending = "SyncPending"
	// ReasonNoNodeName: spec.nodeName is empty, so no node serves the
	// device.
	ReasonNoNodeName = "NoNodeName"
	// ReasonNodeNotFound: spec.nodeName names no Node.
	ReasonNodeNotFound = "NodeNotFound"
	// ReasonNodeOffline: the node is not connected to the cloud; it keeps
	// serving the spec it has.
	ReasonNodeOffline = "NodeOffline"
)

// Reasons of ConditionReady besides those above.
const (
	// ReasonReady: everything is True and the device reports ok.
	ReasonReady = "Ready"
	// ReasonDeviceNotOK: the mapper reports a state other than ok or
	// online (the message carries it and the mapper's reason).
	ReasonDeviceNotOK = "DeviceNotOK"
)

// Device states, as mappers report them in status.state. Mappers may
// report others; these are the ones upstream's framework and Verge's
// mapper SDK use.
const (
	DeviceStateOK           = "ok"
	DeviceStateOnline       = "online"
	DeviceStateOffline      = "offline"
	DeviceStateDisconnected = "disconnected"
	DeviceStateUnhealthy    = "unhealthy"
	DeviceStateUnknown      = "unknown"
)
