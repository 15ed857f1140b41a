// Package dmitest is a stand-in for the edge's DMI server, for testing
// mappers: a DeviceManagerService on a Unix socket that hands out the
// devices and models it is given and records every registration, twin
// report and state report, plus a client for the mapper's
// DeviceMapperService.
package dmitest

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
)

// Edge is a recording DeviceManagerService.
type Edge struct {
	dmi.UnimplementedDeviceManagerServiceServer

	mu        sync.Mutex
	models    []*dmi.DeviceModel
	devices   []*dmi.Device
	registers []*dmi.MapperInfo
	twins     []*dmi.ReportDeviceStatusRequest
	received  map[*dmi.ReportDeviceStatusRequest]time.Time
	states    []*dmi.ReportDeviceStatesRequest
	srv       *grpc.Server
}

// NewEdge returns an edge that answers MapperRegister with models and
// devices.
func NewEdge(models []*dmi.DeviceModel, devices []*dmi.Device) *Edge {
	return &Edge{models: models, devices: devices}
}

// Serve listens on socket until Stop (or the test ends).
func (e *Edge) Serve(t testing.TB, socket string) {
	t.Helper()
	_ = os.Remove(socket)
	lis, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatalf("edge DMI socket: %v", err)
	}
	srv := grpc.NewServer()
	dmi.RegisterDeviceManagerServiceServer(srv, e)
	e.mu.Lock()
	e.srv = srv
	e.mu.Unlock()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
}

// Stop stops serving, as an edge restart would.
func (e *Edge) Stop() {
	e.mu.Lock()
	srv := e.srv
	e.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// MapperRegister records the mapper and returns the devices whose protocol
// matches, as an edge does.
func (e *Edge) MapperRegister(_ context.Context, req *dmi.MapperRegisterRequest) (*dmi.MapperRegisterResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if req.GetMapper().GetProtocol() == "" {
		return nil, status.Error(codes.InvalidArgument, "mapper protocol is empty")
	}
	e.registers = append(e.registers, req.GetMapper())
	if !req.GetWithData() {
		return &dmi.MapperRegisterResponse{}, nil
	}
	resp := &dmi.MapperRegisterResponse{ModelList: e.models}
	for _, d := range e.devices {
		if d.GetSpec().GetProtocol().GetProtocolName() == req.GetMapper().GetProtocol() {
			resp.DeviceList = append(resp.DeviceList, d)
		}
	}
	return resp, nil
}

// ReportDeviceStatus records twins; like the edge it refuses a report
// without any.
func (e *Edge) ReportDeviceStatus(_ context.Context, req *dmi.ReportDeviceStatusRequest) (*dmi.ReportDeviceStatusResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(req.GetReportedDevice().GetTwins()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "report has no twins")
	}
	e.twins = append(e.twins, req)
	if e.received == nil {
		e.received = map[*dmi.ReportDeviceStatusRequest]time.Time{}
	}
	e.received[req] = time.Now()
	return &dmi.ReportDeviceStatusResponse{}, nil
}

// ReportDeviceStates records a state.
func (e *Edge) ReportDeviceStates(_ context.Context, req *dmi.ReportDeviceStatesRequest) (*dmi.ReportDeviceStatesResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.states = append(e.states, req)
	return &dmi.ReportDeviceStatesResponse{}, nil
}

// Registrations returns the MapperInfo of every registration so far.
func (e *Edge) Registrations() []*dmi.MapperInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*dmi.MapperInfo(nil), e.registers...)
}

// Reports returns every twin report so far.
func (e *Edge) Reports() []*dmi.ReportDeviceStatusRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*dmi.ReportDeviceStatusRequest(nil), e.twins...)
}

// ReceivedAt is when a report returned by Reports arrived.
func (e *Edge) ReceivedAt(r *dmi.ReportDeviceStatusRequest) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.received[r]
}

// Twin returns the latest reported twin of a device property, or nil.
func (e *Edge) Twin(namespace, device, property string) *dmi.Twin {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.twins) - 1; i >= 0; i-- {
		r := e.twins[i]
		if r.GetDeviceNamespace() != namespace || r.GetDeviceName() != device {
			continue
		}
		for _, tw := range r.GetReportedDevice().GetTwins() {
			if tw.GetPropertyName() == property {
				return tw
			}
		}
	}
	return nil
}

// State returns a device's latest reported state and reason.
func (e *Edge) State(namespace, device string) (state, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.states) - 1; i >= 0; i-- {
		s := e.states[i]
		if s.GetDeviceNamespace() == namespace && s.GetDeviceName() == device {
			return s.GetState(), s.GetReason()
		}
	}
	return "", ""
}

// Mapper dials a mapper's DeviceMapperService socket.
func Mapper(t testing.TB, socket string) dmi.DeviceMapperServiceClient {
	t.Helper()
	cc, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("mapper DMI socket: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return dmi.NewDeviceMapperServiceClient(cc)
}

// ShortDir makes a temporary directory with a path short enough for Unix
// socket names (at most 108 bytes on Linux).
func ShortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "dmi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// Eventually polls cond every 10 ms until it holds or 10 s pass.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 10s waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Config encodes a configuration map for a Device's configData, failing the
// test on error.
func Config(t testing.TB, m map[string]any) *dmi.CustomizedValue {
	t.Helper()
	cv, err := dmi.NewCustomizedValue(m)
	if err != nil {
		t.Fatal(fmt.Errorf("configData: %w", err))
	}
	return cv
}
