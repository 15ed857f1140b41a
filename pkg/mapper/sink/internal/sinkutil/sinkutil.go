// Package sinkutil holds what several sinks share: the JSON form of a
// sample, name templates ({namespace}, {device}, {property}) and short
// error bodies. It has no I/O.
package sinkutil

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/verge-edge/verge/pkg/mapper/sink"
)

// Record is the JSON form of one sample, as HTTP and MQTT sinks publish it.
type Record struct {
	Namespace string `json:"namespace"`
	Device    string `json:"device"`
	Property  string `json:"property"`
	Value     string `json:"value"`
	Type      string `json:"type"`
	// Timestamp is RFC 3339 in UTC with up to nanosecond precision.
	Timestamp string `json:"timestamp"`
}

// Time is the sample's timestamp, or now when the sample has none.
func Time(s sink.Sample, now func() time.Time) time.Time {
	if s.Timestamp.IsZero() {
		return now()
	}
	return s.Timestamp
}

// NewRecord converts a sample.
func NewRecord(s sink.Sample, now func() time.Time) Record {
	return Record{
		Namespace: s.Namespace,
		Device:    s.Device,
		Property:  s.Property,
		Value:     s.Value,
		Type:      s.Type,
		Timestamp: Time(s, now).UTC().Format(time.RFC3339Nano),
	}
}

// MarshalRecord is the JSON encoding of one sample.
func MarshalRecord(s sink.Sample, now func() time.Time) ([]byte, error) {
	return json.Marshal(NewRecord(s, now))
}

// Template is a name with {namespace}, {device} and {property}
// placeholders, parsed once.
type Template struct {
	raw   string
	parts []part
}

type part struct {
	lit string
	ph  string // "" for a literal
}

// Placeholders a template may use.
var placeholders = []string{"namespace", "device", "property"}

// ParseTemplate checks a template: braces must close and name a known
// placeholder.
func ParseTemplate(s string) (Template, error) {
	t := Template{raw: s}
	rest := s
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return Template{}, fmt.Errorf("%q has an unclosed '{': placeholders are {namespace}, {device} and {property}", s)
		}
		name := rest[i+1 : i+j]
		known := false
		for _, p := range placeholders {
			if p == name {
				known = true
			}
		}
		if !known {
			return Template{}, fmt.Errorf("%q uses unknown placeholder {%s}: placeholders are {namespace}, {device} and {property}", s, name)
		}
		t.parts = append(t.parts, part{ph: name})
		rest = rest[i+j+1:]
	}
	return t, nil
}

// String is the template as written.
func (t Template) String() string { return t.raw }

// Static reports whether the template has no placeholder.
func (t Template) Static() bool {
	for _, p := range t.parts {
		if p.ph != "" {
			return false
		}
	}
	return true
}

// Expand fills the placeholders from a sample.
func (t Template) Expand(s sink.Sample) string {
	var b strings.Builder
	for _, p := range t.parts {
		switch p.ph {
		case "":
			b.WriteString(p.lit)
		case "namespace":
			b.WriteString(s.Namespace)
		case "device":
			b.WriteString(s.Device)
		case "property":
			b.WriteString(s.Property)
		}
	}
	return b.String()
}

// Snippet is the start of a response body for an error message: at most
// max bytes, cut on a rune boundary, whitespace trimmed.
func Snippet(body []byte, max int) string {
	if len(body) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(body[cut]) {
			cut--
		}
		return strings.TrimSpace(string(body[:cut])) + "…"
	}
	return strings.TrimSpace(string(body))
}
