package mapper

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/verge-edge/verge/pkg/mapper/fanout"
	"github.com/verge-edge/verge/pkg/mapper/value"
)

// The local REST API. Reads are GET; writes are POST or PUT (never GET, so
// a crawler or a prefetching proxy cannot move an actuator). It listens on
// loopback unless mTLS is configured.

type apiResponse struct {
	APIVersion string `json:"apiVersion"`
	StatusCode int    `json:"statusCode"`
	TimeStamp  string `json:"timeStamp"`
	Message    string `json:"message,omitempty"`
	Data       any    `json:"Data,omitempty"`
}

// PropertyReading is the body of a property read.
type PropertyReading struct {
	Namespace    string `json:"namespace"`
	DeviceName   string `json:"deviceName"`
	PropertyName string `json:"propertyName"`
	Value        string `json:"value"`
	Type         string `json:"type"`
	TimeStamp    int64  `json:"timeStamp"` // Unix milliseconds
}

// MethodInfo describes a device method for the method list.
type MethodInfo struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Path        string          `json:"path"`
	Parameters  []MethodSetting `json:"parameters"`
}

// MethodSetting is one property a method writes.
type MethodSetting struct {
	PropertyName string `json:"propertyName"`
	ValueType    string `json:"valueType"`
	AccessMode   string `json:"accessMode"`
	Minimum      string `json:"minimum,omitempty"`
	Maximum      string `json:"maximum,omitempty"`
}

// Health is the body of GET /api/v1/health.
type Health struct {
	Mapper  MapperStatus    `json:"mapper"`
	Devices []DeviceStatus  `json:"devices"`
	Sinks   []fanout.Status `json:"sinks"`
	// Healthy is true when the mapper is registered, every device is ok
	// and every sink's latest write succeeded.
	Healthy bool `json:"healthy"`
}

// MapperStatus describes the mapper itself.
type MapperStatus struct {
	Name           string    `json:"name"`
	Protocol       string    `json:"protocol"`
	Version        string    `json:"version"`
	Registered     bool      `json:"registered"`
	LastRegistered time.Time `json:"lastRegistered,omitzero"`
}

// DeviceStatus is a device's state and its properties' latest readings.
type DeviceStatus struct {
	Namespace  string           `json:"namespace"`
	Name       string           `json:"name"`
	State      string           `json:"state"`
	Reason     string           `json:"reason,omitempty"`
	Since      time.Time        `json:"since,omitzero"`
	Properties []PropertyStatus `json:"properties"`
}

// PropertyStatus is one property's latest reading and problems.
type PropertyStatus struct {
	Name            string    `json:"name"`
	Value           string    `json:"value,omitempty"`
	TimeStamp       time.Time `json:"timeStamp,omitzero"`
	LastError       string    `json:"lastError,omitempty"`
	LastErrorAt     time.Time `json:"lastErrorAt,omitzero"`
	ObservedDesired string    `json:"observedDesired,omitempty"`
	PendingDesired  string    `json:"pendingDesired,omitempty"`
	DesiredError    string    `json:"desiredError,omitempty"`
	PushErrors      []string  `json:"pushErrors,omitempty"`
	Notes           []string  `json:"notes,omitempty"`
}

// Status returns what GET /api/v1/health serves.
func (m *Mapper) Status() Health {
	h := Health{Mapper: MapperStatus{
		Name: m.cfg.Name, Protocol: m.cfg.Protocol, Version: m.cfg.Version, Registered: m.registered.Load(),
	}}
	if t := m.lastRegister.Load(); t != nil {
		h.Mapper.LastRegistered = *t
	}
	h.Healthy = h.Mapper.Registered
	for _, r := range m.runners() {
		ds := r.status()
		if ds.State != StateOK {
			h.Healthy = false
		}
		h.Devices = append(h.Devices, ds)
	}
	for _, w := range m.rt.routes.workers() {
		st := w.Status()
		if !st.Healthy {
			h.Healthy = false
		}
		h.Sinks = append(h.Sinks, st)
	}
	return h
}

func (r *deviceRunner) status() DeviceStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	ds := DeviceStatus{Namespace: r.spec.cfg.Namespace, Name: r.spec.cfg.Name, State: r.state, Reason: r.reason, Since: r.stateSince}
	for _, p := range r.spec.props {
		ps := PropertyStatus{Name: p.cfg.Name, Notes: p.notes}
		if st := r.props[p.cfg.Name]; st != nil {
			if st.hasLast {
				ps.Value, ps.TimeStamp = st.last.Value, st.last.Timestamp
			}
			ps.LastError, ps.LastErrorAt = st.lastErr, st.lastErrAt
			if st.observed != nil {
				ps.ObservedDesired = st.observed.GetValue()
			}
			if st.hasPending {
				ps.PendingDesired = st.pending
			}
			ps.DesiredError, ps.PushErrors = st.desiredErr, st.pushErrors
		}
		ds.Properties = append(ds.Properties, ps)
	}
	return ds
}

func (m *Mapper) serveREST(ctx context.Context) error {
	lis, err := net.Listen("tcp", m.cfg.REST.Address)
	if err != nil {
		return fmt.Errorf("REST API: listening on %s: %w", m.cfg.REST.Address, err)
	}
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	if m.cfg.REST.TLS() {
		tc, err := m.restTLS()
		if err != nil {
			_ = lis.Close()
			return err
		}
		lis = tls.NewListener(lis, tc)
	}
	m.restAddr <- lis.Addr()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("REST API: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}
}

func (m *Mapper) restTLS() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(m.cfg.REST.CertFile, m.cfg.REST.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("REST API certificate: %w", err)
	}
	caPEM, err := os.ReadFile(m.cfg.REST.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("REST API client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("REST API client CA %s holds no PEM certificate", m.cfg.REST.ClientCAFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// Handler returns the REST API handler (also used by tests without a
// listener).
func (m *Mapper) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/ping", func(w http.ResponseWriter, _ *http.Request) {
		m.reply(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /api/v1/health", func(w http.ResponseWriter, _ *http.Request) {
		m.reply(w, http.StatusOK, m.Status())
	})
	mux.HandleFunc("GET /api/v1/device/{namespace}/{name}", m.getDevice)
	mux.HandleFunc("GET /api/v1/device/{namespace}/{name}/{property}", m.readProperty)
	mux.HandleFunc("GET /api/v1/devicemethod/{namespace}/{name}", m.listMethods)
	mux.HandleFunc("POST /api/v1/devicemethod/{namespace}/{name}/{method}/{property}", m.callMethod)
	mux.HandleFunc("PUT /api/v1/devicemethod/{namespace}/{name}/{method}/{property}", m.callMethod)
	mux.HandleFunc("POST /api/v1/devicemethod/{namespace}/{name}/{method}/{property}/{data}", m.callMethod)
	mux.HandleFunc("PUT /api/v1/devicemethod/{namespace}/{name}/{method}/{property}/{data}", m.callMethod)
	mux.HandleFunc("GET /api/v1/devicemethod/{namespace}/{name}/{method}/{property}/{data}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", "POST, PUT")
		m.fail(w, http.StatusMethodNotAllowed, "writes use POST or PUT, not GET")
	})
	mux.HandleFunc("GET /api/v1/meta/model/{namespace}/{name}", m.getModel)
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	return mux
}

func (m *Mapper) reply(w http.ResponseWriter, code int, data any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(apiResponse{APIVersion: "v1", StatusCode: code, TimeStamp: m.opts.Clock.Now().UTC().Format(time.RFC3339Nano), Data: data})
}

func (m *Mapper) fail(w http.ResponseWriter, code int, format string, a ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(apiResponse{APIVersion: "v1", StatusCode: code, TimeStamp: m.opts.Clock.Now().UTC().Format(time.RFC3339Nano), Message: fmt.Sprintf(format, a...)})
}

func (m *Mapper) lookup(w http.ResponseWriter, req *http.Request) (*deviceRunner, *deviceSpec, Conn, bool) {
	ns, name := req.PathValue("namespace"), req.PathValue("name")
	r := m.runner(ns, name)
	if r == nil {
		m.fail(w, http.StatusNotFound, "device %s/%s is not served by mapper %s", ns, name, m.cfg.Name)
		return nil, nil, nil, false
	}
	spec, conn := r.current()
	return r, spec, conn, true
}

func (m *Mapper) getDevice(w http.ResponseWriter, req *http.Request) {
	r, _, _, ok := m.lookup(w, req)
	if !ok {
		return
	}
	m.reply(w, http.StatusOK, r.status())
}

func (m *Mapper) readProperty(w http.ResponseWriter, req *http.Request) {
	_, spec, conn, ok := m.lookup(w, req)
	if !ok {
		return
	}
	name := req.PathValue("property")
	p, ok := spec.byName[name]
	if !ok {
		m.fail(w, http.StatusNotFound, "device %s has no property %q", spec.key, name)
		return
	}
	if conn == nil {
		m.fail(w, http.StatusServiceUnavailable, "device %s is not connected", spec.key)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), m.cfg.ReadTimeout)
	v, err := conn.Read(ctx, p.cfg)
	cancel()
	if err != nil {
		m.fail(w, http.StatusBadGateway, "reading %s of %s: %v", name, spec.key, err)
		return
	}
	s, err := value.Format(p.cfg.Type, v)
	if err != nil {
		m.fail(w, http.StatusBadGateway, "reading %s of %s: the device returned a value that is not a %s: %v", name, spec.key, p.cfg.Type, err)
		return
	}
	m.reply(w, http.StatusOK, PropertyReading{
		Namespace: spec.cfg.Namespace, DeviceName: spec.cfg.Name, PropertyName: name,
		Value: s, Type: string(p.cfg.Type), TimeStamp: m.opts.Clock.Now().UnixMilli(),
	})
}

func (m *Mapper) listMethods(w http.ResponseWriter, req *http.Request) {
	_, spec, _, ok := m.lookup(w, req)
	if !ok {
		return
	}
	out := []MethodInfo{}
	for _, md := range spec.raw.GetSpec().GetMethods() {
		mi := MethodInfo{
			Name: md.GetName(), Description: md.GetDescription(),
			Path:       fmt.Sprintf("/api/v1/devicemethod/%s/%s/%s/{propertyName}", spec.cfg.Namespace, spec.cfg.Name, md.GetName()),
			Parameters: []MethodSetting{},
		}
		for _, pn := range md.GetPropertyNames() {
			ms := MethodSetting{PropertyName: pn}
			if p, ok := spec.byName[pn]; ok {
				ms.ValueType, ms.AccessMode = string(p.cfg.Type), string(p.cfg.AccessMode)
				if l := p.cfg.Limits; l.Min != nil {
					ms.Minimum = fmt.Sprint(*l.Min)
				}
				if l := p.cfg.Limits; l.Max != nil {
					ms.Maximum = fmt.Sprint(*l.Max)
				}
			}
			mi.Parameters = append(mi.Parameters, ms)
		}
		out = append(out, mi)
	}
	m.reply(w, http.StatusOK, out)
}

// callMethod writes a property through a device method. The value is the
// {data} path segment (upstream's form) or the request body: JSON
// {"value": "..."} or the bare value as text.
func (m *Mapper) callMethod(w http.ResponseWriter, req *http.Request) {
	r, spec, conn, ok := m.lookup(w, req)
	if !ok {
		return
	}
	method, prop := req.PathValue("method"), req.PathValue("property")
	md, ok := spec.methods[method]
	if !ok {
		m.fail(w, http.StatusNotFound, "device %s has no method %q", spec.key, method)
		return
	}
	listed := false
	for _, pn := range md.GetPropertyNames() {
		listed = listed || pn == prop
	}
	if !listed {
		m.fail(w, http.StatusBadRequest, "method %s of device %s does not write property %q (it writes %s)", method, spec.key, prop, strings.Join(md.GetPropertyNames(), ", "))
		return
	}
	p, ok := spec.byName[prop]
	if !ok {
		m.fail(w, http.StatusNotFound, "device %s has no property %q", spec.key, prop)
		return
	}
	if p.cfg.AccessMode != ReadWrite {
		m.fail(w, http.StatusForbidden, "property %s of device %s is ReadOnly", prop, spec.key)
		return
	}
	raw, err := writeValue(req)
	if err != nil {
		m.fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	v, err := value.Parse(p.cfg.Type, raw)
	if err == nil {
		err = p.cfg.Limits.Check(v)
	}
	if err != nil {
		m.fail(w, http.StatusBadRequest, "property %s of device %s: %v; nothing was written", prop, spec.key, err)
		return
	}
	if conn == nil {
		m.fail(w, http.StatusServiceUnavailable, "device %s is not connected", spec.key)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), m.cfg.ReadTimeout)
	err = conn.Write(ctx, p.cfg, v)
	cancel()
	if err != nil {
		m.rt.metrics.writes.WithLabelValues("rest", "error").Inc()
		code := http.StatusBadGateway
		switch {
		case errors.Is(err, ErrNotWritable):
			code = http.StatusConflict
		case errors.Is(err, ErrValueOutOfRange):
			code = http.StatusBadRequest
		}
		m.fail(w, code, "writing %s of %s: %v", prop, spec.key, err)
		return
	}
	m.rt.metrics.writes.WithLabelValues("rest", "ok").Inc()
	r.kick(prop) // report the new value now, not at the next cycle
	m.reply(w, http.StatusOK, map[string]string{"deviceName": spec.cfg.Name, "namespace": spec.cfg.Namespace, "propertyName": prop, "value": raw})
}

func writeValue(req *http.Request) (string, error) {
	if d := req.PathValue("data"); d != "" {
		return d, nil
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("reading the request body: %w", err)
	}
	text := strings.TrimSpace(string(body))
	if strings.HasPrefix(text, "{") {
		var in struct {
			Value *json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(body, &in); err != nil || in.Value == nil {
			return "", errors.New(`the body must be {"value": ...} or the bare value`)
		}
		var s string
		if json.Unmarshal(*in.Value, &s) == nil {
			return s, nil
		}
		return strings.TrimSpace(string(*in.Value)), nil
	}
	if text == "" {
		return "", errors.New(`no value: send {"value": ...} or the bare value in the body`)
	}
	return text, nil
}

func (m *Mapper) getModel(w http.ResponseWriter, req *http.Request) {
	_, spec, _, ok := m.lookup(w, req)
	if !ok {
		return
	}
	type prop struct {
		Name       string `json:"name"`
		Type       string `json:"type"`
		AccessMode string `json:"accessMode"`
		Unit       string `json:"unit,omitempty"`
		Minimum    string `json:"minimum,omitempty"`
		Maximum    string `json:"maximum,omitempty"`
	}
	out := struct {
		Name       string `json:"name"`
		Namespace  string `json:"namespace"`
		Properties []prop `json:"properties"`
	}{Name: spec.cfg.Model, Namespace: spec.cfg.Namespace, Properties: []prop{}}
	for _, p := range spec.props {
		pp := prop{Name: p.cfg.Name, Type: string(p.cfg.Type), AccessMode: string(p.cfg.AccessMode), Unit: p.cfg.Unit}
		if p.cfg.Limits.Min != nil {
			pp.Minimum = fmt.Sprint(*p.cfg.Limits.Min)
		}
		if p.cfg.Limits.Max != nil {
			pp.Maximum = fmt.Sprint(*p.cfg.Limits.Max)
		}
		out.Properties = append(out.Properties, pp)
	}
	m.reply(w, http.StatusOK, out)
}
