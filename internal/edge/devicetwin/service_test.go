package devicetwin

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	devicesv1beta1 "github.com/verge-edge/verge/api/devices/v1beta1"
	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
	"github.com/verge-edge/verge/internal/edge/store"
	"github.com/verge-edge/verge/internal/protocol/objkey"
	"github.com/verge-edge/verge/internal/protocol/wire"
	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper"
	"github.com/verge-edge/verge/pkg/mapper/dmitest"
)

// node is a Service on a real store, as verge-edge runs it.
type node struct {
	t      *testing.T
	dir    string
	store  *store.Store
	svc    *Service
	cancel context.CancelFunc
	done   chan error
	rv     int
}

func startNode(t *testing.T, dir string) *node {
	t.Helper()
	st, err := store.Open(filepath.Join(dir, "store.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, dir: dir, store: st, done: make(chan error, 1)}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *node) start() {
	n.t.Helper()
	svc, err := New(Config{NodeName: "edge-1", SocketDir: filepath.Join(n.dir, "dmi"), FlushInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}, n.store)
	if err != nil {
		n.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.svc, n.cancel, n.done = svc, cancel, make(chan error, 1)
	go func() { n.done <- svc.Start(ctx) }()
	dmitest.Eventually(n.t, "the DMI socket", func() bool { _, err := os.Stat(n.socket()); return err == nil })
}

// restart stops the Service and starts a new one on the same store (a
// verge-edge restart).
func (n *node) restart() {
	n.t.Helper()
	n.cancel()
	if err := <-n.done; err != nil {
		n.t.Fatal(err)
	}
	n.start()
}

func (n *node) stop() {
	if n.cancel != nil {
		n.cancel()
		select {
		case err := <-n.done:
			if err != nil {
				n.t.Errorf("device twin stopped with an error: %v", err)
			}
		case <-time.After(10 * time.Second):
			n.t.Error("device twin did not stop within 10 s")
		}
		n.cancel = nil
	}
	_ = n.store.Close()
}

func (n *node) socket() string { return filepath.Join(n.dir, "dmi", SocketName) }

// put stores an object as the hub client does when the cloud sends it.
func (n *node) put(key string, obj any) {
	n.t.Helper()
	_, data, err := wire.Marshal(obj)
	if err != nil {
		n.t.Fatal(err)
	}
	n.rv++
	if _, err := n.store.Apply(context.Background(), []store.Op{{Object: store.Object{Meta: store.Meta{Key: key, UID: "uid-" + key, ResourceVersion: strconv.Itoa(n.rv)}, Kind: "x", Data: data}}}); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) del(key string) {
	n.t.Helper()
	if _, err := n.store.Apply(context.Background(), []store.Op{{Delete: true, Object: store.Object{Meta: store.Meta{Key: key}}}}); err != nil {
		n.t.Fatal(err)
	}
}

// report returns the device's report waiting in the outbox.
func (n *node) report(ns, name string) *wire.DeviceReport {
	n.t.Helper()
	rs, err := n.store.Pending(context.Background(), 1000, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	for _, r := range rs {
		if r.Key == objkey.Key(objkey.Devices, ns, name) {
			if r.Kind != wire.ReportDevice {
				n.t.Fatalf("outbox kind %q", r.Kind)
			}
			var d wire.DeviceReport
			if err := json.Unmarshal(r.Payload, &d); err != nil {
				n.t.Fatal(err)
			}
			return &d
		}
	}
	return nil
}

func (n *node) waitReport(what string, cond func(*wire.DeviceReport) bool) *wire.DeviceReport {
	n.t.Helper()
	var last *wire.DeviceReport
	dmitest.Eventually(n.t, what, func() bool {
		last = n.report("ns", "thermo")
		return last != nil && cond(last)
	})
	return last
}

func virtualModel() *devicesv1beta1.DeviceModel {
	return &devicesv1beta1.DeviceModel{
		TypeMeta:   metav1.TypeMeta{APIVersion: "devices.kubeedge.io/v1beta1", Kind: "DeviceModel"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "thermostat", UID: "m1"},
		Spec: devicespec.DeviceModelSpec{Protocol: "virtual", Properties: []devicespec.ModelProperty{
			{Name: "temperature", Type: "FLOAT", AccessMode: devicespec.ReadOnly},
			{Name: "setpoint", Type: "FLOAT", AccessMode: devicespec.ReadWrite, Minimum: "5", Maximum: "35"},
		}},
	}
}

func virtualDevice(gen int64, setpoint string) *devicesv1beta1.Device {
	visitor := func(initial string) *devicespec.VisitorConfig {
		return &devicespec.VisitorConfig{ProtocolName: "virtual", ConfigData: &devicespec.CustomizedValue{Raw: json.RawMessage(`{"initial":` + initial + `}`)}}
	}
	return &devicesv1beta1.Device{
		TypeMeta:   metav1.TypeMeta{APIVersion: "devices.kubeedge.io/v1beta1", Kind: "Device"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "thermo", UID: types.UID("d1"), Generation: gen},
		Spec: devicespec.DeviceSpec{
			DeviceModelRef: devicespec.LocalObjectReference{Name: "thermostat"},
			NodeName:       "edge-1",
			Protocol:       devicespec.ProtocolConfig{ProtocolName: "virtual"},
			Properties: []devicespec.DeviceProperty{
				{Name: "temperature", CollectCycle: 50, ReportToCloud: true, Visitors: visitor("20.5")},
				{Name: "setpoint", CollectCycle: 50, ReportToCloud: true, Visitors: visitor("0"), Desired: &devicespec.TwinProperty{Value: setpoint}},
			},
		},
	}
}

// memDriver is a mapper driver over values in memory that counts
// connections and writes.
type memDriver struct {
	mu       sync.Mutex
	values   map[string]float64
	connects int
	writes   []string
}

func (d *memDriver) Connect(_ context.Context, dev *mapper.DeviceConfig) (mapper.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.connects++
	for _, p := range dev.Properties {
		if _, ok := d.values[p.Name]; !ok {
			v, _, _ := p.Visitor.Float("initial")
			d.values[p.Name] = v
		}
	}
	return memConn{d}, nil
}

func (d *memDriver) stats() (int, []string, float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.connects, append([]string(nil), d.writes...), d.values["setpoint"]
}

type memConn struct{ d *memDriver }

func (c memConn) Read(_ context.Context, p *mapper.PropertyConfig) (any, error) {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	return c.d.values[p.Name], nil
}

func (c memConn) Write(_ context.Context, p *mapper.PropertyConfig, v any) error {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	c.d.values[p.Name] = v.(float64)
	c.d.writes = append(c.d.writes, fmt.Sprintf("%s=%v", p.Name, v))
	return nil
}
func (memConn) Health(context.Context) error { return nil }
func (memConn) Close() error                 { return nil }

func startSDKMapper(t *testing.T, n *node, name string) *memDriver {
	t.Helper()
	drv := &memDriver{values: map[string]float64{}}
	m, err := mapper.New(mapper.Config{Name: name, Protocol: "virtual", EdgeSocket: n.socket(),
		Socket: filepath.Join(n.dir, "dmi", "mappers", name+".sock"), REST: mapper.RESTConfig{Address: "off"},
		Sinks: mapper.SinkConfig{Linger: -1}}, drv, mapper.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return drv
}

func twinOf(r *wire.DeviceReport, prop string) *devicespec.Twin {
	return devicespec.FindTwin(r.Twins, prop)
}

// A mapper built on the SDK registers, its readings become durable twins
// and device reports in the outbox, and a new desired value is written to
// the device without a reconnect and echoed as observedDesired.
func TestServiceWithSDKMapper(t *testing.T) {
	n := startNode(t, dmitest.ShortDir(t))
	// The device arrives before its model, and before any mapper.
	n.put("devices/ns/thermo", virtualDevice(1, "21.5"))
	r := n.waitReport("a report saying no mapper serves the device", func(r *wire.DeviceReport) bool {
		return !r.Mapper.Available && r.Mapper.Reason == devicespec.ReasonNoMapperForProtocol
	})
	if r.State != "unknown" || r.Generation != 1 || r.UID != "d1" {
		t.Fatalf("report without a mapper: %+v", r)
	}
	drv := startSDKMapper(t, n, "virtual")
	n.waitReport("the mapper bound", func(r *wire.DeviceReport) bool { return r.Mapper.Available && r.Mapper.Name == "virtual" })
	n.put("devicemodels/ns/thermostat", virtualModel())
	r = n.waitReport("readings", func(r *wire.DeviceReport) bool {
		tw := twinOf(r, "temperature")
		return tw != nil && tw.Reported.Value == "20.5" && twinOf(r, "setpoint") != nil && twinOf(r, "setpoint").ObservedDesired.Value == "21.5"
	})
	if r.State != "ok" || r.LastOnlineTime == "" {
		t.Fatalf("state %q lastOnline %q", r.State, r.LastOnlineTime)
	}
	connects, writes, _ := drv.stats()
	if connects != 1 || len(writes) != 1 || writes[0] != "setpoint=21.5" {
		t.Fatalf("after start: %d connects, writes %v", connects, writes)
	}

	// A new desired value: written, no reconnect, echoed.
	start := time.Now()
	n.put("devices/ns/thermo", virtualDevice(2, "23"))
	dmitest.Eventually(t, "the new setpoint on the device", func() bool { _, _, v := drv.stats(); return v == 23 })
	took := time.Since(start)
	n.waitReport("observedDesired 23", func(r *wire.DeviceReport) bool {
		tw := twinOf(r, "setpoint")
		return r.Generation == 2 && tw != nil && tw.ObservedDesired.Value == "23" && tw.Reported.Value == "23"
	})
	connects, writes, _ = drv.stats()
	if connects != 1 || len(writes) != 2 {
		t.Fatalf("a desired change must write one property without reconnecting: %d connects, writes %v", connects, writes)
	}
	if took > 2*time.Second {
		t.Fatalf("desired value took %v to reach the device", took)
	}
	// The twin is durable: a restart reports it again at once.
	n.restart()
	_ = n.waitReport("report after restart", func(r *wire.DeviceReport) bool { return twinOf(r, "setpoint") != nil })
	// Deleting the device removes its twin.
	n.del("devices/ns/thermo")
	dmitest.Eventually(t, "twin state removed", func() bool {
		_, ok, _ := n.store.GetState(context.Background(), stateTwinPrefix+"ns/thermo")
		return !ok
	})
}

// upstreamMapper is a mapper written against the DMI proto only, as
// KubeEdge's mapper-framework does: it registers once, serves
// DeviceMapperService on its socket and records every call.
type upstreamMapper struct {
	dmi.UnimplementedDeviceMapperServiceServer
	mu      sync.Mutex
	calls   []string
	devices map[string]*dmi.Device
}

func (u *upstreamMapper) record(s string, d *dmi.Device) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, s)
	if d != nil {
		u.devices[d.GetNamespace()+"/"+d.GetName()] = d
	}
}

func (u *upstreamMapper) RegisterDevice(_ context.Context, r *dmi.RegisterDeviceRequest) (*dmi.RegisterDeviceResponse, error) {
	u.record("RegisterDevice "+r.GetDevice().GetName(), r.GetDevice())
	return &dmi.RegisterDeviceResponse{DeviceName: r.GetDevice().GetName(), DeviceNamespace: r.GetDevice().GetNamespace()}, nil
}

func (u *upstreamMapper) UpdateDevice(_ context.Context, r *dmi.UpdateDeviceRequest) (*dmi.UpdateDeviceResponse, error) {
	u.record("UpdateDevice "+r.GetDevice().GetName(), r.GetDevice())
	return &dmi.UpdateDeviceResponse{}, nil
}

func (u *upstreamMapper) RemoveDevice(_ context.Context, r *dmi.RemoveDeviceRequest) (*dmi.RemoveDeviceResponse, error) {
	u.record("RemoveDevice "+r.GetDeviceName(), nil)
	return &dmi.RemoveDeviceResponse{}, nil
}

func (u *upstreamMapper) CreateDeviceModel(_ context.Context, r *dmi.CreateDeviceModelRequest) (*dmi.CreateDeviceModelResponse, error) {
	u.record("CreateDeviceModel "+r.GetModel().GetName(), nil)
	return &dmi.CreateDeviceModelResponse{}, nil
}

func (u *upstreamMapper) UpdateDeviceModel(_ context.Context, r *dmi.UpdateDeviceModelRequest) (*dmi.UpdateDeviceModelResponse, error) {
	u.record("UpdateDeviceModel "+r.GetModel().GetName(), nil)
	return &dmi.UpdateDeviceModelResponse{}, nil
}

func (u *upstreamMapper) snapshot() ([]string, map[string]*dmi.Device) {
	u.mu.Lock()
	defer u.mu.Unlock()
	devs := map[string]*dmi.Device{}
	for k, v := range u.devices {
		devs[k] = v
	}
	return append([]string(nil), u.calls...), devs
}

// An upstream mapper (DMI proto only) registers with withData, reports
// twins and states, and keeps receiving device changes after verge-edge
// restarts without registering again: the registry is durable.
func TestServiceWithUpstreamMapper(t *testing.T) {
	dir := dmitest.ShortDir(t)
	n := startNode(t, dir)
	n.put("devicemodels/ns/thermostat", virtualModel())
	n.put("devices/ns/thermo", virtualDevice(1, "21.5"))
	n.waitReport("the device known", func(*wire.DeviceReport) bool { return true })

	// The mapper's own DeviceMapperService, as upstream's framework serves it.
	sock := filepath.Join(dir, "upstream.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	um := &upstreamMapper{devices: map[string]*dmi.Device{}}
	srv := grpc.NewServer()
	dmi.RegisterDeviceMapperServiceServer(srv, um)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	call := func(f func(ctx context.Context, c dmi.DeviceManagerServiceClient) error) error {
		cc, err := grpc.NewClient("unix://"+n.socket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer func() { _ = cc.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return f(ctx, dmi.NewDeviceManagerServiceClient(cc))
	}
	var resp *dmi.MapperRegisterResponse
	if err := call(func(ctx context.Context, c dmi.DeviceManagerServiceClient) error {
		// Upstream's framework sends no name-less registration, but an
		// empty protocol is refused as upstream does.
		if _, err := c.MapperRegister(ctx, &dmi.MapperRegisterRequest{Mapper: &dmi.MapperInfo{Name: "x", Address: []byte(sock)}}); err == nil {
			return fmt.Errorf("a registration without protocol was accepted")
		}
		var err error
		resp, err = c.MapperRegister(ctx, &dmi.MapperRegisterRequest{WithData: true, Mapper: &dmi.MapperInfo{
			Name: "virtual-upstream", Version: "v1.23", ApiVersion: "v1beta1", Protocol: "virtual", Address: []byte(sock), State: "online"}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(resp.GetDeviceList()) != 1 || len(resp.GetModelList()) != 1 {
		t.Fatalf("registration answered %d devices, %d models", len(resp.GetDeviceList()), len(resp.GetModelList()))
	}
	d := resp.GetDeviceList()[0]
	cfg, err := d.GetSpec().GetProperties()[0].GetVisitors().GetConfigData().Map()
	if err != nil || cfg["initial"] != 20.5 || d.GetSpec().GetProtocol().GetProtocolName() != "virtual" || d.GetSpec().GetProperties()[1].GetDesired().GetValue() != "21.5" {
		t.Fatalf("device as the mapper receives it: %v, config %v (%v)", d, cfg, err)
	}

	// Twins and state as upstream's framework reports them.
	if err := call(func(ctx context.Context, c dmi.DeviceManagerServiceClient) error {
		if _, err := c.ReportDeviceStatus(ctx, &dmi.ReportDeviceStatusRequest{DeviceName: "thermo", DeviceNamespace: "ns", ReportedDevice: &dmi.DeviceStatus{}}); err == nil {
			return fmt.Errorf("a report without twins was accepted")
		}
		if _, err := c.ReportDeviceStatus(ctx, &dmi.ReportDeviceStatusRequest{DeviceName: "nope", DeviceNamespace: "ns", ReportedDevice: &dmi.DeviceStatus{Twins: []*dmi.Twin{reading("temperature", "1", "1", "")}}}); err == nil {
			return fmt.Errorf("a report about an unknown device was accepted")
		}
		if _, err := c.ReportDeviceStatus(ctx, &dmi.ReportDeviceStatusRequest{DeviceName: "thermo", DeviceNamespace: "ns", ReportedDevice: &dmi.DeviceStatus{Twins: []*dmi.Twin{
			{PropertyName: "temperature", Reported: &dmi.TwinProperty{Value: "19", Metadata: map[string]string{"timestamp": "1700000000000", "type": "float"}}, ObservedDesired: &dmi.TwinProperty{}},
		}}}); err != nil {
			return err
		}
		_, err := c.ReportDeviceStates(ctx, &dmi.ReportDeviceStatesRequest{DeviceName: "thermo", DeviceNamespace: "ns", State: "online"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Durable when the call returned.
	r := n.report("ns", "thermo")
	if r == nil || twinOf(r, "temperature") == nil || twinOf(r, "temperature").Reported.Value != "19" || r.State != "online" || r.Mapper.Name != "virtual-upstream" {
		t.Fatalf("report after the mapper's calls returned: %+v", r)
	}

	// verge-edge restarts; the mapper does not register again, yet a
	// desired change reaches it.
	n.restart()
	n.put("devices/ns/thermo", virtualDevice(2, "25"))
	dmitest.Eventually(t, "UpdateDevice with the new desired value", func() bool {
		_, devs := um.snapshot()
		props := devs["ns/thermo"].GetSpec().GetProperties()
		return len(props) == 2 && props[1].GetDesired().GetValue() == "25"
	})
	calls, _ := um.snapshot()
	for _, c := range calls {
		if c == "RegisterDevice thermo" || c == "CreateDeviceModel thermostat" {
			t.Fatalf("what the registration answered was pushed again: %v", calls)
		}
	}
	n.del("devices/ns/thermo")
	dmitest.Eventually(t, "RemoveDevice", func() bool {
		calls, _ := um.snapshot()
		return len(calls) > 0 && calls[len(calls)-1] == "RemoveDevice thermo"
	})
}

func TestDMIDirectoryPermissions(t *testing.T) {
	n := startNode(t, dmitest.ShortDir(t))
	fi, err := os.Stat(filepath.Dir(n.socket()))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o750 {
		t.Errorf("DMI directory mode %v, want 0750", fi.Mode().Perm())
	}
	fi, err = os.Stat(n.socket())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("DMI socket mode %v, want a 0660 socket", fi.Mode())
	}
}

func TestPeerCredentialsRefuseOtherUsers(t *testing.T) {
	p := newPeerCreds([]uint32{4242}, nil) // not us
	dir := dmitest.ShortDir(t)
	lis, err := net.Listen("unix", filepath.Join(dir, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() {
		c, err := net.Dial("unix", filepath.Join(dir, "s.sock"))
		if err == nil {
			defer func() { _ = c.Close() }()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	c, err := lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, _, err := p.ServerHandshake(c); err == nil {
		t.Fatal("a process of a user not allowed was accepted")
	}
	if _, info, err := newPeerCreds(nil, nil).ServerHandshake(c); err != nil || info.(peerInfo).Ucred.Pid != int32(os.Getpid()) {
		t.Fatalf("own process refused or misidentified: %v %+v", err, info)
	}
}
