package podruntime

import (
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

func cond(st kube.PodStatus, t kube.PodConditionType) kube.PodCondition {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c
		}
	}
	return kube.PodCondition{}
}

func TestComputeStatus(t *testing.T) {
	always := testPod(kube.RestartPolicyAlways, nil, "a")
	withProbe := kube.DeepCopy(always)
	withProbe.Spec.Containers[0].ReadinessProbe = &kube.Probe{}
	never := testPod(kube.RestartPolicyNever, nil, "a")
	withInit := testPod(kube.RestartPolicyAlways, []string{"i"}, "a")
	running := func(p *kube.Pod) podObs {
		return podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{ctr(p, "c1", "s1", "a", 0, stateRunning, 0, 0, 0)}}
	}

	cases := []struct {
		name      string
		pod       *kube.Pod
		obs       podObs
		waiting   map[string]waiting
		ready     map[string]bool
		deleting  bool
		phase     kube.PodPhase
		podReady  kube.ConditionStatus
		state     string // of container a: running, waiting:<reason>, terminated:<exit>
		restarts  int32
		lastExit  *int32
		ctrsReady bool
		inited    kube.ConditionStatus
	}{
		{name: "nothing yet", pod: always, phase: kube.PodPending, podReady: kube.ConditionFalse, state: "waiting:ContainerCreating", inited: kube.ConditionTrue},
		{name: "running without a readiness probe is ready", pod: always, obs: running(always), phase: kube.PodRunning, podReady: kube.ConditionTrue, state: "running", ctrsReady: true, inited: kube.ConditionTrue},
		{name: "readiness probe not passed yet", pod: withProbe, obs: running(withProbe), phase: kube.PodRunning, podReady: kube.ConditionFalse, state: "running", inited: kube.ConditionTrue},
		{name: "readiness probe passed", pod: withProbe, obs: running(withProbe), ready: map[string]bool{"c1": true}, phase: kube.PodRunning, podReady: kube.ConditionTrue, state: "running", ctrsReady: true, inited: kube.ConditionTrue},
		{
			name: "crash loop: waiting with the last termination, phase Running",
			pod:  always,
			obs: podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
				ctr(always, "c2", "s1", "a", 2, stateExited, 3, time.Second, 2), ctr(always, "c1", "s1", "a", 1, stateExited, 3, time.Second, 1)}},
			waiting: map[string]waiting{"a": {Reason: "CrashLoopBackOff"}},
			phase:   kube.PodRunning, podReady: kube.ConditionFalse, state: "waiting:CrashLoopBackOff", restarts: 2, lastExit: ptr(int32(3)), inited: kube.ConditionTrue,
		},
		{
			name:  "Never, failed: Failed",
			pod:   never,
			obs:   podObs{Sandboxes: []sandboxObs{sbx("s1", 0, false)}, Containers: []containerObs{ctr(never, "c1", "s1", "a", 0, stateExited, 1, time.Second, 0)}},
			phase: kube.PodFailed, podReady: kube.ConditionFalse, state: "terminated:1", inited: kube.ConditionTrue,
		},
		{
			name:  "Never, succeeded: Succeeded",
			pod:   never,
			obs:   podObs{Sandboxes: []sandboxObs{sbx("s1", 0, false)}, Containers: []containerObs{ctr(never, "c1", "s1", "a", 0, stateExited, 0, time.Second, 0)}},
			phase: kube.PodSucceeded, podReady: kube.ConditionFalse, state: "terminated:0", inited: kube.ConditionTrue,
		},
		{
			name:  "init running: Pending, not initialized, regular container PodInitializing",
			pod:   withInit,
			obs:   podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{ctr(withInit, "c1", "s1", "i", 0, stateRunning, 0, 0, 0)}},
			phase: kube.PodPending, podReady: kube.ConditionFalse, state: "waiting:PodInitializing", inited: kube.ConditionFalse,
		},
		{
			name: "deleted Always pod stopped by SIGKILL: Failed",
			pod:  always, deleting: true,
			obs:   podObs{Sandboxes: []sandboxObs{sbx("s1", 0, false)}, Containers: []containerObs{ctr(always, "c1", "s1", "a", 0, stateExited, 137, time.Second, 0)}},
			phase: kube.PodFailed, podReady: kube.ConditionFalse, state: "terminated:137", inited: kube.ConditionTrue,
		},
		{
			name: "deleted Always pod that exited cleanly: Succeeded",
			pod:  always, deleting: true,
			obs:   podObs{Sandboxes: []sandboxObs{sbx("s1", 0, false)}, Containers: []containerObs{ctr(always, "c1", "s1", "a", 0, stateExited, 0, time.Second, 0)}},
			phase: kube.PodSucceeded, podReady: kube.ConditionFalse, state: "terminated:0", inited: kube.ConditionTrue,
		},
		{
			name: "deleted before it ever started: Failed",
			pod:  always, deleting: true,
			phase: kube.PodFailed, podReady: kube.ConditionFalse, state: "waiting:ContainerCreating", inited: kube.ConditionTrue,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obs := tc.obs
			sortObs(&obs)
			st := computeStatus(statusInput{Pod: tc.pod, Obs: &obs, Waiting: tc.waiting, Ready: tc.ready, NodeIP: "192.0.2.1",
				FirstSeen: t0, Now: t0.Add(time.Minute), RuntimeName: "containerd", Terminating: tc.deleting})
			if st.Phase != tc.phase {
				t.Errorf("phase %s, want %s", st.Phase, tc.phase)
			}
			if got := cond(st, kube.PodReady).Status; got != tc.podReady {
				t.Errorf("Ready %s, want %s", got, tc.podReady)
			}
			if got := cond(st, kube.PodInitialized).Status; got != tc.inited {
				t.Errorf("Initialized %s, want %s", got, tc.inited)
			}
			cs := st.ContainerStatuses[0]
			var state string
			switch {
			case cs.State.Running != nil:
				state = "running"
			case cs.State.Waiting != nil:
				state = "waiting:" + cs.State.Waiting.Reason
			case cs.State.Terminated != nil:
				state = "terminated:" + itoa32(cs.State.Terminated.ExitCode)
			}
			if state != tc.state {
				t.Errorf("container state %s, want %s", state, tc.state)
			}
			if cs.RestartCount != tc.restarts || cs.Ready != tc.ctrsReady {
				t.Errorf("restarts %d ready %v, want %d %v", cs.RestartCount, cs.Ready, tc.restarts, tc.ctrsReady)
			}
			if tc.lastExit != nil && (cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != *tc.lastExit) {
				t.Errorf("last state %+v, want exit %d", cs.LastTerminationState, *tc.lastExit)
			}
			if st.HostIP != "192.0.2.1" || cond(st, kube.PodScheduled).Status != kube.ConditionTrue {
				t.Errorf("hostIP %q PodScheduled %v", st.HostIP, cond(st, kube.PodScheduled))
			}
		})
	}
}

func itoa32(i int32) string { return kube.NewQuantity(int64(i), kube.DecimalSI).String() }

func TestStatusKeepsTransitionTimesAndCloudConditions(t *testing.T) {
	p := testPod(kube.RestartPolicyAlways, nil, "a")
	p.Spec.ReadinessGates = []kube.PodReadinessGate{{ConditionType: "example.com/lb"}}
	earlier := kube.NewTime(t0.Add(-time.Hour))
	p.Status.Conditions = []kube.PodCondition{
		{Type: kube.ContainersReady, Status: kube.ConditionTrue, LastTransitionTime: earlier},
		{Type: kube.PodScheduled, Status: kube.ConditionTrue, LastTransitionTime: earlier},
		{Type: "example.com/lb", Status: kube.ConditionFalse},
	}
	p.Status.StartTime = &earlier
	obs := podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{ctr(p, "c1", "s1", "a", 0, stateRunning, 0, 0, 0)}}
	st := computeStatus(statusInput{Pod: p, Obs: &obs, NodeIP: "192.0.2.1", Now: t0, RuntimeName: "containerd"})
	if c := cond(st, kube.ContainersReady); c.Status != kube.ConditionTrue || !c.LastTransitionTime.Equal(&earlier) {
		t.Fatalf("ContainersReady %+v: an unchanged condition keeps its transition time", c)
	}
	if c := cond(st, kube.PodReady); c.Status != kube.ConditionFalse || c.Reason != "ReadinessGatesNotReady" {
		t.Fatalf("Ready %+v: a false readiness gate holds it", c)
	}
	if c := cond(st, "example.com/lb"); c.Status != kube.ConditionFalse {
		t.Fatalf("the cloud's condition was dropped: %+v", st.Conditions)
	}
	if !st.StartTime.Equal(&earlier) {
		t.Fatalf("startTime %v, want the stored one", st.StartTime)
	}
	// A terminal phase stays terminal.
	p.Status.Phase = kube.PodSucceeded
	if st := computeStatus(statusInput{Pod: p, Obs: &obs, NodeIP: "192.0.2.1", Now: t0, RuntimeName: "containerd"}); st.Phase != kube.PodSucceeded {
		t.Fatalf("phase went from Succeeded to %s", st.Phase)
	}
}

func TestStatusPodIPs(t *testing.T) {
	p := testPod(kube.RestartPolicyAlways, nil, "a")
	down := podObs{Sandboxes: []sandboxObs{sbx("s1", 0, false)}}
	p.Status.PodIPs = []kube.PodIP{{IP: "10.0.0.9"}}
	if st := computeStatus(statusInput{Pod: p, Obs: &down, NodeIP: "192.0.2.1", Now: t0}); st.PodIP != "10.0.0.9" {
		t.Fatalf("a down sandbox keeps the reported IP, got %q", st.PodIP)
	}
	up := podObs{Sandboxes: []sandboxObs{{ID: "s2", Ready: true, IPs: []string{"10.0.0.3", "fd00::3"}}}}
	st := computeStatus(statusInput{Pod: p, Obs: &up, NodeIP: "192.0.2.1", Now: t0})
	if st.PodIP != "10.0.0.3" || len(st.PodIPs) != 2 || st.PodIPs[1].IP != "fd00::3" {
		t.Fatalf("pod IPs %v", st.PodIPs)
	}
	p.Spec.HostNetwork = true
	if st := computeStatus(statusInput{Pod: p, Obs: &up, NodeIP: "192.0.2.1", Now: t0}); st.PodIP != "192.0.2.1" {
		t.Fatalf("hostNetwork pod IP %q", st.PodIP)
	}
}

func TestQOSClass(t *testing.T) {
	q := kube.MustParse
	rl := func(cpu, mem string) kube.ResourceList {
		out := kube.ResourceList{}
		if cpu != "" {
			out[kube.ResourceCPU] = q(cpu)
		}
		if mem != "" {
			out[kube.ResourceMemory] = q(mem)
		}
		return out
	}
	cases := []struct {
		name       string
		containers []kube.ResourceRequirements
		want       kube.PodQOSClass
	}{
		{"nothing set", []kube.ResourceRequirements{{}}, kube.PodQOSBestEffort},
		{"equal requests and limits", []kube.ResourceRequirements{{Requests: rl("1", "1Gi"), Limits: rl("1", "1Gi")}}, kube.PodQOSGuaranteed},
		{"limits only (requests default to them)", []kube.ResourceRequirements{{Requests: rl("500m", "64Mi"), Limits: rl("500m", "64Mi")}}, kube.PodQOSGuaranteed},
		{"requests below limits", []kube.ResourceRequirements{{Requests: rl("100m", "64Mi"), Limits: rl("1", "64Mi")}}, kube.PodQOSBurstable},
		{"memory limit only", []kube.ResourceRequirements{{Limits: rl("", "64Mi"), Requests: rl("", "64Mi")}}, kube.PodQOSBurstable},
		{"one guaranteed, one best-effort", []kube.ResourceRequirements{{Requests: rl("1", "1Gi"), Limits: rl("1", "1Gi")}, {}}, kube.PodQOSBurstable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &kube.Pod{}
			for i, r := range tc.containers {
				p.Spec.Containers = append(p.Spec.Containers, kube.Container{Name: string(rune('a' + i)), Resources: r})
			}
			if got := qosClass(p); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDeadlineExceeded(t *testing.T) {
	p := testPod(kube.RestartPolicyAlways, nil, "a")
	if deadlineExceeded(p, t0, t0.Add(time.Hour)) {
		t.Fatal("no deadline set")
	}
	p.Spec.ActiveDeadlineSeconds = ptr(int64(60))
	if deadlineExceeded(p, t0, t0.Add(59*time.Second)) || !deadlineExceeded(p, t0, t0.Add(60*time.Second)) {
		t.Fatal("deadline boundary")
	}
	obs := podObs{Sandboxes: []sandboxObs{sbx("s1", 0, false)}, Containers: []containerObs{ctr(p, "c1", "s1", "a", 0, stateExited, 137, time.Second, 0)}}
	st := computeStatus(statusInput{Pod: p, Obs: &obs, NodeIP: "192.0.2.1", Now: t0, DeadlineExceeded: true})
	if st.Phase != kube.PodFailed || st.Reason != "DeadlineExceeded" {
		t.Fatalf("phase %s reason %q", st.Phase, st.Reason)
	}
	// Reported once, it stays (terminal phases are final).
	p.Status = st
	if st := computeStatus(statusInput{Pod: p, Obs: &obs, NodeIP: "192.0.2.1", Now: t0}); st.Reason != "DeadlineExceeded" || st.Phase != kube.PodFailed {
		t.Fatalf("after the report: phase %s reason %q", st.Phase, st.Reason)
	}
}

func TestSidecarStatus(t *testing.T) {
	always := kube.ContainerRestartPolicyAlways
	p := testPod(kube.RestartPolicyNever, []string{"proxy"}, "main")
	p.Spec.InitContainers[0].RestartPolicy = &always
	p.Spec.InitContainers[0].ReadinessProbe = &kube.Probe{}
	obs := podObs{Sandboxes: []sandboxObs{sbx("s1", 0, true)}, Containers: []containerObs{
		ctr(p, "c2", "s1", "main", 0, stateRunning, 0, 0, 0), ctr(p, "c1", "s1", "proxy", 0, stateRunning, 0, 0, 0)}}
	sortObs(&obs)
	in := statusInput{Pod: p, Obs: &obs, NodeIP: "192.0.2.1", Now: t0, RuntimeName: "containerd"}
	st := computeStatus(in)
	if st.Phase != kube.PodRunning || cond(st, kube.PodInitialized).Status != kube.ConditionTrue {
		t.Fatalf("a running sidecar: %s %v", st.Phase, st.Conditions)
	}
	if cond(st, kube.PodReady).Status != kube.ConditionFalse {
		t.Fatal("an unready sidecar must hold the pod's readiness")
	}
	in.Ready = map[string]bool{"c1": true}
	if st := computeStatus(in); cond(st, kube.PodReady).Status != kube.ConditionTrue || !st.InitContainerStatuses[0].Ready {
		t.Fatalf("ready sidecar: %v", st.Conditions)
	}
	// The regular container finished; the sidecar was killed with the
	// sandbox: the pod succeeded.
	done := podObs{Sandboxes: []sandboxObs{sbx("s1", 0, false)}, Containers: []containerObs{
		ctr(p, "c2", "s1", "main", 0, stateExited, 0, time.Second, 0), ctr(p, "c1", "s1", "proxy", 0, stateExited, 137, time.Second, 0)}}
	sortObs(&done)
	if st := computeStatus(statusInput{Pod: p, Obs: &done, NodeIP: "192.0.2.1", Now: t0}); st.Phase != kube.PodSucceeded {
		t.Fatalf("phase %s, want Succeeded", st.Phase)
	}
}
