package aiworkload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verge-edge/verge/pkg/ai/jointinference"
	"github.com/verge-edge/verge/pkg/ai/model"
	"github.com/verge-edge/verge/pkg/ai/workerenv"
)

// CloudConfig is the cloud worker's configuration.
type CloudConfig struct {
	// Env is Sedna's contract: SERVICE_NAME, BIG_MODEL_BIND_IP,
	// BIG_MODEL_BIND_PORT, MODEL_URL.
	Env workerenv.JointInferenceCloud
	// MaxInFlight bounds concurrent predictions (MAX_IN_FLIGHT; 0: the
	// server's default, 4 × GOMAXPROCS); beyond it callers get 503 and
	// edge workers fall back at once.
	MaxInFlight int
}

// LoadCloudConfig reads the cloud worker's environment. MODEL_URL is
// required.
func LoadCloudConfig(get workerenv.Lookup) (CloudConfig, error) {
	env, err := workerenv.LoadJointInferenceCloud(get)
	r := workerenv.NewReader(get)
	r.Required("MODEL_URL", "the cloud model: a model file, or a directory holding "+ModelFileName)
	c := CloudConfig{Env: env, MaxInFlight: r.Int("MAX_IN_FLIGHT", 0, 1, 1<<16)}
	return c, errors.Join(err, r.Err())
}

// CloudWorker serves the cloud model with Sedna's inference protocol:
// POST /{SERVICE_NAME}/predict {"data": image or images} answers
// {"result": probabilities} (a list of 10 per image), plus GET
// /{SERVICE_NAME}, GET /healthz and GET /metrics.
type CloudWorker struct {
	cfg    CloudConfig
	model  *model.Model
	server *jointinference.Server
	reg    *prometheus.Registry
	log    *slog.Logger
}

// NewCloudWorker serves m (nil: load Env.ModelURL).
func NewCloudWorker(cfg CloudConfig, m *model.Model, log *slog.Logger) (*CloudWorker, error) {
	log = orDiscard(log)
	m, err := givenOrLoaded(m, cfg.Env.ModelURL)
	if err != nil {
		return nil, err
	}
	w := &CloudWorker{cfg: cfg, model: m, reg: prometheus.NewRegistry(), log: log}
	srv, err := jointinference.NewServer(jointinference.ServerConfig{
		ServiceName: cfg.Env.ServiceName,
		Predict:     w.Predict,
		MaxInFlight: cfg.MaxInFlight,
		Logger:      log,
		Registerer:  w.reg,
	})
	if err != nil {
		return nil, err
	}
	w.server = srv
	return w, nil
}

// Predict runs the model on the request's image or images.
func (w *CloudWorker) Predict(_ context.Context, req jointinference.PredictRequest) (any, error) {
	images, batch, err := DecodeImages(req.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", jointinference.ErrBadInput, err)
	}
	x := make([]float32, 0, len(images)*ImageDim)
	for _, img := range images {
		x = append(x, img...)
	}
	probs, err := w.model.PredictBatch(x)
	if err != nil {
		return nil, err
	}
	if !batch {
		return probs[0], nil
	}
	return probs, nil
}

// Handler is the worker's HTTP API.
func (w *CloudWorker) Handler() http.Handler { return withMetrics(w.server.Handler(), w.reg) }

// Serve serves on ln until ctx ends.
func (w *CloudWorker) Serve(ctx context.Context, ln net.Listener) error {
	w.log.Info("cloud worker serving", "address", ln.Addr().String(), "service", w.cfg.Env.ServiceName, "model", w.model.Arch().String())
	return serveHTTP(ctx, ln, w.Handler(), w.log)
}

// Start listens on BIG_MODEL_BIND_IP:BIG_MODEL_BIND_PORT and serves until
// ctx ends.
func (w *CloudWorker) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", w.cfg.Env.Addr())
	if err != nil {
		return err
	}
	return w.Serve(ctx, ln)
}
