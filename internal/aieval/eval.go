package aieval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/verge-edge/verge/internal/aiworkload"
	"github.com/verge-edge/verge/pkg/ai/dataset"
	"github.com/verge-edge/verge/pkg/ai/model"
)

// Config is what the evaluation runs. DefaultConfig holds the settings
// docs/ai-benchmarks.md reports.
type Config struct {
	// DatasetDir holds the Fashion-MNIST IDX files (default: the Debian
	// package's directory).
	DatasetDir string
	// WorkDir receives the prepared data and models.
	WorkDir string
	// TrainSamples trains the reference models on a subset (0: all 60,000;
	// smaller only for smoke tests).
	TrainSamples int
	// EdgeTrain and CloudTrain override the reference models' training
	// settings (zero: the reference settings; for smoke tests).
	EdgeTrain, CloudTrain model.TrainConfig

	Joint JointConfig
	FL    FLConfig

	Logger *slog.Logger
}

// JointConfig configures the joint-inference figures.
type JointConfig struct {
	// Budget is the edge worker's latency budget (INFERENCE_BUDGET).
	Budget time.Duration
	// CrossEntropy and Threshold are the thresholds swept for the two
	// filters (threshold_cross_entropy; threshold on the top probability).
	CrossEntropy, Threshold []float64
	// The goal: joint accuracy at most MaxGap below cloud-only while
	// sending at most MaxCloudRatio of the samples to the cloud.
	MaxGap, MaxCloudRatio float64
	// HTTPSamples test images go through the edge and cloud workers over
	// HTTP at the chosen threshold (0: none; the whole test set by
	// default).
	HTTPSamples int
	// OutageSamples requests are sent with the cloud unreachable and the
	// default circuit breaker; NoBreakerSamples with the breaker disabled
	// (every hard sample then tries the cloud).
	OutageSamples, NoBreakerSamples int
}

// FLConfig configures the federated-learning figures.
type FLConfig struct {
	// Arch is the model trained: aiworkload.ArchSoftmax (the edge model)
	// or ArchMLP.
	Arch string
	// Clients trainers, each with a class-skewed shard (Skew, ShardSeed).
	Clients   int
	Skew      dataset.ClassSkew
	ShardSeed uint64
	// Rounds of local training: LocalEpochs epochs at LearningRate ×
	// LRDecay^(round−1).
	Rounds       int
	LocalEpochs  int
	LearningRate float64
	LRDecay      float64
	// TargetGap: the figure is the first round whose model is within this
	// much of centralized training's test accuracy.
	TargetGap float64
	// Variants runs FedAvgM, FedProx and pathological (one class group
	// per client, no shared samples) shards besides FedAvg.
	Variants bool
	// KillAfter: in the failure run, one trainer is killed after this
	// round; the others continue with MIN_CLIENTS_PER_ROUND = Clients−1
	// and RoundTimeout.
	KillAfter    int
	RoundTimeout time.Duration
}

// DefaultConfig is the evaluation of docs/ai-benchmarks.md.
func DefaultConfig(workDir string) Config {
	return Config{
		DatasetDir: dataset.DefaultFashionMNISTDir,
		WorkDir:    workDir,
		Joint: JointConfig{
			Budget:           200 * time.Millisecond,
			CrossEntropy:     []float64{0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9},
			Threshold:        []float64{0.6, 0.7, 0.75, 0.8, 0.85, 0.9},
			MaxGap:           0.01,
			MaxCloudRatio:    0.30,
			HTTPSamples:      10000,
			OutageSamples:    2000,
			NoBreakerSamples: 300,
		},
		FL: FLConfig{
			Arch:         aiworkload.ArchSoftmax,
			Clients:      3,
			Skew:         dataset.ClassSkew{ClassesPerClient: 4, IIDFraction: 0.1},
			ShardSeed:    7,
			Rounds:       20,
			LocalEpochs:  1,
			LearningRate: 0.03,
			LRDecay:      0.9,
			TargetGap:    0.02,
			Variants:     true,
			KillAfter:    5,
			RoundTimeout: time.Second,
		},
	}
}

// Results are every figure.
type Results struct {
	Config   Config
	Prepared aiworkload.Prepared
	Joint    *JointResults
	FL       *FLResults
	Took     time.Duration
	// LoadBefore is the load average when the run started.
	LoadBefore string
}

// Which selects the figures: joint, federated or all.
type Which string

// The selections.
const (
	Joint     Which = "joint"
	Federated Which = "federated"
	All       Which = "all"
)

// Run prepares the data and models in cfg.WorkDir and measures the
// selected figures.
func Run(ctx context.Context, cfg Config, which Which) (*Results, error) {
	if which != Joint && which != Federated && which != All {
		return nil, fmt.Errorf("unknown selection %q: use joint, federated or all", which)
	}
	if cfg.WorkDir == "" {
		return nil, errors.New("aieval: no work directory")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
		cfg.Logger = log
	}
	start, load := time.Now(), loadAverage()
	pc := aiworkload.DefaultPrepareConfig(cfg.WorkDir)
	pc.DatasetDir, pc.Logger, pc.TrainSamples = cfg.DatasetDir, log, cfg.TrainSamples
	pc.EdgeTrain, pc.CloudTrain = cfg.EdgeTrain, cfg.CloudTrain
	pc.Shards, pc.Skew, pc.Seed = cfg.FL.Clients, cfg.FL.Skew, cfg.FL.ShardSeed
	log.Info("preparing data and training the reference models", "workDir", cfg.WorkDir)
	prep, err := aiworkload.Prepare(ctx, pc)
	if err != nil {
		return nil, err
	}
	r := &Results{Config: cfg, Prepared: prep, LoadBefore: load}
	test, err := dataset.LoadIndex(prep.TestIndex, aiworkload.ClassCount)
	if err != nil {
		return nil, err
	}
	if which == Joint || which == All {
		if r.Joint, err = runJoint(ctx, cfg, prep, test); err != nil {
			return nil, fmt.Errorf("joint inference: %w", err)
		}
	}
	if which == Federated || which == All {
		if r.FL, err = runFederated(ctx, cfg, prep, test); err != nil {
			return nil, fmt.Errorf("federated learning: %w", err)
		}
	}
	r.Took = time.Since(start)
	return r, nil
}

// loadModel loads a prepared model the way the workers do.
func loadModel(path string) (*model.Model, error) {
	return aiworkload.LoadClassifier("MODEL_URL", path)
}
