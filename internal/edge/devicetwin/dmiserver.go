package devicetwin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/verge-edge/verge/api/devices/v1beta1/devicespec"
	dmi "github.com/verge-edge/verge/pkg/dmi/v1beta1"
)

// SocketName is the edge's DMI socket in the DMI directory.
const SocketName = "dmi.sock"

// maxStreamsPerMapper bounds the DMI calls one mapper connection has in
// flight; more wait in the mapper (HTTP/2 flow control), never fail.
const maxStreamsPerMapper = 16

func (s *Service) socketPath() string { return filepath.Join(s.cfg.SocketDir, SocketName) }

// listen prepares the DMI directory (0750, only for verge-edge and the
// mappers it allows) and serves DeviceManagerService on its socket (0660).
func (s *Service) listen() (*grpc.Server, net.Listener, error) {
	dir := s.cfg.SocketDir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("DMI directory %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("DMI directory %s: %w", dir, err)
	}
	path := s.socketPath()
	if len(path) >= maxSocketPath {
		return nil, nil, fmt.Errorf("DMI socket path %s is %d bytes, longer than Unix sockets allow (%d): choose a shorter devices.dmi.socketDir", path, len(path), maxSocketPath-1)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, nil, fmt.Errorf("DMI socket %s exists and is not a socket: remove it", path)
		}
		_ = os.Remove(path) // left by an earlier run
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, nil, fmt.Errorf("DMI socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		_ = lis.Close()
		return nil, nil, fmt.Errorf("DMI socket %s: %w", path, err)
	}
	srv := grpc.NewServer(
		grpc.Creds(newPeerCreds(s.cfg.AllowedUIDs, s.cfg.AllowedGIDs)),
		grpc.MaxConcurrentStreams(maxStreamsPerMapper),
		grpc.MaxRecvMsgSize(16<<20),
		grpc.ChainUnaryInterceptor(s.metrics.interceptor),
	)
	dmi.RegisterDeviceManagerServiceServer(srv, dmiServer{s: s})
	return srv, lis, nil
}

// dmiServer is the edge's DeviceManagerService.
type dmiServer struct {
	dmi.UnimplementedDeviceManagerServiceServer
	s *Service
}

func (d dmiServer) MapperRegister(ctx context.Context, req *dmi.MapperRegisterRequest) (*dmi.MapperRegisterResponse, error) {
	info := req.GetMapper()
	if info.GetProtocol() == "" {
		return nil, status.Error(codes.InvalidArgument, "mapper protocol is empty: set the protocol the mapper serves")
	}
	if len(info.GetAddress()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "mapper address is empty: send the path of the mapper's DMI socket")
	}
	name := info.GetName()
	if name == "" {
		name = info.GetProtocol() // upstream mappers may leave it out
	}
	m := &Mapper{
		Name: name, Protocol: info.GetProtocol(), Version: info.GetVersion(), APIVersion: info.GetApiVersion(),
		Address: string(info.GetAddress()), PID: peerPID(ctx), Registered: d.s.cfg.Now().UnixMilli(),
	}
	resp, err := d.s.register(ctx, m, req.GetWithData())
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return resp, nil
}

func (d dmiServer) ReportDeviceStatus(_ context.Context, req *dmi.ReportDeviceStatusRequest) (*dmi.ReportDeviceStatusResponse, error) {
	if len(req.GetReportedDevice().GetTwins()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "report has no twins")
	}
	if err := d.s.reportStatus(req.GetDeviceNamespace(), req.GetDeviceName(), req.GetReportedDevice().GetTwins()); err != nil {
		return nil, grpcError(err)
	}
	return &dmi.ReportDeviceStatusResponse{}, nil
}

func (d dmiServer) ReportDeviceStates(_ context.Context, req *dmi.ReportDeviceStatesRequest) (*dmi.ReportDeviceStatesResponse, error) {
	if req.GetState() == "" {
		return nil, status.Error(codes.InvalidArgument, "state is empty")
	}
	if err := d.s.reportState(req.GetDeviceNamespace(), req.GetDeviceName(), req.GetState(), req.GetReason()); err != nil {
		return nil, grpcError(err)
	}
	return &dmi.ReportDeviceStatesResponse{}, nil
}

func grpcError(err error) error {
	var ue *UserError
	switch {
	case errors.Is(err, ErrNoDevice):
		return status.Error(codes.NotFound, err.Error())
	case errors.As(err, &ue):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}

// register records a mapper (durably, so the registry survives restarts)
// and answers with its devices and their models when withData is set;
// otherwise its runner pushes them.
func (s *Service) register(ctx context.Context, m *Mapper, withData bool) (*dmi.MapperRegisterResponse, error) {
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	s.mu.Lock()
	if !s.loaded {
		s.mu.Unlock()
		return nil, errors.New("the device twin is still loading; register again")
	}
	s.mappers[m.Name] = m
	s.rebindLocked()
	r := s.startRunnerLocked(m.Name)
	r.reconnect(mapperSocket(m.Address, m.PID))
	resp := &dmi.MapperRegisterResponse{}
	if withData {
		want := s.wantLocked(m.Name)
		r.pushed = NewPushed()
		r.gen++
		for _, k := range sortedKeys(want.Models) {
			resp.ModelList = append(resp.ModelList, want.Models[k])
			r.pushed.Models[k] = Hash(want.Models[k])
		}
		for _, k := range sortedKeys(want.Devices) {
			resp.DeviceList = append(resp.DeviceList, want.Devices[k])
			r.pushed.Devices[k] = Hash(want.Devices[k])
		}
	} else {
		r.pushed = NewPushed()
		r.gen++
	}
	reg, err := s.registryLocked()
	s.mu.Unlock()
	if err == nil {
		err = s.store.PutState(ctx, stateMappers, reg)
	}
	if err != nil {
		return nil, fmt.Errorf("recording the mapper: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wakeRunnersLocked()
	s.log.Info("mapper registered", "mapper", m.Name, "protocol", m.Protocol, "address", m.Address, "pid", m.PID, "devices", len(resp.DeviceList))
	return resp, nil
}

// reportStatus merges a mapper's readings into a device's twin and returns
// once they are durable and queued for the cloud.
func (s *Service) reportStatus(namespace, name string, twins []*dmi.Twin) error {
	s.mu.Lock()
	d := s.devices[nsName(namespace, name)]
	if d == nil {
		s.mu.Unlock()
		return fmt.Errorf("device %s/%s: %w", namespace, name, ErrNoDevice)
	}
	before := views(d.obj, d.twin)
	changed := d.twin.ApplyReadings(twins, s.cfg.Now())
	s.metrics.readings.Add(float64(len(twins)))
	d.dirty = true
	s.queueTwinEventLocked(d, "", before, changed)
	wait := s.waitFlushLocked()
	s.mu.Unlock()
	return <-wait
}

// reportState records a device's state and returns once it is durable.
func (s *Service) reportState(namespace, name, state, reason string) error {
	now := s.cfg.Now()
	s.mu.Lock()
	d := s.devices[nsName(namespace, name)]
	if d == nil {
		s.mu.Unlock()
		return fmt.Errorf("device %s/%s: %w", namespace, name, ErrNoDevice)
	}
	if d.twin.ApplyState(state, reason, now) {
		d.dirty = true
		if s.cfg.Events != nil {
			ns, n, lo := namespace, name, d.twin.LastOnline
			s.events = append(s.events, func(e Events) { e.StateChanged(ns, n, state, timeOrZero(lo)) })
		}
	} else if state == devicespec.DeviceStateOK || state == devicespec.DeviceStateOnline {
		d.dirty = true // lastOnline moved
	}
	wait := s.waitFlushLocked()
	s.mu.Unlock()
	return <-wait
}

// registryLocked encodes the mapper registry with what each mapper holds.
func (s *Service) registryLocked() ([]byte, error) {
	out := make(map[string]Mapper, len(s.mappers))
	for name, m := range s.mappers {
		c := *m
		if r := s.runners[name]; r != nil {
			p := Pushed{Models: maps.Clone(r.pushed.Models), Devices: maps.Clone(r.pushed.Devices)}
			c.Pushed = &p
		}
		out[name] = c
	}
	return json.Marshal(out)
}

// persistRegistry writes the mapper registry.
func (s *Service) persistRegistry(ctx context.Context) error {
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	s.mu.Lock()
	reg, err := s.registryLocked()
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.store.PutState(ctx, stateMappers, reg)
}
