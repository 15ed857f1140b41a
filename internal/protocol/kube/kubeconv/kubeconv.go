// Package kubeconv converts between k8s.io/api's objects and the edge's
// mirror of them (internal/protocol/kube) through the protobuf encoding
// both share. Tests that drive the edge runtime against a real API server
// use it; verge-edge must not (it would link k8s.io/api back in).
package kubeconv

import "fmt"

type marshaler interface {
	Marshal() ([]byte, error)
}

type unmarshaler interface {
	Unmarshal([]byte) error
}

// Must copies from into to, objects of the same kind on either side (say
// *corev1.Pod and *kube.Pod); kind and apiVersion are not carried. It
// panics when conversion fails, which only a broken mirror can cause.
func Must(from marshaler, to unmarshaler) {
	b, err := from.Marshal()
	if err == nil {
		err = to.Unmarshal(b)
	}
	if err != nil {
		panic(fmt.Sprintf("converting %T to %T: %v", from, to, err))
	}
}
