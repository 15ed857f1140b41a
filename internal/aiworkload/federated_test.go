package aiworkload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/verge-edge/verge/pkg/ai/dataset"
	"github.com/verge-edge/verge/pkg/ai/federated"
	"github.com/verge-edge/verge/pkg/ai/model"
)

// flJob is a small federated job on loopback: an aggregator and trainers
// configured from the environment the controller gives them, with small
// class-skewed shards written as index files.
type flJob struct {
	t        *testing.T
	dir      string
	aggAddr  string
	aggLn    net.Listener
	agg      *Aggregator
	trainers []*Trainer
	// rounds records, per closed round, the participants.
	mu     sync.Mutex
	rounds [][]string
}

func newFLJob(t *testing.T, trainers, perShard int, aggEnv []string, trainerEnv func(i int) []string) *flJob {
	t.Helper()
	j := &flJob{t: t, dir: t.TempDir()}
	train := trainPart(t)
	sub := train.Subset(dataset.Permutation(train.Len(), 11)[:trainers*perShard])
	shards, err := dataset.SplitClassSkew(sub.Y, ClassCount, trainers, dataset.ClassSkew{ClassesPerClient: 4, IIDFraction: 0.1}, 3)
	if err != nil {
		t.Fatal(err)
	}
	// The shards' index files name samples in one IDX file beside them.
	images := "images-idx3-ubyte"
	writeIDX(t, sub, filepath.Join(j.dir, images), filepath.Join(j.dir, "labels-idx1-ubyte"))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	j.aggAddr = ln.Addr().String()
	cfg, err := LoadAggregatorConfig(env(append([]string{"WORKER_NAME", "fl-aggregation", "JOB_NAME", "fl",
		"PARTICIPANTS_COUNT", strconv.Itoa(trainers), "MODEL_URL", filepath.Join(j.dir, "model") + "/",
		"FINISH_GRACE", "5s"}, aggEnv...)...))
	if err != nil {
		t.Fatal(err)
	}
	j.agg, err = NewAggregator(cfg, AggregatorOptions{OnRound: func(rc federated.RoundClosed, _ *model.Model) {
		j.mu.Lock()
		j.rounds = append(j.rounds, rc.Result.Participants)
		j.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	j.aggLn = ln

	host, port, _ := net.SplitHostPort(j.aggAddr)
	for i, shard := range shards {
		var buf bytes.Buffer
		if err := dataset.WriteIndex(&buf, dataset.IndexEntries(images, sub.Y, shard)); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(j.dir, fmt.Sprintf("shard-%d.txt", i))
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		kv := append([]string{"WORKER_NAME", fmt.Sprintf("fl-train-%d", i), "JOB_NAME", "fl", "AGG_IP", host, "AGG_PORT", port,
			"TRAIN_DATASET_URL", path, "PARTICIPANTS_COUNT", strconv.Itoa(trainers), "EVAL_SAMPLES", "200"}, trainerEnv(i)...)
		tc, err := LoadTrainerConfig(env(kv...))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := NewTrainer(tc, TrainerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		j.trainers = append(j.trainers, tr)
	}
	return j
}

// run runs the job; ctxs[i] (if any) is trainer i's context.
func (j *flJob) run(ctxs map[int]context.Context) (*federated.RoundResult, []error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res *federated.RoundResult
	var aggErr error
	aggDone := make(chan struct{})
	go func() {
		defer close(aggDone)
		res, aggErr = j.agg.Serve(ctx, j.aggLn)
	}()
	errs := make([]error, len(j.trainers))
	var wg sync.WaitGroup
	for i, tr := range j.trainers {
		tctx := ctx
		if c, ok := ctxs[i]; ok {
			tctx = c
		}
		wg.Go(func() { errs[i] = tr.Start(tctx) })
	}
	wg.Wait()
	<-aggDone
	if aggErr != nil {
		j.t.Fatalf("aggregator: %v", aggErr)
	}
	return res, errs
}

// Three trainers (two binary, one JSON) and the aggregator: three rounds of
// FedAvg, the model written to MODEL_URL, every trainer ending with it.
func TestFederatedShortRun(t *testing.T) {
	j := newFLJob(t, 3, 600, []string{"STOP_ROUNDS", "3"}, func(i int) []string {
		if i == 2 {
			return []string{"WEIGHT_ENCODING", "json", "EPOCHS", "3"}
		}
		return []string{"EPOCHS", "3"}
	})
	res, errs := j.run(nil)
	for i, err := range errs {
		if err != nil {
			t.Errorf("trainer %d: %v", i, err)
		}
	}
	if res == nil || res.Round != 3 || !res.Exit || res.TotalSamples != 1800 || res.Metrics["accuracy"] <= 0 {
		t.Fatalf("final round %+v", res)
	}
	if want := filepath.Join(j.dir, "model", ModelFileName); j.agg.ModelPath() != want {
		t.Errorf("model written to %q, want %q", j.agg.ModelPath(), want)
	}
	saved, err := LoadClassifier("MODEL_URL", filepath.Join(j.dir, "model"))
	if err != nil {
		t.Fatal(err)
	}
	final := Weights(saved)
	for i, tr := range j.trainers {
		got := Weights(tr.Model())
		for k := range final {
			if !equalFloats(got[k].Data, final[k].Data) {
				t.Fatalf("trainer %d ended with another model than the aggregator wrote", i)
			}
		}
	}
	ev, err := saved.Evaluate(heldOut(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("3 rounds on 3×600 images: test accuracy %.4f", ev.Accuracy)
	if ev.Accuracy < 0.6 {
		t.Errorf("test accuracy %.4f after 3 rounds, want above 0.6", ev.Accuracy)
	}
	for r, ps := range j.rounds {
		if len(ps) != 3 {
			t.Errorf("round %d had participants %v", r+1, ps)
		}
	}
}

// A trainer killed after round 1 (its context cancelled): the job still
// completes with the other two, each later round closing after the round
// timeout without it.
func TestFederatedSurvivesAKilledTrainer(t *testing.T) {
	// The aggregator waits FINISH_GRACE for the killed trainer to take the
	// final model; keep it short.
	j := newFLJob(t, 3, 400, []string{"STOP_ROUNDS", "4", "MIN_CLIENTS_PER_ROUND", "2", "ROUND_TIMEOUT", "300ms", "FINISH_GRACE", "500ms"},
		func(int) []string { return nil })
	killCtx, kill := context.WithCancel(context.Background())
	defer kill()
	j.trainers[2].opts.OnResult = func(r *federated.RoundResult) {
		if r.Round == 1 {
			kill()
		}
	}
	start := time.Now()
	res, errs := j.run(map[int]context.Context{2: killCtx})
	if errs[0] != nil || errs[1] != nil {
		t.Errorf("surviving trainers: %v, %v", errs[0], errs[1])
	}
	if !errors.Is(errs[2], context.Canceled) {
		t.Errorf("killed trainer: %v, want context.Canceled", errs[2])
	}
	if res == nil || res.Round != 4 || !res.Exit {
		t.Fatalf("final round %+v", res)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.rounds) != 4 || len(j.rounds[0]) != 3 {
		t.Fatalf("rounds %v", j.rounds)
	}
	for r := 2; r < 4; r++ {
		if !slices.Equal(j.rounds[r], []string{"fl-train-0", "fl-train-1"}) {
			t.Errorf("round %d participants %v, want the two survivors", r+1, j.rounds[r])
		}
	}
	t.Logf("4 rounds in %v, participants %v", time.Since(start).Round(time.Millisecond), j.rounds)
}
