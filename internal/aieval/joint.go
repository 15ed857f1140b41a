package aieval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/verge-edge/verge/internal/aiworkload"
	"github.com/verge-edge/verge/pkg/ai"
	"github.com/verge-edge/verge/pkg/ai/dataset"
	"github.com/verge-edge/verge/pkg/ai/hem"
	"github.com/verge-edge/verge/pkg/ai/jointinference"
	"github.com/verge-edge/verge/pkg/ai/model"
	"github.com/verge-edge/verge/pkg/ai/workerenv"
)

// FilterPoint is one filter setting on the whole test set.
type FilterPoint struct {
	Filter    string
	Param     string
	Threshold float64
	// CloudRatio is the share of samples flagged hard (sent to the cloud).
	CloudRatio float64
	// Accuracy takes the cloud's answer for hard samples, the edge's for
	// the others.
	Accuracy  float64
	MeetsGoal bool
}

// HTTPCheck is the chosen setting measured through the workers.
type HTTPCheck struct {
	Point      FilterPoint
	Samples    int
	Accuracy   float64
	CloudRatio float64
	// Offline is the sweep's accuracy on the same samples; without
	// fallbacks the two are equal.
	Offline   float64
	FromCloud int
	Fallbacks map[string]int
	Latency   Latency
	HardLat   Latency
}

// OutageRun is a series of requests to the edge worker with the cloud in
// some state.
type OutageRun struct {
	Cloud    string // "up", "refused", "black hole"
	Breaker  bool
	Requests int
	Hard     int
	// Answered counts HTTP 200 answers; FromCloud those the cloud
	// answered.
	Answered, FromCloud int
	Fallbacks           map[string]int
	Accuracy            float64
	// Client is the latency the application saw (HTTP over loopback);
	// Server the edge worker's own measure of the inference.
	Client, HardClient, Server Latency
	Took                       time.Duration
}

// JointResults are the joint-inference figures.
type JointResults struct {
	Samples                     int
	EdgeAccuracy, CloudAccuracy float64
	Points                      []FilterPoint
	// Chosen is, per filter, the setting meeting the goal with the
	// fewest samples sent to the cloud (nil: none meets it).
	Chosen  map[string]*FilterPoint
	HTTP    *HTTPCheck
	Outages []OutageRun
}

func runJoint(ctx context.Context, cfg Config, prep aiworkload.Prepared, test *dataset.Set) (*JointResults, error) {
	log := cfg.Logger
	jc := cfg.Joint
	edge, err := loadModel(prep.EdgeModel)
	if err != nil {
		return nil, err
	}
	cloud, err := loadModel(prep.CloudModel)
	if err != nil {
		return nil, err
	}
	pe, err := edge.PredictBatch(test.X)
	if err != nil {
		return nil, err
	}
	pc, err := cloud.PredictBatch(test.X)
	if err != nil {
		return nil, err
	}
	n := test.Len()
	res := &JointResults{Samples: n, Chosen: map[string]*FilterPoint{}}
	edgeRight, cloudRight := make([]bool, n), make([]bool, n)
	for i := range n {
		edgeRight[i] = model.Argmax(pe[i]) == int(test.Y[i])
		cloudRight[i] = model.Argmax(pc[i]) == int(test.Y[i])
	}
	res.EdgeAccuracy, res.CloudAccuracy = share(edgeRight), share(cloudRight)

	sweep := func(name, param string, ths []float64) error {
		for _, th := range ths {
			f, err := hem.New(name, []ai.Parameter{{Key: param, Value: strconv.FormatFloat(th, 'g', -1, 64)}}, hem.Options{})
			if err != nil {
				return err
			}
			var hard, right int
			for i := range n {
				h, _ := f.IsHard(aiworkload.MiningView(pe[i])) // an input error keeps the sample on the edge, as the worker does
				if h {
					hard++
				}
				if h && cloudRight[i] || !h && edgeRight[i] {
					right++
				}
			}
			p := FilterPoint{Filter: name, Param: param, Threshold: th,
				CloudRatio: float64(hard) / float64(n), Accuracy: float64(right) / float64(n)}
			p.MeetsGoal = p.CloudRatio <= jc.MaxCloudRatio && p.Accuracy >= res.CloudAccuracy-jc.MaxGap
			res.Points = append(res.Points, p)
			if c := res.Chosen[name]; p.MeetsGoal && (c == nil || p.CloudRatio < c.CloudRatio) {
				res.Chosen[name] = &p
			}
		}
		return nil
	}
	if err := sweep(hem.NameCrossEntropy, "threshold_cross_entropy", jc.CrossEntropy); err != nil {
		return nil, err
	}
	if err := sweep(hem.NameThreshold, "threshold", jc.Threshold); err != nil {
		return nil, err
	}
	log.Info("joint inference sweep done", "edge", res.EdgeAccuracy, "cloud", res.CloudAccuracy)

	// The setting checked over HTTP: CrossEntropy's chosen one, else its
	// most accurate within the cloud-ratio cap.
	point := res.Chosen[hem.NameCrossEntropy]
	if point == nil {
		for i, p := range res.Points {
			if p.Filter == hem.NameCrossEntropy && p.CloudRatio <= jc.MaxCloudRatio && (point == nil || p.Accuracy > point.Accuracy) {
				point = &res.Points[i]
			}
		}
	}
	if point == nil {
		point = &res.Points[0]
	}

	cloudAddr, stopCloud, err := startCloud(ctx, prep.CloudModel)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := stopCloud(); err != nil {
			log.Warn("the cloud worker stopped with an error", "error", err)
		}
	}()

	if jc.HTTPSamples > 0 {
		m := min(jc.HTTPSamples, n)
		run, err := measure(ctx, jc, prep.EdgeModel, cloudAddr, *point, jointinference.BreakerConfig{}, test, m)
		if err != nil {
			return nil, err
		}
		f, err := hem.New(point.Filter, []ai.Parameter{{Key: point.Param, Value: strconv.FormatFloat(point.Threshold, 'g', -1, 64)}}, hem.Options{})
		if err != nil {
			return nil, err
		}
		var offline int
		for i := range m {
			hard, _ := f.IsHard(aiworkload.MiningView(pe[i]))
			if hard && cloudRight[i] || !hard && edgeRight[i] {
				offline++
			}
		}
		res.HTTP = &HTTPCheck{Point: *point, Samples: m, Accuracy: run.Accuracy, CloudRatio: float64(run.Hard) / float64(m),
			Offline: float64(offline) / float64(m), FromCloud: run.FromCloud, Fallbacks: run.Fallbacks,
			Latency: run.Client, HardLat: run.HardClient}
		log.Info("joint inference over HTTP", "samples", m, "accuracy", run.Accuracy, "fromCloud", run.FromCloud)
	}

	if jc.OutageSamples > 0 || jc.NoBreakerSamples > 0 {
		refused, err := refusedAddr()
		if err != nil {
			return nil, err
		}
		hole, err := newBlackHole()
		if err != nil {
			return nil, err
		}
		defer hole.Close()
		off := jointinference.BreakerConfig{FailureThreshold: math.MaxInt32}
		for _, o := range []struct {
			cloud, addr string
			breaker     bool
			samples     int
		}{
			{"up", cloudAddr, true, jc.OutageSamples},
			{"refused", refused, true, jc.OutageSamples},
			{"black hole", hole.Addr(), true, jc.OutageSamples},
			{"refused", refused, false, jc.NoBreakerSamples},
			{"black hole", hole.Addr(), false, jc.NoBreakerSamples},
		} {
			if o.samples == 0 {
				continue
			}
			bc := jointinference.BreakerConfig{}
			if !o.breaker {
				bc = off
			}
			run, err := measure(ctx, jc, prep.EdgeModel, o.addr, *point, bc, test, min(o.samples, n))
			if err != nil {
				return nil, err
			}
			run.Cloud, run.Breaker = o.cloud, o.breaker
			res.Outages = append(res.Outages, *run)
			log.Info("joint inference, cloud "+o.cloud, "breaker", o.breaker, "requests", run.Requests,
				"p99", run.Client.P99, "max", run.Client.Max)
		}
	}
	return res, nil
}

func share(v []bool) float64 {
	n := 0
	for _, b := range v {
		if b {
			n++
		}
	}
	return float64(n) / float64(len(v))
}

// startCloud runs the cloud worker, configured from its environment, on a
// loopback port.
func startCloud(ctx context.Context, modelPath string) (addr string, stop func() error, err error) {
	cfg, err := aiworkload.LoadCloudConfig(workerenv.FromMap(map[string]string{
		"WORKER_NAME": "eval-cloud", "SERVICE_NAME": "fmnist", "MODEL_URL": modelPath,
	}))
	if err != nil {
		return "", nil, err
	}
	w, err := aiworkload.NewCloudWorker(cfg, nil, nil)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Serve(ctx, ln) }()
	return ln.Addr().String(), func() error { cancel(); return <-done }, nil
}

// measure starts an edge worker (configured from its environment) towards
// cloudAddr and sends it the first n test images, one at a time, over
// HTTP.
func measure(ctx context.Context, jc JointConfig, edgeModel, cloudAddr string, p FilterPoint,
	breaker jointinference.BreakerConfig, test *dataset.Set, n int) (_ *OutageRun, retErr error) {
	host, port, err := net.SplitHostPort(cloudAddr)
	if err != nil {
		return nil, err
	}
	params, err := json.Marshal([]ai.Parameter{{Key: p.Param, Value: strconv.FormatFloat(p.Threshold, 'g', -1, 64)}})
	if err != nil {
		return nil, err
	}
	cfg, err := aiworkload.LoadEdgeConfig(workerenv.FromMap(map[string]string{
		"WORKER_NAME": "eval-edge", "SERVICE_NAME": "fmnist", "BIG_MODEL_IP": host, "BIG_MODEL_PORT": port,
		"HEM_NAME": p.Filter, "HEM_PARAMETERS": string(params), "MODEL_URL": edgeModel,
		"INFERENCE_BUDGET": jc.Budget.String(),
	}))
	if err != nil {
		return nil, err
	}
	cfg.Breaker = breaker
	w, err := aiworkload.NewEdgeWorker(cfg, aiworkload.EdgeOptions{})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Serve(sctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && retErr == nil {
			retErr = fmt.Errorf("edge worker: %w", err)
		}
	}()

	url := "http://" + ln.Addr().String() + "/fmnist/predict"
	hc := &http.Client{Timeout: time.Minute}
	run := &OutageRun{Requests: n, Fallbacks: map[string]int{}}
	var client, hardClient, server []time.Duration
	right := 0
	start := time.Now()
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		a, took, err := predict(ctx, hc, url, test.Sample(i))
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		run.Answered++
		client = append(client, took)
		server = append(server, time.Duration(a.ElapsedMS*float64(time.Millisecond)))
		if a.IsHardExample {
			run.Hard++
			hardClient = append(hardClient, took)
		}
		if a.CloudResult != nil {
			run.FromCloud++
		}
		if a.Fallback != "" {
			run.Fallbacks[a.Fallback]++
		}
		if a.FinalResult.Label == int(test.Y[i]) {
			right++
		}
	}
	run.Took = time.Since(start)
	run.Accuracy = float64(right) / float64(n)
	run.Client, run.HardClient, run.Server = summarize(client), summarize(hardClient), summarize(server)
	return run, nil
}

// predict sends one image to the edge worker's local API.
func predict(ctx context.Context, hc *http.Client, url string, img []float32) (aiworkload.Answer, time.Duration, error) {
	body, err := json.Marshal(map[string]any{"data": img})
	if err != nil {
		return aiworkload.Answer{}, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return aiworkload.Answer{}, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return aiworkload.Answer{}, 0, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return aiworkload.Answer{}, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return aiworkload.Answer{}, 0, fmt.Errorf("HTTP %d: %s", resp.StatusCode, raw)
	}
	var out struct{ Result aiworkload.Answer }
	if err := json.Unmarshal(raw, &out); err != nil {
		return aiworkload.Answer{}, 0, err
	}
	return out.Result, took, nil
}
