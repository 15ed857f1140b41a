// Package httpsink pushes samples to an HTTP endpoint, the pushMethod.http
// destination of a device property.
//
// Unlike upstream, which opened a connection per reading, ignored the
// configured timeout and never looked at the response, the sink keeps
// connections alive, bounds every request, and treats any status other
// than 2xx as a failed write (the error carries the start of the body),
// so the SDK retries the batch.
package httpsink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/sinkutil"
	"github.com/verge-edge/verge/pkg/mapper/sink/secret"
)

// Config mirrors pushMethod.http of the Device CRD.
type Config struct {
	// HostName is the host, with an optional http:// or https:// scheme
	// (http when absent), e.g. "http://127.0.0.1" or "collector.local".
	HostName string `json:"hostName,omitempty"`
	// Port; 0 means the scheme's default.
	Port int64 `json:"port,omitempty"`
	// RequestPath is the path requests go to, e.g. "/api/v1/readings".
	RequestPath string `json:"requestPath,omitempty"`
	// Timeout bounds one request, in seconds; 0 means DefaultTimeout.
	Timeout int64 `json:"timeout,omitempty"`
}

// Format is the body of a push.
type Format string

const (
	// FormatJSON posts one request per batch with the body
	// {"samples":[{"namespace","device","property","value","type","timestamp"},…]}.
	FormatJSON Format = "json"
	// FormatForm posts one request per sample with upstream's
	// form-encoded body "<property>=<value>&time=<YYYY-MM-DD hh:mm:ss>"
	// (UTC), for receivers written against KubeEdge mappers.
	FormatForm Format = "form"
)

// DefaultTimeout bounds a request when the config has no timeout.
const DefaultTimeout = 10 * time.Second

// maxTimeout catches timeouts written in milliseconds.
const maxTimeout = 600

// Options are the settings that are not in the CRD.
type Options struct {
	// Format of the body; FormatJSON when empty.
	Format Format
	// BearerToken, when it names a source, is sent as
	// "Authorization: Bearer <token>" with every request.
	BearerToken secret.Credential
	// LookupEnv reads environment variables; os.LookupEnv when nil.
	LookupEnv secret.LookupEnv
	// Transport replaces the default keep-alive transport (for custom TLS).
	Transport http.RoundTripper
	// Now stamps samples that carry no timestamp; time.Now when nil.
	Now func() time.Time
}

// Sink is an HTTP push destination. It is safe for concurrent use.
type Sink struct {
	url    string
	format Format
	client *http.Client
	opts   Options
}

var _ sink.Sink = (*Sink)(nil)

// New validates cfg and builds the sink. No request is made until Write.
func New(cfg Config, opts Options) (*Sink, error) {
	u, err := targetURL(cfg)
	if err != nil {
		return nil, fmt.Errorf("pushMethod.http: %w", err)
	}
	if cfg.Timeout < 0 || cfg.Timeout > maxTimeout {
		return nil, fmt.Errorf("pushMethod.http: timeout %d is out of range: it is in seconds, between 0 (default %v) and %d", cfg.Timeout, DefaultTimeout, maxTimeout)
	}
	timeout := DefaultTimeout
	if cfg.Timeout > 0 {
		timeout = time.Duration(cfg.Timeout) * time.Second
	}
	switch opts.Format {
	case "":
		opts.Format = FormatJSON
	case FormatJSON, FormatForm:
	default:
		return nil, fmt.Errorf("http sink: unknown format %q: use %q or %q", opts.Format, FormatJSON, FormatForm)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	rt := opts.Transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 4
		t.ResponseHeaderTimeout = timeout
		rt = t
	}
	return &Sink{
		url:    u,
		format: opts.Format,
		client: &http.Client{Transport: rt, Timeout: timeout},
		opts:   opts,
	}, nil
}

func targetURL(cfg Config) (string, error) {
	host := strings.TrimSpace(cfg.HostName)
	if host == "" {
		return "", errors.New("hostName is empty: set it to the receiver's host, e.g. http://127.0.0.1")
	}
	if !strings.Contains(host, "://") {
		host = "http://" + host
	}
	u, err := url.Parse(host)
	if err != nil {
		return "", fmt.Errorf("hostName %q is not a host or URL: %w", cfg.HostName, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("hostName %q has scheme %q: use http or https", cfg.HostName, u.Scheme)
	}
	if u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("hostName %q must be a scheme and host only; put the path in requestPath", cfg.HostName)
	}
	switch {
	case cfg.Port < 0 || cfg.Port > 65535:
		return "", fmt.Errorf("port %d is out of range 1-65535", cfg.Port)
	case cfg.Port > 0 && u.Port() != "" && u.Port() != strconv.FormatInt(cfg.Port, 10):
		return "", fmt.Errorf("hostName %q has port %s but port is %d: set one of them", cfg.HostName, u.Port(), cfg.Port)
	case cfg.Port > 0:
		u.Host = net.JoinHostPort(u.Hostname(), strconv.FormatInt(cfg.Port, 10))
	}
	p := cfg.RequestPath
	if p != "" && !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	ref, err := url.Parse(p)
	if err != nil {
		return "", fmt.Errorf("requestPath %q: %w", cfg.RequestPath, err)
	}
	u.Path, u.RawPath, u.RawQuery = ref.Path, ref.RawPath, ref.RawQuery
	return u.String(), nil
}

// Name identifies the destination.
func (s *Sink) Name() string { return "http " + s.url }

// URL is where samples are posted.
func (s *Sink) URL() string { return s.url }

type body struct {
	Samples []sinkutil.Record `json:"samples"`
}

// Write posts the batch: one request in JSON format, one per sample in
// form format (stopping at the first failure).
func (s *Sink) Write(ctx context.Context, batch []sink.Sample) error {
	if len(batch) == 0 {
		return nil
	}
	if s.format == FormatForm {
		for _, smp := range batch {
			t := sinkutil.Time(smp, s.opts.Now).UTC().Format(time.DateTime)
			payload := url.QueryEscape(smp.Property) + "=" + url.QueryEscape(smp.Value) + "&time=" + url.QueryEscape(t)
			if err := s.post(ctx, "application/x-www-form-urlencoded", []byte(payload)); err != nil {
				return err
			}
		}
		return nil
	}
	b := body{Samples: make([]sinkutil.Record, len(batch))}
	for i, smp := range batch {
		b.Samples[i] = sinkutil.NewRecord(smp, s.opts.Now)
	}
	payload, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("http sink: encoding batch: %w", err)
	}
	return s.post(ctx, "application/json", payload)
}

// maxErrorBody is how much of an error response is read into the error.
const maxErrorBody = 512

func (s *Sink) post(ctx context.Context, contentType string, payload []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("http sink: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "verge-mapper")
	if !s.opts.BearerToken.IsZero() {
		tok, err := s.opts.BearerToken.Require(s.opts.LookupEnv, "the HTTP bearer token")
		if err != nil {
			return fmt.Errorf("http sink: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("http sink: POST %s: %w", s.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return fmt.Errorf("http sink: POST %s: %s: %s", s.url, resp.Status, sinkutil.Snippet(msg, maxErrorBody))
	}
	// Drain so the connection goes back to the pool.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return nil
}

// Close drops idle connections.
func (s *Sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
