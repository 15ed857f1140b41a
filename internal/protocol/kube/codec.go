package kube

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
)

// The codec reads and writes Kubernetes' protobuf encoding (the bytes of
// k8s.io/api's generated Marshal methods, without the "k8s\x00" envelope
// the apiserver adds) for the mirror types, driven by their protobuf
// struct tags. Reflection keeps the binary small: one codec for every
// type instead of generated code per type, and objects at the edge are few.
//
// Rules, as in the generated code: a message field is length-delimited;
// repeated fields are not packed (packed input is accepted too); a map is a
// repeated message with the key as field 1 and the value as field 2. Zero
// scalars that are not pointers are left out on write (reading them back
// gives the same value); elements of lists and maps are always written.

// protoValue is implemented by hand-written types whose Go form differs
// from their message layout (Time, MicroTime, Duration, Quantity,
// Unsupported).
type protoValue interface {
	appendProto(b []byte) []byte
	readProto(b []byte) error
}

var protoValueType = reflect.TypeFor[protoValue]()

// field describes one protobuf-tagged struct field.
type field struct {
	name  string // for errors
	num   protowire.Number
	index int
}

type message struct {
	fields []field // in field-number order
	byNum  map[protowire.Number]*field
}

var messages sync.Map // reflect.Type → *message

func messageOf(t reflect.Type) (*message, error) {
	if m, ok := messages.Load(t); ok {
		return m.(*message), nil
	}
	m := &message{byNum: map[protowire.Number]*field{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("protobuf")
		if !ok {
			continue // e.g. TypeMeta: not part of the protobuf encoding
		}
		parts := strings.Split(tag, ",")
		if len(parts) < 2 {
			return nil, fmt.Errorf("%s.%s: malformed protobuf tag %q", t.Name(), sf.Name, tag)
		}
		n, err := strconv.Atoi(parts[1])
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s.%s: malformed protobuf tag %q", t.Name(), sf.Name, tag)
		}
		m.fields = append(m.fields, field{name: t.Name() + "." + sf.Name, num: protowire.Number(n), index: i})
	}
	sort.Slice(m.fields, func(i, j int) bool { return m.fields[i].num < m.fields[j].num })
	for i := range m.fields {
		f := &m.fields[i]
		if _, dup := m.byNum[f.num]; dup {
			return nil, fmt.Errorf("%s: field number %d used twice", t.Name(), f.num)
		}
		m.byNum[f.num] = f
	}
	actual, _ := messages.LoadOrStore(t, m)
	return actual.(*message), nil
}

// marshal encodes v, a pointer to a mirror struct, as a protobuf message.
func marshal(v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("kube: cannot encode %T, want a pointer to a struct", v)
	}
	return appendMessage(nil, rv.Elem())
}

// unmarshal decodes a protobuf message into v, a pointer to a mirror
// struct, replacing what v held. Fields the mirror does not have are
// skipped.
func unmarshal(b []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("kube: cannot decode into %T, want a non-nil pointer to a struct", v)
	}
	rv.Elem().SetZero()
	return readMessage(b, rv.Elem())
}

func appendMessage(b []byte, v reflect.Value) ([]byte, error) {
	if v.CanAddr() && v.Addr().Type().Implements(protoValueType) {
		return v.Addr().Interface().(protoValue).appendProto(b), nil
	}
	m, err := messageOf(v.Type())
	if err != nil {
		return nil, err
	}
	for i := range m.fields {
		f := &m.fields[i]
		if b, err = appendField(b, f, v.Field(f.index), false); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendField writes one field. always is set for list and map elements,
// which are written even when zero.
func appendField(b []byte, f *field, v reflect.Value, always bool) ([]byte, error) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return b, nil
		}
		return appendField(b, f, v.Elem(), true)
	case reflect.Struct:
		return appendNested(b, f.num, v, always)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			// A nil value is left out even in a map entry, as Kubernetes
			// does (reading gives nil back).
			if v.IsNil() || (v.Len() == 0 && !always) {
				return b, nil
			}
			b = protowire.AppendTag(b, f.num, protowire.BytesType)
			return protowire.AppendBytes(b, v.Bytes()), nil
		}
		var err error
		for i := range v.Len() {
			if b, err = appendField(b, f, v.Index(i), true); err != nil {
				return nil, err
			}
		}
		return b, nil
	case reflect.Map:
		return appendMap(b, f, v)
	}
	if !always && v.IsZero() {
		return b, nil
	}
	return appendScalar(b, f, v)
}

// appendNested writes a message field; an empty message is left out
// unless always is set (a set pointer or a list element).
func appendNested(b []byte, num protowire.Number, v reflect.Value, always bool) ([]byte, error) {
	if !v.CanAddr() {
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		v = c
	}
	body, err := appendMessage(nil, v)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 && !always {
		return b, nil
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, body), nil
}

func appendMap(b []byte, f *field, v reflect.Value) ([]byte, error) {
	if v.Type().Key().Kind() != reflect.String {
		return nil, fmt.Errorf("kube: %s: map keys must be strings", f.name)
	}
	keys := v.MapKeys()
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	keyField := &field{name: f.name + "[key]", num: 1}
	valField := &field{name: f.name + "[value]", num: 2}
	for _, k := range keys {
		entry, err := appendField(nil, keyField, k, true)
		if err != nil {
			return nil, err
		}
		if entry, err = appendField(entry, valField, v.MapIndex(k), true); err != nil {
			return nil, err
		}
		b = protowire.AppendTag(b, f.num, protowire.BytesType)
		b = protowire.AppendBytes(b, entry)
	}
	return b, nil
}

// isVarint reports whether values of type t travel as varints (and so may
// arrive packed when repeated).
func isVarint(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

func appendScalar(b []byte, f *field, v reflect.Value) ([]byte, error) {
	switch v.Kind() {
	case reflect.String:
		b = protowire.AppendTag(b, f.num, protowire.BytesType)
		return protowire.AppendString(b, v.String()), nil
	case reflect.Bool:
		b = protowire.AppendTag(b, f.num, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeBool(v.Bool())), nil
	case reflect.Int, reflect.Int32, reflect.Int64:
		b = protowire.AppendTag(b, f.num, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(v.Int())), nil
	case reflect.Uint32, reflect.Uint64:
		b = protowire.AppendTag(b, f.num, protowire.VarintType)
		return protowire.AppendVarint(b, v.Uint()), nil
	case reflect.Float64:
		b = protowire.AppendTag(b, f.num, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(v.Float())), nil
	}
	return nil, fmt.Errorf("kube: %s: cannot encode a %s", f.name, v.Type())
}

func readMessage(b []byte, v reflect.Value) error {
	if v.Addr().Type().Implements(protoValueType) {
		return v.Addr().Interface().(protoValue).readProto(b)
	}
	m, err := messageOf(v.Type())
	if err != nil {
		return err
	}
	return readFields(b, v.Type().Name(), func(num protowire.Number, typ protowire.Type, b []byte) (int, bool, error) {
		f := m.byNum[num]
		if f == nil {
			return 0, false, nil
		}
		n, err := readField(b, typ, f, v.Field(f.index))
		return n, true, err
	})
}

// readFields walks a message body. read gets each field's number, wire
// type and the bytes from its value on; it returns how many it used, or
// known=false for a field to skip.
func readFields(b []byte, what string, read func(num protowire.Number, typ protowire.Type, b []byte) (n int, known bool, err error)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("kube: %s: %w", what, protowire.ParseError(n))
		}
		b = b[n:]
		n, known, err := read(num, typ, b)
		if err != nil {
			return err
		}
		if !known {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return fmt.Errorf("kube: %s field %d: %w", what, num, protowire.ParseError(n))
			}
		}
		b = b[n:]
	}
	return nil
}

var errWireType = errors.New("unexpected wire type")

// consumeBytes reads a length-delimited value of field f from the start of
// b: its content and how many bytes it used.
func consumeBytes(b []byte, typ protowire.Type, f *field) ([]byte, int, error) {
	if typ != protowire.BytesType {
		return nil, 0, fmt.Errorf("kube: %s: %w", f.name, errWireType)
	}
	body, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, 0, fmt.Errorf("kube: %s: %w", f.name, protowire.ParseError(n))
	}
	return body, n, nil
}

// readField reads one occurrence of f (of wire type typ) from the start of
// b into v and returns how many bytes it used.
func readField(b []byte, typ protowire.Type, f *field, v reflect.Value) (int, error) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return readField(b, typ, f, v.Elem())
	case reflect.Struct:
		body, n, err := consumeBytes(b, typ, f)
		if err != nil {
			return 0, err
		}
		return n, readMessage(body, v)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			body, n, err := consumeBytes(b, typ, f)
			if err != nil {
				return 0, err
			}
			v.SetBytes(append([]byte{}, body...))
			return n, nil
		}
		elem := v.Type().Elem()
		if typ == protowire.BytesType && isVarint(elem) {
			return readPacked(b, f, v)
		}
		e := reflect.New(elem).Elem()
		n, err := readField(b, typ, f, e)
		if err != nil {
			return 0, err
		}
		v.Set(reflect.Append(v, e))
		return n, nil
	case reflect.Map:
		return readMapEntry(b, typ, f, v)
	}
	return readScalar(b, typ, f, v)
}

func readPacked(b []byte, f *field, v reflect.Value) (int, error) {
	body, n, err := consumeBytes(b, protowire.BytesType, f)
	if err != nil {
		return 0, err
	}
	for len(body) > 0 {
		e := reflect.New(v.Type().Elem()).Elem()
		used, err := readScalar(body, protowire.VarintType, f, e)
		if err != nil {
			return 0, err
		}
		v.Set(reflect.Append(v, e))
		body = body[used:]
	}
	return n, nil
}

func readMapEntry(b []byte, typ protowire.Type, f *field, v reflect.Value) (int, error) {
	entry, n, err := consumeBytes(b, typ, f)
	if err != nil {
		return 0, err
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	key := reflect.New(v.Type().Key()).Elem()
	val := reflect.New(v.Type().Elem()).Elem()
	keyField := &field{name: f.name + "[key]", num: 1}
	valField := &field{name: f.name + "[value]", num: 2}
	err = readFields(entry, f.name, func(num protowire.Number, typ protowire.Type, b []byte) (int, bool, error) {
		switch num {
		case 1:
			n, err := readField(b, typ, keyField, key)
			return n, true, err
		case 2:
			n, err := readField(b, typ, valField, val)
			return n, true, err
		}
		return 0, false, nil
	})
	if err != nil {
		return 0, err
	}
	v.SetMapIndex(key, val)
	return n, nil
}

func readScalar(b []byte, typ protowire.Type, f *field, v reflect.Value) (int, error) {
	fail := func(err error) (int, error) { return 0, fmt.Errorf("kube: %s: %w", f.name, err) }
	switch v.Kind() {
	case reflect.String:
		body, n, err := consumeBytes(b, typ, f)
		if err != nil {
			return 0, err
		}
		v.SetString(string(body))
		return n, nil
	case reflect.Bool, reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Uint64:
		if typ != protowire.VarintType {
			return fail(errWireType)
		}
		x, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return fail(protowire.ParseError(n))
		}
		switch v.Kind() {
		case reflect.Bool:
			v.SetBool(protowire.DecodeBool(x))
		case reflect.Int32:
			v.SetInt(int64(int32(x)))
		case reflect.Uint32:
			v.SetUint(uint64(uint32(x)))
		case reflect.Uint64:
			v.SetUint(x)
		default:
			v.SetInt(int64(x))
		}
		return n, nil
	case reflect.Float64:
		if typ != protowire.Fixed64Type {
			return fail(errWireType)
		}
		x, n := protowire.ConsumeFixed64(b)
		if n < 0 {
			return fail(protowire.ParseError(n))
		}
		v.SetFloat(math.Float64frombits(x))
		return n, nil
	}
	return fail(fmt.Errorf("cannot decode into a %s", v.Type()))
}

// appendShape and readShape give a hand-written type the message layout
// of shape, a pointer to a struct of tagged scalars.
func appendShape(b []byte, shape any) []byte {
	out, err := appendMessage(b, reflect.ValueOf(shape).Elem())
	if err != nil {
		panic(err) // shapes are fixed structs of scalars
	}
	return out
}

func readShape(b []byte, shape any) error { return readMessage(b, reflect.ValueOf(shape).Elem()) }

// Equal reports whether a and b, pointers to mirror structs, encode to the
// same bytes: the same content, with times compared as instants and nil
// and empty lists alike. The edge uses it to tell whether a status
// changed.
func Equal(a, b any) bool {
	ab, aerr := marshal(a)
	bb, berr := marshal(b)
	return aerr == nil && berr == nil && string(ab) == string(bb)
}

// DeepCopy returns a copy of v that shares no slices, maps or pointers
// with it.
func DeepCopy[T any](v T) T {
	out := reflect.New(reflect.TypeFor[T]()).Elem()
	deepCopy(out, reflect.ValueOf(&v).Elem())
	return out.Interface().(T)
}

func deepCopy(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		dst.Set(reflect.New(src.Type().Elem()))
		deepCopy(dst.Elem(), src.Elem())
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		dst.Set(reflect.MakeSlice(src.Type(), src.Len(), src.Len()))
		for i := range src.Len() {
			deepCopy(dst.Index(i), src.Index(i))
		}
	case reflect.Map:
		if src.IsNil() {
			return
		}
		dst.Set(reflect.MakeMapWithSize(src.Type(), src.Len()))
		for it := src.MapRange(); it.Next(); {
			v := reflect.New(src.Type().Elem()).Elem()
			deepCopy(v, it.Value())
			dst.SetMapIndex(it.Key(), v)
		}
	case reflect.Struct:
		// Copy the whole value first (unexported fields, such as a
		// time.Time's, are immutable values), then replace what it shares.
		dst.Set(src)
		for i := range src.NumField() {
			if src.Type().Field(i).IsExported() {
				deepCopy(dst.Field(i), src.Field(i))
			}
		}
	default:
		dst.Set(src)
	}
}
