// Package wire encodes the objects that cross the cloud–edge link and
// decodes them on the other side. Core Kubernetes kinds use Kubernetes'
// own protobuf encoding (compact, and fast to decode on small devices);
// everything else uses JSON. Payloads above a threshold are gzip-compressed.
//
// Both verge-cloud and verge-edge import this package, so it must stay free
// of anything cloud-only.
package wire

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/verge-edge/verge/internal/protocol/syncpb"
)

// CompressAbove is the payload size beyond which data is gzip-compressed.
const CompressAbove = 2048

// MaxDecoded bounds a decompressed payload, so a hostile or broken peer
// cannot make the other side allocate without limit.
const MaxDecoded = 64 << 20

// ServiceAccountToken is the object the cloud mints for a pod's projected
// service-account token volume (resource "serviceaccounttokens").
type ServiceAccountToken struct {
	Token               string    `json:"token"`
	ExpirationTimestamp time.Time `json:"expirationTimestamp"`
}

// protoMarshaler is implemented by the generated Kubernetes API types.
type protoMarshaler interface {
	Marshal() ([]byte, error)
}

// Encode serialises body for the wire (Marshal, then compression where it
// pays off).
func Encode(body any) (syncpb.Encoding, []byte, bool, error) {
	enc, data, err := Marshal(body)
	if err != nil {
		return 0, nil, false, err
	}
	return EncodeRaw(enc, data)
}

// Marshal serialises body uncompressed, in the encoding its type travels
// in (what a store keeps; EncodeRaw compresses it for sending).
// Server-side-apply bookkeeping (metadata.managedFields) is left out: nodes
// never use it, and it is often the larger part of an object.
func Marshal(body any) (syncpb.Encoding, []byte, error) {
	body = withoutManagedFields(body)
	var (
		enc  syncpb.Encoding
		data []byte
		err  error
	)
	switch b := body.(type) {
	case *corev1.Pod, *corev1.ConfigMap, *corev1.Secret, *corev1.Node, *corev1.Event:
		enc = syncpb.Encoding_ENCODING_KUBE_PROTOBUF
		data, err = b.(protoMarshaler).Marshal()
	default:
		enc = syncpb.Encoding_ENCODING_JSON
		data, err = json.Marshal(b)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("encoding %T: %w", body, err)
	}
	return enc, data, nil
}

// withoutManagedFields returns body, or a shallow copy of it without
// managedFields (the informer's object is shared and must not change).
func withoutManagedFields(body any) any {
	switch o := body.(type) {
	case *corev1.Pod:
		if len(o.ManagedFields) > 0 {
			c := *o
			c.ManagedFields = nil
			return &c
		}
	case *corev1.ConfigMap:
		if len(o.ManagedFields) > 0 {
			c := *o
			c.ManagedFields = nil
			return &c
		}
	case *corev1.Secret:
		if len(o.ManagedFields) > 0 {
			c := *o
			c.ManagedFields = nil
			return &c
		}
	}
	return body
}

// Raw undoes compression.
func Raw(data []byte, compressed bool) ([]byte, error) {
	if !compressed {
		return data, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decompressing payload: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, MaxDecoded+1))
	if err != nil {
		return nil, fmt.Errorf("decompressing payload: %w", err)
	}
	if len(out) > MaxDecoded {
		return nil, fmt.Errorf("payload larger than %d bytes after decompression", MaxDecoded)
	}
	return out, nil
}

// protoUnmarshaler is implemented by the generated Kubernetes API types.
type protoUnmarshaler interface {
	Unmarshal([]byte) error
}

// Decode reads a payload into into (a pointer to the expected type).
func Decode(enc syncpb.Encoding, data []byte, compressed bool, into any) error {
	raw, err := Raw(data, compressed)
	if err != nil {
		return err
	}
	switch enc {
	case syncpb.Encoding_ENCODING_KUBE_PROTOBUF:
		u, ok := into.(protoUnmarshaler)
		if !ok {
			return fmt.Errorf("%T has no protobuf encoding", into)
		}
		return u.Unmarshal(raw)
	case syncpb.Encoding_ENCODING_JSON:
		return json.Unmarshal(raw, into)
	}
	return fmt.Errorf("unknown encoding %v", enc)
}

// Report kinds: what an edge node tells the cloud (ReportDevice is in
// device.go).
const (
	// ReportNodeStatus carries a *corev1.Node with metadata.name and status.
	ReportNodeStatus = "nodestatus"
	// ReportPodStatus carries a *corev1.Pod with metadata (namespace, name,
	// uid) and status.
	ReportPodStatus = "podstatus"
	// ReportPodTerminated carries a *corev1.Pod with metadata only: the pod
	// was being deleted and nothing of it runs any more.
	ReportPodTerminated = "podterminated"
	// ReportEvent carries a *corev1.Event.
	ReportEvent = "event"
)

// EncodingFor is the encoding of the object stored under key, decided by
// its resource: core kinds travel as Kubernetes protobuf, the rest as JSON.
func EncodingFor(key string) syncpb.Encoding {
	resource, _, _ := strings.Cut(key, "/")
	switch resource {
	case "pods", "configmaps", "secrets", "nodes", "events":
		return syncpb.Encoding_ENCODING_KUBE_PROTOBUF
	}
	return syncpb.Encoding_ENCODING_JSON
}

// EncodingForReport is the encoding of a report kind's payload.
func EncodingForReport(kind string) syncpb.Encoding {
	switch kind {
	case ReportNodeStatus, ReportPodStatus, ReportPodTerminated, ReportEvent:
		return syncpb.Encoding_ENCODING_KUBE_PROTOBUF
	}
	return syncpb.Encoding_ENCODING_JSON
}

// EncodeRaw compresses already-encoded data when that pays off.
func EncodeRaw(enc syncpb.Encoding, data []byte) (syncpb.Encoding, []byte, bool, error) {
	out, compressed, err := compress(data)
	return enc, out, compressed, err
}

// compress gzips data above CompressAbove if that makes it smaller.
func compress(data []byte) ([]byte, bool, error) {
	if len(data) <= CompressAbove {
		return data, false, nil
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(data); err != nil {
		return nil, false, err
	}
	if err := zw.Close(); err != nil {
		return nil, false, err
	}
	if buf.Len() >= len(data) {
		return data, false, nil
	}
	return buf.Bytes(), true, nil
}
