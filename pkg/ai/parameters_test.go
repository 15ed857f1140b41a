package ai

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseParameters(t *testing.T) {
	ps, err := ParseParameters(`[{"key":"threshold_img","value":"0.9"},{"key":"n","value":3},{"key":"empty"}]`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Parameter{{"threshold_img", "0.9"}, {"n", "3"}, {"empty", ""}}
	if !reflect.DeepEqual(ps, want) {
		t.Fatalf("got %v, want %v", ps, want)
	}
	if ps, err := ParseParameters("  "); err != nil || ps != nil {
		t.Fatalf("empty: %v %v", ps, err)
	}
	for _, bad := range []string{`{"threshold":0.5}`, `[{"value":"1"}]`, `[{"key":""}]`, `[{"key":"a","value":[1]}]`, `[`} {
		if _, err := ParseParameters(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestParams(t *testing.T) {
	p := NewParams("Algo", []Parameter{{"a", "0.5"}, {"b", "2"}, {"c", "x"}, {"zz", "1"}, {"a", "0.6"}})
	if v := p.Float("a", 0.1, 0, 1); v != 0.5 {
		t.Fatalf("a = %v", v)
	}
	if v := p.Float("b", 0.1, 0, 1); v != 0.1 {
		t.Fatalf("out-of-range b gave %v, want the default", v)
	}
	p.Float("c", 0, 0, 1)
	if v := p.Float("missing", 0.7, 0, 1); v != 0.7 {
		t.Fatalf("missing = %v", v)
	}
	err := p.Done()
	var pes []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var pe *ParameterError
		if !errors.As(e, &pe) {
			t.Fatalf("%T is not a ParameterError", e)
		}
		pes = append(pes, pe.Key)
	}
	if strings.Join(pes, ",") != "a,b,c,zz" {
		t.Fatalf("errors for %v: %v", pes, err)
	}
	if !strings.Contains(err.Error(), `Algo: parameter b="2" is invalid: want a number in [0, 1]`) ||
		!strings.Contains(err.Error(), "a known key: one of a, b, c, missing") {
		t.Fatalf("message: %v", err)
	}
	q := NewParams("M", []Parameter{{"m", "1"}})
	q.FloatBelow("m", 0.9, 0, 1)
	if err := q.Done(); err == nil || !strings.Contains(err.Error(), "[0, 1)") {
		t.Fatalf("half-open range: %v", err)
	}
}
