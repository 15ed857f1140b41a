package mapper

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper/fanout"
)

type stateLog struct {
	mu     sync.Mutex
	states []string // "state: reason"
}

func (s *stateLog) report(_, _, state, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states = append(s.states, state+": "+reason)
}

func (s *stateLog) last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.states) == 0 {
		return ""
	}
	return s.states[len(s.states)-1]
}

type harness struct {
	t      *testing.T
	clock  *clocktesting.FakeClock
	driver *fakeDriver
	sink   *memSink
	states *stateLog
	rt     *runtime
	runner *deviceRunner
	cancel context.CancelFunc
}

func newHarness(t *testing.T, dev *dmi.Device, model *dmi.DeviceModel) *harness {
	t.Helper()
	d := newFakeDriver()
	d.set("temperature", float32(21.5))
	d.set("setpoint", int64(0))
	d.set("power", true)
	return newHarnessFull(t, d, dev, model)
}

func newHarnessFull(t *testing.T, d *fakeDriver, dev *dmi.Device, model *dmi.DeviceModel) *harness {
	t.Helper()
	h := &harness{t: t, clock: clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0)), driver: d, sink: &memSink{}, states: &stateLog{}}
	cfg := Config{Name: "test", Protocol: "fake"}.WithDefaults()
	h.rt = &runtime{
		cfg: cfg, driver: d, clock: h.clock, log: testLogger(t), metrics: newCoreMetrics(nil),
		routes: &router{twin: fanout.Start("mem", h.sink, fanout.Options{}), factory: noSinkFactory, shared: map[string]*sharedWorker{}},
		states: h.states.report, jitter: func() float64 { return 1 },
	}
	h.runner = newDeviceRunner(h.rt, resolve(dev, model, cfg))
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.runner.start(ctx)
	t.Cleanup(func() {
		h.cancel()
		h.runner.stop()
		_ = h.rt.routes.twin.Stop(context.Background())
	})
	return h
}

// waitWaiters waits until n timers are pending on the fake clock: every
// sampler and the supervisor are idle.
func (h *harness) waitWaiters(n int) {
	h.t.Helper()
	eventually(h.t, fmt.Sprintf("%d timers pending", n), func() bool { return h.clock.Waiters() == n })
}

func (h *harness) update(dev *dmi.Device) {
	h.runner.update(resolve(dev, testModel(), h.rt.cfg))
}

func TestSamplerReadsOncePerCycle(t *testing.T) {
	h := newHarness(t, testDevice(t, 1000), testModel())
	h.waitWaiters(4) // 3 samplers + health check
	for cycle := 1; cycle <= 3; cycle++ {
		h.clock.Step(time.Second)
		eventually(t, fmt.Sprintf("cycle %d reads", cycle), func() bool {
			return h.driver.readCount("temperature") == cycle && h.driver.readCount("setpoint") == cycle && h.driver.readCount("power") == cycle
		})
		h.waitWaiters(4)
	}
	eventually(t, "samples in the sink", func() bool { return len(h.sink.values("temperature")) == 3 })
	if got := h.sink.values("temperature"); strings.Join(got, ",") != "21.5,21.5,21.5" {
		t.Errorf("temperature samples %v", got)
	}
	// Half a cycle later nothing more is read.
	h.clock.Step(0)
	if n := h.driver.readCount("temperature"); n != 3 {
		t.Errorf("reads after 3 cycles = %d", n)
	}
	if got := h.states.last(); got != "ok: " {
		t.Errorf("state %q, want ok", got)
	}
}

func TestSlowReadSkipsMissedTicks(t *testing.T) {
	prev := time.Unix(100, 0)
	next, skipped := nextTick(prev, time.Second, prev.Add(3500*time.Millisecond))
	if !next.Equal(prev.Add(4*time.Second)) || skipped != 3 {
		t.Errorf("nextTick after a 3.5 s overrun = %v (+%v), skipped %d; want +4s, 3", next, next.Sub(prev), skipped)
	}
	next, skipped = nextTick(prev, time.Second, prev.Add(200*time.Millisecond))
	if !next.Equal(prev.Add(time.Second)) || skipped != 0 {
		t.Errorf("nextTick on time = +%v, skipped %d", next.Sub(prev), skipped)
	}
	// Phases are stable and within the cycle.
	if a, b := phase("default/d", "p", time.Second), phase("default/d", "p", time.Second); a != b || a >= time.Second {
		t.Errorf("phase %v, %v", a, b)
	}
}

func TestDesiredValueWrittenWithoutReconnect(t *testing.T) {
	dev := testDevice(t, 1000)
	h := newHarness(t, dev, testModel())
	h.waitWaiters(4)
	h.clock.Step(time.Second)
	eventually(t, "initial desired write", func() bool {
		_, _, w := h.driver.counts()
		return len(w) == 1
	})
	if _, _, w := h.driver.counts(); w[0] != "setpoint=30" {
		t.Fatalf("initial writes %v, want setpoint=30", w)
	}
	h.waitWaiters(4)

	// Only the desired value changes: one write, at once, no reconnect.
	dev2 := clone(dev)
	dev2.Spec.Properties[1].Desired.Value = "42"
	h.update(dev2)
	eventually(t, "desired write", func() bool {
		_, _, w := h.driver.counts()
		return len(w) == 2
	})
	connects, closes, writes := h.driver.counts()
	if writes[1] != "setpoint=42" || connects != 1 || closes != 0 {
		t.Errorf("after desired change: writes %v, connects %d, closes %d; want setpoint=42 and no reconnect", writes, connects, closes)
	}
	eventually(t, "observed desired", func() bool {
		obs, _, _, ok := twinInfoOf(h, "setpoint")
		return ok && obs.GetValue() == "42"
	})
	eventually(t, "new value sampled", func() bool {
		v := h.sink.values("setpoint")
		return len(v) > 0 && v[len(v)-1] == "42"
	})

	// Out of range: nothing written, the reason is visible.
	dev3 := clone(dev2)
	dev3.Spec.Properties[1].Desired.Value = "500"
	h.update(dev3)
	eventually(t, "desired error", func() bool {
		st := h.runner.status()
		return strings.Contains(st.Properties[1].DesiredError, "above the maximum 100")
	})
	if _, _, w := h.driver.counts(); len(w) != 2 {
		t.Errorf("an out-of-range desired value reached the device: %v", w)
	}
	// A ReadOnly property's desired value is never written.
	dev4 := clone(dev3)
	dev4.Spec.Properties[0].Desired = &dmi.TwinProperty{Value: "99"}
	h.update(dev4)
	eventually(t, "read-only desired refused", func() bool {
		return strings.Contains(h.runner.status().Properties[0].DesiredError, "ReadOnly")
	})
	if _, _, w := h.driver.counts(); len(w) != 2 {
		t.Errorf("a ReadOnly desired value reached the device: %v", w)
	}
}

func twinInfoOf(h *harness, prop string) (*dmi.TwinProperty, float64, *dmi.DeviceStatus, bool) {
	r := h.runner
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.spec.byName[prop]
	if !ok {
		return nil, 0, nil, false
	}
	var obs *dmi.TwinProperty
	if st := r.props[prop]; st != nil {
		obs = st.observed
	}
	return obs, p.deadband, r.spec.raw.GetStatus(), true
}

func TestSpecChangesReconnectOnlyWhenNeeded(t *testing.T) {
	dev := testDevice(t, 1000)
	h := newHarness(t, dev, testModel())
	h.waitWaiters(4)

	// A new collect cycle restarts samplers but keeps the connection.
	dev2 := clone(dev)
	dev2.Spec.Properties[0].CollectCycle = 2000
	h.update(dev2)
	h.waitWaiters(4)
	if c, cl, _ := h.driver.counts(); c != 1 || cl != 0 {
		t.Errorf("cycle change: connects %d closes %d, want 1 and 0", c, cl)
	}
	// A visitor change reconnects: the new Conn opens before the old closes.
	dev3 := clone(dev2)
	dev3.Spec.Properties[0].Visitors = visitor(t, map[string]any{"addr": 7})
	h.update(dev3)
	eventually(t, "reconnect", func() bool {
		c, cl, _ := h.driver.counts()
		return c == 2 && cl == 1
	})
}

func TestBadConfigMakesDeviceUnhealthyUntilFixed(t *testing.T) {
	dev := testDevice(t, 1000)
	cv, _ := dmi.NewCustomizedValue(map[string]any{"mode": "broken"})
	dev.Spec.Protocol.ConfigData = cv
	h := newHarness(t, dev, testModel())
	eventually(t, "unhealthy", func() bool {
		return h.states.last() == `unhealthy: mode "broken" is not supported: use tcp`
	})
	h.waitWaiters(1)
	h.clock.Step(time.Minute) // not retried: the spec has not changed
	h.waitWaiters(1)
	if c, _, _ := h.driver.counts(); c != 1 {
		t.Errorf("a refused configuration was retried: %d connects", c)
	}
	h.update(testDevice(t, 1000))
	eventually(t, "ok after the fix", func() bool { return h.states.last() == "ok: " })
}

func TestBadRegisterMakesDeviceUnhealthyOthersKeepSampling(t *testing.T) {
	dev := testDevice(t, 1000)
	dev.Spec.Properties[0].Visitors = visitor(t, map[string]any{"fail": true})
	h := newHarness(t, dev, testModel())
	h.waitWaiters(4)
	h.clock.Step(time.Second)
	eventually(t, "unhealthy", func() bool {
		return h.states.last() == "unhealthy: property temperature: register 9999 does not exist on the device"
	})
	eventually(t, "other properties sampled", func() bool { return len(h.sink.values("power")) == 1 })
	if st := h.runner.status(); st.State != StateUnhealthy || !strings.Contains(st.Properties[0].LastError, "9999") {
		t.Errorf("status %+v", st)
	}
}

func TestConnectRetriesWithBackoffAndHealthTracksDevice(t *testing.T) {
	d := newFakeDriver()
	d.set("temperature", 1.0)
	d.set("setpoint", int64(1))
	d.set("power", false)
	d.connectErr = errors.New("connection refused")
	hh := newHarnessFull(t, d, testDevice(t, 1000), testModel())
	eventually(t, "disconnected", func() bool { return hh.states.last() == "disconnected: connection refused" })
	hh.waitWaiters(1)
	d.mu.Lock()
	d.connectErr = nil
	d.mu.Unlock()
	hh.clock.Step(time.Second) // first backoff: 1 s
	eventually(t, "ok", func() bool { return hh.states.last() == "ok: " })
	hh.waitWaiters(4)
	d.mu.Lock()
	d.healthErr = errors.New("no route to device")
	d.mu.Unlock()
	hh.clock.Step(hh.rt.cfg.HealthInterval)
	eventually(t, "disconnected by health", func() bool { return hh.states.last() == "disconnected: no route to device" })
}
