package devicespec

// Twin is one property's reading next to the desired value in force when it
// was read.
type Twin struct {
	// PropertyName names the device property.
	// +kubebuilder:validation:MinLength=1
	PropertyName string `json:"propertyName"`
	// Reported is the value read from the device.
	// +optional
	Reported TwinProperty `json:"reported,omitempty"`
	// ObservedDesired is the desired value the mapper was applying when it
	// made the reading; when it differs from the Device's desired value,
	// the new value has not reached the device yet.
	// +optional
	ObservedDesired TwinProperty `json:"observedDesired,omitempty"`
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

// FindTwin returns the twin of the property called name, or nil.
func FindTwin(twins []Twin, name string) *Twin {
	for i := range twins {
		if twins[i].PropertyName == name {
			return &twins[i]
		}
	}
	return nil
}
