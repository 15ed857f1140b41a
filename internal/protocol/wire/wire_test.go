package wire

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/verge-edge/verge/internal/protocol/kube"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
)

func TestRoundTrip(t *testing.T) {
	small := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n", ResourceVersion: "5"}, Data: map[string]string{"k": "v"}}
	big := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "big"}, Data: map[string]string{"k": strings.Repeat("abc", 5000)}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "u1"}, Spec: corev1.PodSpec{NodeName: "edge-1", Containers: []corev1.Container{{Name: "c", Image: "img"}}}}
	edgePod := &kube.Pod{ObjectMeta: kube.ObjectMeta{Name: "p", UID: "u1"}, Spec: kube.PodSpec{Containers: []kube.Container{{Name: "c", Image: "img"}}}, Status: kube.PodStatus{Phase: kube.PodRunning}}
	tok := &ServiceAccountToken{Token: "abc", ExpirationTimestamp: time.Unix(1700000000, 0).UTC()}

	for _, tc := range []struct {
		name           string
		in, out        any
		enc            syncpb.Encoding
		wantCompressed bool
	}{
		{"small configmap", small, &corev1.ConfigMap{}, syncpb.Encoding_ENCODING_KUBE_PROTOBUF, false},
		{"big configmap", big, &corev1.ConfigMap{}, syncpb.Encoding_ENCODING_KUBE_PROTOBUF, true},
		{"pod", pod, &corev1.Pod{}, syncpb.Encoding_ENCODING_KUBE_PROTOBUF, false},
		// What the cloud sends, the edge reads into its own types, and the
		// other way round.
		{"pod to the edge", pod, &kube.Pod{}, syncpb.Encoding_ENCODING_KUBE_PROTOBUF, false},
		{"pod status from the edge", edgePod, &corev1.Pod{}, syncpb.Encoding_ENCODING_KUBE_PROTOBUF, false},
		{"token", tok, &ServiceAccountToken{}, syncpb.Encoding_ENCODING_JSON, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, data, compressed, err := Encode(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if enc != tc.enc || compressed != tc.wantCompressed {
				t.Fatalf("encoding %v compressed %v, want %v %v", enc, compressed, tc.enc, tc.wantCompressed)
			}
			if err := Decode(enc, data, compressed, tc.out); err != nil {
				t.Fatal(err)
			}
			switch got := tc.out.(type) {
			case *kube.Pod:
				if got.UID != "u1" || got.Spec.Containers[0].Image != "img" {
					t.Errorf("edge pod mismatch: %+v", got)
				}
				return
			case *corev1.Pod:
				if _, fromEdge := tc.in.(*kube.Pod); fromEdge && (got.UID != "u1" || got.Status.Phase != corev1.PodRunning) {
					t.Errorf("pod from the edge mismatch: %+v", got)
				}
				if _, fromEdge := tc.in.(*kube.Pod); fromEdge {
					return
				}
			}
			switch want := tc.in.(type) {
			case *corev1.ConfigMap:
				if got := tc.out.(*corev1.ConfigMap); got.Name != want.Name || got.Data["k"] != want.Data["k"] || got.ResourceVersion != want.ResourceVersion {
					t.Errorf("configmap mismatch")
				}
			case *corev1.Pod:
				if got := tc.out.(*corev1.Pod); got.UID != want.UID || got.Spec.Containers[0].Image != "img" {
					t.Errorf("pod mismatch")
				}
			case *ServiceAccountToken:
				if got := tc.out.(*ServiceAccountToken); *got != *want {
					t.Errorf("token %+v, want %+v", got, want)
				}
			}
		})
	}
}

func TestDecodeRefusesBombsAndNonsense(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zeros := make([]byte, 1<<20)
	for range MaxDecoded/len(zeros) + 1 {
		if _, err := zw.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Decode(syncpb.Encoding_ENCODING_JSON, buf.Bytes(), true, &ServiceAccountToken{}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("decompression bomb: %v", err)
	}
	if err := Decode(syncpb.Encoding_ENCODING_JSON, []byte("not gzip"), true, &ServiceAccountToken{}); err == nil {
		t.Error("garbage accepted as gzip")
	}
	if err := Decode(syncpb.Encoding(99), []byte("{}"), false, &ServiceAccountToken{}); err == nil {
		t.Error("unknown encoding accepted")
	}
	if err := Decode(syncpb.Encoding_ENCODING_KUBE_PROTOBUF, []byte{1, 2}, false, &ServiceAccountToken{}); err == nil {
		t.Error("protobuf into a JSON-only type accepted")
	}
}
