package v1beta1

import (
	"fmt"
	"math"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// NewCustomizedValue encodes a configuration map the way upstream edges do:
// strings, integers, floats and booleans as the google.protobuf wrapper
// types, so upstream mappers can read it. Nested maps and lists, which
// upstream cannot carry, become google.protobuf.Value.
func NewCustomizedValue(m map[string]any) (*CustomizedValue, error) {
	if m == nil {
		return nil, nil
	}
	data, err := anyMap(m)
	if err != nil {
		return nil, err
	}
	return &CustomizedValue{Data: data}, nil
}

// Map decodes a CustomizedValue into plain Go values: string, int64, uint64,
// float64, bool, []byte, and for google.protobuf.Value the usual
// map[string]any / []any forms. A nil value decodes to an empty map.
func (x *CustomizedValue) Map() (map[string]any, error) {
	return plainMap(x.GetData())
}

// NewAnomalyDetection encodes an anomaly-detection configuration map.
func NewAnomalyDetection(m map[string]any) (*AnomalyDetection, error) {
	data, err := anyMap(m)
	if err != nil {
		return nil, err
	}
	return &AnomalyDetection{Data: data}, nil
}

// Map decodes an AnomalyDetection configuration like CustomizedValue.Map.
func (x *AnomalyDetection) Map() (map[string]any, error) {
	return plainMap(x.GetData())
}

func anyMap(m map[string]any) (map[string]*anypb.Any, error) {
	out := make(map[string]*anypb.Any, len(m))
	for _, k := range sortedKeys(m) {
		msg, err := wrap(m[k])
		if err != nil {
			return nil, fmt.Errorf("config key %q: %w", k, err)
		}
		a, err := anypb.New(msg)
		if err != nil {
			return nil, fmt.Errorf("config key %q: %w", k, err)
		}
		out[k] = a
	}
	return out, nil
}

func plainMap(data map[string]*anypb.Any) (map[string]any, error) {
	out := make(map[string]any, len(data))
	for k, a := range data {
		v, err := unwrap(a)
		if err != nil {
			return nil, fmt.Errorf("config key %q: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func wrap(v any) (proto.Message, error) {
	switch t := v.(type) {
	case string:
		return wrapperspb.String(t), nil
	case bool:
		return wrapperspb.Bool(t), nil
	case int:
		return wrapInt(int64(t)), nil
	case int8:
		return wrapInt(int64(t)), nil
	case int16:
		return wrapInt(int64(t)), nil
	case int32:
		return wrapperspb.Int32(t), nil
	case int64:
		return wrapInt(t), nil
	case uint8:
		return wrapInt(int64(t)), nil
	case uint16:
		return wrapInt(int64(t)), nil
	case uint32:
		return wrapInt(int64(t)), nil
	case uint:
		return wrapperspb.UInt64(uint64(t)), nil
	case uint64:
		return wrapperspb.UInt64(t), nil
	case float32:
		return wrapperspb.Float(t), nil
	case float64:
		return wrapperspb.Double(t), nil
	case []byte:
		return wrapperspb.Bytes(t), nil
	case map[string]any, []any, nil:
		sv, err := structpb.NewValue(t)
		if err != nil {
			return nil, err
		}
		return sv, nil
	}
	return nil, fmt.Errorf("cannot encode a %T: use a string, number, boolean, map[string]any or []any", v)
}

func wrapInt(i int64) proto.Message {
	if i >= math.MinInt32 && i <= math.MaxInt32 {
		return wrapperspb.Int32(int32(i))
	}
	return wrapperspb.Int64(i)
}

func unwrap(a *anypb.Any) (any, error) {
	if a == nil {
		return nil, nil
	}
	msg, err := a.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("cannot decode %s: %w", a.GetTypeUrl(), err)
	}
	switch t := msg.(type) {
	case *wrapperspb.StringValue:
		return t.GetValue(), nil
	case *wrapperspb.BoolValue:
		return t.GetValue(), nil
	case *wrapperspb.Int32Value:
		return int64(t.GetValue()), nil
	case *wrapperspb.Int64Value:
		return t.GetValue(), nil
	case *wrapperspb.UInt32Value:
		return uint64(t.GetValue()), nil
	case *wrapperspb.UInt64Value:
		return t.GetValue(), nil
	case *wrapperspb.FloatValue:
		return float64(t.GetValue()), nil
	case *wrapperspb.DoubleValue:
		return t.GetValue(), nil
	case *wrapperspb.BytesValue:
		return t.GetValue(), nil
	case *structpb.Value:
		return t.AsInterface(), nil
	case *structpb.Struct:
		return t.AsMap(), nil
	case *structpb.ListValue:
		return t.AsSlice(), nil
	}
	return nil, fmt.Errorf("unsupported value type %s: send a google.protobuf wrapper type or google.protobuf.Value", a.GetTypeUrl())
}
