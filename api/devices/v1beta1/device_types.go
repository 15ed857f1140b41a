package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Device is one physical device, bound to the edge node that reaches it.
// Its spec says which model it is, how to connect to it and, per property,
// how to read it, how often, where to push the readings and what value it
// should have (desired). Readings go to the DeviceStatus of the same name;
// the Device's own status carries conditions and a summary.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.deviceModelRef.name`
// +kubebuilder:printcolumn:name="Protocol",type=string,JSONPath=`.spec.protocol.protocolName`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Last-Report",type=date,JSONPath=`.status.lastOnlineTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Device struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec DeviceSpec `json:"spec"`
	// +optional
	Status DeviceInstanceStatus `json:"status,omitempty"`
}

// DeviceSpec is what a user says about a device.
type DeviceSpec struct {
	// DeviceModelRef names the DeviceModel, in the same namespace.
	DeviceModelRef LocalObjectReference `json:"deviceModelRef"`
	// NodeName binds the device to the edge node whose mapper reaches it.
	// Changing it moves the device: the old node forgets it, the new one
	// starts serving it.
	// +optional
	NodeName string `json:"nodeName,omitempty"`
	// Properties to serve, one per name; each must be defined by the model.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=1024
	Properties []DeviceProperty `json:"properties,omitempty"`
	// Protocol says how to connect to the device.
	// +optional
	Protocol ProtocolConfig `json:"protocol,omitempty"`
	// Methods group properties that may be written together through the
	// mapper's device-method API.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	Methods []DeviceMethod `json:"methods,omitempty"`
	// StateReport says whether, and how often, the device's state (ok,
	// disconnected, …) is reported to the cloud. It replaces the older
	// status.reportToCloud and status.reportCycle.
	// +optional
	StateReport *StateReportConfig `json:"stateReport,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// ProtocolConfig says how to connect to a device.
type ProtocolConfig struct {
	// ProtocolName selects the mapper (for example "modbus"). Absent, the
	// model's spec.protocol applies.
	// +optional
	ProtocolName string `json:"protocolName,omitempty"`
	// ConfigData holds the protocol's settings (addresses, serial
	// parameters, …), free-form: every key is kept as written. It overrides
	// the model's protocolConfigData key by key.
	// +optional
	ConfigData *CustomizedValue `json:"configData,omitempty"`
}

// DeviceProperty says how to serve one of the model's properties on this
// device.
type DeviceProperty struct {
	// Name of the model property; unique in the device.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name"`
	// Desired is the value the property should have; the mapper writes it
	// to the device (ReadWrite properties only).
	// +optional
	Desired *TwinProperty `json:"desired,omitempty"`
	// Visitors says where the property lives on the device (register,
	// node id, …). It overrides the model property's visitors key by key.
	// +optional
	Visitors *VisitorConfig `json:"visitors,omitempty"`
	// ReportCycle is how often, in milliseconds, readings are pushed to the
	// pushMethod sinks. 0 means the mapper's default.
	// +optional
	// +kubebuilder:validation:Minimum=0
	ReportCycle int64 `json:"reportCycle,omitempty"`
	// CollectCycle is how often, in milliseconds, the device is read.
	// 0 means the mapper's default. (Older upstream mappers read both
	// cycles as nanoseconds; Verge's mapper SDK reads values of 10^8 and
	// above as nanoseconds and says so in the device's status.)
	// +optional
	// +kubebuilder:validation:Minimum=0
	CollectCycle int64 `json:"collectCycle,omitempty"`
	// ReportToCloud sends readings to the cloud (the DeviceStatus twins).
	// +optional
	ReportToCloud bool `json:"reportToCloud,omitempty"`
	// PushMethod sends readings to other sinks, reachable from the node.
	// +optional
	PushMethod *PushMethod `json:"pushMethod,omitempty"`
}

// VisitorConfig says how a mapper reaches one property.
type VisitorConfig struct {
	// ProtocolName is the protocol the configData is written for.
	// +optional
	ProtocolName string `json:"protocolName,omitempty"`
	// ConfigData is the protocol-specific address of the property,
	// free-form: every key is kept as written.
	// +optional
	ConfigData *CustomizedValue `json:"configData,omitempty"`
}

// DeviceMethod is a named group of properties a client may write through
// the mapper's device-method API.
type DeviceMethod struct {
	// Name of the method, unique in the device.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name"`
	// +optional
	Description string `json:"description,omitempty"`
	// PropertyNames are the properties the method may write.
	// +optional
	PropertyNames []string `json:"propertyNames,omitempty"`
}

// StateReportConfig says whether, and how often, a device's state is
// reported to the cloud.
type StateReportConfig struct {
	// +optional
	ReportToCloud bool `json:"reportToCloud,omitempty"`
	// ReportCycle in milliseconds; 0 means the mapper's default.
	// +optional
	// +kubebuilder:validation:Minimum=0
	ReportCycle int64 `json:"reportCycle,omitempty"`
}

// TwinProperty is a property value with metadata (for example the time it
// was read and its type).
type TwinProperty struct {
	// Value, as a string in the property type's canonical form ("21.5",
	// "true", base64 for BYTES).
	Value string `json:"value"`
	// +optional
	Metadata map[string]string `json:"metadata,omitempty"`
}

// DeviceInstanceStatus is the status of a Device. Verge writes readings to
// the DeviceStatus object of the same name; here it keeps conditions, the
// device's state and when it was last online. The other fields are
// upstream's and kept so older manifests and clients work.
type DeviceInstanceStatus struct {
	// Twins held readings before upstream moved them to DeviceStatus;
	// Verge does not write them here.
	// +optional
	// +listType=map
	// +listMapKey=propertyName
	Twins []Twin `json:"twins,omitempty"`
	// State of the device as its mapper reports it; see the DeviceState*
	// constants.
	// +optional
	State string `json:"state,omitempty"`
	// LastOnlineTime is when the device was last seen online. Verge writes
	// RFC 3339; upstream edges wrote "2006-01-02 15:04:05".
	// +optional
	LastOnlineTime string `json:"lastOnlineTime,omitempty"`
	// ReportToCloud and ReportCycle are the pre-1.23 way to configure state
	// reporting; spec.stateReport replaces them.
	// +optional
	ReportToCloud bool `json:"reportToCloud,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	ReportCycle int64 `json:"reportCycle,omitempty"`

	// Conditions are keyed by type; see the Condition* constants (Verge).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the spec generation the conditions describe
	// (Verge).
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// Property returns the device property called name, or nil.
func (s *DeviceSpec) Property(name string) *DeviceProperty {
	for i := range s.Properties {
		if s.Properties[i].Name == name {
			return &s.Properties[i]
		}
	}
	return nil
}

// Method returns the device method called name, or nil.
func (s *DeviceSpec) Method(name string) *DeviceMethod {
	for i := range s.Methods {
		if s.Methods[i].Name == name {
			return &s.Methods[i]
		}
	}
	return nil
}

// DeviceList is a list of Devices.
//
// +kubebuilder:object:root=true
type DeviceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Device `json:"items"`
}
