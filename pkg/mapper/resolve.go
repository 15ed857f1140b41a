package mapper

import (
	"fmt"
	"reflect"
	"time"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper/value"
)

// deviceSpec is a Device merged with its model and checked: everything the
// runtime needs, computed once per spec change. It is immutable.
type deviceSpec struct {
	key    string
	raw    *dmi.Device
	cfg    DeviceConfig
	props  []*propSpec // device order
	byName map[string]*propSpec
	// methods maps a method name to the properties it may write.
	methods     map[string]*dmi.DeviceMethod
	stateReport bool
	stateCycle  time.Duration
	// err is why the device cannot be served (a *ConfigError), or a
	// missing model (waiting is true).
	err     error
	waiting bool
}

type propSpec struct {
	cfg           *PropertyConfig
	collectCycle  time.Duration
	reportToCloud bool
	push          []PushTarget
	desired       string
	hasDesired    bool
	deadband      float64
	// notes are warnings shown in status (e.g. a cycle read as ns).
	notes []string
}

func deviceKey(namespace, name string) string { return namespace + "/" + name }

// nsCycleThreshold: upstream's older mappers wrote cycles in nanoseconds
// ("10000000000" for 10 s) while the framework reads milliseconds. A value
// this large in milliseconds would be more than a day; read it as ns.
const nsCycleThreshold = 100_000_000

func cycle(v int64, def time.Duration) (time.Duration, string) {
	switch {
	case v <= 0:
		return def, ""
	case v >= nsCycleThreshold:
		return time.Duration(v), fmt.Sprintf("cycle %d is read as nanoseconds (%v); write cycles in milliseconds", v, time.Duration(v))
	}
	return time.Duration(v) * time.Millisecond, ""
}

// resolve merges a device with its model (nil when not known yet). It
// never fails: problems land in spec.err so the device shows them.
func resolve(d *dmi.Device, model *dmi.DeviceModel, cfg Config) *deviceSpec {
	s := &deviceSpec{
		key:     deviceKey(d.GetNamespace(), d.GetName()),
		raw:     d,
		byName:  map[string]*propSpec{},
		methods: map[string]*dmi.DeviceMethod{},
	}
	spec := d.GetSpec()
	s.cfg = DeviceConfig{
		Namespace: d.GetNamespace(),
		Name:      d.GetName(),
		Model:     spec.GetDeviceModelReference(),
		Protocol:  spec.GetProtocol().GetProtocolName(),
	}
	s.stateReport = d.GetStatus().GetReportToCloud()
	s.stateCycle, _ = cycle(d.GetStatus().GetReportCycle(), time.Minute)
	for _, m := range spec.GetMethods() {
		s.methods[m.GetName()] = m
	}
	if model == nil {
		s.waiting = true
		s.err = fmt.Errorf("waiting for DeviceModel %s/%s", d.GetNamespace(), spec.GetDeviceModelReference())
		return s
	}
	pc, err := spec.GetProtocol().GetConfigData().Map()
	if err != nil {
		s.err = ConfigErrorf("", "protocol configData: %v", err)
		return s
	}
	s.cfg.ProtocolConfig = pc

	modelProps := map[string]*dmi.ModelProperty{}
	for _, mp := range model.GetSpec().GetProperties() {
		modelProps[mp.GetName()] = mp
	}
	s.cfg.Properties = make([]PropertyConfig, 0, len(spec.GetProperties()))
	var errs []error
	for _, dp := range spec.GetProperties() {
		name := dp.GetName()
		mp, ok := modelProps[name]
		if !ok {
			errs = append(errs, ConfigErrorf(name, "not defined in DeviceModel %s", model.GetName()))
			continue
		}
		if _, dup := s.byName[name]; dup {
			errs = append(errs, ConfigErrorf(name, "listed twice in the device"))
			continue
		}
		t, err := value.ParseType(mp.GetType())
		if err != nil {
			errs = append(errs, ConfigErrorf(name, "%v", err))
			continue
		}
		limits, err := value.ParseLimits(t, mp.GetMinimum(), mp.GetMaximum())
		if err != nil {
			errs = append(errs, ConfigErrorf(name, "%v", err))
			continue
		}
		access := ReadOnly
		switch mp.GetAccessMode() {
		case "ReadWrite":
			access = ReadWrite
		case "ReadOnly", "":
		default:
			errs = append(errs, ConfigErrorf(name, "accessMode %q is not ReadOnly or ReadWrite", mp.GetAccessMode()))
			continue
		}
		visitor, err := dp.GetVisitors().GetConfigData().Map()
		if err != nil {
			errs = append(errs, ConfigErrorf(name, "visitors configData: %v", err))
			continue
		}
		vc := ConfigData(visitor)
		deadband := cfg.TwinDeadband
		if db, ok, err := vc.Float("deadband"); err != nil || (ok && db < 0) {
			errs = append(errs, ConfigErrorf(name, "visitors configData deadband must be a non-negative number, not %v", visitor["deadband"]))
			continue
		} else if ok {
			deadband = db
		}
		delete(vc, "deadband")
		s.cfg.Properties = append(s.cfg.Properties, PropertyConfig{
			Name: name, Type: t, AccessMode: access, Unit: mp.GetUnit(), Limits: limits, Visitor: vc,
		})
		p := &propSpec{
			reportToCloud: dp.GetReportToCloud(),
			push:          pushTargets(dp.GetPushMethod()),
			deadband:      deadband,
		}
		var note string
		if p.collectCycle, note = cycle(dp.GetCollectCycle(), cfg.DefaultCollectCycle); note != "" {
			p.notes = append(p.notes, "collectCycle: "+note)
		}
		if dp.GetDesired() != nil && dp.GetDesired().GetValue() != "" {
			p.desired, p.hasDesired = dp.GetDesired().GetValue(), true
		}
		s.props = append(s.props, p)
		s.byName[name] = p
	}
	// Point each propSpec at its PropertyConfig now that the slice is final.
	for i := range s.cfg.Properties {
		s.props[i].cfg = &s.cfg.Properties[i]
	}
	for _, m := range spec.GetMethods() {
		for _, pn := range m.GetPropertyNames() {
			if _, ok := s.byName[pn]; !ok && modelProps[pn] == nil {
				errs = append(errs, ConfigErrorf(pn, "named by method %s but not a property of the device", m.GetName()))
			}
		}
	}
	if len(errs) > 0 {
		s.err = errs[0]
		if len(errs) > 1 {
			s.err = &ConfigError{Msg: fmt.Sprintf("%v (and %d more problems)", errs[0], len(errs)-1)}
		}
	}
	return s
}

// connectionChanged reports whether a driver must reconnect to go from a to
// b: protocol config, properties or their visitors differ.
func connectionChanged(a, b *deviceSpec) bool {
	return !equalDeviceConfig(&a.cfg, &b.cfg)
}

// samplingChanged reports whether samplers must restart: cycles, routing or
// deadbands differ.
func samplingChanged(a, b *deviceSpec) bool {
	if len(a.props) != len(b.props) {
		return true
	}
	for i, pa := range a.props {
		pb := b.props[i]
		if pa.cfg.Name != pb.cfg.Name || pa.collectCycle != pb.collectCycle || pa.reportToCloud != pb.reportToCloud || pa.deadband != pb.deadband || len(pa.push) != len(pb.push) {
			return true
		}
		for j := range pa.push {
			if pa.push[j].Key() != pb.push[j].Key() {
				return true
			}
		}
	}
	return false
}

// desiredChanges lists the properties of b whose desired value differs
// from a's (all of b's desired values when a is nil).
func desiredChanges(a, b *deviceSpec) []string {
	var out []string
	for _, pb := range b.props {
		if !pb.hasDesired {
			continue
		}
		if a != nil {
			if pa, ok := a.byName[pb.cfg.Name]; ok && pa.hasDesired && pa.desired == pb.desired {
				continue
			}
		}
		out = append(out, pb.cfg.Name)
	}
	return out
}

func equalDeviceConfig(a, b *DeviceConfig) bool { return reflect.DeepEqual(a, b) }
