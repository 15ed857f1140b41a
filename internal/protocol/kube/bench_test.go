package kube_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// benchPod is a pod as the API server hands out a typical Deployment's:
// defaults filled in, a service-account volume, probes, resources.
func benchPod() *corev1.Pod {
	var p corev1.Pod
	filler(7).NilChance(0).Fill(&p)
	return &p
}

// BenchmarkDecodePod compares the mirror's reflective decoder with
// k8s.io/api's generated one on the same bytes.
func BenchmarkDecodePod(b *testing.B) {
	wire, err := benchPod().Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("kube", func(b *testing.B) {
		b.SetBytes(int64(len(wire)))
		b.ReportAllocs()
		for b.Loop() {
			var p kube.Pod
			if err := p.Unmarshal(wire); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("k8s.io-api", func(b *testing.B) {
		b.SetBytes(int64(len(wire)))
		b.ReportAllocs()
		for b.Loop() {
			var p corev1.Pod
			if err := p.Unmarshal(wire); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncodePodStatus is what the edge does per status report.
func BenchmarkEncodePodStatus(b *testing.B) {
	var p kube.Pod
	wire, _ := benchPod().Marshal()
	if err := p.Unmarshal(wire); err != nil {
		b.Fatal(err)
	}
	report := &kube.Pod{ObjectMeta: kube.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID}, Status: p.Status}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := report.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}
