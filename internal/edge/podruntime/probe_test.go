package podruntime

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

func TestProbeMachine(t *testing.T) {
	probe := &kube.Probe{SuccessThreshold: 2, FailureThreshold: 3}
	cases := []struct {
		name     string
		kind     probeKind
		seed     probeResult
		outcomes string // s = success, f = failure
		want     string // result after each outcome: u, s, f
		done     bool
	}{
		{"readiness starts failed and needs 2 successes", readiness, resultUnknown, "ssf", "fss", false},
		{"readiness needs 3 failures to drop", readiness, resultUnknown, "ssffff", "fsssff", false},
		{"a failure breaks a success streak", readiness, resultUnknown, "sfss", "fffs", false},
		{"liveness starts alive", liveness, resultUnknown, "fff", "ssf", true},
		{"liveness recovers from a blip", liveness, resultUnknown, "ffsff", "sssss", false},
		{"startup stays unknown until it decides", startup, resultUnknown, "ss", "us", true},
		{"startup fails after the threshold", startup, resultUnknown, "fff", "uuf", true},
		{"a resumed readiness result holds", readiness, resultSuccess, "ff", "ss", false},
	}
	letter := map[probeResult]byte{resultUnknown: 'u', resultSuccess: 's', resultFailure: 'f'}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newProbeMachine(tc.kind, probe, tc.seed)
			var got []byte
			for i := range tc.outcomes {
				before := m.result
				changed := m.observe(tc.outcomes[i] == 's')
				if changed != (m.result != before) {
					t.Fatalf("outcome %d: changed=%v but result %v→%v", i, changed, before, m.result)
				}
				got = append(got, letter[m.result])
			}
			if string(got) != tc.want || m.done() != tc.done {
				t.Fatalf("results %s done=%v, want %s done=%v", got, m.done(), tc.want, tc.done)
			}
		})
	}
}

func TestProbeTimingDefaults(t *testing.T) {
	tm := timingOf(&kube.Probe{})
	if tm.Period != 10*time.Second || tm.Timeout != time.Second || tm.SuccessThreshold != 1 || tm.FailureThreshold != 3 || tm.InitialDelay != 0 {
		t.Fatalf("defaults %+v", tm)
	}
	tm = timingOf(&kube.Probe{InitialDelaySeconds: 5})
	started := t0
	if got := tm.firstProbe(started, t0.Add(time.Second)); !got.Equal(t0.Add(5 * time.Second)) {
		t.Fatalf("first probe at %s, want start+5s", got)
	}
	if got := tm.firstProbe(started, t0.Add(time.Minute)); !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("an adopted container is probed at once, got %s", got)
	}
}

func TestHTTPProbe(t *testing.T) {
	var gotHost, gotHeader string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotHeader = r.Host, r.Header.Get("X-Check")
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(200)
		case "/moved":
			http.Redirect(w, r, "http://elsewhere.invalid/", http.StatusFound)
		default:
			http.Error(w, "broken", 500)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	c := &kube.Container{Ports: []kube.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	tr := &http.Transport{}
	target := probeTarget{Container: c, PodIP: "127.0.0.1"}
	cases := []struct {
		path string
		port kube.IntOrString
		ok   bool
	}{
		{"/ok", kube.FromString("http"), true},
		{"/moved", kube.FromInt32(int32(port)), true},
		{"/broken", kube.FromInt32(int32(port)), false},
		{"/ok", kube.FromString("nope"), false},
	}
	for _, tc := range cases {
		ok, msg := httpProbe(context.Background(), tr, &kube.HTTPGetAction{Path: tc.path, Port: tc.port,
			HTTPHeaders: []kube.HTTPHeader{{Name: "Host", Value: "svc.example"}, {Name: "X-Check", Value: "1"}}}, target)
		if ok != tc.ok {
			t.Errorf("%s via %v: ok=%v (%s), want %v", tc.path, tc.port, ok, msg, tc.ok)
		}
	}
	if gotHost != "svc.example" || gotHeader != "1" {
		t.Fatalf("headers not sent: host %q X-Check %q", gotHost, gotHeader)
	}
}
