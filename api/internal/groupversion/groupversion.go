// Package groupversion builds the scheme registration shared by every API
// group version under api/, so each group only lists its kinds.
package groupversion

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// AddToScheme returns a function that registers the kinds returned by
// knownTypes, plus the meta/v1 options types, under gv.
func AddToScheme(gv schema.GroupVersion, knownTypes func() []runtime.Object) func(*runtime.Scheme) error {
	return func(scheme *runtime.Scheme) error {
		scheme.AddKnownTypes(gv, knownTypes()...)
		metav1.AddToGroupVersion(scheme, gv)
		return nil
	}
}
