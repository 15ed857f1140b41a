package mapper

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/verge-edge/verge/pkg/mapper/value"
)

// Driver speaks one device protocol. It is the only thing a protocol author
// writes; the SDK does registration, sampling, sinks, desired values and the
// REST API.
type Driver interface {
	// Connect validates a device's protocol and visitor configuration and
	// returns a connection to it. Bad configuration is a *ConfigError (the
	// device becomes unhealthy with that reason and is not retried until
	// its spec changes); any other error is retried with backoff.
	//
	// The SDK calls Connect again, and closes the old Conn afterwards, when
	// the device's protocol config or properties change; a driver that
	// shares a transport between Conns (one TCP connection per slave, one
	// serial port) keeps it open across that hand-over.
	Connect(ctx context.Context, dev *DeviceConfig) (Conn, error)
}

// Conn is a driver's handle on one device. The SDK calls it from several
// goroutines at once; a driver serializes what its transport needs.
type Conn interface {
	// Read returns the property's current value: any Go number, bool,
	// string or []byte that converts to the property's type (see
	// package value).
	Read(ctx context.Context, p *PropertyConfig) (any, error)
	// Write sets a property. v is already converted to the property's
	// type (int64, float64, bool, string or []byte) and within the
	// model's minimum and maximum.
	Write(ctx context.Context, p *PropertyConfig, v any) error
	// Health reports nil when the device is reachable. It should be cheap:
	// the SDK calls it every few seconds.
	Health(ctx context.Context) error
	// Close releases the device.
	Close() error
}

// DeviceConfig is one device as a driver sees it: the Device merged with
// its DeviceModel.
type DeviceConfig struct {
	Namespace, Name string
	// Model is the DeviceModel name.
	Model string
	// Protocol is spec.protocol.protocolName.
	Protocol string
	// ProtocolConfig is spec.protocol.configData.
	ProtocolConfig ConfigData
	Properties     []PropertyConfig
}

// Property returns the named property, or nil.
func (d *DeviceConfig) Property(name string) *PropertyConfig {
	for i := range d.Properties {
		if d.Properties[i].Name == name {
			return &d.Properties[i]
		}
	}
	return nil
}

// AccessMode says whether a property may be written.
type AccessMode string

// Access modes of a model property.
const (
	ReadOnly  AccessMode = "ReadOnly"
	ReadWrite AccessMode = "ReadWrite"
)

// PropertyConfig is one property: its model definition and where it lives
// on the device.
type PropertyConfig struct {
	Name       string
	Type       value.Type
	AccessMode AccessMode
	Unit       string
	Limits     value.Limits
	// Visitor is the property's visitors.configData, without the keys the
	// SDK itself reads (deadband).
	Visitor ConfigData
}

// ConfigError is configuration a driver (or the SDK) cannot use. Its
// message is shown to people as the reason a device is unhealthy, so it
// names the property and the field and says what would be accepted.
type ConfigError struct {
	// Property is empty for device-level (protocol) configuration.
	Property string
	Msg      string
}

func (e *ConfigError) Error() string {
	if e.Property == "" {
		return e.Msg
	}
	return fmt.Sprintf("property %s: %s", e.Property, e.Msg)
}

// ConfigErrorf builds a *ConfigError.
func ConfigErrorf(property, format string, a ...any) error {
	return &ConfigError{Property: property, Msg: fmt.Sprintf(format, a...)}
}

// IsConfigError reports whether err is (or wraps) a *ConfigError.
func IsConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

// ErrNotWritable is returned (wrapped) by a driver whose property cannot be
// written on the device even though the model allows it, e.g. an input
// register. The REST API answers 409.
var ErrNotWritable = errors.New("the property cannot be written on this device")

// ConfigData is free-form configuration (protocol configData or a
// visitor's configData). Upstream manifests write numbers sometimes as numbers and
// sometimes as strings ("5502"); the typed getters accept both and their
// errors name the key.
type ConfigData map[string]any

// Keys returns the keys in sorted order.
func (c ConfigData) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// String returns a string value; numbers and booleans are formatted.
func (c ConfigData) String(key string) (string, bool, error) {
	v, ok := c[key]
	v = normalize(v)
	if !ok || v == nil {
		return "", false, nil
	}
	switch t := v.(type) {
	case string:
		return t, true, nil
	case bool:
		return strconv.FormatBool(t), true, nil
	case int64:
		return strconv.FormatInt(t, 10), true, nil
	case uint64:
		return strconv.FormatUint(t, 10), true, nil
	case float64:
		return strconv.FormatFloat(t, 'g', -1, 64), true, nil
	}
	return "", true, fmt.Errorf("%s must be a string, not %T", key, v)
}

// Int returns an integer value from an integer, an integral float or a
// decimal string.
func (c ConfigData) Int(key string) (int64, bool, error) {
	v, ok := c[key]
	v = normalize(v)
	if !ok || v == nil {
		return 0, false, nil
	}
	switch t := v.(type) {
	case int64:
		return t, true, nil
	case uint64:
		if t <= math.MaxInt64 {
			return int64(t), true, nil
		}
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return int64(t), true, nil
		}
	case string:
		if i, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64); err == nil {
			return i, true, nil
		}
	}
	return 0, true, fmt.Errorf("%s must be an integer, not %v", key, v)
}

// Float returns a number from a number or a decimal string.
func (c ConfigData) Float(key string) (float64, bool, error) {
	v, ok := c[key]
	v = normalize(v)
	if !ok || v == nil {
		return 0, false, nil
	}
	switch t := v.(type) {
	case float64:
		return t, true, nil
	case int64:
		return float64(t), true, nil
	case uint64:
		return float64(t), true, nil
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(t), 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, true, nil
		}
	}
	return 0, true, fmt.Errorf("%s must be a number, not %v", key, v)
}

// Bool returns a boolean from a boolean or a string (true/false, 1/0,
// yes/no, on/off).
func (c ConfigData) Bool(key string) (bool, bool, error) {
	v, ok := c[key]
	v = normalize(v)
	if !ok || v == nil {
		return false, false, nil
	}
	switch t := v.(type) {
	case bool:
		return t, true, nil
	case string:
		if b, err := value.Parse(value.Boolean, t); err == nil {
			return b.(bool), true, nil
		}
	case int64:
		if t == 0 || t == 1 {
			return t == 1, true, nil
		}
	}
	return false, true, fmt.Errorf("%s must be true or false, not %v", key, v)
}

// ErrValueOutOfRange is returned (wrapped) by a driver when a value that
// passed the model's bounds still does not fit the device's encoding (e.g.
// 70000 into a 16-bit register). The REST API answers 400.
var ErrValueOutOfRange = errors.New("the value does not fit the device's encoding")

// normalize maps Go's integer and float kinds onto int64, uint64 and
// float64, the forms decoded configData takes.
func normalize(v any) any {
	switch t := v.(type) {
	case int:
		return int64(t)
	case int8:
		return int64(t)
	case int16:
		return int64(t)
	case int32:
		return int64(t)
	case uint:
		return uint64(t)
	case uint8:
		return uint64(t)
	case uint16:
		return uint64(t)
	case uint32:
		return uint64(t)
	case float32:
		return float64(t)
	}
	return v
}
