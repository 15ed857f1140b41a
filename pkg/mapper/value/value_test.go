package value

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseType(t *testing.T) {
	for in, want := range map[string]Type{"INT": Int, "Float": Float, "double": Double, "STRING": String, "BOOLEAN": Boolean, "bytes": Bytes, "integer": Int, "bool": Boolean} {
		got, err := ParseType(in)
		if err != nil || got != want {
			t.Errorf("ParseType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "decimal"} {
		if _, err := ParseType(in); err == nil || !strings.Contains(err.Error(), "use int, float") {
			t.Errorf("ParseType(%q): err = %v, want advice", in, err)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		t       Type
		in      string
		want    any
		wantErr string
	}{
		{Int, "42", int64(42), ""},
		{Int, " -7 ", int64(-7), ""},
		{Int, "21.0", int64(21), ""},
		{Int, "21.5", nil, "not an integer"},
		{Int, "abc", nil, "not an integer"},
		{Float, "21.5", 21.5, ""},
		{Float, "1e39", nil, "out of range for a float"},
		{Double, "1e39", 1e39, ""},
		{Double, "NaN", nil, "not a number"},
		{Boolean, "ON", true, ""},
		{Boolean, "off", false, ""},
		{Boolean, "1", true, ""},
		{Boolean, "maybe", nil, "not a boolean"},
		{String, " keep spaces ", " keep spaces ", ""},
		{Bytes, "AQI=", []byte{1, 2}, ""},
		{Bytes, "!!", nil, "not base64"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.t, tt.in)
		if tt.wantErr != "" {
			var ve *Error
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ve) {
				t.Errorf("Parse(%s, %q): err = %v, want a value.Error containing %q", tt.t, tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%s, %q) = %#v, %v; want %#v", tt.t, tt.in, got, err, tt.want)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		t       Type
		in      any
		want    string
		wantErr string
	}{
		{Int, uint16(65535), "65535", ""},
		{Int, int16(-3), "-3", ""},
		{Int, 3.0, "3", ""},
		{Int, 3.5, "", "not an integer"},
		{Int, true, "1", ""},
		{Int, uint64(1) << 63, "", "does not fit"},
		{Float, float32(21.5), "21.5", ""},
		{Float, 0.30000000000000004, "0.3", ""}, // rendered at 32-bit precision
		{Double, 0.30000000000000004, "0.30000000000000004", ""},
		{Double, int32(7), "7", ""},
		{Boolean, uint16(0), "false", ""},
		{Boolean, int64(5), "true", ""},
		{Boolean, "ON", "true", ""},
		{String, []byte("hi"), "hi", ""},
		{String, int64(12), "12", ""},
		{Bytes, []byte{0xff}, "/w==", ""},
		{Bytes, 5, "", "cannot be a bytes value"},
		{Int, struct{}{}, "", "cannot be a int value"},
	}
	for _, tt := range tests {
		got, err := Format(tt.t, tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Format(%s, %#v): err = %v, want %q", tt.t, tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Format(%s, %#v) = %q, %v; want %q", tt.t, tt.in, got, err, tt.want)
		}
	}
}

func TestLimits(t *testing.T) {
	l, err := ParseLimits(Int, "0", "100")
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[int64]string{0: "", 100: "", -1: "below the minimum 0", 101: "above the maximum 100"} {
		err := l.Check(v)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("Check(%d) = %v, want %q", v, err, want)
		}
	}
	open, err := ParseLimits(Double, "", "1.5")
	if err != nil || open.Check(-1e300) != nil || open.Check(1.6) == nil {
		t.Errorf("half-open limits misbehave: %v", err)
	}
	if l, err := ParseLimits(String, "x", "y"); err != nil || l.Check("anything") != nil {
		t.Errorf("limits on a string type must be ignored: %v", err)
	}
	if _, err := ParseLimits(Int, "low", ""); err == nil || !strings.Contains(err.Error(), `minimum "low" is not a number`) {
		t.Errorf("bad minimum: %v", err)
	}
	if _, err := ParseLimits(Float, "5", "1"); err == nil || !strings.Contains(err.Error(), "greater than maximum") {
		t.Errorf("min > max: %v", err)
	}
}

func TestChanged(t *testing.T) {
	tests := []struct {
		t         Type
		last, cur string
		deadband  float64
		want      bool
	}{
		{Int, "20", "20", 0, false},
		{Int, "20", "21", 0, true},
		{Double, "20.0", "20.4", 0.5, false},
		{Double, "20.0", "20.5", 0.5, false}, // must exceed the deadband
		{Double, "20.0", "20.6", 0.5, true},
		{Double, "20.0", "19.4", 0.5, true},
		{Double, "20.0", "oops", 0.5, true},
		{String, "a", "b", 5, true},
		{Boolean, "true", "true", 1, false},
	}
	for _, tt := range tests {
		if got := Changed(tt.t, tt.last, tt.cur, tt.deadband); got != tt.want {
			t.Errorf("Changed(%s, %q, %q, %v) = %v, want %v", tt.t, tt.last, tt.cur, tt.deadband, got, tt.want)
		}
	}
}
