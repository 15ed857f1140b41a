// Package value converts device property values between the forms a driver
// returns (Go numbers, booleans, strings, bytes), the canonical strings DMI
// and the sinks carry, and the typed values a driver is asked to write. It
// also enforces a model property's minimum and maximum and decides whether a
// reading changed enough to report (deadband).
//
// Everything here is pure: no I/O, no clock.
package value

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Type is a model property type, lower case.
type Type string

// The model property types of devices.kubeedge.io/v1beta1.
const (
	Int     Type = "int"
	Float   Type = "float"
	Double  Type = "double"
	String  Type = "string"
	Boolean Type = "boolean"
	Bytes   Type = "bytes"
	Stream  Type = "stream"
)

// ParseType accepts a model type in any case (upstream writes INT, FLOAT, …)
// and the aliases integer and bool.
func ParseType(s string) (Type, error) {
	switch t := Type(strings.ToLower(strings.TrimSpace(s))); t {
	case Int, Float, Double, String, Boolean, Bytes, Stream:
		return t, nil
	case "integer":
		return Int, nil
	case "bool":
		return Boolean, nil
	case "":
		return "", errors.New("property type is empty: use int, float, double, string, boolean or bytes")
	}
	return "", fmt.Errorf("property type %q is not supported: use int, float, double, string, boolean or bytes", s)
}

// Numeric reports whether values of t are numbers.
func (t Type) Numeric() bool { return t == Int || t == Float || t == Double }

// Error is a conversion or range error a caller shows to a person.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func errorf(format string, a ...any) error { return &Error{Msg: fmt.Sprintf(format, a...)} }

// Parse converts a canonical string into the Go value a driver is given to
// write: int64, float64 (float and double), bool, string or []byte.
// Booleans accept true/false, 1/0, on/off and yes/no in any case; bytes are
// standard base64.
func Parse(t Type, s string) (any, error) {
	s2 := strings.TrimSpace(s)
	switch t {
	case Int:
		i, err := strconv.ParseInt(s2, 10, 64)
		if err != nil {
			// Accept an integral decimal like "21.0".
			f, ferr := strconv.ParseFloat(s2, 64)
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
				return nil, errorf("%q is not an integer", s)
			}
			i = int64(f)
		}
		return i, nil
	case Float, Double:
		f, err := strconv.ParseFloat(s2, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, errorf("%q is not a number", s)
		}
		if t == Float && math.Abs(f) > math.MaxFloat32 {
			return nil, errorf("%q is out of range for a float (32-bit)", s)
		}
		return f, nil
	case Boolean:
		switch strings.ToLower(s2) {
		case "true", "1", "on", "yes":
			return true, nil
		case "false", "0", "off", "no":
			return false, nil
		}
		return nil, errorf("%q is not a boolean: use true or false", s)
	case String, Stream:
		return s, nil
	case Bytes:
		b, err := base64.StdEncoding.DecodeString(s2)
		if err != nil {
			return nil, errorf("%q is not base64: bytes values are standard base64", s)
		}
		return b, nil
	}
	return nil, errorf("property type %q is not supported", string(t))
}

// Coerce converts a driver's reading into the canonical Go value for t
// (see Parse). Numbers convert between kinds when no precision is lost;
// strings are parsed.
func Coerce(t Type, v any) (any, error) {
	if s, ok := v.(string); ok && t != String && t != Stream {
		return Parse(t, s)
	}
	switch t {
	case Int:
		switch n := v.(type) {
		case bool:
			if n {
				return int64(1), nil
			}
			return int64(0), nil
		case float32, float64:
			f := toFloat(n)
			if f != math.Trunc(f) || math.IsNaN(f) || math.Abs(f) > 1<<63 {
				return nil, errorf("%v is not an integer", v)
			}
			return int64(f), nil
		}
		if i, ok := toInt(v); ok {
			return i, nil
		}
		if u, ok := v.(uint64); ok {
			if u > math.MaxInt64 {
				return nil, errorf("%d does not fit in an int", u)
			}
			return int64(u), nil
		}
		if u, ok := v.(uint); ok {
			if uint64(u) > math.MaxInt64 {
				return nil, errorf("%d does not fit in an int", u)
			}
			return int64(u), nil
		}
	case Float, Double:
		switch n := v.(type) {
		case float32, float64:
			f := toFloat(n)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, errorf("%v is not a finite number", v)
			}
			return f, nil
		case bool:
			if n {
				return 1.0, nil
			}
			return 0.0, nil
		case uint64:
			return float64(n), nil
		case uint:
			return float64(n), nil
		}
		if i, ok := toInt(v); ok {
			return float64(i), nil
		}
	case Boolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		if i, ok := toInt(v); ok {
			return i != 0, nil
		}
		switch n := v.(type) {
		case float32, float64:
			return toFloat(n) != 0, nil
		case uint64:
			return n != 0, nil
		case uint:
			return n != 0, nil
		}
	case String, Stream:
		switch n := v.(type) {
		case string:
			return n, nil
		case []byte:
			return string(n), nil
		case fmt.Stringer:
			return n.String(), nil
		}
		s, err := Format(inferType(v), v)
		if err != nil {
			return nil, err
		}
		return s, nil
	case Bytes:
		switch n := v.(type) {
		case []byte:
			return n, nil
		}
	default:
		return nil, errorf("property type %q is not supported", string(t))
	}
	return nil, errorf("a %T reading cannot be a %s value", v, t)
}

// Format renders v (any reading Coerce accepts) as the canonical string for
// t: integers in decimal, floats in the shortest form that round-trips at
// their precision, booleans as true/false, bytes as base64.
func Format(t Type, v any) (string, error) {
	c, err := Coerce(t, v)
	if err != nil {
		return "", err
	}
	switch x := c.(type) {
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		bits := 64
		if t == Float {
			bits = 32
		}
		return strconv.FormatFloat(x, 'g', -1, bits), nil
	case bool:
		return strconv.FormatBool(x), nil
	case string:
		return x, nil
	case []byte:
		return base64.StdEncoding.EncodeToString(x), nil
	}
	return "", errorf("a %T reading cannot be a %s value", v, t)
}

func inferType(v any) Type {
	switch v.(type) {
	case bool:
		return Boolean
	case float32:
		return Float
	case float64:
		return Double
	case []byte:
		return Bytes
	}
	if _, ok := toInt(v); ok {
		return Int
	}
	return String
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	}
	return 0, false
}

func toFloat(v any) float64 {
	switch n := v.(type) {
	case float32:
		return float64(n)
	case float64:
		return n
	}
	return math.NaN()
}
