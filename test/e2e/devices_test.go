package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

// devicesDemo is a `verge up --edge-nodes 1 --demo devices`.
type devicesDemo struct {
	dataDir string
	dyn     dynamic.Interface
	modbus  string // the simulator, host:port
	mqtt    string // edge-1's MQTT bus
	mapper  string // the mapper's REST API
}

func startDevicesDemo(t *testing.T) *devicesDemo {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "v")
	p := freePorts(t, 8)
	base, _ := strconv.Atoi(p[4])
	mqttBase, _ := strconv.Atoi(p[5])
	startUp(t, dataDir, "--edge-nodes", "1", "--demo", "devices", "--apiserver-port", p[0], "--cloud-ops-port", p[1],
		"--hub-port", p[2], "--registry-port", p[3], "--edge-ops-base-port", strconv.Itoa(base-1),
		"--mqtt-base-port", strconv.Itoa(mqttBase-1), "--demo-modbus-port", p[6], "--tunnel-port", p[7])
	rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dataDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &devicesDemo{dataDir: dataDir, dyn: dyn, modbus: "127.0.0.1:" + p[6], mqtt: "127.0.0.1:" + p[5], mapper: "127.0.0.1:7777"}
}

type twinJSON struct {
	PropertyName string `json:"propertyName"`
	Reported     struct {
		Value    string            `json:"value"`
		Metadata map[string]string `json:"metadata"`
	} `json:"reported"`
	ObservedDesired struct {
		Value string `json:"value"`
	} `json:"observedDesired"`
}

type deviceStatusJSON struct {
	Status struct {
		Twins []twinJSON `json:"twins"`
		State string     `json:"state"`
	} `json:"status"`
}

type conditionJSON struct {
	Type, Status, Reason, Message string
}

func (d *devicesDemo) get(t *testing.T, resource, name string, into any) error {
	t.Helper()
	u, err := d.dyn.Resource(schema.GroupVersionResource{Group: "devices.kubeedge.io", Version: "v1beta1", Resource: resource}).
		Namespace("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	b, _ := json.Marshal(u.Object)
	return json.Unmarshal(b, into)
}

// twin returns a property of thermostat-1's DeviceStatus (nil if absent).
func (d *devicesDemo) twin(t *testing.T, prop string) *twinJSON {
	t.Helper()
	var ds deviceStatusJSON
	if err := d.get(t, "devicestatuses", "thermostat-1", &ds); err != nil {
		return nil
	}
	for i := range ds.Status.Twins {
		if ds.Status.Twins[i].PropertyName == prop {
			return &ds.Status.Twins[i]
		}
	}
	return nil
}

func (d *devicesDemo) conditions(t *testing.T, device string) map[string]conditionJSON {
	t.Helper()
	var obj struct {
		Status struct {
			Conditions []conditionJSON `json:"conditions"`
		} `json:"status"`
	}
	out := map[string]conditionJSON{}
	if err := d.get(t, "devices", device, &obj); err != nil {
		return out
	}
	for _, c := range obj.Status.Conditions {
		out[c.Type] = c
	}
	return out
}

// holdingRegister reads one holding register from the simulator with a
// Modbus TCP request of our own (function 3), not through the mapper.
func holdingRegister(t *testing.T, addr string, reg uint16) uint16 {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	req := []byte{0, 1, 0, 0, 0, 6, 1, 3, byte(reg >> 8), byte(reg), 0, 1}
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, 11)
	if _, err := io.ReadFull(c, resp); err != nil {
		t.Fatal(err)
	}
	if resp[7] != 3 || resp[8] != 2 {
		t.Fatalf("modbus answer % x", resp)
	}
	return binary.BigEndian.Uint16(resp[9:11])
}

// poll calls cond every 50 ms until it holds or timeout passes, and
// returns how long it took.
func poll(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	last := ""
	for time.Since(start) < timeout {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		last = state
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, last)
	return 0
}

func mapperMetric(t *testing.T, d *devicesDemo, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + d.mapper + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, series)), 64)
			return v
		}
	}
	t.Fatalf("metric %s not served by the mapper", series)
	return 0
}

// deviceWrite writes a property through the mapper's REST API: a change
// made on the device, not a desired value.
func deviceWrite(t *testing.T, d *devicesDemo, prop, value string) {
	t.Helper()
	resp, err := http.Post("http://"+d.mapper+"/api/v1/devicemethod/default/thermostat-1/Heat/"+prop, "application/json", strings.NewReader(`{"value":"`+value+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("writing %s=%s on the device: %d %s", prop, value, resp.StatusCode, b)
	}
}

// cloudPID finds the verge-cloud that `verge up` runs from dataDir.
func cloudPID(t *testing.T, dataDir string) int {
	t.Helper()
	var pids []int
	for _, p := range processesMentioning(t, dataDir) {
		pid, line, _ := strings.Cut(p, ": ")
		if f := strings.Fields(line); len(f) > 0 && filepath.Base(f[0]) == "verge-cloud" {
			n, _ := strconv.Atoi(pid)
			pids = append(pids, n)
		}
	}
	if len(pids) != 1 {
		t.Fatalf("want one verge-cloud of %s, found %v", dataDir, pids)
	}
	return pids[0]
}

func TestDevicesDemo(t *testing.T) {
	d := startDevicesDemo(t)

	// The demo's Device reaches its mapper and readings reach the cloud.
	poll(t, 2*time.Minute, "live readings of thermostat-1", func() (bool, string) {
		tw := d.twin(t, "temperature")
		return tw != nil && tw.Reported.Value != "", fmt.Sprintf("%+v", tw)
	})
	out := kubectl(t, d.dataDir, "get", "devicestatus", "thermostat-1")
	if !strings.Contains(out, "thermostat-1") || !strings.Contains(out, "edge-1") || !strings.Contains(out, "ok") {
		t.Fatalf("kubectl get devicestatus:\n%s", out)
	}

	t.Run("readings reach the DeviceStatus within 2x collectCycle", func(t *testing.T) {
		// Change the value on the device; setpoint is read every 1000 ms.
		for i, v := range []string{"24", "26", "22.5"} {
			deviceWrite(t, d, "setpoint", v)
			took := poll(t, 10*time.Second, "setpoint "+v+" in the DeviceStatus", func() (bool, string) {
				tw := d.twin(t, "setpoint")
				return tw != nil && tw.Reported.Value == v, fmt.Sprintf("%+v", tw)
			})
			t.Logf("reading %d: device → DeviceStatus in %v", i, took.Round(time.Millisecond))
			if took > 2*time.Second {
				t.Errorf("reading took %v to reach the DeviceStatus: more than 2 × collectCycle (1 s)", took)
			}
		}
	})

	t.Run("a desired value is written without a reconnect and echoed", func(t *testing.T) {
		connects := mapperMetric(t, d, "verge_mapper_modbus_connects_total")
		kubectl(t, d.dataDir, "patch", "device", "thermostat-1", "--type=json", "-p", `[{"op":"replace","path":"/spec/properties/2/desired/value","value":"23"}]`)
		took := poll(t, 5*time.Second, "holding register 1 = 230", func() (bool, string) {
			v := holdingRegister(t, d.modbus, 1)
			return v == 230, strconv.Itoa(int(v))
		})
		t.Logf("desired value on the simulator's register in %v", took.Round(time.Millisecond))
		if took > 2*time.Second {
			t.Errorf("desired value took %v to reach the device (want < 2 s)", took)
		}
		if got := mapperMetric(t, d, "verge_mapper_modbus_connects_total"); got != connects {
			t.Errorf("the mapper reconnected to the device (%v → %v connects)", connects, got)
		}
		poll(t, 10*time.Second, "observedDesired 23", func() (bool, string) {
			tw := d.twin(t, "setpoint")
			return tw != nil && tw.ObservedDesired.Value == "23" && tw.Reported.Value == "23", fmt.Sprintf("%+v", tw)
		})
	})

	t.Run("cloud down: readings keep flowing locally, the twin catches up", func(t *testing.T) {
		// An app on edge-1's MQTT bus.
		got := make(chan string, 256)
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + d.mqtt).SetClientID("e2e-app"))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("MQTT bus of edge-1 at %s: %v", d.mqtt, tok.Error())
		}
		defer c.Disconnect(100)
		var mu sync.Mutex
		if tok := c.Subscribe("$hw/events/device/default/thermostat-1/twin/update/result", 1, func(_ paho.Client, m paho.Message) {
			mu.Lock()
			defer mu.Unlock()
			var msg struct {
				Twin map[string]struct {
					Actual *struct{ Value string } `json:"actual"`
				} `json:"twin"`
			}
			if json.Unmarshal(m.Payload(), &msg) == nil {
				if sp, ok := msg.Twin["setpoint"]; ok && sp.Actual != nil {
					select {
					case got <- sp.Actual.Value:
					default:
					}
				}
			}
		}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}

		cloud := cloudPID(t, d.dataDir)
		if err := syscall.Kill(cloud, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		resumed := false
		defer func() {
			if !resumed {
				_ = syscall.Kill(cloud, syscall.SIGCONT)
			}
		}()
		for _, v := range []string{"27", "28.5"} {
			deviceWrite(t, d, "setpoint", v)
			deadline := time.After(5 * time.Second)
			for seen := false; !seen; {
				select {
				case a := <-got:
					seen = a == v
				case <-deadline:
					t.Fatalf("with the cloud down, reading %s did not reach the MQTT bus", v)
				}
			}
		}
		if tw := d.twin(t, "setpoint"); tw == nil || tw.Reported.Value == "28.5" {
			t.Fatalf("the cloud was frozen, yet the DeviceStatus already shows %+v", tw)
		}
		if err := syscall.Kill(cloud, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		resumed = true
		took := poll(t, 2*time.Minute, "the latest reading in the DeviceStatus after the cloud is back", func() (bool, string) {
			tw := d.twin(t, "setpoint")
			return tw != nil && tw.Reported.Value == "28.5", fmt.Sprintf("%+v", tw)
		})
		t.Logf("twin caught up %v after the cloud came back", took.Round(time.Millisecond))
	})

	t.Run("an upstream-format Device applies unchanged", func(t *testing.T) {
		out := kubectl(t, d.dataDir, "apply", "-f", filepath.Join("..", "..", "examples", "devices", "upstream", "devicemodel.yaml"),
			"-f", filepath.Join("..", "..", "examples", "devices", "upstream", "device.yaml"))
		if !strings.Contains(out, "beta1-device created") {
			t.Fatalf("apply: %s", out)
		}
		// Its node does not exist here; the Device says so, and has its
		// DeviceStatus.
		poll(t, time.Minute, "NodeNotFound on beta1-device", func() (bool, string) {
			c := d.conditions(t, "beta1-device")
			m := c["MapperAvailable"]
			return m.Reason == "NodeNotFound" && strings.Contains(m.Message, "worker-node1") && c["ModelResolved"].Status == "True", fmt.Sprintf("%+v", c)
		})
		var ds deviceStatusJSON
		poll(t, time.Minute, "beta1-device's DeviceStatus", func() (bool, string) {
			err := d.get(t, "devicestatuses", "beta1-device", &ds)
			return err == nil, fmt.Sprint(err)
		})
	})

	t.Run("no mapper for the protocol is a condition", func(t *testing.T) {
		manifest := `
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: bacnet-sensor}
spec:
  protocol: bacnet
  properties: [{name: level, type: INT, accessMode: ReadOnly}]
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: tank-1}
spec:
  deviceModelRef: {name: bacnet-sensor}
  nodeName: edge-1
  protocol: {protocolName: bacnet}
  properties: [{name: level, reportToCloud: true}]
`
		cmd := exec.Command(bin.k8s.Kubectl, "--kubeconfig", filepath.Join(d.dataDir, "kubeconfig"), "apply", "-f", "-")
		cmd.Stdin = strings.NewReader(manifest)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apply: %v\n%s", err, out)
		}
		poll(t, time.Minute, "NoMapperForProtocol on tank-1", func() (bool, string) {
			c := d.conditions(t, "tank-1")
			m := c["MapperAvailable"]
			return m.Status == "False" && m.Reason == "NoMapperForProtocol" && strings.Contains(m.Message, "no mapper for protocol bacnet is registered on node edge-1") &&
				c["Ready"].Reason == "NoMapperForProtocol", fmt.Sprintf("%+v", c)
		})
		var ds deviceStatusJSON
		poll(t, time.Minute, "tank-1's DeviceStatus in state unknown", func() (bool, string) {
			err := d.get(t, "devicestatuses", "tank-1", &ds)
			return err == nil && ds.Status.State == "unknown", fmt.Sprintf("%v %+v", err, ds.Status)
		})
		out := kubectl(t, d.dataDir, "get", "device", "tank-1", "-o", "jsonpath={.status.conditions[?(@.type==\"MapperAvailable\")].message}")
		t.Logf("tank-1 MapperAvailable: %s", out)
	})
}
