package jointinference

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newTestServer(t *testing.T, cfg ServerConfig) *httptest.Server {
	t.Helper()
	if cfg.ServiceName == "" {
		cfg.ServiceName = "helmet"
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func post(t *testing.T, url, contentType, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("response %q is not a JSON object: %v", b, err)
	}
	return resp.StatusCode, m
}

func TestServerPredict(t *testing.T) {
	var got PredictRequest
	ts := newTestServer(t, ServerConfig{MaxBodyBytes: 1 << 20, Predict: func(_ context.Context, r PredictRequest) (any, error) {
		got = r
		var img [][]float64
		if err := json.Unmarshal(r.Data, &img); err != nil {
			return nil, fmt.Errorf("%w: data must be a matrix: %w", ErrBadInput, err)
		}
		return [][]float64{{0, 0, 10, 10, 0.97, 1}}, nil
	}})

	code, m := post(t, ts.URL+"/helmet/predict", "application/json", `{"data": [[1,2],[3,4]], "callback": "post", "post_process": null}`)
	if code != 200 {
		t.Fatalf("status %d: %v", code, m)
	}
	if fmt.Sprint(m["result"]) != "[[0 0 10 10 0.97 1]]" {
		t.Fatalf("result %v", m["result"])
	}
	if string(got.Data) != "[[1,2],[3,4]]" || got.Callback != "post" || string(got.Extra["post_process"]) != "null" {
		t.Fatalf("request seen by the model: %+v", got)
	}

	for _, tc := range []struct {
		name, ct, body string
		code           int
		detail         string
	}{
		{"not JSON", "application/json", `{"data": [1,`, 400, "not a JSON object"},
		{"array body", "application/json", `[1,2]`, 400, "not a JSON object"},
		{"trailing data", "application/json", `{"data":[1]} {}`, 400, "after the JSON object"},
		{"no data", "application/json", `{"callback": "x"}`, 422, `"data" is required`},
		{"null data", "application/json", `{"data": null}`, 422, `"data" is required`},
		{"callback not a string", "application/json", `{"data": [[1]], "callback": 3}`, 422, "callback"},
		{"model refuses", "application/json", `{"data": [1, 2]}`, 422, "data must be a matrix"},
		{"wrong content type", "text/plain", `{"data": [[1]]}`, 415, "application/json"},
		{"too large", "application/json", `{"data": "` + strings.Repeat("x", 2<<20) + `"}`, 413, "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := post(t, ts.URL+"/helmet/predict", tc.ct, tc.body)
			if code != tc.code || !strings.Contains(fmt.Sprint(m["detail"]), tc.detail) {
				t.Fatalf("got %d %v, want %d with detail containing %q", code, m, tc.code, tc.detail)
			}
		})
	}

	resp, err := http.Get(ts.URL + "/helmet/predict")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("GET predict: %d", resp.StatusCode)
	}
	for path, want := range map[string]string{"/helmet": `"infos"`, "/healthz": `"ok"`} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
}

func TestServerTimeoutAndBusy(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	reg := prometheus.NewRegistry()
	ts := newTestServer(t, ServerConfig{
		MaxBodyBytes: 1 << 20,
		Timeout:      50 * time.Millisecond,
		MaxInFlight:  1,
		Registerer:   reg,
		Predict: func(ctx context.Context, r PredictRequest) (any, error) {
			if string(r.Data) == `"block"` {
				entered <- struct{}{}
				<-release
				return "late", nil
			}
			<-ctx.Done()
			return nil, ctx.Err()
		},
	})
	code, m := post(t, ts.URL+"/helmet/predict", "", `{"data": "slow"}`)
	if code != http.StatusGatewayTimeout || !strings.Contains(fmt.Sprint(m["detail"]), "did not answer within 50ms") {
		t.Fatalf("slow model: %d %v", code, m)
	}

	done := make(chan int)
	go func() {
		code, _ := post(t, ts.URL+"/helmet/predict", "application/json", `{"data": "block"}`)
		done <- code
	}()
	<-entered
	code, m = post(t, ts.URL+"/helmet/predict", "application/json", `{"data": [1]}`)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("second request while one is in flight: %d %v", code, m)
	}
	close(release)
	if code := <-done; code != 200 {
		t.Fatalf("blocked request finished with %d", code)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "verge_ji_cloud_requests_total" {
			for _, m := range mf.GetMetric() {
				codes[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if codes["504"] != 1 || codes["503"] != 1 || codes["200"] != 1 {
		t.Fatalf("request counts by code: %v", codes)
	}
}

func TestNewServerValidates(t *testing.T) {
	pred := func(context.Context, PredictRequest) (any, error) { return nil, nil }
	for _, cfg := range []ServerConfig{
		{ServiceName: "", Predict: pred},
		{ServiceName: "a/b", Predict: pred},
		{ServiceName: "ok"},
		{ServiceName: "ok", Predict: pred, MaxInFlight: -1},
	} {
		if _, err := NewServer(cfg); err == nil {
			t.Errorf("NewServer(%+v) accepted", cfg)
		}
	}
}
