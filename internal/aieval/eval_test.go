package aieval

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verge-edge/verge/pkg/ai/dataset"
	"github.com/verge-edge/verge/pkg/ai/model"
)

// miniFashion writes a small Fashion-MNIST directory (plain IDX files)
// from the Debian package's test split: decompressing the 60,000 training
// images takes seconds under -race, and the full evaluation is
// cmd/verge-ai-eval's job.
func miniFashion(t *testing.T, nTrain, nTest int) string {
	t.Helper()
	s, err := dataset.LoadFashionMNIST("", dataset.TestSplit)
	if err != nil {
		t.Fatal(err)
	}
	p := dataset.Permutation(s.Len(), 3)
	dir := t.TempDir()
	write := func(set *dataset.Set, prefix string) {
		images := &dataset.IDX{Dims: []int{set.Len(), 28, 28}, Data: make([]byte, len(set.X))}
		for i, v := range set.X {
			images.Data[i] = byte(math.Round(float64(v) * 255))
		}
		labels := &dataset.IDX{Dims: []int{set.Len()}, Data: set.Y}
		for name, x := range map[string]*dataset.IDX{prefix + "-images-idx3-ubyte": images, prefix + "-labels-idx1-ubyte": labels} {
			var buf bytes.Buffer
			if err := dataset.EncodeIDX(&buf, x); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(s.Subset(p[:nTrain]), "train")
	write(s.Subset(p[nTrain:nTrain+nTest]), "t10k")
	return dir
}

// The whole evaluation at toy scale: every figure is produced, and the
// invariants the report states hold.
func TestEvaluationSmall(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.DatasetDir = miniFashion(t, 3000, 500)
	cfg.EdgeTrain = model.EdgeTrainConfig()
	cfg.EdgeTrain.Epochs = 2
	cfg.CloudTrain = model.CloudTrainConfig()
	cfg.CloudTrain.Epochs = 1
	cfg.Joint.Budget = 100 * time.Millisecond
	cfg.Joint.HTTPSamples, cfg.Joint.OutageSamples, cfg.Joint.NoBreakerSamples = 100, 40, 8
	cfg.FL.Rounds, cfg.FL.Variants, cfg.FL.KillAfter, cfg.FL.RoundTimeout = 3, false, 1, 200*time.Millisecond
	cfg.FL.LocalEpochs = 2

	r, err := Run(context.Background(), cfg, All)
	if err != nil {
		t.Fatal(err)
	}
	j := r.Joint
	if j.Samples != 500 || j.EdgeAccuracy < 0.5 || j.CloudAccuracy < 0.5 || len(j.Points) != len(cfg.Joint.CrossEntropy)+len(cfg.Joint.Threshold) {
		t.Errorf("sweep: %d samples, edge %.3f, cloud %.3f, %d points", j.Samples, j.EdgeAccuracy, j.CloudAccuracy, len(j.Points))
	}
	// Thresholds are increasing: so is the share sent to the cloud.
	for i := 1; i < len(j.Points); i++ {
		if j.Points[i].Filter == j.Points[i-1].Filter && j.Points[i].CloudRatio < j.Points[i-1].CloudRatio {
			t.Errorf("cloud ratio falls from %+v to %+v", j.Points[i-1], j.Points[i])
		}
	}
	if h := j.HTTP; h == nil || h.Samples != 100 || h.Accuracy != h.Offline || len(h.Fallbacks) != 0 || h.FromCloud == 0 {
		t.Errorf("over HTTP: %+v", h)
	}
	if len(j.Outages) != 5 {
		t.Fatalf("%d outage runs", len(j.Outages))
	}
	for _, o := range j.Outages {
		if o.Answered != o.Requests || o.Hard == 0 {
			t.Errorf("%s (breaker %v): %d of %d answered, %d hard", o.Cloud, o.Breaker, o.Answered, o.Requests, o.Hard)
		}
		if o.Cloud != "up" && (o.FromCloud != 0 || o.Client.Max > cfg.Joint.Budget+time.Second) {
			t.Errorf("%s (breaker %v): %d from the cloud, slowest %v", o.Cloud, o.Breaker, o.FromCloud, o.Client.Max)
		}
		// A hard sample waits for the black hole until the client's
		// fallback reserve (a twentieth of the budget) is all that is left.
		if o.Cloud == "black hole" && !o.Breaker && o.HardClient.P50 < cfg.Joint.Budget*19/20 {
			t.Errorf("black hole without breaker: hard samples took %v, less than the budget's share for the cloud: did they reach a cloud?", o.HardClient.P50)
		}
	}

	f := r.FL
	if len(f.Runs) != 2 || f.Kill == nil {
		t.Fatalf("%d runs, kill run %v", len(f.Runs), f.Kill)
	}
	bin, js := f.Runs[0], f.Runs[1]
	if len(bin.Curve) != 3 || len(js.Curve) != 3 || bin.Final != js.Final || bin.Final < 0.5 {
		t.Errorf("curves: binary %v, JSON %v", bin.Curve, js.Curve)
	}
	if bin.BytesUp+bin.BytesDown >= (js.BytesUp+js.BytesDown)/2 {
		t.Errorf("binary %d bytes, JSON %d: binary should be well under half", bin.BytesUp+bin.BytesDown, js.BytesUp+js.BytesDown)
	}
	k := f.Kill
	if !k.Completed || len(k.Participants) != 3 || k.Participants[0] != 3 || k.Participants[2] != 2 || !strings.Contains(k.KilledErr, "context canceled") {
		t.Errorf("kill run: %+v", k)
	}

	var md bytes.Buffer
	if err := r.Markdown(&md, "verge-ai-eval all"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### (a)", "### (b)", "### (c)", "### (d)", "| cloud only |", "| black hole | off |", "`verge-ai-eval all`"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	t.Log(md.String())
}
