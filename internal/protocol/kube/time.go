package kube

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Time is a timestamp as the Kubernetes API writes it: RFC 3339 to the
// second in JSON (null when zero), seconds and nanoseconds in protobuf.
type Time struct {
	time.Time
}

// NewTime wraps t.
func NewTime(t time.Time) Time { return Time{t} }

// IsZero reports whether t is nil or the zero time.
func (t *Time) IsZero() bool { return t == nil || t.Time.IsZero() }

// Equal reports whether t and u are the same instant (nil equals zero).
func (t *Time) Equal(u *Time) bool {
	if t.IsZero() || u.IsZero() {
		return t.IsZero() == u.IsZero()
	}
	return t.Time.Equal(u.Time)
}

// MarshalJSON writes RFC 3339 in UTC, to the second.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.Time.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339))
}

// UnmarshalJSON reads RFC 3339, or null for the zero time.
func (t *Time) UnmarshalJSON(b []byte) error {
	return unmarshalJSONTime(b, time.RFC3339, &t.Time)
}

func (t *Time) appendProto(b []byte) []byte { return appendTimestamp(b, t.Time) }

func (t *Time) readProto(b []byte) error { return readTimestamp(b, &t.Time) }

// MicroTime is Time with microseconds in JSON (Event.eventTime and the
// like).
type MicroTime struct {
	time.Time
}

// rfc3339Micro is the JSON layout of MicroTime.
const rfc3339Micro = "2006-01-02T15:04:05.000000Z07:00"

// NewMicroTime wraps t.
func NewMicroTime(t time.Time) MicroTime { return MicroTime{t} }

// IsZero reports whether t is nil or the zero time.
func (t *MicroTime) IsZero() bool { return t == nil || t.Time.IsZero() }

// MarshalJSON writes RFC 3339 in UTC with microseconds.
func (t MicroTime) MarshalJSON() ([]byte, error) {
	if t.Time.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(rfc3339Micro))
}

// UnmarshalJSON reads RFC 3339 with microseconds, or null.
func (t *MicroTime) UnmarshalJSON(b []byte) error {
	return unmarshalJSONTime(b, rfc3339Micro, &t.Time)
}

func (t *MicroTime) appendProto(b []byte) []byte { return appendTimestamp(b, t.Time) }

func (t *MicroTime) readProto(b []byte) error { return readTimestamp(b, &t.Time) }

func unmarshalJSONTime(b []byte, layout string, into *time.Time) error {
	if string(b) == "null" {
		*into = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == "" {
		*into = time.Time{}
		return nil
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		// Accept any RFC 3339 precision, as the API server does.
		if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return fmt.Errorf("time %q is not RFC 3339", s)
		}
	}
	*into = t.Local()
	return nil
}

// appendTimestamp writes t as the message {seconds = 1, nanos = 2}; the
// zero time is the empty message.
func appendTimestamp(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	if s := t.Unix(); s != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(s))
	}
	if n := t.Nanosecond(); n != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(n))
	}
	return b
}

func readTimestamp(b []byte, into *time.Time) error {
	if len(b) == 0 {
		*into = time.Time{}
		return nil
	}
	var sec, nsec int64
	err := readVarints(b, "Time", func(num protowire.Number, v uint64) {
		switch num {
		case 1:
			sec = int64(v)
		case 2:
			nsec = int64(int32(v))
		}
	})
	*into = time.Unix(sec, nsec).Local()
	return err
}

// readVarints calls set for every varint field of a small message and
// skips anything else.
func readVarints(b []byte, what string, set func(protowire.Number, uint64)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("kube: %s: %w", what, protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return fmt.Errorf("kube: %s: %w", what, protowire.ParseError(m))
			}
			set(num, v)
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return fmt.Errorf("kube: %s: %w", what, protowire.ParseError(m))
		}
		b = b[m:]
	}
	return nil
}

// Duration is a time.Duration written as a Go duration string in JSON
// ("1m30s") and as nanoseconds in protobuf.
type Duration struct {
	time.Duration
}

// MarshalJSON writes the Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"30s\" or \"5m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: use a number with a unit, such as \"30s\" or \"5m\"", s)
	}
	d.Duration = v
	return nil
}

func (d *Duration) appendProto(b []byte) []byte {
	if d.Duration == 0 {
		return b
	}
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(d.Duration))
}

func (d *Duration) readProto(b []byte) error {
	d.Duration = 0
	return readVarints(b, "Duration", func(num protowire.Number, v uint64) {
		if num == 1 {
			d.Duration = time.Duration(int64(v))
		}
	})
}

// Unsupported stands for a field the edge does not act on (a volume
// source it cannot mount, scheduling hints): it records that the field was
// set, and nothing more.
type Unsupported struct{}

func (*Unsupported) appendProto(b []byte) []byte { return b }

func (*Unsupported) readProto([]byte) error { return nil }

// MarshalJSON writes an empty object.
func (Unsupported) MarshalJSON() ([]byte, error) { return []byte("{}"), nil }

// UnmarshalJSON accepts anything.
func (*Unsupported) UnmarshalJSON([]byte) error { return nil }

// Now is the current time as a Time.
func Now() Time { return Time{time.Now()} }
