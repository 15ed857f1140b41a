package aiworkload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/verge-edge/verge/pkg/ai/hem"
	"github.com/verge-edge/verge/pkg/ai/jointinference"
	"github.com/verge-edge/verge/pkg/ai/model"
	"github.com/verge-edge/verge/pkg/ai/report"
	"github.com/verge-edge/verge/pkg/ai/workerenv"
)

// DefaultInferencePort is the edge worker's local API port
// (INFERENCE_BIND_PORT).
const DefaultInferencePort = 8000

// EdgeConfig is the edge worker's configuration.
type EdgeConfig struct {
	// Env is Sedna's contract: SERVICE_NAME, BIG_MODEL_IP,
	// BIG_MODEL_PORT, HEM_NAME, HEM_PARAMETERS, MODEL_URL, LC_SERVER,
	// LC_PERIOD, WORKER_NAME, NAMESPACE.
	Env workerenv.JointInferenceEdge
	// BindIP and BindPort are the local API's address
	// (INFERENCE_BIND_IP, default 0.0.0.0; INFERENCE_BIND_PORT, 8000).
	BindIP   string
	BindPort int
	// Budget bounds one inference, edge model and cloud call together
	// (INFERENCE_BUDGET, default 200ms).
	Budget time.Duration
	// Report: post counters to LC_SERVER (true when LC_SERVER is set).
	Report bool
	// Breaker tunes the circuit breaker towards the cloud (defaults:
	// pkg/ai/jointinference's).
	Breaker jointinference.BreakerConfig
}

// Addr is the local API's listen address.
func (c EdgeConfig) Addr() string {
	return net.JoinHostPort(c.BindIP, strconv.Itoa(c.BindPort))
}

// LoadEdgeConfig reads the edge worker's environment. MODEL_URL and the
// cloud's address are required; HEM_NAME and HEM_PARAMETERS are checked.
func LoadEdgeConfig(get workerenv.Lookup) (EdgeConfig, error) {
	env, err := workerenv.LoadJointInferenceEdge(get)
	r := workerenv.NewReader(get)
	r.Required("MODEL_URL", "the edge model: a model file, or a directory holding "+ModelFileName)
	c := EdgeConfig{
		Env:      env,
		BindIP:   r.Host("INFERENCE_BIND_IP", "0.0.0.0", false),
		BindPort: r.Int("INFERENCE_BIND_PORT", DefaultInferencePort, 1, 65535),
		Budget:   r.Duration("INFERENCE_BUDGET", jointinference.DefaultBudget),
		Report:   lcServerSet(get),
	}
	return c, errors.Join(err, r.Err())
}

// Answer is the edge worker's answer for one image: Sedna's
// [is_hard_example, final_result, edge_result, cloud_result], named, plus
// why a hard example was answered by the edge and how long it took.
type Answer struct {
	IsHardExample bool        `json:"is_hard_example"`
	FinalResult   Prediction  `json:"final_result"`
	EdgeResult    Prediction  `json:"edge_result"`
	CloudResult   *Prediction `json:"cloud_result"`
	// Fallback is set when a hard example was answered by the edge:
	// breaker_open, budget_exhausted, timeout, cloud_error or canceled.
	Fallback   string `json:"fallback,omitempty"`
	CloudError string `json:"cloud_error,omitempty"`
	// MiningError: the filter could not judge the edge result; the sample
	// stayed on the edge.
	MiningError string  `json:"mining_error,omitempty"`
	ElapsedMS   float64 `json:"elapsed_ms"`
}

// EdgeWorker runs the edge model for applications on the node: each image
// is answered by the edge model, and hard examples (HEM_NAME) by the cloud
// worker when it answers within the budget.
//
// Local API, Sedna's inference-server shape:
//
//	POST /{SERVICE_NAME}/predict {"data": image or images} → {"result": Answer or [Answer]}
//	GET  /{SERVICE_NAME}         the routes
//	GET  /healthz                {"status": "ok"}
//	GET  /metrics                verge_ji_* counters
type EdgeWorker struct {
	cfg    EdgeConfig
	model  *model.Model
	client *jointinference.Client[[]float32, []float32]
	server *jointinference.Server
	reg    *prometheus.Registry
	log    *slog.Logger
}

// EdgeOptions are the parts a caller may inject.
type EdgeOptions struct {
	// Model is served instead of loading Env.ModelURL.
	Model *model.Model
	// HTTPClient calls the cloud (default: the SDK's).
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// NewEdgeWorker loads the model and builds the joint-inference client.
func NewEdgeWorker(cfg EdgeConfig, opts EdgeOptions) (*EdgeWorker, error) {
	log := orDiscard(opts.Logger)
	m, err := givenOrLoaded(opts.Model, cfg.Env.ModelURL)
	if err != nil {
		return nil, err
	}
	filter, err := cfg.Env.Filter(hem.Options{})
	if err != nil {
		return nil, fmt.Errorf("HEM_NAME %q: %w", cfg.Env.HEMName, err)
	}
	w := &EdgeWorker{cfg: cfg, model: m, reg: prometheus.NewRegistry(), log: log}
	w.client, err = jointinference.NewClient(jointinference.Config[[]float32, []float32]{
		Edge:        w.edge,
		Filter:      filter,
		CloudURL:    cfg.Env.CloudURL(),
		DecodeCloud: decodeCloudProbabilities,
		HTTPClient:  opts.HTTPClient,
		Budget:      cfg.Budget,
		Breaker:     cfg.Breaker,
		Logger:      log,
		Registerer:  w.reg,
	})
	if err != nil {
		return nil, err
	}
	w.server, err = jointinference.NewServer(jointinference.ServerConfig{
		ServiceName: cfg.Env.ServiceName,
		Predict:     w.predict,
		Logger:      log,
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// edge runs the edge model. The filter sees the probabilities
// (CrossEntropy) and, for the box-based filters, one box whose score is
// the top probability (Threshold: hard when it is below threshold; IBT).
func (w *EdgeWorker) edge(_ context.Context, img []float32) ([]float32, hem.Result, error) {
	probs, err := w.model.Predict(img)
	if err != nil {
		return nil, hem.Result{}, err
	}
	return probs, MiningView(probs), nil
}

// MiningView is what the hard-example filters judge for a classifier's
// probabilities: the probabilities, and one box scored with the top one.
func MiningView(probs []float32) hem.Result {
	p := make([]float64, len(probs))
	for i, v := range probs {
		p[i] = float64(v)
	}
	l := model.Argmax(probs)
	return hem.Result{Probabilities: p, Boxes: []hem.Box{{Score: min(max(p[l], 0), 1), Label: float64(l)}}}
}

// decodeCloudProbabilities checks the cloud's answer: 10 probabilities.
func decodeCloudProbabilities(raw json.RawMessage) ([]float32, error) {
	var p []float32
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	if len(p) != ClassCount {
		return nil, fmt.Errorf("the cloud answered %d values; want %d class probabilities", len(p), ClassCount)
	}
	return p, nil
}

// Infer answers one image.
func (w *EdgeWorker) Infer(ctx context.Context, img []float32) (Answer, error) {
	o, err := w.client.Infer(ctx, img)
	if err != nil {
		return Answer{}, err
	}
	a := Answer{
		IsHardExample: o.Hard,
		FinalResult:   NewPrediction(o.Final),
		EdgeResult:    NewPrediction(o.Edge),
		Fallback:      string(o.Fallback),
		ElapsedMS:     float64(o.Elapsed.Microseconds()) / 1000,
	}
	if o.FromCloud {
		c := NewPrediction(o.Cloud)
		a.CloudResult = &c
	}
	if o.CloudErr != nil {
		a.CloudError = o.CloudErr.Error()
	}
	if o.MiningErr != nil {
		a.MiningError = o.MiningErr.Error()
	}
	return a, nil
}

func (w *EdgeWorker) predict(ctx context.Context, req jointinference.PredictRequest) (any, error) {
	images, batch, err := DecodeImages(req.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", jointinference.ErrBadInput, err)
	}
	answers := make([]Answer, len(images))
	for i, img := range images {
		if answers[i], err = w.Infer(ctx, img); err != nil {
			return nil, err
		}
	}
	if !batch {
		return answers[0], nil
	}
	return answers, nil
}

// Stats are the joint-inference counters.
func (w *EdgeWorker) Stats() jointinference.Stats { return w.client.Stats() }

// Handler is the local API.
func (w *EdgeWorker) Handler() http.Handler { return withMetrics(w.server.Handler(), w.reg) }

// Serve serves the local API on ln, and reports to the local controller
// when configured, until ctx ends.
func (w *EdgeWorker) Serve(ctx context.Context, ln net.Listener) error {
	g, ctx := errgroup.WithContext(ctx)
	if w.cfg.Report {
		lc, err := report.NewClient(w.cfg.Env.LCServer, nil)
		if err != nil {
			return err
		}
		rw := report.Worker{Name: w.cfg.Env.WorkerName, Namespace: w.cfg.Env.Namespace,
			OwnerName: w.cfg.Env.ServiceName, OwnerKind: report.KindJointInference}
		p, err := report.NewPeriodic(report.PeriodicConfig{
			Client: lc, Period: w.cfg.Env.ReportPeriod, Logger: w.log,
			Build: report.JointInference(rw, func() (uint64, uint64) {
				s := w.client.Stats()
				return s.Inferences, s.HardExamples
			}),
		})
		if err != nil {
			return err
		}
		g.Go(func() error { return p.Start(ctx) })
	}
	w.log.Info("edge worker serving", "address", ln.Addr().String(), "service", w.cfg.Env.ServiceName,
		"cloud", w.cfg.Env.CloudURL(), "hem", w.cfg.Env.HEMName, "budget", w.cfg.Budget, "model", w.model.Arch().String())
	g.Go(func() error { return serveHTTP(ctx, ln, w.Handler(), w.log) })
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Start listens on INFERENCE_BIND_IP:INFERENCE_BIND_PORT and serves until
// ctx ends.
func (w *EdgeWorker) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", w.cfg.Addr())
	if err != nil {
		return err
	}
	return w.Serve(ctx, ln)
}
