package aiworkload

import (
	"context"
	"net"
	"net/http"
	"testing"

	"github.com/verge-edge/verge/pkg/ai/model"
)

// startCloud serves a cloud worker on a loopback port and returns its
// address.
func startCloud(t *testing.T, m *model.Model) string {
	t.Helper()
	cfg, err := LoadCloudConfig(env("WORKER_NAME", "fmnist-cloud-0", "SERVICE_NAME", "fmnist", "MODEL_URL", "/unused"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewCloudWorker(cfg, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("cloud worker: %v", err)
		}
	})
	return ln.Addr().String()
}

// The edge worker against the cloud worker over loopback HTTP, with
// CrossEntropy mining: hard samples get the cloud model's answer, the
// others the edge model's, and the counters agree.
func TestJointInferenceEdgeAndCloudWorkers(t *testing.T) {
	edgeModel, cloudModel := tiny(t)
	test := heldOut(t)
	cloudAddr := startCloud(t, cloudModel)

	// The cloud worker alone: one image and a batch.
	var probs []float32
	if code := post(t, "http://"+cloudAddr+"/fmnist/predict", test.Sample(0), &probs); code != http.StatusOK || len(probs) != ClassCount {
		t.Fatalf("cloud predict: HTTP %d, %v", code, probs)
	}
	var batch [][]float32
	if code := post(t, "http://"+cloudAddr+"/fmnist/predict", [][]float32{test.Sample(0), test.Sample(1)}, &batch); code != http.StatusOK || len(batch) != 2 {
		t.Fatalf("cloud batch: HTTP %d, %d results", code, len(batch))
	}
	if code := post(t, "http://"+cloudAddr+"/fmnist/predict", []float32{1, 2, 3}, nil); code != http.StatusUnprocessableEntity {
		t.Errorf("cloud, bad image: HTTP %d, want 422", code)
	}

	w, base := startEdge(t, edgeEnv(t, cloudAddr, "CrossEntropy",
		`[{"key":"threshold_cross_entropy","value":"0.7"}]`, "INFERENCE_BUDGET", "2s"), edgeModel)
	const n = 150
	var hard, right int
	for i := range n {
		img := test.Sample(i)
		var a Answer
		if code := post(t, base+"/fmnist/predict", img, &a); code != http.StatusOK {
			t.Fatalf("sample %d: HTTP %d", i, code)
		}
		pe, _ := edgeModel.Predict(img)
		pc, _ := cloudModel.Predict(img)
		wantHard := crossEntropyConfidence(pe) < 0.7
		want := model.Argmax(pe)
		if wantHard {
			hard++
			want = model.Argmax(pc)
		}
		if a.IsHardExample != wantHard || a.FinalResult.Label != want || (wantHard != (a.CloudResult != nil)) || a.Fallback != "" {
			t.Fatalf("sample %d: answer %+v; want hard %v, label %d", i, a, wantHard, want)
		}
		if a.FinalResult.Label == int(test.Y[i]) {
			right++
		}
	}
	s := w.Stats()
	if s.Inferences != n || s.HardExamples != uint64(hard) || s.CloudAnswers != uint64(hard) || s.FallbackTotal() != 0 {
		t.Errorf("stats %+v, want %d inferences, %d hard answered by the cloud", s, n, hard)
	}
	if hard == 0 || hard == n {
		t.Errorf("%d of %d samples hard: the threshold does not split them", hard, n)
	}
	t.Logf("%d of %d hard, joint accuracy %.3f", hard, n, float64(right)/n)
}

// crossEntropyConfidence is 1 + Σ p ln p / ln K, computed independently of
// package hem.
func crossEntropyConfidence(p []float32) float64 {
	s := 0.0
	for _, v := range p {
		if v > 0 {
			s += float64(v) * ln(float64(v))
		}
	}
	return 1 + s/ln(float64(len(p)))
}
