package aieval

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/verge-edge/verge/internal/aiworkload"
	"github.com/verge-edge/verge/pkg/ai"
	"github.com/verge-edge/verge/pkg/ai/dataset"
	"github.com/verge-edge/verge/pkg/ai/federated"
	"github.com/verge-edge/verge/pkg/ai/model"
	"github.com/verge-edge/verge/pkg/ai/workerenv"
)

// FLRun is one federated job.
type FLRun struct {
	Name       string
	Algorithm  string
	Parameters []ai.Parameter
	Encoding   string
	Skew       dataset.ClassSkew
	// Curve is the aggregate's test accuracy after each round.
	Curve []float64
	// ReachedAt is the first round within the target of centralized
	// training (0: never).
	ReachedAt   int
	Final, Best float64
	// BytesUp and BytesDown are what the aggregator's connections read
	// and wrote (TCP payload: HTTP upgrade, WebSocket frames, weights).
	BytesUp, BytesDown int64
	// Participants counts, per round, the trainers aggregated.
	Participants []int
	// Killed names the trainer killed (failure run), with its outcome.
	Killed, KilledErr string
	// TrainerErrs are the other trainers' outcomes ("" for success).
	TrainerErrs []string
	Completed   bool
	Took        time.Duration
}

// FLResults are the federated-learning figures.
type FLResults struct {
	Arch            string
	Centralized     float64
	CentralizedTook time.Duration
	Target          float64
	TestSamples     int
	ShardSizes      []int
	ShardTopShare   []float64 // share of each shard in its 4 biggest classes
	Runs            []FLRun
	Kill            *FLRun
}

type flSpec struct {
	name       string
	algorithm  string
	params     []ai.Parameter
	encoding   string
	skew       dataset.ClassSkew
	paths      []string
	shards     []*dataset.Set
	killAfter  int
	minClients int
}

func runFederated(ctx context.Context, cfg Config, prep aiworkload.Prepared, test *dataset.Set) (*FLResults, error) {
	log := cfg.Logger
	fc := cfg.FL
	res := &FLResults{Arch: fc.Arch, Centralized: prep.EdgeAccuracy, CentralizedTook: prep.EdgeTraining}
	if fc.Arch == aiworkload.ArchMLP {
		res.Centralized, res.CentralizedTook = prep.CloudAccuracy, prep.CloudTraining
	}
	res.Target = res.Centralized - fc.TargetGap
	res.TestSamples = test.Len()

	shards, err := loadShards(prep.Shards)
	if err != nil {
		return nil, err
	}
	for _, s := range shards {
		res.ShardSizes = append(res.ShardSizes, s.Len())
		counts := slices.Clone(s.ClassCounts())
		slices.Sort(counts)
		top := 0
		for _, c := range counts[len(counts)-4:] {
			top += c
		}
		res.ShardTopShare = append(res.ShardTopShare, float64(top)/float64(s.Len()))
	}

	specs := []flSpec{
		{name: "FedAvg, binary weights", algorithm: federated.NameFedAvg, encoding: aiworkload.EncodingBinary},
		{name: "FedAvg, JSON weights", algorithm: federated.NameFedAvg, encoding: aiworkload.EncodingJSON},
	}
	if fc.Variants {
		pathological := fc.Skew
		pathological.IIDFraction = 0
		pc := aiworkload.DefaultPrepareConfig(filepath.Join(cfg.WorkDir, "pathological"))
		pc.DatasetDir, pc.Models, pc.Shards, pc.Skew, pc.Seed = cfg.DatasetDir, false, fc.Clients, pathological, fc.ShardSeed
		pp, err := aiworkload.Prepare(ctx, pc)
		if err != nil {
			return nil, err
		}
		pshards, err := loadShards(pp.Shards)
		if err != nil {
			return nil, err
		}
		specs = append(specs,
			flSpec{name: "FedAvgM (β 0.9), binary", algorithm: federated.NameFedAvgM,
				params: []ai.Parameter{{Key: "momentum", Value: "0.9"}}, encoding: aiworkload.EncodingBinary},
			flSpec{name: "FedProx (μ 0.01), binary", algorithm: federated.NameFedProx,
				params: []ai.Parameter{{Key: "mu", Value: "0.01"}}, encoding: aiworkload.EncodingBinary},
			flSpec{name: "FedAvg, no shared samples", algorithm: federated.NameFedAvg, encoding: aiworkload.EncodingBinary,
				skew: pathological, paths: pp.Shards, shards: pshards},
		)
	}
	for _, s := range specs {
		if s.shards == nil {
			s.shards, s.paths, s.skew = shards, prep.Shards, fc.Skew
		}
		run, err := runFL(ctx, cfg, s, test, res.Target)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		res.Runs = append(res.Runs, *run)
		log.Info("federated run done", "run", s.name, "final", run.Final, "reachedAt", run.ReachedAt, "took", run.Took)
	}
	if fc.KillAfter > 0 && fc.Clients > 1 {
		run, err := runFL(ctx, cfg, flSpec{name: "FedAvg, one trainer killed", algorithm: federated.NameFedAvg,
			encoding: aiworkload.EncodingBinary, shards: shards, paths: prep.Shards, skew: fc.Skew,
			killAfter: fc.KillAfter, minClients: fc.Clients - 1}, test, res.Target)
		if err != nil {
			return nil, fmt.Errorf("failure run: %w", err)
		}
		res.Kill = run
		log.Info("federated failure run done", "completed", run.Completed, "final", run.Final, "took", run.Took)
	}
	return res, nil
}

// loadShards reads the shards' index files as the trainers do, once for
// all runs.
func loadShards(paths []string) ([]*dataset.Set, error) {
	out := make([]*dataset.Set, len(paths))
	for i, p := range paths {
		s, err := aiworkload.LoadTrainingData("TRAIN_DATASET_URL", p)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// runFL runs an aggregator and one trainer per shard, configured from the
// environment the controller would give them, on loopback.
func runFL(ctx context.Context, cfg Config, s flSpec, test *dataset.Set, target float64) (*FLRun, error) {
	fc := cfg.FL
	clients := len(s.shards)
	params := "[]"
	if len(s.params) > 0 {
		b, err := json.Marshal(s.params)
		if err != nil {
			return nil, err
		}
		params = string(b)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ln := &countingListener{Listener: inner}
	host, port, _ := net.SplitHostPort(inner.Addr().String())

	aggEnv := map[string]string{
		"WORKER_NAME": "fmnist-eval-aggregation", "JOB_NAME": "fmnist-eval", "PARTICIPANTS_COUNT": strconv.Itoa(clients),
		"STOP_ROUNDS": strconv.Itoa(fc.Rounds), "AGGREGATION_ALGORITHM": s.algorithm, "AGGREGATION_PARAMETERS": params,
		"MODEL_URL":    filepath.Join(cfg.WorkDir, "federated", fmt.Sprintf("run-%d", time.Now().UnixNano())) + "/",
		"FINISH_GRACE": "2s",
	}
	if s.minClients > 0 {
		aggEnv["MIN_CLIENTS_PER_ROUND"] = strconv.Itoa(s.minClients)
		aggEnv["ROUND_TIMEOUT"] = fc.RoundTimeout.String()
	}
	acfg, err := aiworkload.LoadAggregatorConfig(workerenv.FromMap(aggEnv))
	if err != nil {
		return nil, err
	}
	run := &FLRun{Name: s.name, Algorithm: s.algorithm, Parameters: s.params, Encoding: s.encoding, Skew: s.skew}
	var mu sync.Mutex
	var evalErr error
	agg, err := aiworkload.NewAggregator(acfg, aiworkload.AggregatorOptions{
		Logger: cfg.Logger.With("worker", "aggregator"),
		OnRound: func(rc federated.RoundClosed, m *model.Model) {
			ev, err := m.Evaluate(test)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				evalErr = err
				return
			}
			run.Curve = append(run.Curve, ev.Accuracy)
			run.Participants = append(run.Participants, len(rc.Result.Participants))
		},
	})
	if err != nil {
		return nil, err
	}

	trainers := make([]*aiworkload.Trainer, clients)
	ctxs := make([]context.Context, clients)
	for i := range clients {
		name := fmt.Sprintf("fmnist-train-%d", i)
		tcfg, err := aiworkload.LoadTrainerConfig(workerenv.FromMap(map[string]string{
			"WORKER_NAME": name, "JOB_NAME": "fmnist-eval", "AGG_IP": host, "AGG_PORT": port,
			"TRAIN_DATASET_URL": s.paths[i], "PARTICIPANTS_COUNT": strconv.Itoa(clients),
			"AGGREGATION_ALGORITHM": s.algorithm, "AGGREGATION_PARAMETERS": params,
			"MODEL_ARCH": fc.Arch, "EPOCHS": strconv.Itoa(fc.LocalEpochs),
			"LEARNING_RATE": strconv.FormatFloat(fc.LearningRate, 'g', -1, 64),
			"LR_DECAY":      strconv.FormatFloat(fc.LRDecay, 'g', -1, 64), "WEIGHT_ENCODING": s.encoding,
		}))
		if err != nil {
			return nil, err
		}
		// The shard was read from TRAIN_DATASET_URL once for all runs.
		opts := aiworkload.TrainerOptions{Data: s.shards[i], Logger: cfg.Logger.With("worker", name)}
		ctxs[i] = ctx
		if s.killAfter > 0 && i == clients-1 {
			kctx, kill := context.WithCancel(ctx)
			defer kill()
			ctxs[i] = kctx
			run.Killed = name
			opts.OnResult = func(r *federated.RoundResult) {
				if r.Round == s.killAfter {
					kill()
				}
			}
		}
		if trainers[i], err = aiworkload.NewTrainer(tcfg, opts); err != nil {
			return nil, err
		}
	}

	start := time.Now()
	var final *federated.RoundResult
	var aggErr error
	aggDone := make(chan struct{})
	go func() {
		defer close(aggDone)
		final, aggErr = agg.Serve(ctx, ln)
	}()
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i, t := range trainers {
		wg.Go(func() { errs[i] = t.Start(ctxs[i]) })
	}
	wg.Wait()
	<-aggDone
	run.Took = time.Since(start)
	if aggErr != nil {
		return nil, fmt.Errorf("aggregator: %w", aggErr)
	}
	if evalErr != nil {
		return nil, evalErr
	}
	run.Completed = final != nil && final.Exit
	run.BytesUp, run.BytesDown = ln.read.Load(), ln.written.Load()
	for i, err := range errs {
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if run.Killed != "" && i == clients-1 {
			run.KilledErr = msg
			continue
		}
		run.TrainerErrs = append(run.TrainerErrs, msg)
	}
	for r, acc := range run.Curve {
		if run.ReachedAt == 0 && acc >= target {
			run.ReachedAt = r + 1
		}
		run.Best = max(run.Best, acc)
	}
	if len(run.Curve) > 0 {
		run.Final = run.Curve[len(run.Curve)-1]
	}
	return run, nil
}
