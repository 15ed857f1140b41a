package mapper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper/dmitest"
	"github.com/verge-edge/verge/pkg/mapper/sink"
)

type running struct {
	m      *Mapper
	edge   *dmitest.Edge
	driver *fakeDriver
	dir    string
	base   string // REST base URL
	client dmi.DeviceMapperServiceClient
	done   chan error
}

func startMapper(t *testing.T, devices ...*dmi.Device) *running {
	t.Helper()
	return startMapperWith(t, nil, devices...)
}

func startMapperWith(t *testing.T, factory SinkFactory, devices ...*dmi.Device) *running {
	t.Helper()
	dir := dmitest.ShortDir(t)
	edge := dmitest.NewEdge([]*dmi.DeviceModel{testModel()}, devices)
	edge.Serve(t, filepath.Join(dir, "dmi.sock"))
	d := newFakeDriver()
	d.set("temperature", float32(21.5))
	d.set("setpoint", int64(0))
	d.set("power", true)
	cfg := Config{
		Name: "fake-mapper", Protocol: "fake", Version: "v1.2.3",
		EdgeSocket: filepath.Join(dir, "dmi.sock"), Socket: filepath.Join(dir, "mapper.sock"),
		REST:  RESTConfig{Address: "127.0.0.1:0"},
		Sinks: SinkConfig{RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond},
	}
	m, err := New(cfg, d, Options{Logger: testLogger(t), SinkFactory: factory})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{m: m, edge: edge, driver: d, dir: dir, done: make(chan error, 1)}
	go func() { r.done <- m.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("mapper: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("mapper did not stop")
		}
	})
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	defer acancel()
	addr, err := m.RESTAddr(actx)
	if err != nil {
		t.Fatal(err)
	}
	r.base = "http://" + addr.String()
	r.client = dmitest.Mapper(t, cfg.Socket)
	return r
}

func TestDMIRoundTrip(t *testing.T) {
	r := startMapper(t, testDevice(t, 100))
	eventually(t, "registration", func() bool { return len(r.edge.Registrations()) == 1 })
	info := r.edge.Registrations()[0]
	if info.GetName() != "fake-mapper" || info.GetProtocol() != "fake" || info.GetVersion() != "v1.2.3" || info.GetApiVersion() != "v1beta1" || string(info.GetAddress()) != filepath.Join(r.dir, "mapper.sock") {
		t.Errorf("MapperInfo = %v", info)
	}
	eventually(t, "twins of every property", func() bool {
		return r.edge.Twin("default", "thermo", "temperature").GetReported().GetValue() == "21.5" &&
			r.edge.Twin("default", "thermo", "power").GetReported().GetValue() == "true" &&
			r.edge.Twin("default", "thermo", "setpoint").GetReported().GetValue() == "30"
	})
	if od := r.edge.Twin("default", "thermo", "setpoint").GetObservedDesired().GetValue(); od != "30" {
		t.Errorf("observedDesired = %q, want the applied desired value 30", od)
	}
	eventually(t, "state ok", func() bool { return stateOf(r.edge) == StateOK })

	// A desired change through UpdateDevice: written without reconnecting.
	ctx := context.Background()
	d2 := testDevice(t, 100)
	d2.Spec.Properties[1].Desired.Value = "55"
	if _, err := r.client.UpdateDevice(ctx, &dmi.UpdateDeviceRequest{Device: d2}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "new desired value reported", func() bool {
		tw := r.edge.Twin("default", "thermo", "setpoint")
		return tw.GetReported().GetValue() == "55" && tw.GetObservedDesired().GetValue() == "55"
	})
	if c, cl, _ := r.driver.counts(); c != 1 || cl != 0 {
		t.Errorf("desired write reconnected the device: %d connects, %d closes", c, cl)
	}

	got, err := r.client.GetDevice(ctx, &dmi.GetDeviceRequest{DeviceName: "thermo", DeviceNamespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.GetDevice().GetStatus().GetTwins()); n != 3 {
		t.Errorf("GetDevice returned %d twins, want 3", n)
	}

	wrong := testDevice(t, 100)
	wrong.Spec.Protocol.ProtocolName = "opcua"
	if _, err := r.client.RegisterDevice(ctx, &dmi.RegisterDeviceRequest{Device: wrong}); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), `serves "fake"`) {
		t.Errorf("RegisterDevice with another protocol: %v", err)
	}

	// A device whose model arrives later starts when it does.
	late := testDevice(t, 100)
	late.Name, late.Spec.DeviceModelReference = "late", "late-model"
	if _, err := r.client.RegisterDevice(ctx, &dmi.RegisterDeviceRequest{Device: late}); err != nil {
		t.Fatal(err)
	}
	lateModel := testModel()
	lateModel.Name = "late-model"
	if _, err := r.client.CreateDeviceModel(ctx, &dmi.CreateDeviceModelRequest{Model: lateModel}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "late device reporting", func() bool {
		for _, tw := range r.edge.Reports() {
			if tw.GetDeviceName() == "late" {
				return true
			}
		}
		return false
	})

	if _, err := r.client.RemoveDevice(ctx, &dmi.RemoveDeviceRequest{DeviceName: "late", DeviceNamespace: "default"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.GetDevice(ctx, &dmi.GetDeviceRequest{DeviceName: "late", DeviceNamespace: "default"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetDevice of a removed device: %v", err)
	}
}

func TestReRegistersWhenTheEdgeRestarts(t *testing.T) {
	r := startMapper(t, testDevice(t, 100))
	eventually(t, "first report", func() bool { return r.edge.Twin("default", "thermo", "temperature") != nil })
	r.edge.Stop()
	// A new edge process on the same socket, knowing nothing yet.
	edge2 := dmitest.NewEdge([]*dmi.DeviceModel{testModel()}, []*dmi.Device{testDevice(t, 100)})
	edge2.Serve(t, filepath.Join(r.dir, "dmi.sock"))
	eventually(t, "registration with the new edge", func() bool { return len(edge2.Registrations()) == 1 })
	// Unchanged values are sent again: the new edge has none.
	eventually(t, "values re-sent", func() bool { return edge2.Twin("default", "thermo", "temperature").GetReported().GetValue() == "21.5" })
	if c, _, _ := r.driver.counts(); c != 1 {
		t.Errorf("an edge restart reconnected the device (%d connects)", c)
	}
}

func stateOf(e *dmitest.Edge) string {
	s, _ := e.State("default", "thermo")
	return s
}

func httpDo(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, url, b)
	}
	return resp.StatusCode, out
}

func TestRESTAPI(t *testing.T) {
	r := startMapper(t, testDevice(t, 100))
	eventually(t, "device ok and desired value applied", func() bool {
		return stateOf(r.edge) == StateOK && r.edge.Twin("default", "thermo", "setpoint").GetObservedDesired().GetValue() == "30"
	})
	dev := r.base + "/api/v1/device/default/thermo"
	meth := r.base + "/api/v1/devicemethod/default/thermo"

	code, body := httpDo(t, "GET", dev+"/temperature", "")
	if data, _ := body["Data"].(map[string]any); code != 200 || data["value"] != "21.5" || data["type"] != "float" {
		t.Errorf("read temperature: %d %v", code, body)
	}
	if code, _ := httpDo(t, "GET", dev+"/nope", ""); code != 404 {
		t.Errorf("unknown property: %d", code)
	}
	code, body = httpDo(t, "GET", meth, "")
	if list, _ := body["Data"].([]any); code != 200 || len(list) != 2 {
		t.Errorf("list methods: %d %v", code, body)
	}

	tests := []struct {
		name, method, url, body string
		code                    int
		msg                     string
		want                    any // setpoint on the device afterwards
	}{
		{"post JSON", "POST", meth + "/SetPoint/setpoint", `{"value": "55"}`, 200, "", int64(55)},
		{"put bare", "PUT", meth + "/SetPoint/setpoint", `56`, 200, "", int64(56)},
		{"upstream path form", "PUT", meth + "/SetPoint/setpoint/57", ``, 200, "", int64(57)},
		{"write via GET", "GET", meth + "/SetPoint/setpoint/58", ``, 405, "writes use POST or PUT", int64(57)},
		{"out of range", "POST", meth + "/SetPoint/setpoint", `{"value": 500}`, 400, "500 is above the maximum 100; nothing was written", int64(57)},
		{"not a number", "POST", meth + "/SetPoint/setpoint", `warm`, 400, `"warm" is not an integer`, int64(57)},
		{"read-only", "POST", meth + "/Temp/temperature", `{"value": "30"}`, 403, "ReadOnly", int64(57)},
		{"property not in method", "POST", meth + "/SetPoint/power", `true`, 400, "does not write property", int64(57)},
		{"unknown method", "POST", meth + "/Boil/setpoint", `1`, 404, `no method "Boil"`, int64(57)},
		{"unknown device", "POST", r.base + "/api/v1/devicemethod/default/ghost/SetPoint/setpoint", `1`, 404, "not served", int64(57)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := httpDo(t, tt.method, tt.url, tt.body)
			if code != tt.code || (tt.msg != "" && !strings.Contains(fmt.Sprint(body["message"]), tt.msg)) {
				t.Errorf("%s %s: %d %v; want %d with %q", tt.method, tt.url, code, body, tt.code, tt.msg)
			}
			r.driver.mu.Lock()
			got := r.driver.values["setpoint"]
			r.driver.mu.Unlock()
			if got != tt.want {
				t.Errorf("setpoint on the device = %v, want %v", got, tt.want)
			}
		})
	}
	if _, _, w := r.driver.counts(); fmt.Sprint(w) != "[setpoint=30 setpoint=55 setpoint=56 setpoint=57]" {
		t.Errorf("device writes %v", w)
	}

	code, body = httpDo(t, "GET", r.base+"/api/v1/health", "")
	data, _ := body["Data"].(map[string]any)
	if mp, _ := data["mapper"].(map[string]any); code != 200 || mp["registered"] != true || data["healthy"] != true {
		t.Errorf("health: %d %v", code, body)
	}
	resp, err := http.Get(r.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, series := range []string{"verge_mapper_reads_total", `verge_mapper_sink_samples_total{result="written",sink="cloud-twin"}`, "verge_mapper_dmi_registered 1"} {
		if !strings.Contains(string(b), series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
}

func TestBrokenSinkIsVisibleAndOthersKeepWorking(t *testing.T) {
	good, broken := &memSink{name: "broker"}, &memSink{name: "collector", fail: errors.New("503 from the collector")}
	factory := func(_ context.Context, pt PushTarget) (sink.Sink, error) {
		if pt.Kind == PushHTTP {
			return broken, nil
		}
		return good, nil
	}
	dev := testDevice(t, 50)
	for _, p := range dev.Spec.Properties {
		p.PushMethod = &dmi.PushMethod{
			Http: &dmi.PushMethodHTTP{Hostname: "127.0.0.1", Port: 9},
			Mqtt: &dmi.PushMethodMQTT{Address: "tcp://127.0.0.1:1883", Topic: "t"},
		}
	}
	r := startMapperWith(t, factory, dev)
	// The twin and the working sink get readings; the broken one fails.
	eventually(t, "twin readings", func() bool { return r.edge.Twin("default", "thermo", "power") != nil })
	eventually(t, "good sink readings", func() bool { return len(good.values("power")) > 3 })
	eventually(t, "broken sink visible in health", func() bool {
		for _, s := range r.m.Status().Sinks {
			if s.Sink == "collector" && !s.Healthy && strings.Contains(s.LastError, "503 from the collector") && s.WriteErrors > 0 {
				return true
			}
		}
		return false
	})
	resp, err := http.Get(r.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `verge_mapper_sink_write_errors_total{sink="collector"}`) {
		t.Error("/metrics lacks the broken sink's write errors")
	}
	if h := r.m.Status(); h.Healthy {
		t.Error("health says healthy with a failing sink")
	}
}
