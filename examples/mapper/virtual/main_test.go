package main

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper"
	"github.com/verge-edge/verge/pkg/mapper/dmitest"
)

// The example driver, run by the SDK against a stand-in edge: readings
// reach the twin and a desired value lands on the virtual device.
func TestVirtualMapper(t *testing.T) {
	dir := dmitest.ShortDir(t)
	model := &dmi.DeviceModel{Name: "tank", Namespace: "default", Spec: &dmi.DeviceModelSpec{Properties: []*dmi.ModelProperty{
		{Name: "level", Type: "DOUBLE", AccessMode: "ReadOnly"},
		{Name: "valve", Type: "INT", AccessMode: "ReadWrite", Minimum: "0", Maximum: "100"},
	}}}
	dev := &dmi.Device{Name: "tank-1", Namespace: "default", Spec: &dmi.DeviceSpec{
		DeviceModelReference: "tank",
		Protocol:             &dmi.ProtocolConfig{ProtocolName: "virtual"},
		Properties: []*dmi.DeviceProperty{
			{Name: "level", CollectCycle: 50, ReportToCloud: true, Visitors: &dmi.VisitorConfig{ConfigData: dmitest.Config(t, map[string]any{"initial": 10, "drift": 0.5})}},
			{Name: "valve", CollectCycle: 50, ReportToCloud: true, Desired: &dmi.TwinProperty{Value: "40"}, Visitors: &dmi.VisitorConfig{ConfigData: dmitest.Config(t, map[string]any{"initial": 0})}},
		},
	}}
	edge := dmitest.NewEdge([]*dmi.DeviceModel{model}, []*dmi.Device{dev})
	edge.Serve(t, filepath.Join(dir, "dmi.sock"))
	m, err := mapper.New(mapper.Config{
		Name: "virtual", Protocol: "virtual", EdgeSocket: filepath.Join(dir, "dmi.sock"), Socket: filepath.Join(dir, "virtual.sock"),
		REST: mapper.RESTConfig{Address: "off"},
	}, &driver{values: map[string]float64{}}, mapper.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	dmitest.Eventually(t, "a drifting level", func() bool {
		v, err := strconv.ParseFloat(edge.Twin("default", "tank-1", "level").GetReported().GetValue(), 64)
		return err == nil && v > 10
	})
	dmitest.Eventually(t, "the desired valve position", func() bool {
		return edge.Twin("default", "tank-1", "valve").GetReported().GetValue() == "40"
	})
}
