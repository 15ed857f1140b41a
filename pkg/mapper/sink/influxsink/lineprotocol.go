package influxsink

import (
	"errors"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// point is one line of line protocol.
type point struct {
	measurement string
	tags        map[string]string
	fieldKey    string
	field       fieldValue
	time        time.Time
}

type fieldKind int

const (
	kindString fieldKind = iota
	kindInt
	kindFloat
	kindBool
)

type fieldValue struct {
	kind fieldKind
	s    string
	i    int64
	f    float64
	b    bool
}

// errUnrepresentable marks a value that cannot be written as its type.
var errUnrepresentable = errors.New("value does not fit its type")

// toField converts a sample value by its model type. Numbers and booleans
// become typed fields (integers with the "i" suffix) so InfluxDB can
// aggregate them; everything else is a string field.
func toField(value, typ string) (fieldValue, error) {
	switch strings.ToLower(typ) {
	case "int", "integer", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32":
		i, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return fieldValue{}, errUnrepresentable
		}
		return fieldValue{kind: kindInt, i: i}, nil
	case "float", "double", "float32", "float64", "number":
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			// InfluxDB has no NaN or infinity.
			return fieldValue{}, errUnrepresentable
		}
		return fieldValue{kind: kindFloat, f: f}, nil
	case "boolean", "bool":
		b, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return fieldValue{}, errUnrepresentable
		}
		return fieldValue{kind: kindBool, b: b}, nil
	}
	return fieldValue{kind: kindString, s: value}, nil
}

// Escapers, per the line protocol reference: measurements escape commas
// and spaces; tag keys, tag values and field keys also escape equals
// signs; string field values escape double quotes. Backslashes are
// escaped everywhere so a name ending in one cannot swallow the next
// delimiter. Line protocol cannot carry line breaks or tabs in any
// element, so they are written as the two-character escapes \n, \r, \t.
var (
	measurementEscaper = strings.NewReplacer(`\`, `\\`, ",", `\,`, " ", `\ `, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	keyEscaper         = strings.NewReplacer(`\`, `\\`, ",", `\,`, "=", `\=`, " ", `\ `, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	stringEscaper      = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
)

// appendLine writes p as one line, tags sorted by key (InfluxDB's
// recommended order), tags with empty values left out (InfluxDB rejects
// them), and a nanosecond timestamp.
func appendLine(b *strings.Builder, p point) {
	b.WriteString(measurementEscaper.Replace(p.measurement))
	keys := make([]string, 0, len(p.tags))
	for k, v := range p.tags {
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteByte(',')
		b.WriteString(keyEscaper.Replace(k))
		b.WriteByte('=')
		b.WriteString(keyEscaper.Replace(p.tags[k]))
	}
	b.WriteByte(' ')
	b.WriteString(keyEscaper.Replace(p.fieldKey))
	b.WriteByte('=')
	switch p.field.kind {
	case kindInt:
		b.WriteString(strconv.FormatInt(p.field.i, 10))
		b.WriteByte('i')
	case kindFloat:
		b.WriteString(strconv.FormatFloat(p.field.f, 'g', -1, 64))
	case kindBool:
		b.WriteString(strconv.FormatBool(p.field.b))
	default:
		b.WriteByte('"')
		b.WriteString(stringEscaper.Replace(p.field.s))
		b.WriteByte('"')
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatInt(p.time.UnixNano(), 10))
	b.WriteByte('\n')
}
