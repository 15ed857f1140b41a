package devicespec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// CustomizedValue is free-form configuration: a JSON object whose keys
// belong to a protocol, a mapper or a sink, not to this API. The API server
// keeps every key as written (x-kubernetes-preserve-unknown-fields), and so
// does this type: it holds the object's JSON text, so numbers keep their
// precision and a deep copy is a byte copy.
//
// +kubebuilder:validation:Type=object
// +kubebuilder:validation:XPreserveUnknownFields
type CustomizedValue struct {
	// Raw is the object's JSON text; empty means {}.
	Raw json.RawMessage `json:"-"`
}

// NewCustomizedValue encodes m. A nil map gives a nil value.
func NewCustomizedValue(m map[string]any) (*CustomizedValue, error) {
	if m == nil {
		return nil, nil
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding configuration: %w", err)
	}
	return &CustomizedValue{Raw: raw}, nil
}

// MarshalJSON writes the object, {} when empty.
//
// Clients that talk CBOR to the API server use MarshalJSON and
// UnmarshalJSON too: apimachinery's CBOR serializer transcodes what they
// write and read. So the type needs no CBOR methods of its own, and this
// package, which verge-edge links, needs no CBOR library.
func (in CustomizedValue) MarshalJSON() ([]byte, error) {
	if len(bytes.TrimSpace(in.Raw)) == 0 {
		return []byte("{}"), nil
	}
	return in.Raw, nil
}

// UnmarshalJSON accepts a JSON object (or null, read as empty) and keeps
// its text.
func (in *CustomizedValue) UnmarshalJSON(data []byte) error {
	trimmed := bytes.TrimSpace(data)
	if bytes.Equal(trimmed, []byte("null")) {
		in.Raw = nil
		return nil
	}
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return errors.New("configuration must be a JSON object")
	}
	in.Raw = append(json.RawMessage(nil), trimmed...)
	return nil
}

// IsEmpty reports whether the value is nil or has no keys.
func (in *CustomizedValue) IsEmpty() bool {
	if in == nil {
		return true
	}
	m, err := in.Map()
	return err == nil && len(m) == 0
}

// Map decodes the object into plain Go values: string, bool, nil,
// int64 for integers that fit (uint64 for larger positive ones), float64
// for other numbers, map[string]any and []any. A nil or empty value gives an
// empty map.
func (in *CustomizedValue) Map() (map[string]any, error) {
	out := map[string]any{}
	if in == nil || len(bytes.TrimSpace(in.Raw)) == 0 {
		return out, nil
	}
	dec := json.NewDecoder(bytes.NewReader(in.Raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding configuration: %w", err)
	}
	for k, v := range m {
		out[k] = plain(v)
	}
	return out, nil
}

// plain replaces json.Number values with int64 (integers that fit),
// uint64 (larger positive integers) or float64, recursively. A number no
// Go type holds (1e400) stays a string.
func plain(v any) any {
	switch t := v.(type) {
	case json.Number:
		s := t.String()
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i
			}
			if u, err := strconv.ParseUint(s, 10, 64); err == nil {
				return u
			}
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
		return s
	case map[string]any:
		for k, e := range t {
			t[k] = plain(e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = plain(e)
		}
		return t
	}
	return v
}

// Decode unmarshals the object into v, typically a protocol's own
// configuration struct. A nil or empty value decodes as {}.
func (in *CustomizedValue) Decode(v any) error {
	raw := []byte("{}")
	if in != nil && len(bytes.TrimSpace(in.Raw)) > 0 {
		raw = in.Raw
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decoding configuration: %w", err)
	}
	return nil
}

// MergeConfigData returns base with every key of override put over it: the
// shallow, key-by-key merge by which a device's configData overrides its
// model's defaults. Either may be nil; the result is nil only when both
// are, and is never one of the arguments (a caller may change it freely).
func MergeConfigData(base, override *CustomizedValue) (*CustomizedValue, error) {
	if base == nil && override == nil {
		return nil, nil
	}
	if base.IsEmpty() {
		return override.DeepCopy(), nil
	}
	if override.IsEmpty() {
		return base.DeepCopy(), nil
	}
	var b, o map[string]json.RawMessage
	if err := json.Unmarshal(base.Raw, &b); err != nil {
		return nil, fmt.Errorf("decoding default configuration: %w", err)
	}
	if err := json.Unmarshal(override.Raw, &o); err != nil {
		return nil, fmt.Errorf("decoding configuration: %w", err)
	}
	for k, v := range o {
		b[k] = v
	}
	raw, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	return &CustomizedValue{Raw: raw}, nil
}
