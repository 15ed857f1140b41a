package aiworkload

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"time"

	"github.com/verge-edge/verge/pkg/ai/dataset"
	"github.com/verge-edge/verge/pkg/ai/federated"
	"github.com/verge-edge/verge/pkg/ai/model"
	"github.com/verge-edge/verge/pkg/ai/report"
	"github.com/verge-edge/verge/pkg/ai/workerenv"
)

// Model architectures a trainer can start from (MODEL_ARCH).
const (
	ArchSoftmax = "softmax" // model.EdgeArch: softmax regression 784→10
	ArchMLP     = "mlp"     // model.CloudArch: MLP 784→256→128→10
)

// Weight encodings a trainer offers the aggregator (WEIGHT_ENCODING).
const (
	EncodingBinary = "binary" // negotiated f32le frames, JSON if declined
	EncodingJSON   = "json"   // Sedna's nested lists only
)

// TrainerConfig is a training worker's configuration.
type TrainerConfig struct {
	// Env is Sedna's contract: JOB_NAME, WORKER_NAME, AGG_IP, AGG_PORT,
	// TRAIN_DATASET_URL, PRETRAINED_MODEL_URL, AGGREGATION_ALGORITHM,
	// AGGREGATION_PARAMETERS (FedProx's mu), LC_SERVER.
	Env workerenv.FederatedTrainer
	// Arch is the model trained when there is no pretrained model
	// (MODEL_ARCH: softmax, the default, or mlp). Every trainer of a job
	// must use the same Arch and Seed: round 1 starts from the initial
	// weights they draw.
	Arch model.Arch
	// Train holds the local training settings of a round: EPOCHS (local
	// epochs, 1), BATCH_SIZE (64), LEARNING_RATE (0.03 for softmax, 0.05
	// for mlp), MOMENTUM (0.9), WEIGHT_DECAY (0). Sedna's example names
	// epochs, batch_size and learning_rate are accepted too.
	Train model.TrainConfig
	// RoundLRDecay multiplies the learning rate after every round
	// (LR_DECAY, 0.9): round r trains at LEARNING_RATE × LR_DECAY^(r−1).
	RoundLRDecay float64
	// Seed draws the initial weights and, with the worker's name and the
	// round, the batch order (SEED, 1).
	Seed uint64
	// Encoding is the weight encoding offered (WEIGHT_ENCODING: binary,
	// the default, or json).
	Encoding string
	// EvalSamples is how many local samples the round's starting model is
	// scored on for the "accuracy" and "loss" metrics (EVAL_SAMPLES,
	// 2000; 0 sends no metrics).
	EvalSamples int
	// Report: post rounds to LC_SERVER (true when LC_SERVER is set).
	Report bool
}

// LoadTrainerConfig reads a training worker's environment.
func LoadTrainerConfig(get workerenv.Lookup) (TrainerConfig, error) {
	env, err := workerenv.LoadFederatedTrainer(get)
	r := workerenv.NewReader(get)
	c := TrainerConfig{Env: env, Report: lcServerSet(get)}
	archName := r.OneOf("MODEL_ARCH", ArchSoftmax, ArchSoftmax, ArchMLP)
	c.Arch, c.Train = model.EdgeArch(), model.EdgeTrainConfig()
	if archName == ArchMLP {
		c.Arch, c.Train = model.CloudArch(), model.CloudTrainConfig()
	}
	c.Train.Epochs = r.Int(r.First("EPOCHS", "epochs"), 1, 1, 1000)
	c.Train.BatchSize = r.Int(r.First("BATCH_SIZE", "batch_size"), c.Train.BatchSize, 1, 1<<20)
	c.Train.LearningRate = r.Float(r.First("LEARNING_RATE", "learning_rate"), c.Train.LearningRate, 0, 10, true)
	c.Train.Momentum = r.Float(r.First("MOMENTUM", "momentum"), c.Train.Momentum, 0, 0.999, false)
	c.Train.WeightDecay = r.Float(r.First("WEIGHT_DECAY", "weight_decay"), 0, 0, 1, false)
	c.Train.LRDecay = 1
	c.Train.ProxMu = env.ProximalMu
	c.RoundLRDecay = r.Float("LR_DECAY", 0.9, 0, 1, true)
	c.Seed = uint64(r.Int("SEED", 1, 0, math.MaxInt32))
	c.Encoding = r.OneOf("WEIGHT_ENCODING", EncodingBinary, EncodingBinary, EncodingJSON)
	c.EvalSamples = r.Int("EVAL_SAMPLES", 2000, 0, 1<<30)
	return c, errors.Join(err, r.Err())
}

// Trainer is a federated-learning training worker: each round it starts
// from the aggregate, trains on its shard, and sends the weights.
type Trainer struct {
	cfg    TrainerConfig
	data   *dataset.Set
	eval   *dataset.Set
	model  *model.Model
	client *federated.Client
	log    *slog.Logger
	opts   TrainerOptions
	salt   uint64
	// report posts a round to the local controller (set by Run).
	report func(*federated.RoundResult)
}

// TrainerOptions are the parts a caller may inject.
type TrainerOptions struct {
	// Data is trained on instead of loading TRAIN_DATASET_URL.
	Data *dataset.Set
	// Model is the starting model instead of PRETRAINED_MODEL_URL or a
	// new one of Arch.
	Model *model.Model
	// OnResult is called with every aggregate the trainer adopts.
	OnResult func(*federated.RoundResult)
	Logger   *slog.Logger
}

// NewTrainer loads the shard and the starting model.
func NewTrainer(cfg TrainerConfig, opts TrainerOptions) (*Trainer, error) {
	t := &Trainer{cfg: cfg, data: opts.Data, model: opts.Model, log: orDiscard(opts.Logger), opts: opts}
	var err error
	if t.data == nil {
		if t.data, err = LoadTrainingData("TRAIN_DATASET_URL", cfg.Env.TrainDatasetURL); err != nil {
			return nil, err
		}
	}
	switch {
	case t.model != nil:
		t.model = t.model.Clone()
	case cfg.Env.PretrainedModelURL != "":
		if t.model, err = LoadClassifier("PRETRAINED_MODEL_URL", cfg.Env.PretrainedModelURL); err != nil {
			return nil, err
		}
	default:
		if t.model, err = model.New(cfg.Arch, cfg.Seed); err != nil {
			return nil, err
		}
	}
	if err := checkArch(t.model.Arch()); err != nil {
		return nil, err
	}
	if err := cfg.Train.Validate(); err != nil {
		return nil, err
	}
	if n := min(cfg.EvalSamples, t.data.Len()); n > 0 {
		t.eval = t.data.Subset(dataset.Permutation(t.data.Len(), cfg.Seed)[:n])
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(cfg.Env.WorkerName))
	t.salt = h.Sum64()
	t.client, err = federated.NewClient(federated.ClientConfig{
		URL:      cfg.Env.AggregatorURL(),
		ClientID: cfg.Env.WorkerName,
		JobName:  cfg.Env.JobName,
		Train:    t.train,
		OnResult: t.onResult,
		Binary:   cfg.Encoding == EncodingBinary,
		Logger:   t.log,
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Model is the trainer's model (the final aggregate once Run returned).
func (t *Trainer) Model() *model.Model { return t.model }

// Samples is the shard's size.
func (t *Trainer) Samples() int { return t.data.Len() }

func (t *Trainer) train(ctx context.Context, r federated.TrainRound) (federated.Update, error) {
	if r.Global != nil {
		if err := SetWeights(t.model, r.Global); err != nil {
			return federated.Update{}, fmt.Errorf("the aggregate of round %d does not fit the model: %w", r.Round-1, err)
		}
	}
	var metrics map[string]float64
	if t.eval != nil {
		m, err := t.model.Evaluate(t.eval)
		if err != nil {
			return federated.Update{}, err
		}
		metrics = map[string]float64{"accuracy": m.Accuracy, "loss": m.Loss}
	}
	cfg := t.cfg.Train
	cfg.LearningRate *= math.Pow(t.cfg.RoundLRDecay, float64(r.Round-1))
	cfg.Seed = t.cfg.Seed ^ t.salt ^ uint64(r.Round)*0x9e3779b97f4a7c15
	start := time.Now()
	res, err := t.model.Train(ctx, t.data, cfg)
	if err != nil {
		return federated.Update{}, err
	}
	loss := math.NaN()
	if len(res.Loss) > 0 {
		loss = res.Loss[len(res.Loss)-1]
	}
	t.log.Info("trained a round", "round", r.Round, "samples", t.data.Len(), "learningRate", cfg.LearningRate,
		"trainLoss", loss, "startAccuracy", metrics["accuracy"], "duration", time.Since(start))
	return federated.Update{NumSamples: t.data.Len(), Weights: Weights(t.model), Metrics: metrics}, nil
}

func (t *Trainer) onResult(r *federated.RoundResult) {
	if r.Exit {
		if err := SetWeights(t.model, r.Weights); err != nil {
			t.log.Warn("the final aggregate does not fit the model", "round", r.Round, "error", err)
		}
	}
	if t.report != nil {
		t.report(r)
	}
	if t.opts.OnResult != nil {
		t.opts.OnResult(r)
	}
}

// Run trains until the aggregator sends the final aggregate, reporting
// each round to the local controller when configured. Call it once.
func (t *Trainer) Run(ctx context.Context) (*federated.RoundResult, error) {
	if !t.cfg.Report {
		return t.client.Run(ctx)
	}
	lc, err := report.NewClient(t.cfg.Env.LCServer, nil)
	if err != nil {
		return nil, err
	}
	rw := report.Worker{Name: t.cfg.Env.WorkerName, Namespace: t.cfg.Env.Namespace,
		OwnerName: t.cfg.Env.JobName, OwnerKind: report.KindFederatedLearning}
	start := time.Now()
	t.report = func(r *federated.RoundResult) {
		status := report.StatusRunning
		if r.Exit {
			status = report.StatusCompleted
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := lc.Send(sctx, rw.Message(report.PhaseTrain, status,
			report.FederatedInfo(r.Round, r.TotalSamples, r.Metrics, start, time.Now()), nil)); err != nil {
			t.log.Warn("round report not delivered", "round", r.Round, "error", err)
		}
	}
	return t.client.Run(ctx)
}

// Start runs until training is over (nil) or ctx ends.
func (t *Trainer) Start(ctx context.Context) error {
	r, err := t.Run(ctx)
	if err != nil {
		return err
	}
	t.log.Info("training over", "rounds", r.Round, "metrics", r.Metrics)
	return nil
}
