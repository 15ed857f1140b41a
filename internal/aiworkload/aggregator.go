package aiworkload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verge-edge/verge/pkg/ai/federated"
	"github.com/verge-edge/verge/pkg/ai/model"
	"github.com/verge-edge/verge/pkg/ai/workerenv"
)

// AggregatorConfig is the aggregation worker's configuration.
type AggregatorConfig struct {
	// Env is Sedna's contract plus Verge's round settings:
	// PARTICIPANTS_COUNT, MIN_CLIENTS_PER_ROUND, ROUND_TIMEOUT,
	// STOP_ROUNDS (or exit_round), STOP_METRIC*, AGGREGATION_ALGORITHM,
	// AGGREGATION_PARAMETERS, AGG_BIND_IP, AGG_BIND_PORT, MODEL_URL,
	// PRETRAINED_MODEL_URL.
	Env workerenv.FederatedAggregator
	// FinishGrace is how long the final model is served to clients that
	// have not received it (FINISH_GRACE, default 30s).
	FinishGrace time.Duration
}

// LoadAggregatorConfig reads the aggregation worker's environment.
// MODEL_URL, where the model is written, is required.
func LoadAggregatorConfig(get workerenv.Lookup) (AggregatorConfig, error) {
	env, err := workerenv.LoadFederatedAggregator(get)
	r := workerenv.NewReader(get)
	r.Required("MODEL_URL", "where to write the model: a file, or a directory (it gets "+ModelFileName+")")
	c := AggregatorConfig{Env: env, FinishGrace: r.Duration("FINISH_GRACE", 30*time.Second)}
	return c, errors.Join(err, r.Err())
}

// AggregatorOptions are the parts a caller may inject.
type AggregatorOptions struct {
	// Initial is the round-1 model instead of PRETRAINED_MODEL_URL.
	Initial *model.Model
	// OnRound is called after each round is aggregated and saved, on the
	// aggregator's loop (keep it short).
	OnRound func(rc federated.RoundClosed, m *model.Model)
	Logger  *slog.Logger
}

// Aggregator is the aggregation worker: Sedna's aggregation WebSocket
// (pkg/ai/federated) on AGG_BIND_PORT, with GET /metrics beside it, that
// writes the aggregated model to MODEL_URL after every round, so the
// latest model survives a stopped job and the last one is the result.
type Aggregator struct {
	cfg   AggregatorConfig
	agg   *federated.Aggregator
	reg   *prometheus.Registry
	log   *slog.Logger
	opts  AggregatorOptions
	saved string
	// saveErr is the last save failure; Serve returns it if the final
	// model could not be written.
	saveErr error
}

// NewAggregator builds the aggregator.
func NewAggregator(cfg AggregatorConfig, opts AggregatorOptions) (*Aggregator, error) {
	a := &Aggregator{cfg: cfg, reg: prometheus.NewRegistry(), log: orDiscard(opts.Logger), opts: opts}
	rounds, err := cfg.Env.RoundConfig()
	if err != nil {
		return nil, err
	}
	initial := opts.Initial
	if initial == nil && cfg.Env.PretrainedModelURL != "" {
		if initial, err = LoadClassifier("PRETRAINED_MODEL_URL", cfg.Env.PretrainedModelURL); err != nil {
			return nil, err
		}
	}
	if initial != nil {
		rounds.Initial = Weights(initial)
	}
	if _, err := OutputModelPath(cfg.Env.ModelURL); err != nil {
		return nil, fmt.Errorf("MODEL_URL %q: %w", cfg.Env.ModelURL, err)
	}
	a.agg, err = federated.NewAggregator(federated.AggregatorConfig{
		Rounds:      rounds,
		JobName:     cfg.Env.JobName,
		FinishGrace: cfg.FinishGrace,
		OnRound:     a.onRound,
		Logger:      a.log,
		Registerer:  a.reg,
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Aggregator) onRound(rc federated.RoundClosed) {
	r := rc.Result
	m, err := ModelFromWeights(r.Weights)
	if err == nil {
		a.saved, err = SaveModel(a.cfg.Env.ModelURL, m)
	}
	a.saveErr = err
	if err != nil {
		a.log.Error("saving the aggregated model failed", "round", r.Round, "modelURL", a.cfg.Env.ModelURL, "error", err)
	}
	a.log.Debug("aggregated model saved", "round", r.Round, "path", a.saved)
	if a.opts.OnRound != nil && m != nil {
		a.opts.OnRound(rc, m)
	}
}

// Handler serves the WebSocket (every path), the status (plain GET) and
// GET /metrics.
func (a *Aggregator) Handler() http.Handler { return withMetrics(a.agg.Handler(), a.reg) }

// Serve runs the aggregator on ln until training is over, or ctx ends. It
// returns the final round, whose model is at ModelPath.
func (a *Aggregator) Serve(ctx context.Context, ln net.Listener) (*federated.RoundResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.log.Info("aggregator serving", "address", ln.Addr().String(), "job", a.cfg.Env.JobName,
		"participants", a.cfg.Env.Participants, "minClients", a.cfg.Env.MinClients, "algorithm", a.cfg.Env.Aggregation)
	srvErr := make(chan error, 1)
	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		err := serveHTTP(srvCtx, ln, a.Handler(), a.log)
		if err != nil {
			cancel() // the listener failed: stop the rounds
		}
		srvErr <- err
	}()
	res, err := a.agg.Run(ctx)
	stopSrv()
	sErr := <-srvErr
	a.agg.Wait()
	if err == nil && res != nil && a.saveErr != nil {
		err = fmt.Errorf("training finished but the model was not written: %w", a.saveErr)
	}
	return res, errors.Join(err, sErr)
}

// ModelPath is the file the last round's model was written to ("" before
// the first round).
func (a *Aggregator) ModelPath() string { return a.saved }

// Start listens on AGG_BIND_IP:AGG_BIND_PORT and aggregates until training
// is over (nil) or ctx ends.
func (a *Aggregator) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Env.Addr())
	if err != nil {
		return err
	}
	res, err := a.Serve(ctx, ln)
	if err != nil {
		return err
	}
	a.log.Info("training over", "rounds", res.Round, "metrics", res.Metrics, "model", a.saved)
	return nil
}
