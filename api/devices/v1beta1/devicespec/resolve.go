package devicespec

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ResolveDevice returns a copy of a device's spec with its model's
// defaults filled in, which is what a mapper is given:
//
//   - protocol.protocolName, when empty, is the model's protocol;
//   - protocol.configData is the model's protocolConfigData with the
//     device's keys put over it (MergeConfigData);
//   - each device property's visitors are the model property's visitors
//     with the device's keys put over them, and the model's protocolName
//     when the device gives none.
//
// Properties the device does not list are not added. A nil model gives a
// plain copy. ResolveDevice does not check that m is the model d names.
//
// It works on specs, not on Device objects, so that the cloud (checking a
// Device against its model) and verge-edge (building what its mappers get,
// without the Kubernetes object types) share it.
func ResolveDevice(d *DeviceSpec, m *DeviceModelSpec) (*DeviceSpec, error) {
	out := d.DeepCopy()
	if m == nil {
		return out, nil
	}
	if out.Protocol.ProtocolName == "" {
		out.Protocol.ProtocolName = m.Protocol
	}
	cfg, err := MergeConfigData(m.ProtocolConfigData, d.Protocol.ConfigData)
	if err != nil {
		return nil, fmt.Errorf("protocol configData: %w", err)
	}
	out.Protocol.ConfigData = cfg
	for i := range out.Properties {
		p := &out.Properties[i]
		mp := m.Property(p.Name)
		if mp == nil || mp.Visitors == nil {
			continue
		}
		v, err := mergeVisitors(mp.Visitors, p.Visitors)
		if err != nil {
			return nil, fmt.Errorf("property %s: visitors configData: %w", p.Name, err)
		}
		p.Visitors = v
	}
	return out, nil
}

func mergeVisitors(base, override *VisitorConfig) (*VisitorConfig, error) {
	out := &VisitorConfig{ProtocolName: base.ProtocolName}
	var over *CustomizedValue
	if override != nil {
		if override.ProtocolName != "" {
			out.ProtocolName = override.ProtocolName
		}
		over = override.ConfigData
	}
	cfg, err := MergeConfigData(base.ConfigData, over)
	if err != nil {
		return nil, err
	}
	out.ConfigData = cfg
	return out, nil
}

// UpstreamTimeLayout is how upstream edges wrote lastOnlineTime: the edge's
// local time without a zone.
const UpstreamTimeLayout = "2006-01-02 15:04:05"

// FormatLastOnlineTime writes t for status.lastOnlineTime: RFC 3339 in UTC,
// which `kubectl get` shows as an age.
func FormatLastOnlineTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

// ParseLastOnlineTime reads status.lastOnlineTime in RFC 3339 (fractional
// seconds allowed) or in UpstreamTimeLayout, which carries no zone and is
// read as UTC.
func ParseLastOnlineTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("lastOnlineTime is empty")
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(UpstreamTimeLayout, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("lastOnlineTime %q is neither RFC 3339 nor %q", s, UpstreamTimeLayout)
}
