package federated

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/verge-edge/verge/pkg/ai/tensor"
)

// Message types of Sedna's aggregation protocol.
const (
	TypeSubscribe    = "subscribe"
	TypeUpdateWeight = "update_weight"
	TypeRecvWeight   = "recv_weight"
)

// Values of recv_weight's exit_flag.
const (
	ExitOK       = "ok"       // training is over; these are the final weights
	ExitContinue = "continue" // train another round
)

// Weight encodings a Verge peer can negotiate.
const (
	// EncodingJSON is Sedna's: weights as nested JSON lists in text
	// frames. The default, and the only one Sedna peers speak.
	EncodingJSON = "json"
	// EncodingBinary sends messages carrying weights as binary frames:
	// see the package documentation.
	EncodingBinary = "f32le"
)

// ProtocolVersion is the version of Verge's additions, sent in the "verge"
// object of subscribe messages.
const ProtocolVersion = 1

// Extension is the "verge" object Verge peers add to subscribe messages.
// Sedna peers neither send nor read it.
type Extension struct {
	Protocol int `json:"protocol"`
	// Encodings (client → aggregator) lists what the client can read,
	// preferred first.
	Encodings []string `json:"encodings,omitempty"`
	// Encoding (aggregator → client) is what both sides use from now on.
	Encoding string `json:"encoding,omitempty"`
}

// UpdateData is the "data" of update_weight.
type UpdateData struct {
	NumSamples int            `json:"num_samples"`
	Weights    tensor.Weights `json:"weights"`
	// RoundNumber (Verge) is the round the update is for: one more than
	// the round of the global weights it was trained from. Zero (absent,
	// as from Sedna clients): the round that is open.
	RoundNumber int `json:"round_number,omitempty"`
	// Metrics (Verge) are the client's measurements, e.g. accuracy on its
	// validation data; the aggregator averages them weighted by samples.
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// ResultData is the "data" of recv_weight: a round's aggregate.
type ResultData struct {
	TotalSample int            `json:"total_sample"`
	RoundNumber int            `json:"round_number"`
	Weights     tensor.Weights `json:"weights"`
	ExitFlag    string         `json:"exit_flag"`
	// Metrics (Verge): the sample-weighted mean of the round's reported
	// metrics.
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Participants (Verge): the clients whose updates the round used.
	Participants []string `json:"participants,omitempty"`
}

// Message is one protocol message. Data holds *UpdateData for
// update_weight and *ResultData for recv_weight, nil otherwise.
type Message struct {
	Type string
	// ClientID identifies the client in subscribe (and its echo).
	ClientID string
	// Client is the sender of update_weight.
	Client  string
	JobName string
	// RoundNumber is sent top-level with recv_weight (as Sedna does) and
	// with the subscribe acknowledgement (Verge: rounds completed).
	RoundNumber *int
	Verge       *Extension
	Update      *UpdateData
	Result      *ResultData
}

type wireMessage struct {
	Type        string          `json:"type"`
	ClientID    string          `json:"client_id,omitempty"`
	Client      string          `json:"client,omitempty"`
	JobName     string          `json:"job_name,omitempty"`
	RoundNumber *int            `json:"round_number,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	Verge       *Extension      `json:"verge,omitempty"`
}

// binaryMagic starts every binary frame.
var binaryMagic = [4]byte{'V', 'F', 'L', '1'}

// Encode returns the frame for m: a JSON text frame, or with binary set
// and weights present, a binary frame.
func Encode(m *Message, binaryFrame bool) (data []byte, isBinary bool, err error) {
	w := wireMessage{Type: m.Type, ClientID: m.ClientID, Client: m.Client, JobName: m.JobName, RoundNumber: m.RoundNumber, Verge: m.Verge}
	var weights tensor.Weights
	var payload any
	switch {
	case m.Update != nil:
		u := *m.Update
		if binaryFrame {
			weights, u.Weights = u.Weights, nil
		}
		payload = &u
	case m.Result != nil:
		r := *m.Result
		if binaryFrame {
			weights, r.Weights = r.Weights, nil
		}
		payload = &r
	}
	if payload != nil {
		if w.Data, err = json.Marshal(payload); err != nil {
			return nil, false, fmt.Errorf("encoding %s: %w", m.Type, err)
		}
	}
	header, err := json.Marshal(w)
	if err != nil {
		return nil, false, fmt.Errorf("encoding %s: %w", m.Type, err)
	}
	if !binaryFrame || payload == nil {
		return header, false, nil
	}
	out := make([]byte, 0, 8+len(header)+4+weights.Len()*4+len(weights)*12)
	out = append(out, binaryMagic[:]...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(header)))
	out = append(out, header...)
	if out, err = tensor.AppendBinary(out, weights); err != nil {
		return nil, false, fmt.Errorf("encoding %s weights: %w", m.Type, err)
	}
	return out, true, nil
}

// ErrMalformed is returned (wrapped) for a frame that is not a protocol
// message.
var ErrMalformed = errors.New("malformed message")

// Decode parses a text (JSON) or binary frame.
func Decode(frame []byte, isBinary bool) (*Message, error) {
	header := frame
	var weights tensor.Weights
	if isBinary {
		if len(frame) < 8 || !bytes.Equal(frame[:4], binaryMagic[:]) {
			return nil, fmt.Errorf("%w: binary frame without the VFL1 header", ErrMalformed)
		}
		n := binary.LittleEndian.Uint32(frame[4:8])
		if uint64(n) > uint64(len(frame)-8) {
			return nil, fmt.Errorf("%w: header length %d exceeds the frame", ErrMalformed, n)
		}
		header = frame[8 : 8+n]
		var err error
		if weights, err = tensor.DecodeBinary(frame[8+n:]); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	var w wireMessage
	if err := json.Unmarshal(header, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if w.Type == "" {
		return nil, fmt.Errorf("%w: no \"type\"", ErrMalformed)
	}
	m := &Message{Type: w.Type, ClientID: w.ClientID, Client: w.Client, JobName: w.JobName, RoundNumber: w.RoundNumber, Verge: w.Verge}
	hasData := len(w.Data) > 0 && string(w.Data) != "null"
	switch w.Type {
	case TypeUpdateWeight:
		if !hasData {
			return nil, fmt.Errorf("%w: update_weight without \"data\"", ErrMalformed)
		}
		m.Update = &UpdateData{}
		if err := json.Unmarshal(w.Data, m.Update); err != nil {
			return nil, fmt.Errorf("%w: update_weight data: %w", ErrMalformed, err)
		}
		if isBinary {
			m.Update.Weights = weights
		}
	case TypeRecvWeight:
		if !hasData {
			return nil, fmt.Errorf("%w: recv_weight without \"data\"", ErrMalformed)
		}
		m.Result = &ResultData{}
		if err := json.Unmarshal(w.Data, m.Result); err != nil {
			return nil, fmt.Errorf("%w: recv_weight data: %w", ErrMalformed, err)
		}
		if isBinary {
			m.Result.Weights = weights
		}
	}
	return m, nil
}
