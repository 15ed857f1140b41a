package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Metric is one named value reported by a worker (for example
// inferenceNumber or uploadCloudRatio). Values are strings because workers
// report integers, ratios and timestamps alike.
type Metric struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ParaSpec is one algorithm parameter. Workers receive the list as JSON
// (`[{"key":…,"value":…}]`) and parse the values themselves.
type ParaSpec struct {
	// +kubebuilder:validation:MinLength=1
	Key   string `json:"key"`
	Value string `json:"value"`
}

// PodTemplate describes the pods of one worker. It has the shape of a
// Kubernetes PodTemplateSpec; its metadata is limited to name, labels and
// annotations, which (unlike a plain embedded PodTemplateSpec in a CRD) the
// API server keeps instead of pruning.
type PodTemplate struct {
	// +optional
	ObjectMeta TemplateMeta `json:"metadata,omitempty"`
	// +optional
	Spec corev1.PodSpec `json:"spec,omitempty"`
}

// TemplateMeta is the part of a pod's metadata a worker template may set.
type TemplateMeta struct {
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// PodTemplateSpec returns the template as a Kubernetes PodTemplateSpec
// (a deep copy: changing the result leaves the template untouched).
func (t *PodTemplate) PodTemplateSpec() corev1.PodTemplateSpec {
	c := t.DeepCopy()
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Name:        c.ObjectMeta.Name,
			Labels:      c.ObjectMeta.Labels,
			Annotations: c.ObjectMeta.Annotations,
		},
		Spec: c.Spec,
	}
}

// MaxConditions bounds every status condition list in this group: conditions
// are keyed by type, so the list never grows beyond the number of types.
const MaxConditions = 8
