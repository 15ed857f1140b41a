package mqttsink

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/testserver"
)

type message struct {
	topic    string
	payload  string
	qos      byte
	retained bool
}

// subscriber is an independent client that records what the broker
// delivers.
type subscriber struct {
	client mqtt.Client
	mu     sync.Mutex
	msgs   []message
}

func subscribe(t *testing.T, addr, filter string) *subscriber {
	t.Helper()
	sub := &subscriber{}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("sub-" + t.Name() + "-" + filter).SetCleanSession(true)
	sub.client = mqtt.NewClient(o)
	if tok := sub.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	t.Cleanup(func() { sub.client.Disconnect(100) })
	tok := sub.client.Subscribe(filter, 2, func(_ mqtt.Client, m mqtt.Message) {
		sub.mu.Lock()
		sub.msgs = append(sub.msgs, message{m.Topic(), string(m.Payload()), m.Qos(), m.Retained()})
		sub.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return sub
}

func (s *subscriber) wait(t *testing.T, n int) []message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		got := append([]message(nil), s.msgs...)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriber got %d messages, want %d: %+v", len(got), n, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitConnected(t *testing.T, s *Sink) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !s.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("sink did not connect within 15s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func testSamples() []sink.Sample {
	return []sink.Sample{
		{Namespace: "plant-a", Device: "thermo-1", Property: "temperature", Value: "21.5", Type: "float", Timestamp: t0},
		{Namespace: "plant-a", Device: "valve-2", Property: "open", Value: "true", Type: "boolean", Timestamp: t0.Add(time.Second)},
	}
}

func TestPublishesTemplatedTopicsWithQoSAndRetain(t *testing.T) {
	broker := testserver.MQTTBroker(t)
	sub := subscribe(t, broker.Addr, "verge/#")
	s, err := New(Config{Address: "mqtt://" + broker.Addr, Topic: "verge/{namespace}/{device}/{property}", QoS: 1, Retained: true}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	waitConnected(t, s)
	if err := s.Write(context.Background(), testSamples()); err != nil {
		t.Fatal(err)
	}
	got := sub.wait(t, 2)
	byTopic := map[string]message{}
	for _, m := range got {
		byTopic[m.topic] = m
	}
	m, ok := byTopic["verge/plant-a/thermo-1/temperature"]
	if !ok {
		t.Fatalf("no message on verge/plant-a/thermo-1/temperature: %+v", got)
	}
	if m.qos != 1 {
		t.Errorf("delivered at QoS %d, want 1", m.qos)
	}
	want := `{"namespace":"plant-a","device":"thermo-1","property":"temperature","value":"21.5","type":"float","timestamp":"2026-03-04T05:06:07Z"}`
	if m.payload != want {
		t.Errorf("payload\n got %s\nwant %s", m.payload, want)
	}
	if _, ok := byTopic["verge/plant-a/valve-2/open"]; !ok {
		t.Errorf("no message for valve-2/open: %+v", got)
	}

	// A late subscriber gets the retained latest value of each topic.
	late := subscribe(t, broker.Addr, "verge/plant-a/valve-2/#")
	r := late.wait(t, 1)
	if !r[0].retained || !strings.Contains(r[0].payload, `"value":"true"`) {
		t.Errorf("late subscriber got %+v, want the retained reading", r[0])
	}
}

func TestOneConnectionForManyWrites(t *testing.T) {
	broker := testserver.MQTTBroker(t)
	sub := subscribe(t, broker.Addr, "fixed/topic")
	s, err := New(Config{Address: broker.Addr, Topic: "fixed/topic", QoS: 0}, Options{ClientID: "sink-one"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	waitConnected(t, s)
	for i := 0; i < 20; i++ {
		if err := s.Write(context.Background(), testSamples()); err != nil {
			t.Fatal(err)
		}
	}
	got := sub.wait(t, 40)
	var decoded struct{ Device, Property string }
	if err := json.Unmarshal([]byte(got[1].payload), &decoded); err != nil || decoded.Device != "valve-2" {
		t.Errorf("payload %q does not identify the sample: %v", got[1].payload, err)
	}
	// The broker logs each client connection; one sink is one connection.
	if n := strings.Count(broker.Output(), "as sink-one"); n != 1 {
		t.Errorf("broker saw %d connections from the sink, want 1:\n%s", n, broker.Output())
	}
}

func TestBrokerDownThenBack(t *testing.T) {
	broker := testserver.MQTTBroker(t)
	s, err := New(Config{Address: "tcp://" + broker.Addr, Topic: "t/{device}", QoS: 1}, Options{MaxReconnectInterval: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	waitConnected(t, s)
	ctx := context.Background()
	if err := s.Write(ctx, testSamples()); err != nil {
		t.Fatal(err)
	}

	broker.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for s.Connected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	start := time.Now()
	err = s.Write(wctx, testSamples())
	cancel()
	if err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Fatalf("Write with the broker down = %v, want a not-connected error", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Write took %v to fail, want an immediate failure", d)
	}

	broker.Start()
	sub := subscribe(t, broker.Addr, "t/#")
	waitConnected(t, s)
	if err := s.Write(ctx, testSamples()); err != nil {
		t.Fatalf("Write after the broker came back: %v", err)
	}
	sub.wait(t, 2)
}

func TestStartsWhileBrokerIsDown(t *testing.T) {
	broker := testserver.MQTTBroker(t)
	broker.Stop()
	s, err := New(Config{Address: "mqtt://" + broker.Addr, Topic: "late"}, Options{MaxReconnectInterval: 300 * time.Millisecond})
	if err != nil {
		t.Fatalf("New with the broker down: %v", err)
	}
	defer func() { _ = s.Close() }()
	err = s.Write(context.Background(), testSamples())
	if err == nil || !strings.Contains(err.Error(), "connection refused") && !strings.Contains(err.Error(), "not connected yet") {
		t.Fatalf("Write before the first connection = %v, want the connect error", err)
	}
	broker.Start()
	sub := subscribe(t, broker.Addr, "late")
	waitConnected(t, s)
	if err := s.Write(context.Background(), testSamples()); err != nil {
		t.Fatal(err)
	}
	sub.wait(t, 2)
}

func TestWildcardInExpandedTopicIsSkipped(t *testing.T) {
	broker := testserver.MQTTBroker(t)
	sub := subscribe(t, broker.Addr, "p/#")
	s, err := New(Config{Address: broker.Addr, Topic: "p/{property}", QoS: 1}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	waitConnected(t, s)
	batch := []sink.Sample{
		{Namespace: "n", Device: "d", Property: "bad+name", Value: "1", Type: "int", Timestamp: t0},
		{Namespace: "n", Device: "d", Property: "good", Value: "2", Type: "int", Timestamp: t0},
	}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	got := sub.wait(t, 1)
	if got[0].topic != "p/good" {
		t.Errorf("got %+v, want only p/good", got)
	}
	// The connection survived: a wildcard publish would have made the
	// broker drop it.
	if !s.Connected() {
		t.Error("sink lost its connection")
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "empty address", cfg: Config{Topic: "t"}, wantErr: "address is empty"},
		{name: "bad scheme", cfg: Config{Address: "http://h:1883"}, wantErr: `scheme "http"`},
		{name: "qos", cfg: Config{Address: "h", QoS: 3}, wantErr: "qos 3 is invalid"},
		{name: "wildcard", cfg: Config{Address: "h", Topic: "a/+/b"}, wantErr: "wildcard"},
		{name: "placeholder", cfg: Config{Address: "h", Topic: "a/{node}"}, wantErr: "unknown placeholder {node}"},
		{name: "unclosed", cfg: Config{Address: "h", Topic: "a/{device"}, wantErr: "unclosed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
	for addr, want := range map[string]string{
		"127.0.0.1:1883":        "mqtt://127.0.0.1:1883",
		"mqtt://broker":         "mqtt://broker:1883",
		"mqtts://broker":        "mqtts://broker:8883",
		"ssl://broker:9999":     "ssl://broker:9999",
		"ws://broker:8080/mqtt": "ws://broker:8080/mqtt",
	} {
		got, err := brokerURL(addr)
		if err != nil || got != want {
			t.Errorf("brokerURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}
