package mapper

import (
	"context"
	"errors"
	"fmt"
	"sync"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/value"
)

// twinInfo is what the twin sink needs from the devices: the observed
// desired value of a property, its deadband, and the device's state-report
// settings. ok is false for a property no longer served.
type twinInfo func(namespace, device, property string) (observed *dmi.TwinProperty, deadband float64, status *dmi.DeviceStatus, ok bool)

// statusReporter sends twins to the edge.
type statusReporter interface {
	ReportDeviceStatus(ctx context.Context, req *dmi.ReportDeviceStatusRequest) error
}

// twinSink reports readings to the edge's device twin (DMI
// ReportDeviceStatus), change-only: a property is sent when its value moved
// beyond its deadband since the last value the edge accepted. One request
// carries every changed property of one device in a batch.
type twinSink struct {
	edge statusReporter
	info twinInfo

	mu   sync.Mutex
	sent map[string]string // ns/device/property → last value the edge accepted
}

func newTwinSink(edge statusReporter, info twinInfo) *twinSink {
	return &twinSink{edge: edge, info: info, sent: map[string]string{}}
}

func (t *twinSink) Name() string { return "cloud-twin" }

func (t *twinSink) Close() error { return nil }

// forget makes the next reading of every property go out, e.g. after the
// mapper registered again with a restarted edge.
func (t *twinSink) forget() {
	t.mu.Lock()
	clear(t.sent)
	t.mu.Unlock()
}

func (t *twinSink) Write(ctx context.Context, batch []sink.Sample) error {
	// Group by device, keeping the latest sample per property.
	type devBatch struct {
		ns, name string
		latest   map[string]sink.Sample
		order    []string
	}
	var devs []*devBatch
	byDev := map[string]*devBatch{}
	for _, s := range batch {
		k := deviceKey(s.Namespace, s.Device)
		d, ok := byDev[k]
		if !ok {
			d = &devBatch{ns: s.Namespace, name: s.Device, latest: map[string]sink.Sample{}}
			byDev[k] = d
			devs = append(devs, d)
		}
		if _, seen := d.latest[s.Property]; !seen {
			d.order = append(d.order, s.Property)
		}
		d.latest[s.Property] = s
	}
	var errs []error
	for _, d := range devs {
		req := &dmi.ReportDeviceStatusRequest{DeviceName: d.name, DeviceNamespace: d.ns, ReportedDevice: &dmi.DeviceStatus{}}
		sentValues := map[string]string{}
		for _, prop := range d.order {
			s := d.latest[prop]
			observed, deadband, status, ok := t.info(s.Namespace, s.Device, s.Property)
			if !ok {
				continue
			}
			req.ReportedDevice.ReportToCloud = status.GetReportToCloud()
			req.ReportedDevice.ReportCycle = status.GetReportCycle()
			key := k3(s.Namespace, s.Device, s.Property)
			t.mu.Lock()
			last, had := t.sent[key]
			t.mu.Unlock()
			if had && !value.Changed(value.Type(s.Type), last, s.Value, deadband) {
				continue
			}
			req.ReportedDevice.Twins = append(req.ReportedDevice.Twins, &dmi.Twin{
				PropertyName: s.Property,
				Reported: &dmi.TwinProperty{Value: s.Value, Metadata: map[string]string{
					"timestamp": formatMillis(s.Timestamp),
					"type":      s.Type,
				}},
				ObservedDesired: observed,
			})
			sentValues[key] = s.Value
		}
		if len(req.ReportedDevice.Twins) == 0 {
			continue
		}
		if err := t.edge.ReportDeviceStatus(ctx, req); err != nil {
			errs = append(errs, fmt.Errorf("device %s/%s: %w", d.ns, d.name, err))
			continue
		}
		t.mu.Lock()
		for k, v := range sentValues {
			t.sent[k] = v
		}
		t.mu.Unlock()
	}
	return errors.Join(errs...)
}

func k3(ns, dev, prop string) string { return ns + "/" + dev + "/" + prop }
