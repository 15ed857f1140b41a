package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Model is a trained model stored on a node or in object storage.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=sedna
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Format",type=string,JSONPath=`.spec.format`
// +kubebuilder:printcolumn:name="Updated",type=date,JSONPath=`.status.updateTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Model struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ModelSpec `json:"spec"`
	// +optional
	Status ModelStatus `json:"status,omitempty"`
}

// ModelSpec says where a model is and what it is.
type ModelSpec struct {
	// URL of the model: an absolute path on the node, or an s3://, http://
	// or https:// URL.
	// +kubebuilder:validation:MinLength=1
	URL string `json:"url"`
	// Format of the model file (for example "pb", "ckpt", "onnx", "json").
	// +kubebuilder:validation:MinLength=1
	Format string `json:"format"`
	// DeviceSocVersions lists the accelerator SoCs the model was compiled
	// for, when it is device-specific.
	// +optional
	DeviceSocVersions []string `json:"device_soc_versions,omitempty"`
	// CredentialName names a Secret in the same namespace with the
	// object-storage credentials for URL.
	// +optional
	CredentialName string `json:"credentialName,omitempty"`
}

// ModelStatus is written by the workers that train or evaluate the model.
type ModelStatus struct {
	// +optional
	UpdateTime *metav1.Time `json:"updateTime,omitempty"`
	// +optional
	Metrics []Metric `json:"metrics,omitempty"`
}

// ModelList is a list of Models.
//
// +kubebuilder:object:root=true
type ModelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Model `json:"items"`
}
