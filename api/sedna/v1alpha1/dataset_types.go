package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Dataset is a set of samples on a node or in object storage, described by
// an index file.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=sedna
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Format",type=string,JSONPath=`.spec.format`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Samples",type=integer,JSONPath=`.status.numberOfSamples`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Dataset struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec DatasetSpec `json:"spec"`
	// +optional
	Status DatasetStatus `json:"status,omitempty"`
}

// DatasetSpec says where a dataset's index file is.
type DatasetSpec struct {
	// URL of the index file: an absolute path on the node, or an s3://,
	// http:// or https:// URL.
	// +kubebuilder:validation:MinLength=1
	URL string `json:"url"`
	// Format of the index file: "txt" (one sample per line) or "csv"
	// (a header line, then one sample per row).
	// +kubebuilder:validation:MinLength=1
	Format string `json:"format"`
	// NodeName is the node holding the data when URL is a local path.
	// +optional
	NodeName string `json:"nodeName,omitempty"`
	// CredentialName names a Secret in the same namespace with the
	// object-storage credentials for URL.
	// +optional
	CredentialName string `json:"credentialName,omitempty"`
}

// DatasetStatus is written by the node that reads the dataset.
type DatasetStatus struct {
	// +optional
	UpdateTime *metav1.Time `json:"updateTime,omitempty"`
	// +optional
	NumberOfSamples int `json:"numberOfSamples"`
}

// DatasetList is a list of Datasets.
//
// +kubebuilder:object:root=true
type DatasetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Dataset `json:"items"`
}
