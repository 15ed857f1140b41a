// Package influxsink writes samples to InfluxDB 2 (and InfluxDB 3 or any
// server speaking its /api/v2/write API), the dbMethod.influxdb2
// destination of a device property.
//
// Each sample is one line of line protocol:
//
//	<measurement>,device=<name>,namespace=<ns>,property=<prop>[,<config tags>] <fieldKey>=<value> <unix ns>
//
// The timestamp is the sample's (upstream stamped the write time), and the
// value is typed by the model: int becomes an integer field, float and
// double a float field, boolean a boolean field, anything else a string
// field (upstream wrote every value as a string). Tags from the config
// override the identity tags of the same key. A batch is one request; the
// token is sent as "Authorization: Token …". Writing the same point twice
// stores it once, because InfluxDB keys points by measurement, tags and
// time.
package influxsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/sinkutil"
	"github.com/verge-edge/verge/pkg/mapper/sink/secret"
)

// Config mirrors dbMethod.influxdb2 of the Device CRD.
type Config struct {
	Influxdb2ClientConfig ClientConfig `json:"influxdb2ClientConfig"`
	Influxdb2DataConfig   DataConfig   `json:"influxdb2DataConfig"`
}

// ClientConfig mirrors influxdb2ClientConfig.
type ClientConfig struct {
	// URL of the server, e.g. "http://127.0.0.1:8086".
	URL    string `json:"url,omitempty"`
	Org    string `json:"org,omitempty"`
	Bucket string `json:"bucket,omitempty"`
}

// DataConfig mirrors influxdb2DataConfig.
type DataConfig struct {
	Measurement string            `json:"measurement,omitempty"`
	Tag         map[string]string `json:"tag,omitempty"`
	// FieldKey names the value's field; DefaultFieldKey when empty.
	FieldKey string `json:"fieldKey,omitempty"`
}

// DefaultFieldKey is the field key when the config has none.
const DefaultFieldKey = "value"

// Identity tags every point carries unless the config overrides them.
const (
	TagNamespace = "namespace"
	TagDevice    = "device"
	TagProperty  = "property"
)

// Options are the settings that are not in the CRD.
type Options struct {
	// Token; the TOKEN environment variable (as upstream) when it names
	// no source. Read again for every request.
	Token secret.Credential
	// LookupEnv reads environment variables; os.LookupEnv when nil.
	LookupEnv secret.LookupEnv
	// Timeout bounds one request; default 10 s.
	Timeout time.Duration
	// Transport replaces the default keep-alive transport.
	Transport http.RoundTripper
	// Logger receives skipped samples; discarded when nil.
	Logger *slog.Logger
	// Now stamps samples that carry no timestamp; time.Now when nil.
	Now func() time.Time
}

// DefaultToken is where the token is read from by default.
var DefaultToken = secret.Credential{Env: "TOKEN"}

// Sink writes to one bucket. It is safe for concurrent use.
type Sink struct {
	writeURL    string
	bucket      string
	measurement string
	tags        map[string]string
	fieldKey    string
	opts        Options
	client      *http.Client

	mu      sync.Mutex
	skipped map[string]bool
}

var _ sink.Sink = (*Sink)(nil)

// New validates cfg and checks that the token is set.
func New(cfg Config, opts Options) (*Sink, error) {
	cc, dc := cfg.Influxdb2ClientConfig, cfg.Influxdb2DataConfig
	u, err := url.Parse(strings.TrimSpace(cc.URL))
	switch {
	case cc.URL == "":
		return nil, errors.New("dbMethod.influxdb2: influxdb2ClientConfig.url is empty: set it to the server, e.g. http://127.0.0.1:8086")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, fmt.Errorf("dbMethod.influxdb2: influxdb2ClientConfig.url %q is not an http(s) URL with a host", cc.URL)
	case cc.Org == "":
		return nil, errors.New("dbMethod.influxdb2: influxdb2ClientConfig.org is empty: set the organization that owns the bucket")
	case cc.Bucket == "":
		return nil, errors.New("dbMethod.influxdb2: influxdb2ClientConfig.bucket is empty")
	case dc.Measurement == "":
		return nil, errors.New("dbMethod.influxdb2: influxdb2DataConfig.measurement is empty")
	}
	if dc.FieldKey == "" {
		dc.FieldKey = DefaultFieldKey
	}
	names := map[string]string{"measurement": dc.Measurement, "fieldKey": dc.FieldKey}
	for k := range dc.Tag {
		if k == "" {
			return nil, errors.New("dbMethod.influxdb2: influxdb2DataConfig.tag has an empty key")
		}
		names["tag key "+k] = k
	}
	for what, n := range names {
		if strings.HasPrefix(n, "_") {
			return nil, fmt.Errorf("dbMethod.influxdb2: %s %q starts with '_', which InfluxDB reserves", what, n)
		}
	}
	opts.Token = opts.Token.Or(DefaultToken)
	if _, err := opts.Token.Require(opts.LookupEnv, "the InfluxDB token"); err != nil {
		return nil, fmt.Errorf("influxdb2 sink: %w", err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	rt := opts.Transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 4
		rt = t
	}
	q := url.Values{"org": {cc.Org}, "bucket": {cc.Bucket}, "precision": {"ns"}}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v2/write"
	u.RawQuery = q.Encode()
	tags := make(map[string]string, len(dc.Tag))
	for k, v := range dc.Tag {
		tags[k] = v
	}
	return &Sink{
		writeURL:    u.String(),
		bucket:      cc.Org + "/" + cc.Bucket,
		measurement: dc.Measurement,
		tags:        tags,
		fieldKey:    dc.FieldKey,
		opts:        opts,
		client:      &http.Client{Transport: rt, Timeout: opts.Timeout},
		skipped:     map[string]bool{},
	}, nil
}

// Name identifies the destination.
func (s *Sink) Name() string { return "influxdb2 " + s.writeURL }

// Encode renders a batch as line protocol. Samples whose value does not
// fit their type (a non-number for an int property, NaN) are left out and
// logged once per property: InfluxDB would reject the whole request.
func (s *Sink) Encode(batch []sink.Sample) string {
	var b strings.Builder
	for _, smp := range batch {
		fv, err := toField(smp.Value, smp.Type)
		if err != nil {
			s.skip(smp, err)
			continue
		}
		tags := map[string]string{TagNamespace: smp.Namespace, TagDevice: smp.Device, TagProperty: smp.Property}
		for k, v := range s.tags {
			tags[k] = v
		}
		appendLine(&b, point{
			measurement: s.measurement,
			tags:        tags,
			fieldKey:    s.fieldKey,
			field:       fv,
			time:        sinkutil.Time(smp, s.opts.Now),
		})
	}
	return b.String()
}

func (s *Sink) skip(smp sink.Sample, err error) {
	key := smp.Namespace + "/" + smp.Device + "/" + smp.Property
	s.mu.Lock()
	first := !s.skipped[key]
	s.skipped[key] = true
	s.mu.Unlock()
	if first {
		s.opts.Logger.Warn("influxdb sample skipped", "device", smp.Namespace+"/"+smp.Device, "property", smp.Property, "type", smp.Type, "value", smp.Value, "err", err)
	}
}

// maxErrorBody is how much of an error response goes into the error.
const maxErrorBody = 512

// Write posts the batch as one request.
func (s *Sink) Write(ctx context.Context, batch []sink.Sample) error {
	body := s.Encode(batch)
	if body == "" {
		return nil
	}
	token, err := s.opts.Token.Require(s.opts.LookupEnv, "the InfluxDB token")
	if err != nil {
		return fmt.Errorf("influxdb2 sink: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.writeURL, bytes.NewBufferString(body))
	if err != nil {
		return fmt.Errorf("influxdb2 sink: %w", err)
	}
	req.Header.Set("Authorization", "Token "+token)
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "verge-mapper")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("influxdb2 sink: POST %s: %w", s.writeURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	hint := ""
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		hint = fmt.Sprintf(" (check the token in %s: it needs write access to %s)", s.opts.Token, s.bucket)
	case http.StatusNotFound:
		hint = fmt.Sprintf(" (does bucket %s exist?)", s.bucket)
	}
	return fmt.Errorf("influxdb2 sink: POST %s: %s%s: %s", s.writeURL, resp.Status, hint, sinkutil.Snippet(msg, maxErrorBody))
}

// Close drops idle connections.
func (s *Sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
