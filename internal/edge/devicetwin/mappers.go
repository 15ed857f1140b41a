package devicetwin

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
	"github.com/verge-edge/verge/internal/protocol/wire"
	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
)

// MapperAnnotation on a Device names the mapper that serves it, when
// several mappers on the node serve its protocol.
const MapperAnnotation = "devices.verge.dev/mapper"

// Mapper is a registered mapper, as kept in the store.
type Mapper struct {
	Name       string `json:"name"`
	Protocol   string `json:"protocol"`
	Version    string `json:"version,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
	// Address is the socket path the mapper announced (in its own mount
	// namespace); PID is the process that registered (0 if unknown), so
	// the path can be reached through /proc/<pid>/root.
	Address string `json:"address"`
	PID     int32  `json:"pid,omitempty"`
	// Registered is when it last registered, Unix milliseconds.
	Registered int64 `json:"registered"`
	// Pushed is what the mapper holds (hashes of what it was sent), so a
	// restarted verge-edge sends only what changed: upstream mappers do
	// not register again, and ignore RegisterDevice for a device they
	// have.
	Pushed *Pushed `json:"pushed,omitempty"`
}

// Bind chooses the mapper serving a device whose protocol (after model
// defaults) is protocol: the one its MapperAnnotation names; otherwise,
// among the mappers of the protocol, the one named like the protocol, or
// else the first by name. Pure.
func Bind(annotations map[string]string, protocol, node string, mappers map[string]*Mapper) wire.DeviceMapper {
	if protocol == "" {
		return wire.DeviceMapper{Reason: devicespec.ReasonNoProtocol, Message: "neither the Device nor its DeviceModel names a protocol"}
	}
	if want := annotations[MapperAnnotation]; want != "" {
		m, ok := mappers[want]
		switch {
		case !ok:
			return wire.DeviceMapper{Reason: devicespec.ReasonNoMapperForProtocol,
				Message: fmt.Sprintf("mapper %s (annotation %s) is not registered on node %s%s", want, MapperAnnotation, node, registered(mappers))}
		case m.Protocol != protocol:
			return wire.DeviceMapper{Reason: devicespec.ReasonNoMapperForProtocol,
				Message: fmt.Sprintf("mapper %s (annotation %s) serves protocol %s, not %s", want, MapperAnnotation, m.Protocol, protocol)}
		}
		return wire.DeviceMapper{Name: want, Available: true}
	}
	var names []string
	for name, m := range mappers {
		if m.Protocol == protocol {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return wire.DeviceMapper{Reason: devicespec.ReasonNoMapperForProtocol,
			Message: fmt.Sprintf("no mapper for protocol %s is registered on node %s%s: deploy one (e.g. verge-mapper-%s) to the node", protocol, node, registered(mappers), protocol)}
	}
	sort.Strings(names)
	pick := names[0]
	for _, n := range names {
		if n == protocol {
			pick = n
		}
	}
	return wire.DeviceMapper{Name: pick, Available: true}
}

func registered(mappers map[string]*Mapper) string {
	if len(mappers) == 0 {
		return " (no mapper is registered)"
	}
	var list []string
	for n, m := range mappers {
		list = append(list, n+" ("+m.Protocol+")")
	}
	sort.Strings(list)
	return " (registered: " + strings.Join(list, ", ") + ")"
}

// Op is one DMI call to a mapper.
type Op int

// DMI calls, in the order a plan makes them.
const (
	OpCreateModel Op = iota + 1
	OpUpdateModel
	OpRegisterDevice
	OpUpdateDevice
	OpRemoveDevice
	OpRemoveModel
)

func (o Op) String() string {
	return [...]string{"", "CreateDeviceModel", "UpdateDeviceModel", "RegisterDevice", "UpdateDevice", "RemoveDevice", "RemoveDeviceModel"}[o]
}

// Call is one step of a push plan.
type Call struct {
	Op  Op
	Key string // namespace/name
	// Model or Device is the message for create/register/update.
	Model  *dmi.DeviceModel
	Device *dmi.Device
	// Hash of the message, recorded as pushed once the call succeeds.
	Hash string
}

// Want is what a mapper should hold: messages by namespace/name.
type Want struct {
	Models  map[string]*dmi.DeviceModel
	Devices map[string]*dmi.Device
}

// Pushed is what a mapper holds, as hashes of the messages it took.
type Pushed struct {
	Models  map[string]string `json:"models"`
	Devices map[string]string `json:"devices"`
}

// NewPushed returns an empty Pushed.
func NewPushed() Pushed { return Pushed{Models: map[string]string{}, Devices: map[string]string{}} }

// Hash is a message's content hash (deterministic encoding).
func Hash(m proto.Message) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Plan lists the calls that take a mapper from pushed to want: models
// first (a device finds its model), then devices added or changed, then
// devices removed, then models removed. Within each group by key. A
// device whose only change is a desired value gets UpdateDevice with the
// whole device; the mapper writes just that property. Pure.
func Plan(pushed Pushed, want Want) []Call {
	var calls []Call
	for _, k := range sortedKeys(want.Models) {
		m, h := want.Models[k], Hash(want.Models[k])
		switch old, ok := pushed.Models[k]; {
		case !ok:
			calls = append(calls, Call{Op: OpCreateModel, Key: k, Model: m, Hash: h})
		case old != h:
			calls = append(calls, Call{Op: OpUpdateModel, Key: k, Model: m, Hash: h})
		}
	}
	for _, k := range sortedKeys(want.Devices) {
		d, h := want.Devices[k], Hash(want.Devices[k])
		switch old, ok := pushed.Devices[k]; {
		case !ok:
			calls = append(calls, Call{Op: OpRegisterDevice, Key: k, Device: d, Hash: h})
		case old != h:
			calls = append(calls, Call{Op: OpUpdateDevice, Key: k, Device: d, Hash: h})
		}
	}
	for _, k := range sortedKeys(pushed.Devices) {
		if _, ok := want.Devices[k]; !ok {
			calls = append(calls, Call{Op: OpRemoveDevice, Key: k})
		}
	}
	for _, k := range sortedKeys(pushed.Models) {
		if _, ok := want.Models[k]; !ok {
			calls = append(calls, Call{Op: OpRemoveModel, Key: k})
		}
	}
	return calls
}

// Record updates pushed after call succeeded.
func (p Pushed) Record(c Call) {
	switch c.Op {
	case OpCreateModel, OpUpdateModel:
		p.Models[c.Key] = c.Hash
	case OpRegisterDevice, OpUpdateDevice:
		p.Devices[c.Key] = c.Hash
	case OpRemoveDevice:
		delete(p.Devices, c.Key)
	case OpRemoveModel:
		delete(p.Models, c.Key)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
