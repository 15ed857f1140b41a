package devicetwin

import (
	"sort"
	"strconv"
	"time"

	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
	"github.com/verge-edge/verge/internal/protocol/wire"
	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
)

// Twin is the node's durable record of one device: the last reading of
// each property, the device's state, and desired values set on the node.
// Its methods are pure; the Service persists it (store state) before
// anything built from it leaves the node.
type Twin struct {
	Readings map[string]Reading `json:"readings,omitempty"`
	State    string             `json:"state,omitempty"`
	Reason   string             `json:"reason,omitempty"`
	// LastOnline is when the device last answered (a reading, or state ok
	// or online), Unix milliseconds.
	LastOnline int64 `json:"lastOnline,omitempty"`
	// Desired holds desired values set on the node (MQTT twin/update
	// "expected"), by property, until the Device shows them or the cloud
	// changes the property's desired value itself.
	Desired map[string]EdgeDesired `json:"desired,omitempty"`
}

// Reading is one property's last reported value.
type Reading struct {
	Value string `json:"value"`
	// Timestamp is when the mapper read it, Unix milliseconds.
	Timestamp int64  `json:"ts"`
	Type      string `json:"type,omitempty"`
	// ObservedDesired is the desired value the mapper applied when it read
	// the value ("" when it had none).
	ObservedDesired string `json:"observedDesired,omitempty"`
}

// EdgeDesired is a desired value set on the node. Base is the Device's
// desired value at the time: while the Device still says Base, Value is in
// force; once the Device says anything else (Value itself, after the cloud
// took it, or a newer edit) the Device wins and the entry is dropped.
type EdgeDesired struct {
	Value string `json:"value"`
	Base  string `json:"base"`
}

// ApplyReadings merges a mapper's twins into t: per property, a reading
// replaces the stored one unless it is older (the mapper's timestamp);
// a reading without a timestamp gets now. It returns the properties whose
// value or observed desired value changed.
func (t *Twin) ApplyReadings(twins []*dmi.Twin, now time.Time) []string {
	if t.Readings == nil {
		t.Readings = map[string]Reading{}
	}
	var changed []string
	for _, tw := range twins {
		name := tw.GetPropertyName()
		if name == "" || tw.GetReported() == nil {
			continue
		}
		ts, err := strconv.ParseInt(tw.GetReported().GetMetadata()["timestamp"], 10, 64)
		if err != nil || ts <= 0 {
			ts = now.UnixMilli()
		}
		r := Reading{Value: tw.GetReported().GetValue(), Timestamp: ts, Type: tw.GetReported().GetMetadata()["type"], ObservedDesired: tw.GetObservedDesired().GetValue()}
		old, had := t.Readings[name]
		if had && old.Timestamp > r.Timestamp {
			continue // an older reading overtaken by a newer one
		}
		t.Readings[name] = r
		if !had || old.Value != r.Value || old.ObservedDesired != r.ObservedDesired {
			changed = append(changed, name)
		}
		t.LastOnline = max(t.LastOnline, ts)
	}
	return changed
}

// ApplyState records the device state a mapper reported; it reports
// whether anything changed.
func (t *Twin) ApplyState(state, reason string, now time.Time) bool {
	changed := t.State != state || t.Reason != reason
	t.State, t.Reason = state, reason
	if state == devicespec.DeviceStateOK || state == devicespec.DeviceStateOnline {
		t.LastOnline = max(t.LastOnline, now.UnixMilli())
	}
	return changed
}

// Prune drops readings and desired values of properties the Device no
// longer has; it reports whether it dropped any.
func (t *Twin) Prune(d *wire.Device) bool {
	dropped := false
	for name := range t.Readings {
		if d.Spec.Property(name) == nil {
			delete(t.Readings, name)
			dropped = true
		}
	}
	for name := range t.Desired {
		if d.Spec.Property(name) == nil {
			delete(t.Desired, name)
			dropped = true
		}
	}
	return dropped
}

// SetDesired records a desired value set on the node for property; base
// is the Device's current desired value of it.
func (t *Twin) SetDesired(property, value, base string) {
	if t.Desired == nil {
		t.Desired = map[string]EdgeDesired{}
	}
	if cur, ok := t.Desired[property]; ok {
		base = cur.Base // still relative to what the cloud said
	}
	if value == base {
		delete(t.Desired, property)
		return
	}
	t.Desired[property] = EdgeDesired{Value: value, Base: base}
}

// cloudDesired is a property's desired value in the Device ("" if none).
func cloudDesired(d *wire.Device, property string) string {
	if p := d.Spec.Property(property); p != nil && p.Desired != nil {
		return p.Desired.Value
	}
	return ""
}

// Reconcile drops desired values set on the node that the Device has
// overtaken (it shows them, or a different value than their base); it
// reports whether it dropped any.
func (t *Twin) Reconcile(d *wire.Device) bool {
	dropped := false
	for name, ed := range t.Desired {
		if cloudDesired(d, name) != ed.Base {
			delete(t.Desired, name)
			dropped = true
		}
	}
	return dropped
}

// WithDesired returns d with the desired values in force: the Device's,
// replaced by the node's own where those still apply. d is not changed.
func (t *Twin) WithDesired(d *wire.Device) *wire.Device {
	if len(t.Desired) == 0 {
		return d
	}
	out := *d // metadata shared: nothing here changes it
	out.Spec = *d.Spec.DeepCopy()
	for i := range out.Spec.Properties {
		p := &out.Spec.Properties[i]
		ed, ok := t.Desired[p.Name]
		if !ok || cloudDesired(d, p.Name) != ed.Base {
			continue
		}
		if p.Desired == nil {
			p.Desired = &devicespec.TwinProperty{}
		}
		p.Desired.Value = ed.Value
	}
	return &out
}

// Report builds the device's report for the cloud: every reading of a
// property the Device has (sorted by name), state, last-online time,
// mapper binding and pending desired values. Pure.
func (t *Twin) Report(d *wire.Device, m wire.DeviceMapper) *wire.DeviceReport {
	r := &wire.DeviceReport{
		Namespace: d.Namespace, Name: d.Name, UID: string(d.UID), Generation: d.Generation,
		State: t.State, Reason: t.Reason, Mapper: m,
	}
	if !m.Available && r.State == "" {
		r.State = devicespec.DeviceStateUnknown
	}
	if t.LastOnline > 0 {
		r.LastOnlineTime = devicespec.FormatLastOnlineTime(time.UnixMilli(t.LastOnline))
	}
	names := make([]string, 0, len(t.Readings))
	for name := range t.Readings {
		if d.Spec.Property(name) != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		rd := t.Readings[name]
		meta := map[string]string{"timestamp": strconv.FormatInt(rd.Timestamp, 10)}
		if rd.Type != "" {
			meta["type"] = rd.Type
		}
		r.Twins = append(r.Twins, devicespec.Twin{
			PropertyName:    name,
			Reported:        devicespec.TwinProperty{Value: rd.Value, Metadata: meta},
			ObservedDesired: devicespec.TwinProperty{Value: rd.ObservedDesired},
		})
	}
	props := make([]string, 0, len(t.Desired))
	for name := range t.Desired {
		props = append(props, name)
	}
	sort.Strings(props)
	for _, name := range props {
		ed := t.Desired[name]
		r.DesiredUpdates = append(r.DesiredUpdates, wire.DesiredUpdate{Property: name, Value: ed.Value, Base: ed.Base})
	}
	return r
}
