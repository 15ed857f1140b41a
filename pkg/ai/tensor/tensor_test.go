package tensor

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestWeightsJSONRoundTrip(t *testing.T) {
	w := Weights{
		{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
		{Shape: []int{3}, Data: []float32{0.1, -0.25, 1e-7}},
		{Shape: nil, Data: []float32{42}},
		{Shape: []int{2, 0}, Data: []float32{}},
	}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	want := `[[[1,2,3],[4,5,6]],[0.1,-0.25,1e-07],42,[[],[]]]`
	if string(b) != want {
		t.Fatalf("encoded %s, want %s", b, want)
	}
	var got Weights
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	w[2].Shape = []int{}
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("round trip: got %+v, want %+v", got, w)
	}
}

func TestDecodeSednaNumbers(t *testing.T) {
	// What numpy's tolist() and Python's json produce: float64 spellings,
	// exponents, whitespace, integers.
	var w Weights
	in := "[ [[0.10000000149011612, 2], [3e0, -4.5E-1]] , [1] ]"
	if err := json.Unmarshal([]byte(in), &w); err != nil {
		t.Fatal(err)
	}
	want := Weights{{Shape: []int{2, 2}, Data: []float32{0.1, 2, 3, -0.45}}, {Shape: []int{1}, Data: []float32{1}}}
	if !reflect.DeepEqual(w, want) {
		t.Fatalf("got %+v, want %+v", w, want)
	}
}

func TestDecodeNonFiniteThenCheck(t *testing.T) {
	// encoding/json refuses NaN before UnmarshalJSON runs; called
	// directly (as a streaming decoder would), it accepts Python's spelling.
	var w Weights
	if err := w.UnmarshalJSON([]byte(`[[1, NaN, Infinity, -Infinity, 1e300]]`)); err != nil {
		t.Fatal(err)
	}
	if err := w.CheckFinite(); !errors.Is(err, ErrNotFinite) {
		t.Fatalf("CheckFinite = %v, want ErrNotFinite", err)
	}
	if _, err := json.Marshal(w); !errors.Is(err, ErrNotFinite) {
		t.Fatalf("Marshal of NaN = %v, want ErrNotFinite", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, in := range []string{
		`[[[1,2],[3]]]`, // ragged
		`[[[1,2],3]]`,   // number where a list was
		`[[1,[2]]]`,     // list where a number was
		`[[[],[1]]]`,    // empty among non-empty
		`[[1,2]`,        // truncated
		`[["a"]]`,       // string
		`[[1 2]]`,       // missing comma
		`[[01]]`,        // not JSON number grammar
		`[[1,]]`,        // trailing comma
		`{"a":1}`,       // not a list
		`[[1]] x`,       // trailing garbage
		`[[true]]`,      // boolean
		`[[1e]]`,        // bad exponent
		`[[-]]`,         // lone sign
		`[[null]]`,      // null element
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`, // too deep
	} {
		var w Weights
		if err := json.Unmarshal([]byte(in), &w); err == nil {
			t.Errorf("%s decoded to %+v, want an error", in, w)
		}
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	w := Weights{
		{Shape: []int{2, 2}, Data: []float32{1, -2, float32(math.Pi), 0}},
		{Shape: []int{}, Data: []float32{7}},
		{Shape: []int{0}, Data: []float32{}},
	}
	b, err := AppendBinary([]byte("hdr"), w)
	if err != nil {
		t.Fatal(err)
	}
	// 4 count + (4+8+16) + (4+0+4) + (4+4+0)
	if got, want := len(b)-3, 4+28+8+8; got != want {
		t.Fatalf("encoded %d bytes, want %d", got, want)
	}
	got, err := DecodeBinary(b[3:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("got %+v, want %+v", got, w)
	}
	// Every truncation fails cleanly, none panics.
	for n := 0; n < len(b)-3; n++ {
		if _, err := DecodeBinary(b[3 : 3+n]); !errors.Is(err, ErrBinary) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrBinary", n, err)
		}
	}
}

func TestBinaryHostileLengths(t *testing.T) {
	// One tensor claiming shape [65535, 65535] in a 16-byte frame must not
	// allocate 16 GiB.
	b := []byte{1, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0}
	if _, err := DecodeBinary(b); !errors.Is(err, ErrBinary) {
		t.Fatalf("err = %v, want ErrBinary", err)
	}
	if _, err := DecodeBinary([]byte{0xff, 0xff, 0xff, 0xff}); !errors.Is(err, ErrBinary) {
		t.Fatalf("huge count: err = %v, want ErrBinary", err)
	}
}

func TestSameShape(t *testing.T) {
	a := Weights{New(2, 3), New(3)}
	if err := a.SameShape(Weights{New(2, 3), New(3)}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []Weights{{New(2, 3)}, {New(3, 2), New(3)}, {New(2, 3), New(4)}} {
		if err := a.SameShape(b); !errors.Is(err, ErrShapeMismatch) {
			t.Errorf("SameShape(%v) = %v, want ErrShapeMismatch", b, err)
		}
	}
}
