package podruntime

import (
	"reflect"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func testPod(policy kube.RestartPolicy, inits []string, names ...string) *kube.Pod {
	p := &kube.Pod{ObjectMeta: kube.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"}}
	p.Spec.RestartPolicy = policy
	for _, n := range inits {
		p.Spec.InitContainers = append(p.Spec.InitContainers, kube.Container{Name: n, Image: "img:" + n})
	}
	for _, n := range names {
		p.Spec.Containers = append(p.Spec.Containers, kube.Container{Name: n, Image: "img:" + n})
	}
	return p
}

// ctr builds an observed container of pod p in sandbox sb.
func ctr(p *kube.Pod, id, sb, name string, attempt uint32, state containerState, exit int32, ranFor time.Duration, step int) containerObs {
	spec, _ := specOf(p, name)
	hash := "stale"
	if spec != nil {
		hash = containerHash(spec)
	}
	c := containerObs{ID: id, SandboxID: sb, Name: name, Attempt: attempt, State: state, ExitCode: exit, Hash: hash, BackoffStep: step,
		CreatedAt: t0.Add(time.Duration(attempt) * time.Second), StartedAt: t0.Add(time.Duration(attempt) * time.Second)}
	if state == stateExited {
		c.FinishedAt = c.StartedAt.Add(ranFor)
	}
	return c
}

func sbx(id string, attempt uint32, ready bool) sandboxObs {
	return sandboxObs{ID: id, Attempt: attempt, Ready: ready, CreatedAt: t0.Add(time.Duration(attempt) * time.Minute), IPs: []string{"10.0.0.2"}}
}

// summary is an order-independent digest of podActions for comparison.
type summary struct {
	Stop, Kill, Remove, RemoveSB []string
	Create                       bool
	Attempt                      uint32
	Start                        []string // name@attempt/step
	Waiting                      []string
	Terminal                     bool
}

func summarize(a podActions) summary {
	s := summary{Stop: a.StopSandboxes, Remove: a.RemoveContainers, RemoveSB: a.RemoveSandboxes, Create: a.CreateSandbox, Attempt: a.SandboxAttempt, Terminal: a.Terminal}
	for _, k := range a.Kill {
		s.Kill = append(s.Kill, k.ContainerID)
	}
	for _, st := range a.Start {
		s.Start = append(s.Start, st.Name+"@"+strconv.Itoa(int(st.Attempt))+"/"+strconv.Itoa(st.Step))
	}
	for n, w := range a.Waiting {
		s.Waiting = append(s.Waiting, n+":"+w.Reason)
	}
	for _, l := range [][]string{s.Stop, s.Kill, s.Remove, s.RemoveSB, s.Start, s.Waiting} {
		sort.Strings(l)
	}
	return s
}

func TestComputeActions(t *testing.T) {
	always := testPod(kube.RestartPolicyAlways, nil, "a", "b")
	never := testPod(kube.RestartPolicyNever, nil, "a")
	onFailure := testPod(kube.RestartPolicyOnFailure, nil, "a")
	withInit := testPod(kube.RestartPolicyAlways, []string{"i1", "i2"}, "a")
	terminalPod := testPod(kube.RestartPolicyAlways, nil, "a")
	terminalPod.Status.Phase = kube.PodSucceeded

	cases := []struct {
		name     string
		pod      *kube.Pod
		obs      podObs
		now      time.Time
		liveness map[string]bool
		want     summary
	}{
		{
			name: "new pod: create a sandbox and start every container",
			pod:  always,
			want: summary{Create: true, Start: []string{"a@0/0", "b@0/0"}},
		},
		{
			name: "everything running: nothing to do",
			pod:  always,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(always, "c1", "s1", "a", 0, stateRunning, 0, 0, 0), ctr(always, "c2", "s1", "b", 0, stateRunning, 0, 0, 0)}},
			now:  t0.Add(time.Hour),
			want: summary{},
		},
		{
			name: "first crash restarts at once with the next attempt",
			pod:  always,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(always, "c1", "s1", "a", 0, stateExited, 1, time.Second, 0), ctr(always, "c2", "s1", "b", 0, stateRunning, 0, 0, 0)}},
			now:  t0.Add(2 * time.Second),
			want: summary{Start: []string{"a@1/1"}},
		},
		{
			name: "second crash is held in CrashLoopBackOff; the older container is removed",
			pod:  always,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(always, "c3", "s1", "a", 1, stateExited, 1, time.Second, 1),
				ctr(always, "c2", "s1", "b", 0, stateRunning, 0, 0, 0),
				ctr(always, "c1", "s1", "a", 0, stateExited, 1, time.Second, 0)}},
			now:  t0.Add(5 * time.Second),
			want: summary{Waiting: []string{"a:CrashLoopBackOff"}, Remove: []string{"c1"}},
		},
		{
			name: "after the back-off the container starts",
			pod:  always,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(always, "c3", "s1", "a", 1, stateExited, 1, time.Second, 1), ctr(always, "c2", "s1", "b", 0, stateRunning, 0, 0, 0)}},
			now:  t0.Add(13 * time.Second),
			want: summary{Start: []string{"a@2/2"}},
		},
		{
			name: "a failed liveness probe kills the container",
			pod:  always,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(always, "c1", "s1", "a", 0, stateRunning, 0, 0, 0), ctr(always, "c2", "s1", "b", 0, stateRunning, 0, 0, 0)}},
			liveness: map[string]bool{"c1": true},
			want:     summary{Kill: []string{"c1"}},
		},
		{
			name: "a changed image replaces the running container",
			pod:  always,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				func() containerObs {
					c := ctr(always, "c1", "s1", "a", 0, stateRunning, 0, 0, 0)
					c.Hash = "old"
					return c
				}(), ctr(always, "c2", "s1", "b", 0, stateRunning, 0, 0, 0)}},
			want: summary{Kill: []string{"c1"}},
		},
		{
			name: "Never: an exited container stays; the finished pod releases its sandbox",
			pod:  never,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(never, "c1", "s1", "a", 0, stateExited, 1, time.Second, 0)}},
			want: summary{Terminal: true, Stop: []string{"s1"}},
		},
		{
			name: "OnFailure: success is final",
			pod:  onFailure,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(onFailure, "c1", "s1", "a", 0, stateExited, 0, time.Second, 0)}},
			want: summary{Terminal: true, Stop: []string{"s1"}},
		},
		{
			name: "OnFailure: failure restarts",
			pod:  onFailure,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(onFailure, "c1", "s1", "a", 0, stateExited, 2, time.Second, 0)}},
			now:  t0.Add(time.Minute),
			want: summary{Start: []string{"a@1/1"}},
		},
		{
			name: "reboot: dead sandbox, exited containers: new sandbox, restart everything",
			pod:  always,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, false)}, Containers: []containerObs{
				ctr(always, "c1", "s1", "a", 0, stateExited, 255, time.Hour, 0), ctr(always, "c2", "s1", "b", 3, stateExited, 255, time.Hour, 2)}},
			now:  t0.Add(2 * time.Hour),
			want: summary{Create: true, Attempt: 1, Start: []string{"a@1/0", "b@4/0"}},
		},
		{
			name: "reboot of a finished Never pod: nothing runs again",
			pod:  never,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, false)}, Containers: []containerObs{
				ctr(never, "c1", "s1", "a", 0, stateExited, 0, time.Second, 0)}},
			want: summary{Terminal: true},
		},
		{
			name: "reboot of a succeeded OnFailure pod: nothing runs again",
			pod:  onFailure,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, false)}, Containers: []containerObs{
				ctr(onFailure, "c1", "s1", "a", 0, stateExited, 0, time.Second, 0)}},
			want: summary{Terminal: true},
		},
		{
			name: "a pod the cloud reports finished never restarts",
			pod:  terminalPod,
			obs:  podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}},
			want: summary{Terminal: true, Stop: []string{"s1"}},
		},
		{
			name: "init containers run one at a time, first",
			pod:  withInit,
			obs:  podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}},
			want: summary{Start: []string{"i1@0/0"}},
		},
		{
			name: "the next init container after the first succeeded",
			pod:  withInit,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(withInit, "c1", "s1", "i1", 0, stateExited, 0, time.Second, 0)}},
			want: summary{Start: []string{"i2@0/0"}},
		},
		{
			name: "a running init container blocks the rest",
			pod:  withInit,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(withInit, "c2", "s1", "i2", 0, stateRunning, 0, 0, 0), ctr(withInit, "c1", "s1", "i1", 0, stateExited, 0, time.Second, 0)}},
			want: summary{},
		},
		{
			name: "init done: the regular containers start",
			pod:  withInit,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(withInit, "c2", "s1", "i2", 0, stateExited, 0, time.Second, 0), ctr(withInit, "c1", "s1", "i1", 0, stateExited, 0, time.Second, 0)}},
			want: summary{Start: []string{"a@0/0"}},
		},
		{
			name: "a failed init container with restartPolicy Never fails the pod",
			pod: func() *kube.Pod {
				p := kube.DeepCopy(withInit)
				p.Spec.RestartPolicy = kube.RestartPolicyNever
				return p
			}(),
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(withInit, "c1", "s1", "i1", 0, stateExited, 1, time.Second, 0)}},
			want: summary{Terminal: true, Stop: []string{"s1"}},
		},
		{
			name: "a new sandbox re-runs init containers from the first",
			pod:  withInit,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, false)}, Containers: []containerObs{
				ctr(withInit, "c3", "s1", "a", 0, stateExited, 255, time.Hour, 0),
				ctr(withInit, "c2", "s1", "i2", 0, stateExited, 0, time.Second, 0), ctr(withInit, "c1", "s1", "i1", 0, stateExited, 0, time.Second, 0)}},
			now:  t0.Add(2 * time.Hour),
			want: summary{Create: true, Attempt: 1, Start: []string{"i1@1/1"}},
		},
		{
			name: "two ready sandboxes: the older is stopped, its containers with it",
			pod:  always,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s2", 1, true), sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(always, "c3", "s2", "a", 1, stateRunning, 0, 0, 0), ctr(always, "c4", "s2", "b", 1, stateRunning, 0, 0, 0),
				ctr(always, "c1", "s1", "a", 0, stateRunning, 0, 0, 0)}},
			want: summary{Stop: []string{"s1"}},
		},
		{
			name: "the newest exited container stays beside the running one (lastState)",
			pod:  always,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s2", 1, true), sbx("s1", 0, false)}, Containers: []containerObs{
				ctr(always, "c3", "s2", "a", 1, stateRunning, 0, 0, 0), ctr(always, "c4", "s2", "b", 1, stateRunning, 0, 0, 0),
				ctr(always, "c1", "s1", "a", 0, stateExited, 0, time.Second, 0)}},
			want: summary{},
		},
		{
			name: "older exited containers go, and then their empty dead sandbox",
			pod:  always,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s2", 1, true), sbx("s1", 0, false)}, Containers: []containerObs{
				ctr(always, "c5", "s2", "a", 2, stateRunning, 0, 0, 0), ctr(always, "c4", "s2", "b", 1, stateRunning, 0, 0, 0),
				ctr(always, "c3", "s2", "a", 1, stateExited, 1, time.Second, 1),
				ctr(always, "c1", "s1", "a", 0, stateExited, 0, time.Second, 0)}},
			want: summary{Remove: []string{"c1"}, RemoveSB: []string{"s1"}},
		},
		{
			name: "a container the spec does not name is killed",
			pod:  always,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(always, "c1", "s1", "a", 0, stateRunning, 0, 0, 0), ctr(always, "c2", "s1", "b", 0, stateRunning, 0, 0, 0),
				ctr(always, "c9", "s1", "stray", 0, stateRunning, 0, 0, 0)}},
			want: summary{Kill: []string{"c9"}},
		},
		{
			name: "a container left created (verge-edge died between create and start) is replaced",
			pod:  always,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(always, "c1", "s1", "a", 0, stateCreated, 0, 0, 0), ctr(always, "c2", "s1", "b", 0, stateRunning, 0, 0, 0)}},
			now:  t0.Add(time.Minute),
			want: summary{Start: []string{"a@1/1"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = t0.Add(time.Minute)
			}
			obs := tc.obs
			sortObs(&obs)
			got := summarize(computeActions(actionInput{Pod: tc.pod, Obs: &obs, Now: now, Backoff: BackoffPolicy{}.withDefaults(), LivenessFailed: tc.liveness}))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestSidecarActions(t *testing.T) {
	always := kube.ContainerRestartPolicyAlways
	pod := func(policy kube.RestartPolicy) *kube.Pod {
		p := testPod(policy, []string{"proxy", "setup"}, "main")
		p.Spec.InitContainers[0].RestartPolicy = &always
		return p
	}
	never := pod(kube.RestartPolicyNever)
	withStartup := pod(kube.RestartPolicyAlways)
	withStartup.Spec.InitContainers[0].StartupProbe = &kube.Probe{}
	cases := []struct {
		name    string
		pod     *kube.Pod
		obs     podObs
		started map[string]bool
		want    summary
	}{
		{"the sidecar starts first", never, podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}}, nil, summary{Start: []string{"proxy@0/0"}}},
		{"a running sidecar lets the next init container start", never, podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
			ctr(never, "c1", "s1", "proxy", 0, stateRunning, 0, 0, 0)}}, nil, summary{Start: []string{"setup@0/0"}}},
		{"a sidecar's startup probe holds the next init container", withStartup, podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
			ctr(withStartup, "c1", "s1", "proxy", 0, stateRunning, 0, 0, 0)}}, nil, summary{}},
		{"…until it passes", withStartup, podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
			ctr(withStartup, "c1", "s1", "proxy", 0, stateRunning, 0, 0, 0)}}, map[string]bool{"c1": true}, summary{Start: []string{"setup@0/0"}}},
		{"after init, the regular container", never, podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
			ctr(never, "c1", "s1", "proxy", 0, stateRunning, 0, 0, 0), ctr(never, "c2", "s1", "setup", 0, stateExited, 0, time.Second, 0)}},
			nil, summary{Start: []string{"main@0/0"}}},
		{"a sidecar that exits restarts even with restartPolicy Never", never, podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
			ctr(never, "c3", "s1", "main", 0, stateRunning, 0, 0, 0),
			ctr(never, "c1", "s1", "proxy", 0, stateExited, 1, time.Hour, 0), ctr(never, "c2", "s1", "setup", 0, stateExited, 0, time.Second, 0)}},
			nil, summary{Start: []string{"proxy@1/0"}}},
		{"the pod completes when the regular container does; the sidecar stops with the sandbox", never, podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
			ctr(never, "c3", "s1", "main", 0, stateExited, 0, time.Second, 0),
			ctr(never, "c1", "s1", "proxy", 0, stateRunning, 0, 0, 0), ctr(never, "c2", "s1", "setup", 0, stateExited, 0, time.Second, 0)}},
			nil, summary{Terminal: true, Stop: []string{"s1"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obs := tc.obs
			sortObs(&obs)
			got := summarize(computeActions(actionInput{Pod: tc.pod, Obs: &obs, Now: t0.Add(2 * time.Hour), Backoff: BackoffPolicy{}.withDefaults(), Started: tc.started}))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestCrashLoopRequeueAt(t *testing.T) {
	p := testPod(kube.RestartPolicyAlways, nil, "a")
	obs := podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{ctr(p, "c2", "s1", "a", 3, stateExited, 1, time.Second, 3)}}
	a := computeActions(actionInput{Pod: p, Obs: &obs, Now: t0.Add(4 * time.Second), Backoff: BackoffPolicy{}.withDefaults()})
	// Step 4 waits 40 s after the finish at t0+3s+1s.
	if want := t0.Add(44 * time.Second); !a.RequeueAt.Equal(want) {
		t.Fatalf("requeue at %s, want %s", a.RequeueAt, want)
	}
	if w := a.Waiting["a"]; w.Message != "back-off 40s restarting failed container=a pod=p_ns(u1)" {
		t.Fatalf("waiting message %q", w.Message)
	}
}

func TestTerminationActions(t *testing.T) {
	p := testPod(kube.RestartPolicyAlways, nil, "a", "b")
	obs := podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
		ctr(p, "c1", "s1", "a", 0, stateRunning, 0, 0, 0), ctr(p, "c2", "s1", "b", 0, stateExited, 0, time.Second, 0)}}
	a, done := terminationActions(&obs)
	if done || len(a.Kill) != 1 || a.Kill[0].ContainerID != "c1" || len(a.StopSandboxes) != 1 {
		t.Fatalf("running pod: done=%v %+v", done, a)
	}
	stopped := podObs{Sandboxes: []sandboxObs{sbx("s1", 0, false)}, Containers: []containerObs{
		ctr(p, "c1", "s1", "a", 0, stateExited, 137, time.Second, 0)}}
	if _, done := terminationActions(&stopped); !done {
		t.Fatal("a pod with nothing running must be done")
	}
}

func TestRestartCountContinuesFromStoredStatus(t *testing.T) {
	// CRI lost the containers (image store wiped) but the cloud saw 4 restarts.
	p := testPod(kube.RestartPolicyAlways, nil, "a")
	p.Status.ContainerStatuses = []kube.ContainerStatus{{Name: "a", ContainerID: "containerd://old", RestartCount: 4}}
	obs := podObs{}
	a := computeActions(actionInput{Pod: p, Obs: &obs, Now: t0, Backoff: BackoffPolicy{}.withDefaults()})
	if len(a.Start) != 1 || a.Start[0].Attempt != 5 {
		t.Fatalf("start %+v, want attempt 5", a.Start)
	}
}
