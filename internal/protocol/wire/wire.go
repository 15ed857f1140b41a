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

// kubeProtobuf is implemented by the core Kubernetes kinds that travel in
// Kubernetes' protobuf encoding: k8s.io/api's types on the cloud, the
// mirror in internal/protocol/kube on the edge (both write the same bytes).
type kubeProtobuf interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
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
// in (what a store keeps; EncodeRaw compresses it for sending): Kubernetes
// protobuf for core kinds, JSON for the rest.
func Marshal(body any) (syncpb.Encoding, []byte, error) {
	var (
		enc  syncpb.Encoding
		data []byte
		err  error
	)
	if b, ok := body.(kubeProtobuf); ok {
		enc = syncpb.Encoding_ENCODING_KUBE_PROTOBUF
		data, err = b.Marshal()
	} else {
		enc = syncpb.Encoding_ENCODING_JSON
		data, err = json.Marshal(body)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("encoding %T: %w", body, err)
	}
	return enc, data, nil
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

// Decode reads a payload into into (a pointer to the expected type).
func Decode(enc syncpb.Encoding, data []byte, compressed bool, into any) error {
	raw, err := Raw(data, compressed)
	if err != nil {
		return err
	}
	switch enc {
	case syncpb.Encoding_ENCODING_KUBE_PROTOBUF:
		u, ok := into.(kubeProtobuf)
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
// device.go). Node, Pod and Event are internal/protocol/kube's types at the
// edge and k8s.io/api's in the cloud.
const (
	// ReportNodeStatus carries a Node with metadata.name and status.
	ReportNodeStatus = "nodestatus"
	// ReportPodStatus carries a Pod with metadata (namespace, name,
	// uid) and status.
	ReportPodStatus = "podstatus"
	// ReportPodTerminated carries a Pod with metadata only: the pod
	// was being deleted and nothing of it runs any more.
	ReportPodTerminated = "podterminated"
	// ReportEvent carries an Event.
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
