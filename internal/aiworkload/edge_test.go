package aiworkload

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verge-edge/verge/pkg/ai/model"
)

// edgeEnv is an edge worker's environment towards cloudAddr (host:port).
func edgeEnv(t *testing.T, cloudAddr, hemName, hemParams string, extra ...string) EdgeConfig {
	t.Helper()
	host, port, err := net.SplitHostPort(cloudAddr)
	if err != nil {
		t.Fatal(err)
	}
	kv := append([]string{"WORKER_NAME", "fmnist-edge-0", "NAMESPACE", "default", "SERVICE_NAME", "fmnist",
		"BIG_MODEL_IP", host, "BIG_MODEL_PORT", port, "HEM_NAME", hemName, "HEM_PARAMETERS", hemParams,
		"MODEL_URL", "/unused", "INFERENCE_BIND_IP", "127.0.0.1", "INFERENCE_BIND_PORT", "1"}, extra...)
	cfg, err := LoadEdgeConfig(env(kv...))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startEdge serves an edge worker on a loopback port and returns its base
// URL; the worker stops with the test.
func startEdge(t *testing.T, cfg EdgeConfig, m *model.Model) (*EdgeWorker, string) {
	t.Helper()
	w, err := NewEdgeWorker(cfg, EdgeOptions{Model: m})
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
			t.Errorf("edge worker: %v", err)
		}
	})
	return w, "http://" + ln.Addr().String()
}

// post sends {"data": data} and decodes {"result": …} into out.
func post(t *testing.T, url string, data any, out any) int {
	t.Helper()
	body, err := json.Marshal(map[string]any{"data": data})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		var env struct{ Result json.RawMessage }
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatalf("answer %s: %v", raw, err)
		}
		if err := json.Unmarshal(env.Result, out); err != nil {
			t.Fatalf("result %s: %v", env.Result, err)
		}
	}
	return resp.StatusCode
}

// fakeCloud answers every prediction with class 3, and counts requests.
type fakeCloud struct {
	mu    sync.Mutex
	calls int
	body  string
}

func (f *fakeCloud) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls++
	body := f.body
	f.mu.Unlock()
	if r.URL.Path != "/fmnist/predict" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, body)
}

const classThree = `{"result":[0,0,0,1,0,0,0,0,0,0]}`

func TestEdgeLocalAPI(t *testing.T) {
	edgeModel, _ := tiny(t)
	test := heldOut(t)
	cloud := &fakeCloud{body: classThree}
	srv := httptest.NewServer(cloud)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	// CloudOnly: every sample is hard and answered by the cloud.
	_, base := startEdge(t, edgeEnv(t, addr, "CloudOnly", ""), edgeModel)
	var a Answer
	if code := post(t, base+"/fmnist/predict", test.Sample(0), &a); code != http.StatusOK {
		t.Fatalf("predict: HTTP %d", code)
	}
	probs, _ := edgeModel.Predict(test.Sample(0))
	if !a.IsHardExample || a.CloudResult == nil || a.FinalResult.Label != 3 || a.CloudResult.Class != "Dress" ||
		a.EdgeResult.Label != model.Argmax(probs) || a.Fallback != "" || len(a.FinalResult.Probabilities) != ClassCount || a.ElapsedMS <= 0 {
		t.Errorf("CloudOnly answer %+v", a)
	}

	// A batch, as 28×28 images, gets a list of answers.
	batch := make([][][]float32, 3)
	for i := range batch {
		img := test.Sample(i)
		for r := range ImageSide {
			batch[i] = append(batch[i], img[r*ImageSide:(r+1)*ImageSide])
		}
	}
	var as []Answer
	if code := post(t, base+"/fmnist/predict", batch, &as); code != http.StatusOK || len(as) != 3 {
		t.Fatalf("batch: HTTP %d, %d answers", code, len(as))
	}

	// EdgeOnly: nothing reaches the cloud.
	before := cloud.calls
	_, base2 := startEdge(t, edgeEnv(t, addr, "EdgeOnly", ""), edgeModel)
	if post(t, base2+"/fmnist/predict", test.Sample(1), &a); a.IsHardExample || a.CloudResult != nil || cloud.calls != before {
		t.Errorf("EdgeOnly answer %+v, cloud calls %d → %d", a, before, cloud.calls)
	}

	// Bad requests get Sedna's error codes.
	for _, c := range []struct {
		body, ctype string
		code        int
	}{
		{`{"data":[0.5,0.5]}`, "application/json", http.StatusUnprocessableEntity},
		{`{"data":null}`, "application/json", http.StatusUnprocessableEntity},
		{`not json`, "application/json", http.StatusBadRequest},
		{`{"data":[0.5]}`, "text/plain", http.StatusUnsupportedMediaType},
	} {
		resp, err := http.Post(base+"/fmnist/predict", c.ctype, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		detail, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(string(detail), `"detail"`) {
			t.Errorf("%s (%s): HTTP %d %s, want %d with a detail", c.body, c.ctype, resp.StatusCode, detail, c.code)
		}
	}

	// Routes, health and metrics.
	for path, want := range map[string]string{
		"/fmnist":  `"/fmnist/predict"`,
		"/healthz": `"ok"`,
		"/metrics": "verge_ji_inferences_total 4",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: HTTP %d, missing %q:\n%.400s", path, resp.StatusCode, want, b)
		}
	}
}

// blackHole accepts connections on ln and never answers; everything is
// closed with the test.
func blackHole(t testing.TB, ln net.Listener) {
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
}

// A cloud that is down, or answers nonsense, costs a hard sample at most
// the budget, and the edge answers.
func TestEdgeFallsBack(t *testing.T) {
	edgeModel, _ := tiny(t)
	img := heldOut(t).Sample(0)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()
	_, base := startEdge(t, edgeEnv(t, refused, "CloudOnly", "", "INFERENCE_BUDGET", "100ms"), edgeModel)
	var a Answer
	start := time.Now()
	if code := post(t, base+"/fmnist/predict", img, &a); code != http.StatusOK {
		t.Fatalf("HTTP %d", code)
	}
	if took := time.Since(start); !a.IsHardExample || a.Fallback != "cloud_error" || a.CloudResult != nil ||
		a.FinalResult.Label != a.EdgeResult.Label || a.CloudError == "" || took > time.Second {
		t.Errorf("cloud down: answer %+v after %v", a, took)
	}

	// Black hole: accepts, never answers.
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	blackHole(t, hole)
	_, base = startEdge(t, edgeEnv(t, hole.Addr().String(), "CloudOnly", "", "INFERENCE_BUDGET", "100ms"), edgeModel)
	start = time.Now()
	post(t, base+"/fmnist/predict", img, &a)
	if took := time.Since(start); a.Fallback != "timeout" || took < 90*time.Millisecond || took > time.Second {
		t.Errorf("black hole: answer %+v after %v", a, took)
	}

	// A cloud answering something else than 10 probabilities.
	srv := httptest.NewServer(&fakeCloud{body: `{"result":[0.5,0.5]}`})
	defer srv.Close()
	_, base = startEdge(t, edgeEnv(t, strings.TrimPrefix(srv.URL, "http://"), "CloudOnly", ""), edgeModel)
	post(t, base+"/fmnist/predict", img, &a)
	if a.Fallback != "cloud_error" || !strings.Contains(a.CloudError, "want 10 class probabilities") {
		t.Errorf("bad cloud answer: %+v", a)
	}
}

// With LC_SERVER set, the counters reach the local controller (at the
// latest when the worker stops).
func TestEdgeReportsToLocalController(t *testing.T) {
	edgeModel, _ := tiny(t)
	got := make(chan map[string]any, 10)
	lc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		if r.URL.Path == "/sedna/workers/fmnist-edge-0/info" {
			got <- m
		}
	}))
	defer lc.Close()
	cfg := edgeEnv(t, "127.0.0.1:1", "EdgeOnly", "", "LC_SERVER", lc.URL)
	w, err := NewEdgeWorker(cfg, EdgeOptions{Model: edgeModel})
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
	post(t, "http://"+ln.Addr().String()+"/fmnist/predict", heldOut(t).Sample(2), nil)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		info, _ := m["ownerInfo"].(map[string]any)
		if m["ownerKind"] != "jointinferenceservice" || m["ownerName"] != "fmnist" || info["inferenceNumber"] != 1.0 || info["hardExampleNumber"] != 0.0 {
			t.Errorf("report %v", m)
		}
	default:
		t.Fatal("no report reached the local controller")
	}
}
