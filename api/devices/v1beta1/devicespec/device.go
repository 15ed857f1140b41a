package devicespec

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
