package kube

import (
	"encoding/json"
	"strconv"
)

// IntOrString holds either an integer or a string, as ports in probes do
// ("8080" or "http").
type IntOrString struct {
	Type   IntOrStringType `protobuf:"varint,1,opt,name=type"`
	IntVal int32           `protobuf:"varint,2,opt,name=intVal"`
	StrVal string          `protobuf:"bytes,3,opt,name=strVal"`
}

// IntOrStringType says which member of an IntOrString is set.
type IntOrStringType int64

// The members of IntOrString.
const (
	Int    IntOrStringType = 0
	String IntOrStringType = 1
)

// FromInt32 is an IntOrString holding v.
func FromInt32(v int32) IntOrString { return IntOrString{Type: Int, IntVal: v} }

// FromString is an IntOrString holding s.
func FromString(s string) IntOrString { return IntOrString{Type: String, StrVal: s} }

// String is the value as text.
func (v *IntOrString) String() string {
	if v.Type == String {
		return v.StrVal
	}
	return strconv.Itoa(int(v.IntVal))
}

// MarshalJSON writes a JSON number or string.
func (v IntOrString) MarshalJSON() ([]byte, error) {
	if v.Type == String {
		return json.Marshal(v.StrVal)
	}
	return json.Marshal(v.IntVal)
}

// UnmarshalJSON reads a JSON number or string.
func (v *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		v.Type, v.IntVal = String, 0
		return json.Unmarshal(b, &v.StrVal)
	}
	v.Type, v.StrVal = Int, ""
	return json.Unmarshal(b, &v.IntVal)
}
