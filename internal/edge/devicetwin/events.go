package devicetwin

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
	"github.com/verge-edge/verge/internal/protocol/wire"
	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper/value"
)

// Events receives what changed on the node's devices, after it is
// durable (the MQTT bus publishes it). Implementations must not block.
type Events interface {
	// TwinChanged: properties of a device changed (a reading, or the
	// desired value in force). Before holds their previous views (absent
	// when new).
	TwinChanged(c TwinChange)
	// StateChanged: the mapper reported a new device state.
	StateChanged(namespace, name, state string, lastOnline time.Time)
	// MembershipChanged: devices were bound to or removed from the node.
	MembershipChanged(added, removed []DeviceInfo)
}

// TwinChange is one device's changed properties.
type TwinChange struct {
	Namespace, Name string
	// EventID is the MQTT request that made the change ("" when a mapper
	// reported over DMI).
	EventID       string
	Before, After map[string]TwinView
	// All is the device's whole twin after the change.
	All map[string]TwinView
}

// TwinView is one property as apps see it (KubeEdge's twin: expected is
// the desired value in force, actual the last reading).
type TwinView struct {
	Expected, Actual     *string
	ExpectedAt, ActualAt int64 // Unix ms
	Type                 string
}

// DeviceInfo names a device for membership messages.
type DeviceInfo struct {
	Namespace, Name, Description, State string
	LastOnline                          time.Time
	Twin                                map[string]TwinView
}

func info(d *wire.Device, t *Twin) DeviceInfo {
	i := DeviceInfo{Namespace: d.Namespace, Name: d.Name, Description: d.Annotations["description"], State: t.State, Twin: views(d, t)}
	if i.Description == "" {
		i.Description = d.Labels["description"]
	}
	if t.LastOnline > 0 {
		i.LastOnline = time.UnixMilli(t.LastOnline)
	}
	return i
}

// views is every property of d as apps see it.
func views(d *wire.Device, t *Twin) map[string]TwinView {
	eff := t.WithDesired(d)
	out := map[string]TwinView{}
	for _, p := range eff.Spec.Properties {
		v := TwinView{}
		if p.Desired != nil && p.Desired.Value != "" {
			e := p.Desired.Value
			v.Expected = &e
		}
		if r, ok := t.Readings[p.Name]; ok {
			a := r.Value
			v.Actual, v.ActualAt, v.Type = &a, r.Timestamp, r.Type
		}
		out[p.Name] = v
	}
	return out
}

// Devices lists the node's devices (MQTT membership/get).
func (s *Service) Devices() []DeviceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]DeviceInfo, 0, len(s.devices))
	for _, d := range s.devices {
		out = append(out, info(d.obj, d.twin))
	}
	sort.Slice(out, func(i, j int) bool {
		return nsName(out[i].Namespace, out[i].Name) < nsName(out[j].Namespace, out[j].Name)
	})
	return out
}

// ErrNoDevice is returned for a device the node does not hold.
var ErrNoDevice = errors.New("no such device on this node")

// UserError is a request an app or mapper can fix; its message says how.
type UserError struct{ Msg string }

func (e *UserError) Error() string { return e.Msg }

// DeviceTwin returns a device's twin as apps see it (MQTT twin/get).
func (s *Service) DeviceTwin(namespace, name string) (map[string]TwinView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[nsName(namespace, name)]
	if d == nil {
		return nil, fmt.Errorf("device %s/%s: %w", namespace, name, ErrNoDevice)
	}
	return views(d.obj, d.twin), nil
}

// TwinUpdate is one property of an MQTT twin/update: Expected sets the
// desired value on the node (an app), Actual reports a reading (a mapper
// that speaks MQTT instead of DMI).
type TwinUpdate struct {
	Expected, Actual *string
	// Timestamp of the reading, Unix ms (0: now).
	Timestamp int64
	Type      string
}

// UpdateTwin applies an MQTT twin/update to a device and returns once it
// is durable. Desired values must name a ReadWrite property of the
// device's model and fit its type and range; a refused update changes
// nothing.
func (s *Service) UpdateTwin(namespace, name, eventID string, upd map[string]TwinUpdate) (map[string]TwinView, error) {
	key := nsName(namespace, name)
	now := s.cfg.Now()
	s.mu.Lock()
	d := s.devices[key]
	if d == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("device %s: %w", key, ErrNoDevice)
	}
	model := s.models[nsName(namespace, d.obj.Spec.DeviceModelRef.Name)]
	props := make([]string, 0, len(upd))
	for p := range upd {
		props = append(props, p)
	}
	sort.Strings(props)
	for _, p := range props {
		if err := checkTwinUpdate(d.obj, model, p, upd[p]); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	before := views(d.obj, d.twin)
	var readings []*dmi.Twin
	desiredChanged := false
	for _, p := range props {
		u := upd[p]
		if u.Expected != nil {
			d.twin.SetDesired(p, *u.Expected, cloudDesired(d.obj, p))
			desiredChanged = true
		}
		if u.Actual != nil {
			ts := u.Timestamp
			if ts <= 0 {
				ts = now.UnixMilli()
			}
			readings = append(readings, &dmi.Twin{PropertyName: p, Reported: &dmi.TwinProperty{Value: *u.Actual,
				Metadata: map[string]string{"timestamp": strconv.FormatInt(ts, 10), "type": u.Type}}})
		}
	}
	d.twin.ApplyReadings(readings, now)
	d.dirty = true
	s.queueTwinEventLocked(d, eventID, before, props)
	if desiredChanged {
		s.wakeRunnersLocked()
	}
	wait := s.waitFlushLocked()
	s.mu.Unlock()
	if err := <-wait; err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.devices[key]; d != nil {
		all := views(d.obj, d.twin)
		out := map[string]TwinView{}
		for _, p := range props {
			out[p] = all[p]
		}
		return out, nil
	}
	return nil, fmt.Errorf("device %s: %w", key, ErrNoDevice)
}

func checkTwinUpdate(d *wire.Device, m *wire.DeviceModel, prop string, u TwinUpdate) error {
	if d.Spec.Property(prop) == nil {
		return &UserError{fmt.Sprintf("device %s/%s has no property %q", d.Namespace, d.Name, prop)}
	}
	if u.Expected == nil {
		return nil
	}
	if m == nil {
		return &UserError{fmt.Sprintf("the DeviceModel of %s/%s has not reached this node; desired values cannot be checked yet", d.Namespace, d.Name)}
	}
	mp := m.Spec.Property(prop)
	if mp == nil || mp.AccessMode != devicespec.ReadWrite {
		return &UserError{fmt.Sprintf("property %s of %s/%s is not ReadWrite in DeviceModel %s: it has no desired value", prop, d.Namespace, d.Name, m.Name)}
	}
	t, err := value.ParseType(string(mp.Type))
	if err != nil {
		return &UserError{err.Error()}
	}
	v, err := value.Parse(t, *u.Expected)
	if err != nil {
		return &UserError{fmt.Sprintf("property %s: expected value %q: %v", prop, *u.Expected, err)}
	}
	limits, err := value.ParseLimits(t, mp.Minimum, mp.Maximum)
	if err != nil {
		return &UserError{err.Error()}
	}
	if err := limits.Check(v); err != nil {
		return &UserError{fmt.Sprintf("property %s: expected value %q: %v", prop, *u.Expected, err)}
	}
	return nil
}

// UpdateState applies an MQTT state/update (a mapper speaking MQTT).
func (s *Service) UpdateState(namespace, name, state string) error {
	return s.reportState(namespace, name, state, "")
}

// queueTwinEventLocked queues a TwinChanged event for props of d,
// published after the next flush.
func (s *Service) queueTwinEventLocked(d *device, eventID string, before map[string]TwinView, props []string) {
	if s.cfg.Events == nil || len(props) == 0 {
		return
	}
	all := views(d.obj, d.twin)
	c := TwinChange{Namespace: d.obj.Namespace, Name: d.obj.Name, EventID: eventID, Before: map[string]TwinView{}, After: map[string]TwinView{}, All: all}
	for _, p := range props {
		if v, ok := before[p]; ok {
			c.Before[p] = v
		}
		c.After[p] = all[p]
	}
	s.events = append(s.events, func(e Events) { e.TwinChanged(c) })
}
