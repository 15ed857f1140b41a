// Package otelsink exports samples as OpenTelemetry metrics over OTLP, the
// pushMethod.otel destination of a device property. It uses the official
// OpenTelemetry Go SDK data model and OTLP exporters (HTTP/protobuf, as
// upstream, or gRPC).
//
// Each property is a gauge named after the property; each sample is one
// data point with the attributes device, namespace and property, stamped
// with the sample's own time. Numbers typed int (and booleans, as 0 or 1)
// are integer gauges, float and double are double gauges; string and
// bytes properties are not metrics and are skipped (logged once).
//
// Upstream registered an observable gauge that re-read the device on the
// SDK's schedule and exported in the background, so failures never
// reached anyone and the export period read reportCycle as nanoseconds.
// Here every Write exports its batch synchronously and returns the
// exporter's error, so the SDK's buffer and retries apply.
package otelsink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/sinkutil"
	"github.com/verge-edge/verge/pkg/mapper/sink/secret"
)

// Config mirrors pushMethod.otel of the Device CRD.
type Config struct {
	// EndpointURL of the OTLP receiver: "http(s)://host:4318/v1/metrics"
	// for OTLP/HTTP (the path defaults to /v1/metrics), or
	// "grpc://host:4317" ("grpcs://" with TLS) for OTLP/gRPC.
	EndpointURL string `json:"endpointURL,omitempty"`
}

// Protocol is an OTLP transport, named as in OTEL_EXPORTER_OTLP_PROTOCOL.
type Protocol string

// Protocols.
const (
	ProtocolHTTP Protocol = "http/protobuf"
	ProtocolGRPC Protocol = "grpc"
)

// Attribute keys of every data point.
const (
	AttrDevice    = "device"
	AttrNamespace = "namespace"
	AttrProperty  = "property"
)

// ScopeName is the instrumentation scope of exported metrics.
const ScopeName = "github.com/verge-edge/verge/pkg/mapper/sink/otelsink"

// Options are the settings that are not in the CRD.
type Options struct {
	// Protocol overrides the one the endpoint's scheme implies, e.g. gRPC
	// to an "http://host:4317" endpoint.
	Protocol Protocol
	// ServiceName is the resource's service.name; default "verge-mapper".
	ServiceName string
	// Headers are sent with every export (e.g. an authorization header),
	// each read from its credential when the sink is created.
	Headers map[string]secret.Credential
	// LookupEnv reads environment variables; os.LookupEnv when nil.
	LookupEnv secret.LookupEnv
	// TLSConfig for https and grpcs endpoints; system roots when nil.
	TLSConfig *tls.Config
	// Timeout bounds one export; default 10 s.
	Timeout time.Duration
	// MaxReconnectInterval caps gRPC's reconnection backoff; default 5 s.
	MaxReconnectInterval time.Duration
	// Logger receives skipped samples; discarded when nil.
	Logger *slog.Logger
	// Now stamps samples that carry no timestamp; time.Now when nil.
	Now func() time.Time
}

// exporter is what the sink needs of an OTLP exporter.
type exporter interface {
	Export(context.Context, *metricdata.ResourceMetrics) error
	Shutdown(context.Context) error
}

// Sink is one OTLP exporter. It is safe for concurrent use.
type Sink struct {
	endpoint string
	protocol Protocol
	res      *resource.Resource
	opts     Options

	mu  sync.Mutex // serializes exports
	exp exporter

	skipMu  sync.Mutex
	skipped map[string]bool
}

var _ sink.Sink = (*Sink)(nil)

// New validates cfg and builds the exporter. It does not connect.
func New(cfg Config, opts Options) (*Sink, error) {
	raw := strings.TrimSpace(cfg.EndpointURL)
	if raw == "" {
		return nil, errors.New("pushMethod.otel: endpointURL is empty: set it to the OTLP receiver, e.g. http://127.0.0.1:4318/v1/metrics")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("pushMethod.otel: endpointURL %q is not a URL with a host (e.g. http://127.0.0.1:4318/v1/metrics)", cfg.EndpointURL)
	}
	secure := false
	proto := opts.Protocol
	switch u.Scheme {
	case "http", "https":
		secure = u.Scheme == "https"
		if proto == "" {
			proto = ProtocolHTTP
		}
	case "grpc", "grpcs":
		secure = u.Scheme == "grpcs"
		if proto == "" {
			proto = ProtocolGRPC
		}
		if proto != ProtocolGRPC {
			return nil, fmt.Errorf("pushMethod.otel: endpointURL %q is a gRPC endpoint but the protocol is %q", cfg.EndpointURL, proto)
		}
	default:
		return nil, fmt.Errorf("pushMethod.otel: endpointURL %q has scheme %q: use http, https, grpc or grpcs", cfg.EndpointURL, u.Scheme)
	}
	if u.Port() == "" {
		return nil, fmt.Errorf("pushMethod.otel: endpointURL %q has no port (OTLP uses 4318 for HTTP and 4317 for gRPC)", cfg.EndpointURL)
	}
	if proto != ProtocolHTTP && proto != ProtocolGRPC {
		return nil, fmt.Errorf("otel sink: protocol %q is not %q or %q", proto, ProtocolHTTP, ProtocolGRPC)
	}
	if opts.ServiceName == "" {
		opts.ServiceName = "verge-mapper"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxReconnectInterval <= 0 {
		opts.MaxReconnectInterval = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	headers := map[string]string{}
	for k, c := range opts.Headers {
		v, err := c.Require(opts.LookupEnv, "OTLP header "+k)
		if err != nil {
			return nil, fmt.Errorf("otel sink: %w", err)
		}
		headers[k] = v
	}
	s := &Sink{
		endpoint: u.String(),
		protocol: proto,
		res:      resource.NewSchemaless(attribute.String("service.name", opts.ServiceName)),
		opts:     opts,
		skipped:  map[string]bool{},
	}
	// Retries are the SDK's job: an exporter that retried inside Export
	// would hold the batch past the caller's deadline.
	ctx := context.Background()
	if proto == ProtocolGRPC {
		o := []otlpmetricgrpc.Option{
			otlpmetricgrpc.WithEndpoint(u.Host),
			otlpmetricgrpc.WithTimeout(opts.Timeout),
			otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: false}),
			otlpmetricgrpc.WithHeaders(headers),
			otlpmetricgrpc.WithDialOption(grpc.WithConnectParams(grpc.ConnectParams{
				Backoff: backoff.Config{
					BaseDelay:  100 * time.Millisecond,
					Multiplier: 1.6,
					Jitter:     0.2,
					MaxDelay:   opts.MaxReconnectInterval,
				},
				MinConnectTimeout: opts.Timeout,
			})),
		}
		if secure {
			o = append(o, otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(tlsOrDefault(opts.TLSConfig))))
		} else {
			o = append(o, otlpmetricgrpc.WithInsecure())
		}
		s.exp, err = otlpmetricgrpc.New(ctx, o...)
	} else {
		path := u.Path
		if path == "" || path == "/" {
			path = "/v1/metrics"
		}
		o := []otlpmetrichttp.Option{
			otlpmetrichttp.WithEndpoint(u.Host),
			otlpmetrichttp.WithURLPath(path),
			otlpmetrichttp.WithTimeout(opts.Timeout),
			otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}),
			otlpmetrichttp.WithHeaders(headers),
		}
		if secure {
			o = append(o, otlpmetrichttp.WithTLSClientConfig(tlsOrDefault(opts.TLSConfig)))
		} else {
			o = append(o, otlpmetrichttp.WithInsecure())
		}
		s.exp, err = otlpmetrichttp.New(ctx, o...)
	}
	if err != nil {
		return nil, fmt.Errorf("otel sink: %w", err)
	}
	return s, nil
}

func tlsOrDefault(c *tls.Config) *tls.Config {
	if c != nil {
		return c
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

// Name identifies the destination.
func (s *Sink) Name() string { return "otel " + string(s.protocol) + " " + s.endpoint }

type numKind int

const (
	kindNone numKind = iota
	kindInt
	kindFloat
)

type value struct {
	kind numKind
	i    int64
	f    float64
}

func toValue(v, typ string) (value, bool) {
	v = strings.TrimSpace(v)
	switch strings.ToLower(typ) {
	case "int", "integer", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32":
		i, err := strconv.ParseInt(v, 10, 64)
		return value{kind: kindInt, i: i}, err == nil
	case "float", "double", "float32", "float64", "number":
		f, err := strconv.ParseFloat(v, 64)
		return value{kind: kindFloat, f: f}, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	case "boolean", "bool":
		b, err := strconv.ParseBool(v)
		if b {
			return value{kind: kindInt, i: 1}, err == nil
		}
		return value{kind: kindInt}, err == nil
	}
	return value{}, false
}

type series struct {
	name   string
	points []metricdata.DataPoint[float64]
	ints   []metricdata.DataPoint[int64]
	float  bool // some point is a float: export the metric as a double gauge
}

// Metrics converts a batch into the OTLP data model: one gauge per
// property name, one point per sample.
func (s *Sink) Metrics(batch []sink.Sample) *metricdata.ResourceMetrics {
	var order []string
	byName := map[string]*series{}
	for _, smp := range batch {
		v, ok := toValue(smp.Value, smp.Type)
		if !ok {
			s.skip(smp)
			continue
		}
		sr := byName[smp.Property]
		if sr == nil {
			sr = &series{name: smp.Property}
			byName[smp.Property] = sr
			order = append(order, smp.Property)
		}
		attrs := attribute.NewSet(
			attribute.String(AttrDevice, smp.Device),
			attribute.String(AttrNamespace, smp.Namespace),
			attribute.String(AttrProperty, smp.Property),
		)
		t := sinkutil.Time(smp, s.opts.Now)
		f := v.f
		if v.kind == kindInt {
			f = float64(v.i)
			sr.ints = append(sr.ints, metricdata.DataPoint[int64]{Attributes: attrs, Time: t, Value: v.i})
		} else {
			sr.float = true
		}
		sr.points = append(sr.points, metricdata.DataPoint[float64]{Attributes: attrs, Time: t, Value: f})
	}
	ms := make([]metricdata.Metrics, 0, len(order))
	for _, name := range order {
		sr := byName[name]
		m := metricdata.Metrics{Name: name, Description: "Device property " + name}
		if sr.float {
			m.Data = metricdata.Gauge[float64]{DataPoints: sr.points}
		} else {
			m.Data = metricdata.Gauge[int64]{DataPoints: sr.ints}
		}
		ms = append(ms, m)
	}
	return &metricdata.ResourceMetrics{
		Resource:     s.res,
		ScopeMetrics: []metricdata.ScopeMetrics{{Scope: instrumentation.Scope{Name: ScopeName}, Metrics: ms}},
	}
}

func (s *Sink) skip(smp sink.Sample) {
	key := smp.Namespace + "/" + smp.Device + "/" + smp.Property
	s.skipMu.Lock()
	first := !s.skipped[key]
	s.skipped[key] = true
	s.skipMu.Unlock()
	if first {
		s.opts.Logger.Warn("otel sample skipped", "device", smp.Namespace+"/"+smp.Device, "property", smp.Property, "type", smp.Type, "reason", "not a number, so not a metric")
	}
}

// Write exports the batch and returns the exporter's error.
func (s *Sink) Write(ctx context.Context, batch []sink.Sample) error {
	rm := s.Metrics(batch)
	if len(rm.ScopeMetrics[0].Metrics) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.exp.Export(ctx, rm); err != nil {
		return fmt.Errorf("otel sink: exporting to %s: %w", s.endpoint, err)
	}
	return nil
}

// Close shuts the exporter down.
func (s *Sink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	if err := s.exp.Shutdown(ctx); err != nil {
		return fmt.Errorf("otel sink: %w", err)
	}
	return nil
}

// Compile-time check that the exporters fit.
var (
	_ exporter = (*otlpmetricgrpc.Exporter)(nil)
	_ exporter = (*otlpmetrichttp.Exporter)(nil)
)
