package devices_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	devicesv1beta1 "github.com/verge-edge/verge/api/devices/v1beta1"
	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
	"github.com/verge-edge/verge/internal/cloud/bootstraptoken"
	"github.com/verge-edge/verge/internal/cloudtest"
	"github.com/verge-edge/verge/internal/edge/agent"
	"github.com/verge-edge/verge/internal/edge/devicetwin"
	"github.com/verge-edge/verge/internal/edge/hubclient"
	"github.com/verge-edge/verge/internal/edge/identity"
	"github.com/verge-edge/verge/internal/edge/store"
	"github.com/verge-edge/verge/internal/pki"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
	"github.com/verge-edge/verge/internal/protocol/wire"
	"github.com/verge-edge/verge/internal/testenv"
	"github.com/verge-edge/verge/pkg/mapper"
	"github.com/verge-edge/verge/pkg/mapper/dmitest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var gvr = func(r string) schema.GroupVersionResource {
	return devicesv1beta1.SchemeGroupVersion.WithResource(r)
}

// edge is a joined node running the hub client and the device twin, as
// verge-edge composes them (without pods).
type edge struct {
	name   string
	socket string
	twin   *devicetwin.Service
}

func startEdge(t testing.TB, c *cloudtest.Cloud) *edge {
	t.Helper()
	ctx := context.Background()
	name := c.UniqueNode("edge")
	tok, err := bootstraptoken.Create(ctx, c.Kube.CoreV1().Secrets(bootstraptoken.SecretNamespace), pki.Hash(c.CA.Cert), bootstraptoken.Options{TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := identity.Join(ctx, c.Addr, tok, name)
	if err != nil {
		t.Fatal(err)
	}
	dir := dmitest.ShortDir(t)
	if err := creds.Save(filepath.Join(dir, "pki")); err != nil {
		t.Fatal(err)
	}
	mgr, err := identity.NewManager(filepath.Join(dir, "pki"), c.Addr, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "store.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", name)
	link := hubclient.New(hubclient.Config{Address: c.Addr, Credentials: mgr.TLS, Store: agent.LinkStore(st), AgentVersion: "test", Logger: log, MinBackoff: 100 * time.Millisecond})
	twin, err := devicetwin.New(devicetwin.Config{NodeName: name, SocketDir: filepath.Join(dir, "dmi"), FlushInterval: 50 * time.Millisecond, Kick: link.Kick, Logger: log}, st)
	if err != nil {
		t.Fatal(err)
	}
	// The node's status, as verge-edge's node reporter sends it.
	_, status, err := wire.Marshal(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Enqueue(ctx, "nodes//"+name, wire.ReportNodeStatus, 0, status); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = link.Start(cctx) }()
	go func() { defer wg.Done(); _ = twin.Start(cctx) }()
	t.Cleanup(func() { cancel(); wg.Wait(); _ = st.Close() })
	return &edge{name: name, socket: filepath.Join(dir, "dmi", devicetwin.SocketName), twin: twin}
}

// counter is a mapper driver whose properties count up on every read.
type counter struct {
	mu       sync.Mutex
	values   map[string]float64
	connects int
}

func (d *counter) Connect(context.Context, *mapper.DeviceConfig) (mapper.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.connects++
	return counterConn{d}, nil
}

type counterConn struct{ d *counter }

func (c counterConn) Read(_ context.Context, p *mapper.PropertyConfig) (any, error) {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	if p.AccessMode == mapper.ReadWrite {
		return c.d.values[p.Name], nil
	}
	c.d.values[p.Name]++
	return c.d.values[p.Name], nil
}

func (c counterConn) Write(_ context.Context, p *mapper.PropertyConfig, v any) error {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	c.d.values[p.Name] = v.(float64)
	return nil
}
func (counterConn) Health(context.Context) error { return nil }
func (counterConn) Close() error                 { return nil }

func startMapper(t testing.TB, e *edge) *counter {
	t.Helper()
	drv := &counter{values: map[string]float64{}}
	m, err := mapper.New(mapper.Config{Name: "counter", Protocol: "counter", EdgeSocket: e.socket,
		Socket: filepath.Join(filepath.Dir(e.socket), "mappers", "counter.sock"), REST: mapper.RESTConfig{Address: "off"}}, drv, mapper.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return drv
}

func apply(t testing.TB, dyn dynamic.Interface, ns, resource, manifest string) {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal([]byte(manifest), &obj); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: obj}
	if _, err := dyn.Resource(gvr(resource)).Namespace(ns).Apply(context.Background(), u.GetName(), u, metav1.ApplyOptions{FieldManager: "test", Force: true}); err != nil {
		t.Fatalf("applying %s: %v", u.GetName(), err)
	}
}

func get(t testing.TB, dyn dynamic.Interface, ns, resource, name string, into any) error {
	t.Helper()
	u, err := dyn.Resource(gvr(resource)).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	b, _ := json.Marshal(u.Object)
	return json.Unmarshal(b, into)
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
}

func condition(d *devicesv1beta1.Device, typ string) string {
	c := meta.FindStatusCondition(d.Status.Conditions, typ)
	if c == nil {
		return "missing"
	}
	return string(c.Status) + "/" + c.Reason + ": " + c.Message
}

const model = `{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"DeviceModel","metadata":{"name":"counter"},
 "spec":{"protocol":"counter","properties":[
  {"name":"ticks","type":"INT","accessMode":"ReadOnly"},
  {"name":"setpoint","type":"FLOAT","accessMode":"ReadWrite","minimum":"0","maximum":"100"}]}}`

func device(name, node, model, protocol, setpoint string) string {
	return fmt.Sprintf(`{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","metadata":{"name":%q},
 "spec":{"deviceModelRef":{"name":%q},"nodeName":%q,"protocol":{"protocolName":%q},"properties":[
  {"name":"ticks","collectCycle":100,"reportToCloud":true},
  {"name":"setpoint","collectCycle":100,"reportToCloud":true,"desired":{"value":%q}}]}}`, name, model, node, protocol, setpoint)
}

// The real control plane, verge-cloud's hub and device controller, an edge
// with the device twin, and a mapper on the SDK: readings reach the
// DeviceStatus, desired values the device, problems the conditions.
func TestDevicesThroughTheCloud(t *testing.T) {
	c := cloudtest.Start(t, cloudtest.Options{})
	dyn, err := dynamic.NewForConfig(testenv.Start(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ns := c.Namespace
	e := startEdge(t, c)
	drv := startMapper(t, e)

	apply(t, dyn, ns, "devicemodels", model)
	apply(t, dyn, ns, "devices", device("c1", e.name, "counter", "counter", "42"))
	// Unknown model, and a protocol no mapper serves.
	apply(t, dyn, ns, "devices", device("orphan", e.name, "nosuchmodel", "counter", "1"))
	apply(t, dyn, ns, "devices", device("bacnet", e.name, "counter", "bacnet", "1"))

	// Device → DeviceStatus (owned) with live readings; Ready.
	var ds devicesv1beta1.DeviceStatus
	waitFor(t, 60*time.Second, "DeviceStatus c1 with readings", func() (bool, string) {
		if err := get(t, dyn, ns, "devicestatuses", "c1", &ds); err != nil {
			return false, err.Error()
		}
		tw := devicespec.FindTwin(ds.Status.Twins, "ticks")
		sp := devicespec.FindTwin(ds.Status.Twins, "setpoint")
		return tw != nil && tw.Reported.Value != "" && sp != nil && sp.ObservedDesired.Value == "42" && ds.Status.State == "ok", fmt.Sprintf("%+v", ds.Status)
	})
	if len(ds.OwnerReferences) != 1 || ds.OwnerReferences[0].Kind != "Device" || ds.Status.NodeName != e.name || ds.Status.LastOnlineTime == "" {
		t.Fatalf("DeviceStatus: owners %+v, status %+v", ds.OwnerReferences, ds.Status)
	}
	first := devicespec.FindTwin(ds.Status.Twins, "ticks").Reported.Value
	waitFor(t, 10*time.Second, "readings to move", func() (bool, string) {
		_ = get(t, dyn, ns, "devicestatuses", "c1", &ds)
		v := devicespec.FindTwin(ds.Status.Twins, "ticks").Reported.Value
		return v != first, v
	})
	var d devicesv1beta1.Device
	waitFor(t, 30*time.Second, "Device c1 Ready", func() (bool, string) {
		_ = get(t, dyn, ns, "devices", "c1", &d)
		return strings.HasPrefix(condition(&d, "Ready"), "True/") && d.Status.State == "ok" && d.Status.ObservedGeneration == d.Generation, fmt.Sprintf("%+v", d.Status)
	})

	// A new desired value reaches the device without a reconnect and is
	// echoed; Synced follows the new generation.
	apply(t, dyn, ns, "devices", device("c1", e.name, "counter", "counter", "17"))
	waitFor(t, 30*time.Second, "observedDesired 17", func() (bool, string) {
		_ = get(t, dyn, ns, "devicestatuses", "c1", &ds)
		sp := devicespec.FindTwin(ds.Status.Twins, "setpoint")
		return sp != nil && sp.ObservedDesired.Value == "17" && sp.Reported.Value == "17", fmt.Sprintf("%+v", sp)
	})
	drv.mu.Lock()
	connects := drv.connects
	drv.mu.Unlock()
	if connects != 1 {
		t.Fatalf("%d connects: a desired change must not reconnect the device", connects)
	}
	waitFor(t, 30*time.Second, "Synced at generation 2", func() (bool, string) {
		_ = get(t, dyn, ns, "devices", "c1", &d)
		return d.Generation == 2 && strings.HasPrefix(condition(&d, "Synced"), "True/"), condition(&d, "Synced")
	})

	// A desired value set on the node (an app on the MQTT bus) reaches the
	// device and the Device's spec.
	if _, err := e.twin.UpdateTwin(ns, "c1", "ev-1", map[string]devicetwin.TwinUpdate{"setpoint": {Expected: ptrTo("55")}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the node's desired value in the Device spec", func() (bool, string) {
		_ = get(t, dyn, ns, "devices", "c1", &d)
		p := d.Spec.Property("setpoint")
		return p != nil && p.Desired != nil && p.Desired.Value == "55", fmt.Sprintf("%+v", p)
	})
	waitFor(t, 30*time.Second, "observedDesired 55", func() (bool, string) {
		_ = get(t, dyn, ns, "devicestatuses", "c1", &ds)
		sp := devicespec.FindTwin(ds.Status.Twins, "setpoint")
		return sp != nil && sp.ObservedDesired.Value == "55" && sp.Reported.Value == "55", fmt.Sprintf("%+v", sp)
	})
	if _, err := e.twin.UpdateTwin(ns, "c1", "ev-2", map[string]devicetwin.TwinUpdate{"setpoint": {Expected: ptrTo("500")}}); err == nil || !strings.Contains(err.Error(), "maximum") {
		t.Fatalf("an out-of-range desired value from the node: %v", err)
	}

	// Problems as conditions.
	waitFor(t, 30*time.Second, "ModelNotFound on orphan", func() (bool, string) {
		_ = get(t, dyn, ns, "devices", "orphan", &d)
		c := condition(&d, "ModelResolved")
		return strings.HasPrefix(c, "False/ModelNotFound: DeviceModel nosuchmodel not found"), c
	})
	waitFor(t, 30*time.Second, "NoMapperForProtocol on bacnet", func() (bool, string) {
		_ = get(t, dyn, ns, "devices", "bacnet", &d)
		c := condition(&d, "MapperAvailable")
		return strings.HasPrefix(c, "False/NoMapperForProtocol: no mapper for protocol bacnet is registered on node "+e.name), c
	})
	waitFor(t, 30*time.Second, "DeviceStatus of bacnet with state unknown", func() (bool, string) {
		err := get(t, dyn, ns, "devicestatuses", "bacnet", &ds)
		return err == nil && ds.Status.State == "unknown", fmt.Sprintf("%v %+v", err, ds.Status)
	})

	// A node may report only its own devices.
	outcome, msg, _ := c.Devices.ApplyDeviceReport(context.Background(), "some-other-node", &wire.DeviceReport{Namespace: ns, Name: "c1", State: "ok"})
	if outcome != syncpb.Outcome_OUTCOME_REJECTED || !strings.Contains(msg, "bound to") {
		t.Fatalf("report from another node: %v %q", outcome, msg)
	}

	// Coalescing: the device reports every 100 ms, its DeviceStatus is
	// written at most every 500 ms.
	written := c.Metric(t, "verge_devices_reports_total", "written")
	coalesced := c.Metric(t, "verge_devices_reports_total", "coalesced")
	time.Sleep(3 * time.Second)
	w := c.Metric(t, "verge_devices_reports_total", "written") - written
	co := c.Metric(t, "verge_devices_reports_total", "coalesced") - coalesced
	// Three devices; only c1 changes often (about 10 readings a second).
	if w > 3*(3/0.5+1) || co == 0 {
		t.Fatalf("in 3 s: %v DeviceStatus writes, %v coalesced reports", w, co)
	}
	t.Logf("in 3 s: %v DeviceStatus writes, %v reports coalesced", w, co)

	// Deleting the Device deletes its DeviceStatus (garbage collection).
	if err := dyn.Resource(gvr("devices")).Namespace(ns).Delete(context.Background(), "c1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "DeviceStatus c1 gone", func() (bool, string) {
		err := get(t, dyn, ns, "devicestatuses", "c1", &ds)
		return err != nil && strings.Contains(err.Error(), "not found"), fmt.Sprint(err)
	})
}

func ptrTo(s string) *string { return &s }
