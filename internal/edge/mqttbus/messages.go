package mqttbus

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/verge-edge/verge/internal/edge/devicetwin"
)

// KubeEdge's topics. {ns}/{name} name a device (KubeEdge's device ID is
// "ns/name" since v1beta1), {node} the node.
const (
	devicePrefix          = "$hw/events/device/"
	nodePrefix            = "$hw/events/node/"
	suffixTwinUpdate      = "/twin/update"
	suffixTwinResult      = "/twin/update/result"
	suffixTwinDocument    = "/twin/update/document"
	suffixTwinDelta       = "/twin/update/delta"
	suffixTwinGet         = "/twin/get"
	suffixTwinGetResult   = "/twin/get/result"
	suffixStateUpdate     = "/state/update"
	suffixStateResult     = "/state/update/result"
	suffixMembershipGet   = "/membership/get"
	suffixMembershipRes   = "/membership/get/result"
	suffixMembershipUpdtd = "/membership/updated"
)

// DeviceTopic is a device's topic with suffix (e.g. "/twin/update").
func DeviceTopic(namespace, name, suffix string) string {
	return devicePrefix + namespace + "/" + name + suffix
}

// NodeTopic is a node's topic with suffix (e.g. "/membership/get").
func NodeTopic(node, suffix string) string { return nodePrefix + node + suffix }

// parseDeviceTopic splits "$hw/events/device/{ns}/{name}{suffix}".
func parseDeviceTopic(topic, suffix string) (ns, name string, ok bool) {
	rest, ok := strings.CutPrefix(topic, devicePrefix)
	if !ok {
		return "", "", false
	}
	rest, ok = strings.CutSuffix(rest, suffix)
	if !ok {
		return "", "", false
	}
	ns, name, ok = strings.Cut(rest, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	return ns, name, true
}

// BaseMessage starts every payload.
type BaseMessage struct {
	EventID   string `json:"event_id"`
	Timestamp int64  `json:"timestamp"`
}

func base(eventID string, now time.Time) BaseMessage {
	if eventID == "" {
		eventID = uuid.NewString()
	}
	return BaseMessage{EventID: eventID, Timestamp: now.UnixMilli()}
}

// TwinValue is an expected or actual value.
type TwinValue struct {
	Value    *string        `json:"value,omitempty"`
	Metadata *ValueMetadata `json:"metadata,omitempty"`
}

// ValueMetadata says when a value was set, Unix ms.
type ValueMetadata struct {
	Timestamp int64 `json:"timestamp,omitempty"`
}

// TypeMetadata carries a property's type.
type TypeMetadata struct {
	Type string `json:"type,omitempty"`
}

// MsgTwin is one property of a twin message.
type MsgTwin struct {
	Expected *TwinValue    `json:"expected,omitempty"`
	Actual   *TwinValue    `json:"actual,omitempty"`
	Optional *bool         `json:"optional,omitempty"`
	Metadata *TypeMetadata `json:"metadata,omitempty"`
}

// DeviceTwinUpdate is the payload of twin/update (apps setting expected
// values, MQTT mappers reporting actual ones) and of the results.
type DeviceTwinUpdate struct {
	BaseMessage
	Twin map[string]*MsgTwin `json:"twin"`
}

// Result is an error answer.
type Result struct {
	BaseMessage
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// TwinDoc is one property's previous and current state.
type TwinDoc struct {
	Last    *MsgTwin `json:"last"`
	Current *MsgTwin `json:"current"`
}

// DeviceTwinDocument is the payload of twin/update/document.
type DeviceTwinDocument struct {
	BaseMessage
	Twin map[string]*TwinDoc `json:"twin"`
}

// DeviceTwinDelta is the payload of twin/update/delta: the whole twin and,
// per property whose expected value differs from the actual one, the
// expected value.
type DeviceTwinDelta struct {
	BaseMessage
	Twin  map[string]*MsgTwin `json:"twin"`
	Delta map[string]string   `json:"delta"`
}

// DeviceUpdate is the payload of state/update.
type DeviceUpdate struct {
	BaseMessage
	State string `json:"state,omitempty"`
}

// Device names a device in membership and state messages.
type Device struct {
	ID          string              `json:"id,omitempty"`
	Name        string              `json:"name,omitempty"`
	Description string              `json:"description,omitempty"`
	State       string              `json:"state,omitempty"`
	LastOnline  string              `json:"last_online,omitempty"`
	Twin        map[string]*MsgTwin `json:"twin,omitempty"`
}

// DeviceMsg is the payload of state/update/result.
type DeviceMsg struct {
	BaseMessage
	Device Device `json:"device"`
}

// MembershipDetail is the payload of membership/get/result.
type MembershipDetail struct {
	BaseMessage
	Devices []Device `json:"devices"`
}

// MembershipUpdate is the payload of membership/updated.
type MembershipUpdate struct {
	BaseMessage
	AddDevices    []Device `json:"added_devices"`
	RemoveDevices []Device `json:"removed_devices"`
}

// upstream's lastOnline layout (edge local time, no zone).
const lastOnlineLayout = "2006-01-02 15:04:05"

func msgTwin(v devicetwin.TwinView) *MsgTwin {
	m := &MsgTwin{}
	if v.Expected != nil {
		e := *v.Expected
		m.Expected = &TwinValue{Value: &e}
		if v.ExpectedAt > 0 {
			m.Expected.Metadata = &ValueMetadata{Timestamp: v.ExpectedAt}
		}
	}
	if v.Actual != nil {
		a := *v.Actual
		m.Actual = &TwinValue{Value: &a}
		if v.ActualAt > 0 {
			m.Actual.Metadata = &ValueMetadata{Timestamp: v.ActualAt}
		}
	}
	if v.Type != "" {
		m.Metadata = &TypeMetadata{Type: v.Type}
	}
	return m
}

func msgTwins(vs map[string]devicetwin.TwinView) map[string]*MsgTwin {
	out := make(map[string]*MsgTwin, len(vs))
	for k, v := range vs {
		out[k] = msgTwin(v)
	}
	return out
}

func device(d devicetwin.DeviceInfo, withTwin bool) Device {
	out := Device{ID: d.Namespace + "/" + d.Name, Name: d.Name, Description: d.Description, State: d.State}
	if !d.LastOnline.IsZero() {
		out.LastOnline = d.LastOnline.Format(lastOnlineLayout)
	}
	if withTwin {
		out.Twin = msgTwins(d.Twin)
	}
	return out
}

// delta builds the delta message; ok is false when nothing differs.
func delta(b BaseMessage, all map[string]devicetwin.TwinView) (DeviceTwinDelta, bool) {
	d := DeviceTwinDelta{BaseMessage: b, Twin: msgTwins(all), Delta: map[string]string{}}
	for k, v := range all {
		if v.Expected == nil || *v.Expected == "" {
			continue
		}
		if v.Actual == nil || *v.Actual != *v.Expected {
			d.Delta[k] = *v.Expected
		}
	}
	return d, len(d.Delta) > 0
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("mqttbus: encoding %T: %v", v, err)) // plain structs; cannot fail
	}
	return b
}
