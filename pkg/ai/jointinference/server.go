package jointinference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PredictRequest is one call to the cloud model, as Sedna's edge workers
// send it: POST /{service}/predict with {"data": …, "callback": …}. Other
// top-level fields (Sedna passes the caller's keyword arguments through)
// are in Extra.
type PredictRequest struct {
	// Data is the "data" field as sent: any JSON value but null (Sedna's
	// edge sends a list, e.g. an image as nested lists).
	Data json.RawMessage
	// Callback names a post-processing step the server registered
	// (Sedna's optional "callback"); empty when absent.
	Callback string
	// Extra holds the other top-level fields.
	Extra map[string]json.RawMessage
}

// PredictFunc runs the cloud model. Its result is sent as {"result": …}.
// Return an error wrapping ErrBadInput for input the model cannot take
// (the caller gets 422); any other error is a 500.
type PredictFunc func(ctx context.Context, req PredictRequest) (any, error)

// ErrBadInput marks a PredictFunc error caused by the request.
var ErrBadInput = errors.New("bad input")

// ServerConfig configures the cloud worker's server.
type ServerConfig struct {
	// ServiceName is the path prefix, SERVICE_NAME (the
	// JointInferenceService's name).
	ServiceName string
	// Predict runs the model.
	Predict PredictFunc
	// MaxBodyBytes bounds a request body (default 32 MiB); larger ones get
	// 413.
	MaxBodyBytes int64
	// Timeout bounds one prediction (default 60 s); past it the caller
	// gets 504. The edge client's own deadline is usually far shorter.
	Timeout time.Duration
	// MaxInFlight bounds concurrent predictions (default 4 × GOMAXPROCS);
	// beyond it requests get 503 at once, so edge clients fall back rather
	// than queue.
	MaxInFlight int
	// Logger receives errors (default: discard).
	Logger *slog.Logger
	// Registerer, if set, gets the server's metrics.
	Registerer prometheus.Registerer
}

// Server serves Sedna's inference protocol:
//
//	GET  /{service}          {"infos": [{"path": …, "methods": […]}, …]}
//	POST /{service}/predict  {"data": …, "callback"?: …} → {"result": …}
//	GET  /healthz            {"status": "ok"}
//
// Errors are {"detail": "…"} (FastAPI's shape) with 400 (not JSON), 405,
// 413 (too large), 415 (not JSON content type), 422 ("data" missing or
// null, or ErrBadInput from the model), 500, 503 (too many in flight) or
// 504 (the model overran Timeout).
type Server struct {
	cfg      ServerConfig
	slots    chan struct{}
	requests *prometheus.CounterVec
	duration prometheus.Histogram
}

// NewServer checks the configuration and fills defaults.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.ServiceName == "" || strings.ContainsAny(cfg.ServiceName, "/?# ") {
		return nil, fmt.Errorf("inference server: service name %q must be non-empty and contain no '/', '?', '#' or spaces (use SERVICE_NAME)", cfg.ServiceName)
	}
	if cfg.Predict == nil {
		return nil, errors.New("inference server: Predict is required")
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 32 << 20
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 4 * runtime.GOMAXPROCS(0)
	}
	if cfg.MaxBodyBytes < 0 || cfg.Timeout < 0 || cfg.MaxInFlight < 0 {
		return nil, errors.New("inference server: MaxBodyBytes, Timeout and MaxInFlight must not be negative")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:   cfg,
		slots: make(chan struct{}, cfg.MaxInFlight),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verge_ji_cloud_requests_total", Help: "Predict requests the cloud worker answered, by HTTP status code.",
		}, []string{"code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "verge_ji_cloud_predict_duration_seconds", Help: "Time the cloud model took per predict request.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
	if cfg.Registerer != nil {
		if err := registerAll(cfg.Registerer, s.requests, s.duration); err != nil {
			return nil, fmt.Errorf("inference server: %w", err)
		}
	}
	return s, nil
}

func registerAll(r prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	base := "/" + s.cfg.ServiceName
	mux.HandleFunc("GET "+base, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"infos": []map[string]any{
			{"path": base, "methods": []string{"GET"}},
			{"path": base + "/predict", "methods": []string{"POST"}},
		}})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc(base+"/predict", s.predict)
	return mux
}

// Serve serves on ln until ctx ends, then shuts down, giving requests in
// flight up to 5 s.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("inference server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("inference server: shutting down: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) predict(w http.ResponseWriter, r *http.Request) {
	code := s.servePredict(w, r)
	s.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

func (s *Server) servePredict(w http.ResponseWriter, r *http.Request) int {
	fail := func(code int, format string, args ...any) int {
		writeJSON(w, code, map[string]string{"detail": fmt.Sprintf(format, args...)})
		return code
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return fail(http.StatusMethodNotAllowed, "use POST with a JSON body {\"data\": …}")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return fail(http.StatusUnsupportedMediaType, "content type %q: send application/json", ct)
		}
	}
	body, err := readBody(r, s.cfg.MaxBodyBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fail(http.StatusRequestEntityTooLarge, "request body exceeds %d bytes", s.cfg.MaxBodyBytes)
		}
		return fail(http.StatusBadRequest, "reading the request body: %v", err)
	}
	req, err := parsePredictRequest(body)
	if err != nil {
		var ue *unprocessable
		if errors.As(err, &ue) {
			return fail(http.StatusUnprocessableEntity, "%v", err)
		}
		return fail(http.StatusBadRequest, "%v", err)
	}

	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		w.Header().Set("Retry-After", "1")
		return fail(http.StatusServiceUnavailable, "the cloud model is busy (%d predictions in flight); retry later", s.cfg.MaxInFlight)
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	start := time.Now()
	res, err := s.cfg.Predict(ctx, req)
	s.duration.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
	case errors.Is(err, ErrBadInput):
		return fail(http.StatusUnprocessableEntity, "%v", err)
	case ctx.Err() != nil && r.Context().Err() == nil:
		return fail(http.StatusGatewayTimeout, "the cloud model did not answer within %v", s.cfg.Timeout)
	default:
		s.cfg.Logger.Warn("prediction failed", "error", err)
		return fail(http.StatusInternalServerError, "prediction failed: %v", err)
	}
	out, err := json.Marshal(map[string]any{"result": res})
	if err != nil {
		s.cfg.Logger.Warn("prediction result cannot be encoded", "error", err)
		return fail(http.StatusInternalServerError, "the model's result cannot be encoded as JSON: %v", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return http.StatusOK
}

type unprocessable struct{ msg string }

func (e *unprocessable) Error() string { return e.msg }

func parsePredictRequest(body []byte) (PredictRequest, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		return PredictRequest{}, fmt.Errorf("the body is not a JSON object: %w", err)
	}
	if dec.More() {
		return PredictRequest{}, errors.New("the body has data after the JSON object")
	}
	data, ok := fields["data"]
	if !ok || string(bytes.TrimSpace(data)) == "null" {
		return PredictRequest{}, &unprocessable{`field "data" is required and must not be null`}
	}
	req := PredictRequest{Data: data}
	delete(fields, "data")
	if cb, ok := fields["callback"]; ok {
		delete(fields, "callback")
		if string(bytes.TrimSpace(cb)) != "null" {
			if err := json.Unmarshal(cb, &req.Callback); err != nil {
				return PredictRequest{}, &unprocessable{`field "callback" must be a string`}
			}
		}
	}
	if len(fields) > 0 {
		req.Extra = fields
	}
	return req, nil
}

func readBody(r *http.Request, limit int64) ([]byte, error) {
	rd := http.MaxBytesReader(nil, r.Body, limit)
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= limit {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(rd)
	return buf.Bytes(), err
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"detail":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
