package mapper

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper/sink"
)

type fakeEdgeStatus struct {
	mu   sync.Mutex
	reqs []*dmi.ReportDeviceStatusRequest
	fail map[string]error // device name → error
}

func (f *fakeEdgeStatus) ReportDeviceStatus(_ context.Context, req *dmi.ReportDeviceStatusRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail[req.GetDeviceName()]; err != nil {
		return err
	}
	f.reqs = append(f.reqs, req)
	return nil
}

// sent flattens accepted requests to "device/prop=value" in order.
func (f *fakeEdgeStatus) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.reqs {
		for _, tw := range r.GetReportedDevice().GetTwins() {
			out = append(out, fmt.Sprintf("%s/%s=%s", r.GetDeviceName(), tw.GetPropertyName(), tw.GetReported().GetValue()))
		}
	}
	return out
}

func smp(dev, prop, v, typ string) sink.Sample {
	return sink.Sample{Namespace: "default", Device: dev, Property: prop, Value: v, Type: typ, Timestamp: time.UnixMilli(1_700_000_000_123)}
}

func TestTwinSinkChangeOnlyWithDeadband(t *testing.T) {
	edge := &fakeEdgeStatus{}
	status := &dmi.DeviceStatus{ReportToCloud: true, ReportCycle: 10000}
	info := func(_, _, prop string) (*dmi.TwinProperty, float64, *dmi.DeviceStatus, bool) {
		switch prop {
		case "temp":
			return &dmi.TwinProperty{Value: "20"}, 0.5, status, true
		case "gone":
			return nil, 0, nil, false
		}
		return nil, 0, status, true
	}
	ts := newTwinSink(edge, info)
	ctx := context.Background()
	steps := []struct {
		batch []sink.Sample
		want  []string
	}{
		// First values always go; the latest per property within a batch wins.
		{[]sink.Sample{smp("a", "temp", "20.0", "double"), smp("a", "temp", "20.1", "double"), smp("a", "mode", "x", "string"), smp("a", "gone", "1", "int")}, []string{"a/temp=20.1", "a/mode=x"}},
		// Within the deadband and unchanged string: nothing is sent.
		{[]sink.Sample{smp("a", "temp", "20.5", "double"), smp("a", "mode", "x", "string")}, nil},
		// Beyond the deadband of the last value *sent* (20.1), not the last read.
		{[]sink.Sample{smp("a", "temp", "20.7", "double"), smp("a", "mode", "y", "string")}, []string{"a/temp=20.7", "a/mode=y"}},
	}
	for i, st := range steps {
		before := len(edge.sent())
		if err := ts.Write(ctx, st.batch); err != nil {
			t.Fatal(err)
		}
		got := edge.sent()[before:]
		if fmt.Sprint(got) != fmt.Sprint(st.want) && (len(got) != 0 || len(st.want) != 0) {
			t.Errorf("step %d sent %v, want %v", i, got, st.want)
		}
	}
	r := edge.reqs[0]
	tw := r.GetReportedDevice().GetTwins()[0]
	if r.GetDeviceNamespace() != "default" || !r.GetReportedDevice().GetReportToCloud() || r.GetReportedDevice().GetReportCycle() != 10000 ||
		tw.GetObservedDesired().GetValue() != "20" || tw.GetReported().GetMetadata()["timestamp"] != "1700000000123" || tw.GetReported().GetMetadata()["type"] != "double" {
		t.Errorf("request shape: %v", r)
	}
	// After forget (the edge restarted), unchanged values go out again.
	ts.forget()
	before := len(edge.sent())
	if err := ts.Write(ctx, []sink.Sample{smp("a", "mode", "y", "string")}); err != nil {
		t.Fatal(err)
	}
	if got := edge.sent()[before:]; fmt.Sprint(got) != "[a/mode=y]" {
		t.Errorf("after forget sent %v", got)
	}
}

func TestTwinSinkRetriesOnlyFailedDevices(t *testing.T) {
	edge := &fakeEdgeStatus{fail: map[string]error{"b": errors.New("too many requests")}}
	info := func(_, _, _ string) (*dmi.TwinProperty, float64, *dmi.DeviceStatus, bool) {
		return nil, 0, &dmi.DeviceStatus{}, true
	}
	ts := newTwinSink(edge, info)
	batch := []sink.Sample{smp("a", "p", "1", "int"), smp("b", "p", "2", "int")}
	err := ts.Write(context.Background(), batch)
	if err == nil || !errors.Is(err, edge.fail["b"]) {
		t.Fatalf("err = %v, want device b's error", err)
	}
	edge.mu.Lock()
	edge.fail = nil
	edge.mu.Unlock()
	// The fan-out retries the whole batch; a is not sent twice.
	if err := ts.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(edge.sent()); got != "[a/p=1 b/p=2]" {
		t.Errorf("sent %s", got)
	}
}
