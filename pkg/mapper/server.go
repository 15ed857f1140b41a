package mapper

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
)

// dmiServer is the mapper's DeviceMapperService: the edge keeps the
// mapper's devices and models in step through it.
type dmiServer struct {
	dmi.UnimplementedDeviceMapperServiceServer
	m *Mapper
}

func (s *dmiServer) checkDevice(d *dmi.Device) error {
	if d == nil || d.GetName() == "" || d.GetNamespace() == "" {
		return status.Error(codes.InvalidArgument, "device with name and namespace required")
	}
	if p := d.GetSpec().GetProtocol().GetProtocolName(); p != s.m.cfg.Protocol {
		return status.Errorf(codes.FailedPrecondition, "device %s/%s uses protocol %q; mapper %s serves %q", d.GetNamespace(), d.GetName(), p, s.m.cfg.Name, s.m.cfg.Protocol)
	}
	return nil
}

func (s *dmiServer) RegisterDevice(_ context.Context, req *dmi.RegisterDeviceRequest) (*dmi.RegisterDeviceResponse, error) {
	d := req.GetDevice()
	if err := s.checkDevice(d); err != nil {
		return nil, err
	}
	s.m.upsertDevice(d)
	return &dmi.RegisterDeviceResponse{DeviceName: d.GetName(), DeviceNamespace: d.GetNamespace()}, nil
}

func (s *dmiServer) UpdateDevice(_ context.Context, req *dmi.UpdateDeviceRequest) (*dmi.UpdateDeviceResponse, error) {
	d := req.GetDevice()
	if err := s.checkDevice(d); err != nil {
		return nil, err
	}
	s.m.upsertDevice(d)
	return &dmi.UpdateDeviceResponse{}, nil
}

func (s *dmiServer) RemoveDevice(_ context.Context, req *dmi.RemoveDeviceRequest) (*dmi.RemoveDeviceResponse, error) {
	s.m.removeDevice(req.GetDeviceNamespace(), req.GetDeviceName())
	return &dmi.RemoveDeviceResponse{}, nil
}

func (s *dmiServer) CreateDeviceModel(_ context.Context, req *dmi.CreateDeviceModelRequest) (*dmi.CreateDeviceModelResponse, error) {
	md := req.GetModel()
	if md.GetName() == "" || md.GetNamespace() == "" {
		return nil, status.Error(codes.InvalidArgument, "model with name and namespace required")
	}
	s.m.upsertModel(md)
	return &dmi.CreateDeviceModelResponse{DeviceModelName: md.GetName(), DeviceModelNamespace: md.GetNamespace()}, nil
}

func (s *dmiServer) UpdateDeviceModel(_ context.Context, req *dmi.UpdateDeviceModelRequest) (*dmi.UpdateDeviceModelResponse, error) {
	md := req.GetModel()
	if md.GetName() == "" || md.GetNamespace() == "" {
		return nil, status.Error(codes.InvalidArgument, "model with name and namespace required")
	}
	s.m.upsertModel(md)
	return &dmi.UpdateDeviceModelResponse{}, nil
}

func (s *dmiServer) RemoveDeviceModel(_ context.Context, req *dmi.RemoveDeviceModelRequest) (*dmi.RemoveDeviceModelResponse, error) {
	s.m.removeModel(req.GetModelNamespace(), req.GetModelName())
	return &dmi.RemoveDeviceModelResponse{}, nil
}

// GetDevice returns the device with its latest readings as twins (the
// cached samples: reading every property live on request would load the
// device for nothing).
func (s *dmiServer) GetDevice(_ context.Context, req *dmi.GetDeviceRequest) (*dmi.GetDeviceResponse, error) {
	r := s.m.runner(req.GetDeviceNamespace(), req.GetDeviceName())
	if r == nil {
		return nil, status.Error(codes.NotFound, fmt.Sprintf("device %s/%s is not served by mapper %s", req.GetDeviceNamespace(), req.GetDeviceName(), s.m.cfg.Name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d := &dmi.Device{
		Name: r.spec.raw.GetName(), Namespace: r.spec.raw.GetNamespace(), Spec: r.spec.raw.GetSpec(),
		Status: &dmi.DeviceStatus{ReportToCloud: r.spec.raw.GetStatus().GetReportToCloud(), ReportCycle: r.spec.raw.GetStatus().GetReportCycle()},
	}
	for _, p := range r.spec.props {
		st := r.props[p.cfg.Name]
		if st == nil || !st.hasLast {
			continue
		}
		d.Status.Twins = append(d.Status.Twins, &dmi.Twin{
			PropertyName: p.cfg.Name,
			Reported: &dmi.TwinProperty{Value: st.last.Value, Metadata: map[string]string{
				"timestamp": formatMillis(st.last.Timestamp), "type": st.last.Type,
			}},
			ObservedDesired: st.observed,
		})
	}
	return &dmi.GetDeviceResponse{Device: d}, nil
}
