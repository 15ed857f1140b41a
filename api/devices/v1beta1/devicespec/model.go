package devicespec

// DeviceModelSpec lists a model's properties and its protocol.
type DeviceModelSpec struct {
	// Properties of the model, one per name.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=1024
	Properties []ModelProperty `json:"properties,omitempty"`
	// Protocol is the name of the protocol devices of this model speak
	// (for example "modbus"); it selects the mapper that serves them.
	// +optional
	Protocol string `json:"protocol,omitempty"`
	// ProtocolConfigData holds protocol settings shared by the model's
	// devices. A device's spec.protocol.configData overrides it key by key.
	// +optional
	ProtocolConfigData *CustomizedValue `json:"protocolConfigData,omitempty"`
}

// ModelProperty is one property of a model (a temperature, a setpoint, a
// switch).
//
// +kubebuilder:validation:XValidation:rule="!has(self.minimum) || !has(self.maximum) || !self.minimum.matches(r'^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') || !self.maximum.matches(r'^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$') || double(self.minimum) <= double(self.maximum)",messageExpression="'property ' + self.name + ': minimum ' + self.minimum + ' is greater than maximum ' + self.maximum"
// +kubebuilder:validation:XValidation:rule="!(self.type in ['INT', 'FLOAT', 'DOUBLE']) || !has(self.minimum) || self.minimum.matches(r'^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$')",messageExpression="'property ' + self.name + ': minimum ' + self.minimum + ' is not a number (type ' + self.type + ')'"
// +kubebuilder:validation:XValidation:rule="!(self.type in ['INT', 'FLOAT', 'DOUBLE']) || !has(self.maximum) || self.maximum.matches(r'^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$')",messageExpression="'property ' + self.name + ': maximum ' + self.maximum + ' is not a number (type ' + self.type + ')'"
type ModelProperty struct {
	// Name of the property, unique in the model. The names saveFrame and
	// saveVideo (type STREAM) ask the mapper for its built-in video
	// handling.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name"`
	// +optional
	Description string `json:"description,omitempty"`
	// Type of the property's values.
	Type PropertyType `json:"type"`
	// AccessMode says whether the property may be written. Absent means
	// ReadOnly to Verge's mapper SDK.
	// +optional
	AccessMode PropertyAccessMode `json:"accessMode,omitempty"`
	// Minimum value, as a decimal string. For INT, FLOAT and DOUBLE it must
	// be a number; Verge's mappers refuse writes below it.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Minimum string `json:"minimum,omitempty"`
	// Maximum value, as a decimal string; not below Minimum.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Maximum string `json:"maximum,omitempty"`
	// Unit of the values, free text (for example "Celsius").
	// +optional
	Unit string `json:"unit,omitempty"`
	// Visitors is the default way to reach the property; a device's own
	// visitors override it key by key.
	// +optional
	Visitors *VisitorConfig `json:"visitors,omitempty"`
}

// PropertyType is the type of a property's values.
// +kubebuilder:validation:Enum=INT;FLOAT;DOUBLE;STRING;BOOLEAN;BYTES;STREAM
type PropertyType string

// Property types.
const (
	PropertyTypeInt     PropertyType = "INT"
	PropertyTypeFloat   PropertyType = "FLOAT"
	PropertyTypeDouble  PropertyType = "DOUBLE"
	PropertyTypeString  PropertyType = "STRING"
	PropertyTypeBoolean PropertyType = "BOOLEAN"
	PropertyTypeBytes   PropertyType = "BYTES"
	PropertyTypeStream  PropertyType = "STREAM"
)

// Numeric reports whether values of t are numbers.
func (t PropertyType) Numeric() bool {
	return t == PropertyTypeInt || t == PropertyTypeFloat || t == PropertyTypeDouble
}

// PropertyAccessMode says whether a property may be written.
// +kubebuilder:validation:Enum=ReadWrite;ReadOnly
type PropertyAccessMode string

// Access modes.
const (
	ReadWrite PropertyAccessMode = "ReadWrite"
	ReadOnly  PropertyAccessMode = "ReadOnly"
)

// Property returns the model property called name, or nil.
func (s *DeviceModelSpec) Property(name string) *ModelProperty {
	for i := range s.Properties {
		if s.Properties[i].Name == name {
			return &s.Properties[i]
		}
	}
	return nil
}
