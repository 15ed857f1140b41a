package v1alpha1

import "k8s.io/apimachinery/pkg/runtime"

// knownTypes lists every kind (and its List) served in this group version.
// Kinds arrive with the capability that needs them.
func knownTypes() []runtime.Object {
	return []runtime.Object{
		&Dataset{}, &DatasetList{},
		&Model{}, &ModelList{},
		&JointInferenceService{}, &JointInferenceServiceList{},
		&FederatedLearningJob{}, &FederatedLearningJobList{},
	}
}
