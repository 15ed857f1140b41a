package otelsink

import (
	"context"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/testserver"
	"github.com/verge-edge/verge/pkg/mapper/sink/secret"
)

// receiver is an OTLP metrics receiver built on the official OTLP
// protobuf definitions; it keeps every export request.
type receiver struct {
	collectormetrics.UnimplementedMetricsServiceServer
	mu      sync.Mutex
	reqs    []*collectormetrics.ExportMetricsServiceRequest
	headers []string
}

func (r *receiver) Export(_ context.Context, req *collectormetrics.ExportMetricsServiceRequest) (*collectormetrics.ExportMetricsServiceResponse, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	return &collectormetrics.ExportMetricsServiceResponse{}, nil
}

func (r *receiver) requests() []*collectormetrics.ExportMetricsServiceRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*collectormetrics.ExportMetricsServiceRequest(nil), r.reqs...)
}

// grpcReceiver serves a receiver over OTLP/gRPC on a loopback address
// that survives Stop/Start.
type grpcReceiver struct {
	t    *testing.T
	addr string
	rcv  *receiver
	srv  *grpc.Server
}

func startGRPC(t *testing.T) *grpcReceiver {
	t.Helper()
	g := &grpcReceiver{t: t, rcv: &receiver{}}
	g.start("127.0.0.1:0")
	t.Cleanup(g.stop)
	return g
}

func (g *grpcReceiver) start(addr string) {
	g.t.Helper()
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		g.t.Fatal(err)
	}
	g.addr = l.Addr().String()
	g.srv = grpc.NewServer()
	collectormetrics.RegisterMetricsServiceServer(g.srv, g.rcv)
	go func() { _ = g.srv.Serve(l) }()
}

func (g *grpcReceiver) stop() {
	if g.srv != nil {
		g.srv.Stop()
		g.srv = nil
	}
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 890_123_456, time.UTC)

func testBatch() []sink.Sample {
	return []sink.Sample{
		{Namespace: "plant-a", Device: "thermo-1", Property: "temperature", Value: "21.5", Type: "float", Timestamp: t0},
		{Namespace: "plant-a", Device: "thermo-2", Property: "temperature", Value: "19", Type: "int", Timestamp: t0.Add(time.Second)},
		{Namespace: "plant-a", Device: "valve-2", Property: "open", Value: "true", Type: "boolean", Timestamp: t0},
		{Namespace: "plant-a", Device: "valve-2", Property: "count", Value: "-7", Type: "int", Timestamp: t0},
		{Namespace: "plant-a", Device: "valve-2", Property: "label", Value: "hello", Type: "string", Timestamp: t0},
	}
}

type pointView struct {
	device, namespace, property string
	time                        uint64
	value                       string
}

func attrs(kv []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, a := range kv {
		m[a.GetKey()] = a.GetValue().GetStringValue()
	}
	return m
}

// gauges flattens a request: metric name → kind ("double"/"int") and points.
func gauges(t *testing.T, req *collectormetrics.ExportMetricsServiceRequest) (map[string]string, map[string][]pointView) {
	t.Helper()
	kinds := map[string]string{}
	points := map[string][]pointView{}
	if len(req.GetResourceMetrics()) != 1 {
		t.Fatalf("%d resource metrics, want 1", len(req.GetResourceMetrics()))
	}
	rm := req.GetResourceMetrics()[0]
	if got := attrs(rm.GetResource().GetAttributes())["service.name"]; got != "edge-mapper" {
		t.Errorf("service.name = %q, want edge-mapper", got)
	}
	for _, sm := range rm.GetScopeMetrics() {
		if sm.GetScope().GetName() != ScopeName {
			t.Errorf("scope %q, want %q", sm.GetScope().GetName(), ScopeName)
		}
		for _, m := range sm.GetMetrics() {
			g, ok := m.GetData().(*metricspb.Metric_Gauge)
			if !ok {
				t.Fatalf("metric %s is %T, want a gauge", m.GetName(), m.GetData())
			}
			for _, dp := range g.Gauge.GetDataPoints() {
				a := attrs(dp.GetAttributes())
				pv := pointView{device: a[AttrDevice], namespace: a[AttrNamespace], property: a[AttrProperty], time: dp.GetTimeUnixNano()}
				switch v := dp.GetValue().(type) {
				case *metricspb.NumberDataPoint_AsDouble:
					kinds[m.GetName()] = "double"
					pv.value = strconv.FormatFloat(v.AsDouble, 'g', -1, 64)
				case *metricspb.NumberDataPoint_AsInt:
					kinds[m.GetName()] = "int"
					pv.value = strconv.FormatInt(v.AsInt, 10)
				}
				points[m.GetName()] = append(points[m.GetName()], pv)
			}
		}
	}
	return kinds, points
}

func TestGRPCExportsOneGaugePerProperty(t *testing.T) {
	g := startGRPC(t)
	s, err := New(Config{EndpointURL: "grpc://" + g.addr}, Options{ServiceName: "edge-mapper"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if err := s.Write(context.Background(), testBatch()); err != nil {
		t.Fatal(err)
	}
	reqs := g.rcv.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d exports, want 1 per batch", len(reqs))
	}
	kinds, points := gauges(t, reqs[0])
	wantKinds := map[string]string{"temperature": "double", "open": "int", "count": "int"}
	if len(kinds) != len(wantKinds) {
		t.Errorf("metrics %v, want %v (the string property is not a metric)", kinds, wantKinds)
	}
	for name, k := range wantKinds {
		if kinds[name] != k {
			t.Errorf("metric %s is %s, want %s", name, kinds[name], k)
		}
	}
	temps := points["temperature"]
	sort.Slice(temps, func(i, j int) bool { return temps[i].device < temps[j].device })
	want := []pointView{
		{"thermo-1", "plant-a", "temperature", uint64(t0.UnixNano()), "21.5"},
		{"thermo-2", "plant-a", "temperature", uint64(t0.Add(time.Second).UnixNano()), "19"},
	}
	if len(temps) != 2 || temps[0] != want[0] || temps[1] != want[1] {
		t.Errorf("temperature points %+v, want %+v", temps, want)
	}
	if o := points["open"]; len(o) != 1 || o[0].value != "1" || o[0].device != "valve-2" {
		t.Errorf("open points %+v, want one point of 1 for valve-2", o)
	}
	if c := points["count"]; len(c) != 1 || c[0].value != "-7" {
		t.Errorf("count points %+v", c)
	}
}

func TestGRPCReceiverDownThenBack(t *testing.T) {
	g := startGRPC(t)
	s, err := New(Config{EndpointURL: "grpc://" + g.addr}, Options{ServiceName: "edge-mapper", MaxReconnectInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	ctx := context.Background()
	if err := s.Write(ctx, testBatch()); err != nil {
		t.Fatal(err)
	}
	g.stop()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	start := time.Now()
	err = s.Write(wctx, testBatch())
	cancel()
	if err == nil {
		t.Fatal("Write succeeded with the receiver down")
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("Write took %v to fail", d)
	}
	g.start(g.addr)
	deadline := time.Now().Add(10 * time.Second)
	for {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.Write(wctx, testBatch())
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the same sink did not recover within 10s of the receiver coming back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(g.rcv.requests()); n != 2 {
		t.Errorf("receiver got %d exports, want 2", n)
	}
}

// httpReceiver decodes OTLP/HTTP protobuf exports.
type httpReceiver struct {
	rcv    receiver
	mu     sync.Mutex
	status int
}

func (h *httpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	status := h.status
	h.mu.Unlock()
	if status != 0 {
		http.Error(w, "collector overloaded", status)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/metrics" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "bad request "+r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"), http.StatusBadRequest)
		return
	}
	b, _ := io.ReadAll(r.Body)
	req := &collectormetrics.ExportMetricsServiceRequest{}
	if err := proto.Unmarshal(b, req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.rcv.mu.Lock()
	h.rcv.reqs = append(h.rcv.reqs, req)
	h.rcv.headers = append(h.rcv.headers, r.Header.Get("Authorization"))
	h.rcv.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&collectormetrics.ExportMetricsServiceResponse{})
	_, _ = w.Write(out)
}

func TestHTTPExportAsUpstream(t *testing.T) {
	h := &httpReceiver{}
	srv := testserver.NewHTTP(t, h)
	s, err := New(Config{EndpointURL: srv.URL + "/v1/metrics"}, Options{
		ServiceName: "edge-mapper",
		Headers:     map[string]secret.Credential{"Authorization": {Env: "OTLP_AUTH"}},
		LookupEnv:   func(k string) (string, bool) { return "Bearer abc", k == "OTLP_AUTH" },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if err := s.Write(context.Background(), testBatch()[:1]); err != nil {
		t.Fatal(err)
	}
	reqs := h.rcv.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d exports", len(reqs))
	}
	_, points := gauges(t, reqs[0])
	if p := points["temperature"]; len(p) != 1 || p[0].value != "21.5" || p[0].time != uint64(t0.UnixNano()) {
		t.Errorf("points %+v", p)
	}
	if h.rcv.headers[0] != "Bearer abc" {
		t.Errorf("Authorization header %q, want the configured one", h.rcv.headers[0])
	}

	h.mu.Lock()
	h.status = http.StatusServiceUnavailable
	h.mu.Unlock()
	if err := s.Write(context.Background(), testBatch()[:1]); err == nil || !strings.Contains(err.Error(), "collector overloaded") {
		t.Errorf("503 from the collector: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg     Config
		opts    Options
		wantErr string
	}{
		{Config{}, Options{}, "endpointURL is empty"},
		{Config{EndpointURL: "localhost:4318"}, Options{}, "not a URL with a host"},
		{Config{EndpointURL: "ftp://h:1"}, Options{}, `scheme "ftp"`},
		{Config{EndpointURL: "http://h/v1/metrics"}, Options{}, "has no port"},
		{Config{EndpointURL: "grpc://h:4317"}, Options{Protocol: ProtocolHTTP}, "is a gRPC endpoint"},
		{Config{EndpointURL: "http://h:4317"}, Options{Protocol: "thrift"}, `protocol "thrift"`},
		{Config{EndpointURL: "http://h:4318"}, Options{Headers: map[string]secret.Credential{"X-Key": {Env: "NOPE"}}, LookupEnv: func(string) (string, bool) { return "", false }}, "OTLP header X-Key"},
	} {
		if _, err := New(tc.cfg, tc.opts); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("New(%+v) = %v, want error containing %q", tc.cfg, err, tc.wantErr)
		}
	}
}
