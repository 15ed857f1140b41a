package mqttbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verge-edge/verge/internal/edge/devicetwin"
)

// Twin is what the bus needs of the device twin.
type Twin interface {
	Devices() []devicetwin.DeviceInfo
	DeviceTwin(namespace, name string) (map[string]devicetwin.TwinView, error)
	UpdateTwin(namespace, name, eventID string, upd map[string]devicetwin.TwinUpdate) (map[string]devicetwin.TwinView, error)
	UpdateState(namespace, name, state string) error
}

// Broker carries messages: the embedded broker or a client of an external
// one. Subscribe handlers run one message at a time per subscription.
type Broker interface {
	// Start connects (or listens) and returns once the broker is usable,
	// or fails with a message saying what to fix.
	Start(ctx context.Context) error
	Publish(topic string, payload []byte) error
	Subscribe(filter string, handler func(topic string, payload []byte)) error
	Close() error
}

// Config configures the Bus.
type Config struct {
	// NodeName is this node (membership topics).
	NodeName string
	Broker   Broker
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// RetryInterval is how long to wait before trying the broker again
	// after it failed to start (default 30s).
	RetryInterval time.Duration
	Now           func() time.Time
}

// Bus connects the device twin to MQTT with KubeEdge's topics. Set its
// Twin before Start; it is the twin's Events.
type Bus struct {
	cfg     Config
	twin    Twin
	metrics *metrics
	// queues feed the handler workers; a device's messages always go to
	// the same worker, so they are handled in order.
	queues []chan message
}

type message struct {
	fn      func(string, []byte)
	topic   string
	payload []byte
}

// Handler workers and the messages each may hold; beyond that a message
// is dropped and counted (verge_edge_mqtt_dropped_total).
const (
	workers    = 4
	queueDepth = 1024
)

// New builds a Bus.
func New(cfg Config) (*Bus, error) {
	if cfg.NodeName == "" || cfg.Broker == nil {
		return nil, errors.New("mqttbus: NodeName and Broker are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Bus{cfg: cfg, metrics: newMetrics(cfg.Registry)}
	for range workers {
		b.queues = append(b.queues, make(chan message, queueDepth))
	}
	return b, nil
}

// SetTwin connects the bus to the twin (call before Start).
func (b *Bus) SetTwin(t Twin) { b.twin = t }

var _ devicetwin.Events = (*Bus)(nil)

// Start starts the broker and subscribes to the topics apps and mappers
// publish on, then runs until ctx ends. A broker that cannot start (its
// port is taken, the external broker is down) is retried every
// RetryInterval: devices keep working without the bus meanwhile.
func (b *Bus) Start(ctx context.Context) error {
	if b.twin == nil {
		return errors.New("mqttbus: SetTwin before Start")
	}
	for {
		err := b.cfg.Broker.Start(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		b.metrics.up.Set(0)
		b.cfg.Logger.Error("the MQTT bus is not available; retrying", "error", err, "retryIn", b.cfg.RetryInterval)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(b.cfg.RetryInterval):
		}
	}
	defer func() { _ = b.cfg.Broker.Close() }()
	for _, q := range b.queues {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-q:
					m.fn(m.topic, m.payload)
				}
			}
		}()
	}
	subs := []struct {
		filter string
		fn     func(topic string, payload []byte)
	}{
		{devicePrefix + "+/+" + suffixTwinUpdate, b.onTwinUpdate},
		{devicePrefix + "+/+" + suffixTwinGet, b.onTwinGet},
		{devicePrefix + "+/+" + suffixStateUpdate, b.onStateUpdate},
		{NodeTopic(b.cfg.NodeName, suffixMembershipGet), b.onMembershipGet},
	}
	for _, s := range subs {
		if err := b.cfg.Broker.Subscribe(s.filter, b.counted(s.filter, s.fn)); err != nil {
			return fmt.Errorf("subscribing to %s: %w", s.filter, err)
		}
	}
	b.metrics.up.Set(1)
	b.cfg.Logger.Info("MQTT bus serving the device topics", "node", b.cfg.NodeName)
	<-ctx.Done()
	b.metrics.up.Set(0)
	return nil
}

// counted queues a received message for its device's worker (handlers
// wait for the twin's store write, which must not hold up the broker).
func (b *Bus) counted(filter string, fn func(string, []byte)) func(string, []byte) {
	return func(topic string, payload []byte) {
		b.metrics.received.WithLabelValues(filter).Inc()
		h := fnv.New32a()
		_, _ = h.Write([]byte(deviceOf(topic)))
		select {
		case b.queues[h.Sum32()%uint32(len(b.queues))] <- message{fn: fn, topic: topic, payload: append([]byte(nil), payload...)}:
		default:
			b.metrics.dropped.Inc()
			b.cfg.Logger.Debug("MQTT message dropped: handlers are behind", "topic", topic)
		}
	}
}

func (b *Bus) publish(topic string, v any) {
	if err := b.cfg.Broker.Publish(topic, mustJSON(v)); err != nil {
		b.metrics.publishErrors.Inc()
		b.cfg.Logger.Debug("MQTT publish failed", "topic", topic, "error", err)
		return
	}
	b.metrics.published.Inc()
}

func (b *Bus) errorResult(topic, eventID string, code int, err error) {
	b.publish(topic, Result{BaseMessage: base(eventID, b.cfg.Now()), Code: code, Reason: err.Error()})
}

func codeOf(err error) int {
	var ue *devicetwin.UserError
	switch {
	case errors.Is(err, devicetwin.ErrNoDevice):
		return http.StatusNotFound
	case errors.As(err, &ue):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// onTwinUpdate handles $hw/events/device/{ns}/{name}/twin/update: expected
// values from apps (desired values set on the node), actual values from
// mappers that publish readings over MQTT.
func (b *Bus) onTwinUpdate(topic string, payload []byte) {
	ns, name, ok := parseDeviceTopic(topic, suffixTwinUpdate)
	if !ok {
		return
	}
	resultTopic := DeviceTopic(ns, name, suffixTwinResult)
	var msg DeviceTwinUpdate
	if err := json.Unmarshal(payload, &msg); err != nil {
		b.errorResult(resultTopic, "", http.StatusBadRequest, fmt.Errorf("the twin update is not valid JSON: %w", err))
		return
	}
	if len(msg.Twin) == 0 {
		b.errorResult(resultTopic, msg.EventID, http.StatusBadRequest, errors.New(`the twin update has no "twin" object`))
		return
	}
	upd := map[string]devicetwin.TwinUpdate{}
	for prop, t := range msg.Twin {
		if t == nil {
			continue
		}
		u := devicetwin.TwinUpdate{}
		if t.Expected != nil && t.Expected.Value != nil {
			u.Expected = t.Expected.Value
		}
		if t.Actual != nil && t.Actual.Value != nil {
			u.Actual = t.Actual.Value
			if t.Actual.Metadata != nil {
				u.Timestamp = t.Actual.Metadata.Timestamp
			}
		}
		if t.Metadata != nil {
			u.Type = t.Metadata.Type
		}
		if u.Expected == nil && u.Actual == nil {
			continue
		}
		upd[prop] = u
	}
	views, err := b.twin.UpdateTwin(ns, name, msg.EventID, upd)
	if err != nil {
		b.errorResult(resultTopic, msg.EventID, codeOf(err), err)
		return
	}
	b.publish(resultTopic, DeviceTwinUpdate{BaseMessage: base(msg.EventID, b.cfg.Now()), Twin: msgTwins(views)})
}

// onTwinGet answers $hw/events/device/{ns}/{name}/twin/get on …/twin/get/result.
func (b *Bus) onTwinGet(topic string, payload []byte) {
	ns, name, ok := parseDeviceTopic(topic, suffixTwinGet)
	if !ok {
		return
	}
	var req BaseMessage
	_ = json.Unmarshal(payload, &req) // an empty request is fine
	resultTopic := DeviceTopic(ns, name, suffixTwinGetResult)
	views, err := b.twin.DeviceTwin(ns, name)
	if err != nil {
		b.errorResult(resultTopic, req.EventID, codeOf(err), err)
		return
	}
	b.publish(resultTopic, DeviceTwinUpdate{BaseMessage: base(req.EventID, b.cfg.Now()), Twin: msgTwins(views)})
}

// onStateUpdate handles …/state/update from mappers speaking MQTT; the
// result follows as a StateChanged event.
func (b *Bus) onStateUpdate(topic string, payload []byte) {
	ns, name, ok := parseDeviceTopic(topic, suffixStateUpdate)
	if !ok {
		return
	}
	var msg DeviceUpdate
	if err := json.Unmarshal(payload, &msg); err != nil || msg.State == "" {
		b.errorResult(DeviceTopic(ns, name, suffixStateResult), msg.EventID, http.StatusBadRequest, errors.New(`a state update needs {"state": "..."}`))
		return
	}
	if err := b.twin.UpdateState(ns, name, msg.State); err != nil {
		b.errorResult(DeviceTopic(ns, name, suffixStateResult), msg.EventID, codeOf(err), err)
	}
}

// onMembershipGet answers $hw/events/node/{node}/membership/get.
func (b *Bus) onMembershipGet(_ string, payload []byte) {
	var req BaseMessage
	_ = json.Unmarshal(payload, &req)
	devs := b.twin.Devices()
	out := MembershipDetail{BaseMessage: base(req.EventID, b.cfg.Now()), Devices: make([]Device, 0, len(devs))}
	for _, d := range devs {
		out.Devices = append(out.Devices, device(d, false))
	}
	b.publish(NodeTopic(b.cfg.NodeName, suffixMembershipRes), out)
}

// TwinChanged publishes …/twin/update/result (for readings reported over
// DMI; an MQTT request gets its own answer), …/twin/update/document and,
// when an expected value differs from the actual one, …/twin/update/delta.
func (b *Bus) TwinChanged(c devicetwin.TwinChange) {
	now := b.cfg.Now()
	msg := base(c.EventID, now)
	if c.EventID == "" {
		b.publish(DeviceTopic(c.Namespace, c.Name, suffixTwinResult), DeviceTwinUpdate{BaseMessage: msg, Twin: msgTwins(c.After)})
	}
	doc := DeviceTwinDocument{BaseMessage: msg, Twin: map[string]*TwinDoc{}}
	props := make([]string, 0, len(c.After))
	for p := range c.After {
		props = append(props, p)
	}
	sort.Strings(props)
	for _, p := range props {
		d := &TwinDoc{Current: msgTwin(c.After[p])}
		if before, ok := c.Before[p]; ok {
			d.Last = msgTwin(before)
		}
		doc.Twin[p] = d
	}
	b.publish(DeviceTopic(c.Namespace, c.Name, suffixTwinDocument), doc)
	if d, ok := delta(base("", now), c.All); ok {
		b.publish(DeviceTopic(c.Namespace, c.Name, suffixTwinDelta), d)
	}
}

// StateChanged publishes …/state/update/result.
func (b *Bus) StateChanged(namespace, name, state string, lastOnline time.Time) {
	d := Device{Name: name, State: state}
	if !lastOnline.IsZero() {
		d.LastOnline = lastOnline.Format(lastOnlineLayout)
	}
	b.publish(DeviceTopic(namespace, name, suffixStateResult), DeviceMsg{BaseMessage: base("", b.cfg.Now()), Device: d})
}

// MembershipChanged publishes $hw/events/node/{node}/membership/updated.
func (b *Bus) MembershipChanged(added, removed []devicetwin.DeviceInfo) {
	msg := MembershipUpdate{BaseMessage: base("", b.cfg.Now()), AddDevices: []Device{}, RemoveDevices: []Device{}}
	for _, d := range added {
		msg.AddDevices = append(msg.AddDevices, device(d, true))
	}
	for _, d := range removed {
		msg.RemoveDevices = append(msg.RemoveDevices, device(d, false))
	}
	b.publish(NodeTopic(b.cfg.NodeName, suffixMembershipUpdtd), msg)
}

type metrics struct {
	up            prometheus.Gauge
	received      *prometheus.CounterVec
	published     prometheus.Counter
	publishErrors prometheus.Counter
	dropped       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "verge_edge_mqtt_up", Help: "1 while the MQTT bus is serving the device topics."}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verge_edge_mqtt_received_total", Help: "Messages received on the device topics, by subscription."}, []string{"filter"}),
		published:     prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_edge_mqtt_published_total", Help: "Messages published on the device topics."}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_edge_mqtt_publish_errors_total", Help: "Publishes that failed (broker down)."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_edge_mqtt_dropped_total",
			Help: "Received messages dropped because the handlers were behind (queue of 1024 per worker full)."}),
	}
	if reg != nil {
		reg.MustRegister(m.up, m.received, m.published, m.publishErrors, m.dropped)
	}
	return m
}

// deviceOf is the part of a topic naming the device (or node).
func deviceOf(topic string) string {
	parts := strings.SplitN(topic, "/", 6)
	if len(parts) < 5 {
		return topic
	}
	return strings.Join(parts[:5], "/")
}
