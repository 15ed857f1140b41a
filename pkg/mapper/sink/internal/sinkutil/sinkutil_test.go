package sinkutil

import (
	"strings"
	"testing"
	"time"

	"github.com/verge-edge/verge/pkg/mapper/sink"
)

func TestTemplate(t *testing.T) {
	smp := sink.Sample{Namespace: "ns", Device: "dev", Property: "temp"}
	tests := []struct {
		tmpl, want, wantErr string
		static              bool
	}{
		{tmpl: "a/{namespace}/{device}/{property}/b", want: "a/ns/dev/temp/b"},
		{tmpl: "{device}{property}", want: "devtemp"},
		{tmpl: "fixed/topic", want: "fixed/topic", static: true},
		{tmpl: "", want: "", static: true},
		{tmpl: "a/{node}", wantErr: "unknown placeholder {node}"},
		{tmpl: "a/{device", wantErr: "unclosed"},
	}
	for _, tc := range tests {
		tp, err := ParseTemplate(tc.tmpl)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseTemplate(%q) = %v, want %q", tc.tmpl, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := tp.Expand(smp); got != tc.want || tp.Static() != tc.static || tp.String() != tc.tmpl {
			t.Errorf("%q: Expand = %q static=%v, want %q static=%v", tc.tmpl, got, tp.Static(), tc.want, tc.static)
		}
	}
}

func TestRecordAndSnippet(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)) }
	r := NewRecord(sink.Sample{Namespace: "n", Device: "d", Property: "p", Value: "1", Type: "int"}, now)
	if r.Timestamp != "2026-01-02T02:04:05Z" {
		t.Errorf("a sample without a time is stamped now, in UTC: %q", r.Timestamp)
	}
	if got := Snippet([]byte("  short  "), 10); got != "short" {
		t.Errorf("Snippet = %q", got)
	}
	if got := Snippet([]byte("ééééé"), 3); got != "é…" {
		t.Errorf("Snippet cuts on a rune boundary: %q", got)
	}
}
