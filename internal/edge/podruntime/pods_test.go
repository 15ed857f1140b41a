package podruntime_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/verge-edge/verge/internal/containerd/containerdtest"
	"github.com/verge-edge/verge/internal/edge/podruntime"
	"github.com/verge-edge/verge/internal/protocol/kube"
)

// TestPods runs one node (a private containerd and a pod runtime) and
// checks, in parallel, what users see of their pods.
func TestPods(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "pods")
	cfg := runtimeConfig(t, e, "edge-pods")
	cfg.ContainerLogMaxSize, cfg.ContainerLogMaxFiles = 256<<10, 3
	n := startRuntime(t, cfg, newSource(), newSink())
	c := dialCRI(t, e)

	t.Run("container logs are rotated", func(t *testing.T) {
		t.Parallel()
		p := n.pod("chatty", kube.Container{Name: "spam", Image: e.images.App, Args: []string{"spam"}})
		n.add(p)
		waitStatus(t, n.sink, p.UID, 60*time.Second, "Running", running)
		dir := filepath.Join(cfg.PodLogDir, "default_chatty_"+string(p.UID), "spam")
		waitFor(t, 30*time.Second, "rotated logs", func() (bool, string) {
			files, _ := filepath.Glob(filepath.Join(dir, "0.log.*"))
			return len(files) >= 2, fmt.Sprint(files)
		})
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		if len(files) > 3+1 { // a rotation may be under way between rename and clean-up
			t.Fatalf("%d log files kept, want at most 3: %v", len(files), files)
		}
		if info, err := os.Stat(filepath.Join(dir, "0.log")); err != nil || info.Size() > 64<<20 {
			t.Fatalf("current log: %v %v", info, err)
		}
		n.src.deletePod(p.UID)
		n.rt.Trigger()
		waitFor(t, 30*time.Second, "the log directory to go with the pod", func() (bool, string) {
			_, err := os.Stat(dir)
			return os.IsNotExist(err), fmt.Sprint(err)
		})
	})

	t.Run("web pod runs with an IP and readiness gates Ready", func(t *testing.T) {
		t.Parallel()
		p := n.pod("web", kube.Container{
			Name: "web", Image: e.images.App,
			Args:  []string{"serve", "-addr", ":8080", "-ready-file", "/data/ready"},
			Ports: []kube.ContainerPort{{Name: "http", ContainerPort: 8080}},
			ReadinessProbe: &kube.Probe{ProbeHandler: kube.ProbeHandler{HTTPGet: &kube.HTTPGetAction{Path: "/healthz", Port: kube.FromString("http")}},
				PeriodSeconds: 1, FailureThreshold: 1},
			VolumeMounts: []kube.VolumeMount{{Name: "data", MountPath: "/data"}},
		})
		p.Spec.Volumes = []kube.Volume{{Name: "data", VolumeSource: kube.VolumeSource{EmptyDir: &kube.EmptyDirVolumeSource{}}}}
		n.add(p)

		st := waitStatus(t, n.sink, p.UID, 90*time.Second, "Running with a pod IP", func(st kube.PodStatus) bool {
			return running(st) && st.PodIP != ""
		})
		cidr := netip.MustParsePrefix(e.node.Instance.Config().PodCIDR)
		if !cidr.Contains(netip.MustParseAddr(st.PodIP)) {
			t.Fatalf("pod IP %s is not in the node's pod CIDR %s", st.PodIP, cidr)
		}
		if st.HostIP != "127.0.0.1" || st.StartTime == nil || st.QOSClass != kube.PodQOSBestEffort {
			t.Fatalf("hostIP %q startTime %v qos %q", st.HostIP, st.StartTime, st.QOSClass)
		}
		cs := st.ContainerStatuses[0]
		if !strings.HasPrefix(cs.ContainerID, "containerd://") || !strings.Contains(cs.ImageID, "sha256:") || cs.Started == nil || !*cs.Started {
			t.Fatalf("container status: %+v", cs)
		}
		// Serving, but not ready: the probe fails until /data/ready exists.
		waitFor(t, 20*time.Second, "the pod to answer on its IP", func() (bool, string) {
			resp, err := http.Get("http://" + net(st.PodIP) + ":8080/")
			if err != nil {
				return false, err.Error()
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return strings.Contains(string(body), "hello from web"), string(body)
		})
		time.Sleep(2 * time.Second)
		if st, _ := n.sink.get(p.UID); condition(st, kube.PodReady) != kube.ConditionFalse || st.ContainerStatuses[0].Ready {
			t.Fatalf("Ready before the readiness probe passed: %s", describe(st))
		}
		if out, code := c.exec(t, p.UID, "web", "/app", "write", "/data/ready", "yes"); code != 0 {
			t.Fatalf("exec: %d %s", code, out)
		}
		waitStatus(t, n.sink, p.UID, 20*time.Second, "Ready", func(st kube.PodStatus) bool {
			return condition(st, kube.PodReady) == kube.ConditionTrue && condition(st, kube.ContainersReady) == kube.ConditionTrue && st.ContainerStatuses[0].Ready
		})
		// And back: removing the file makes the pod unready.
		if _, code := c.exec(t, p.UID, "web", "/app", "write", "/data/ready", ""); code != 0 {
			t.Fatal("exec failed")
		}
	})

	t.Run("crasher reaches CrashLoopBackOff with a growing restartCount", func(t *testing.T) {
		t.Parallel()
		p := n.pod("crasher", kube.Container{Name: "crash", Image: e.images.App, Args: []string{"crash", "-after", "100ms", "-code", "3"},
			TerminationMessagePath: "/dev/termination-log"})
		n.add(p)
		st := waitStatus(t, n.sink, p.UID, 60*time.Second, "CrashLoopBackOff with restartCount >= 2", func(st kube.PodStatus) bool {
			if len(st.ContainerStatuses) == 0 {
				return false
			}
			cs := st.ContainerStatuses[0]
			return cs.RestartCount >= 2 && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
		})
		cs := st.ContainerStatuses[0]
		last := cs.LastTerminationState.Terminated
		if last == nil || last.ExitCode != 3 || last.Message != "crashed on purpose" {
			t.Fatalf("lastState: %+v", cs.LastTerminationState)
		}
		if st.Phase != kube.PodRunning || condition(st, kube.PodReady) != kube.ConditionFalse {
			t.Fatalf("a crash-looping pod with restartPolicy Always is Running and not Ready: %s", describe(st))
		}
		// What `kubectl logs [--previous]` reads.
		ctx := context.Background()
		prev, err := n.rt.Container(ctx, "default", "crasher", "crash", true)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(prev.LogPath)
		if err != nil || !strings.Contains(string(data), "crasher exiting with 3") || prev.PodUID != p.UID {
			t.Fatalf("previous log %s: %q %v (uid %s)", prev.LogPath, data, err, prev.PodUID)
		}
		if _, err := n.rt.Container(ctx, "default", "crasher", "nope", false); !errors.Is(err, podruntime.ErrContainerNotFound) {
			t.Fatalf("unknown container: %v", err)
		}
		first := cs.RestartCount
		waitStatus(t, n.sink, p.UID, 60*time.Second, "another restart", func(st kube.PodStatus) bool {
			return st.ContainerStatuses[0].RestartCount > first
		})
		if !hasEvent(n.sink.eventsFor("crasher"), "BackOff") && !hasEvent(n.sink.eventsFor("crasher"), "Started") {
			t.Fatalf("events: %v", n.sink.eventsFor("crasher"))
		}
	})

	t.Run("ConfigMap as file and env, file updated in place", func(t *testing.T) {
		t.Parallel()
		n.src.putConfigMap(&kube.ConfigMap{ObjectMeta: kube.ObjectMeta{Name: "settings", Namespace: "default"},
			Data: map[string]string{"greeting": "hello", "mode": "fast"}})
		n.src.putSecret(&kube.Secret{ObjectMeta: kube.ObjectMeta{Name: "creds", Namespace: "default"},
			Data: map[string][]byte{"password": []byte("s3cret")}})
		p := n.pod("config", kube.Container{
			Name: "app", Image: e.images.App, Args: []string{"sleep"},
			Env: []kube.EnvVar{
				{Name: "GREETING", ValueFrom: &kube.EnvVarSource{ConfigMapKeyRef: &kube.ConfigMapKeySelector{LocalObjectReference: kube.LocalObjectReference{Name: "settings"}, Key: "greeting"}}},
				{Name: "PASSWORD", ValueFrom: &kube.EnvVarSource{SecretKeyRef: &kube.SecretKeySelector{LocalObjectReference: kube.LocalObjectReference{Name: "creds"}, Key: "password"}}},
				{Name: "POD_NAME", ValueFrom: &kube.EnvVarSource{FieldRef: &kube.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "POD_IP", ValueFrom: &kube.EnvVarSource{FieldRef: &kube.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				{Name: "MEM_LIMIT_MI", ValueFrom: &kube.EnvVarSource{ResourceFieldRef: &kube.ResourceFieldSelector{Resource: "limits.memory", Divisor: mustQuantity("1Mi")}}},
				{Name: "COMPOSED", Value: "$(GREETING)-$(POD_NAME)"},
			},
			EnvFrom:      []kube.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &kube.ConfigMapEnvSource{LocalObjectReference: kube.LocalObjectReference{Name: "settings"}}}},
			VolumeMounts: []kube.VolumeMount{{Name: "settings", MountPath: "/etc/settings"}, {Name: "info", MountPath: "/etc/info"}},
			Resources:    kube.ResourceRequirements{Limits: kube.ResourceList{kube.ResourceMemory: mustQuantity("64Mi"), kube.ResourceCPU: mustQuantity("250m")}},
		})
		p.Spec.Volumes = []kube.Volume{
			{Name: "settings", VolumeSource: kube.VolumeSource{ConfigMap: &kube.ConfigMapVolumeSource{LocalObjectReference: kube.LocalObjectReference{Name: "settings"}}}},
			{Name: "info", VolumeSource: kube.VolumeSource{Projected: &kube.ProjectedVolumeSource{Sources: []kube.VolumeProjection{
				{ServiceAccountToken: &kube.ServiceAccountTokenProjection{Path: "token"}},
				{DownwardAPI: &kube.DownwardAPIProjection{Items: []kube.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &kube.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}},
				{Secret: &kube.SecretProjection{LocalObjectReference: kube.LocalObjectReference{Name: "creds"}, Items: []kube.KeyToPath{{Key: "password", Path: "secret/pw"}}}},
			}}}},
		}
		n.add(p)
		st := waitStatus(t, n.sink, p.UID, 90*time.Second, "Running", running)
		if st.QOSClass != kube.PodQOSBurstable {
			t.Fatalf("qos %s", st.QOSClass)
		}
		out, _ := c.exec(t, p.UID, "app", "/app", "env")
		for _, want := range []string{"GREETING=hello", "PASSWORD=s3cret", "POD_NAME=config", "POD_IP=" + st.PodIP,
			"MEM_LIMIT_MI=64", "COMPOSED=hello-config", "CFG_greeting=hello", "CFG_mode=fast"} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("env lacks %s:\n%s", want, out)
			}
		}
		for file, want := range map[string]string{
			"/etc/settings/greeting": "hello", "/etc/info/token": "token-for-default/config/default",
			"/etc/info/labels": `app="config"`, "/etc/info/secret/pw": "s3cret",
		} {
			if got, code := c.exec(t, p.UID, "app", "/app", "cat", file); code != 0 || got != want {
				t.Errorf("%s: got %q (exit %d), want %q", file, got, code, want)
			}
		}
		// The memory limit is enforced by the container's cgroup.
		if got, _ := c.exec(t, p.UID, "app", "/app", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"); strings.TrimSpace(got) != "67108864" {
			t.Errorf("memory.limit_in_bytes = %q, want 67108864", got)
		}

		n.src.putConfigMap(&kube.ConfigMap{ObjectMeta: kube.ObjectMeta{Name: "settings", Namespace: "default"},
			Data: map[string]string{"greeting": "bonjour", "mode": "fast"}})
		n.rt.Trigger()
		waitFor(t, 20*time.Second, "the mounted ConfigMap to change", func() (bool, string) {
			got, _ := c.exec(t, p.UID, "app", "/app", "cat", "/etc/settings/greeting")
			return got == "bonjour", got
		})
		// Env is fixed at start, as in Kubernetes.
		if out, _ := c.exec(t, p.UID, "app", "/app", "env"); !strings.Contains(out, "GREETING=hello\n") {
			t.Errorf("env changed in a running container:\n%s", out)
		}
	})

	t.Run("a missing ConfigMap holds the container with CreateContainerConfigError", func(t *testing.T) {
		t.Parallel()
		p := n.pod("noconfig", kube.Container{Name: "app", Image: e.images.App, Args: []string{"sleep"},
			Env: []kube.EnvVar{{Name: "X", ValueFrom: &kube.EnvVarSource{ConfigMapKeyRef: &kube.ConfigMapKeySelector{
				LocalObjectReference: kube.LocalObjectReference{Name: "absent"}, Key: "k"}}}}})
		n.add(p)
		st := waitStatus(t, n.sink, p.UID, 60*time.Second, "CreateContainerConfigError", func(st kube.PodStatus) bool {
			return len(st.ContainerStatuses) == 1 && st.ContainerStatuses[0].State.Waiting != nil &&
				st.ContainerStatuses[0].State.Waiting.Reason == "CreateContainerConfigError"
		})
		if msg := st.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, `configmap "absent" not found`) || st.Phase != kube.PodPending {
			t.Fatalf("message %q phase %s", msg, st.Phase)
		}
		n.src.putConfigMap(&kube.ConfigMap{ObjectMeta: kube.ObjectMeta{Name: "absent", Namespace: "default"}, Data: map[string]string{"k": "v"}})
		n.rt.Trigger()
		waitStatus(t, n.sink, p.UID, 30*time.Second, "Running once the ConfigMap exists", running)
	})

	t.Run("graceful deletion runs preStop, honours the grace period, then reports terminated", func(t *testing.T) {
		t.Parallel()
		hostDir := t.TempDir()
		p := n.pod("graceful", kube.Container{
			Name: "web", Image: e.images.App,
			Args:         []string{"serve", "-addr", ":8080", "-ignore-term", "-term-marker", "/host/sigterm"},
			VolumeMounts: []kube.VolumeMount{{Name: "host", MountPath: "/host"}},
			Lifecycle: &kube.Lifecycle{PreStop: &kube.LifecycleHandler{Exec: &kube.ExecAction{
				Command: []string{"/app", "write", "/host/prestop", "ran"}}}},
		})
		dirType := kube.HostPathDirectory
		p.Spec.Volumes = []kube.Volume{{Name: "host", VolumeSource: kube.VolumeSource{HostPath: &kube.HostPathVolumeSource{Path: hostDir, Type: &dirType}}}}
		grace := int64(3)
		p.Spec.TerminationGracePeriodSeconds = &grace
		n.add(p)
		waitStatus(t, n.sink, p.UID, 90*time.Second, "Running", running)

		del := n.src.pod(p.UID)
		now := kube.Now()
		del.DeletionTimestamp = &now
		del.DeletionGracePeriodSeconds = &grace
		start := time.Now()
		n.add(del)
		waitFor(t, 30*time.Second, "PodTerminated", func() (bool, string) {
			n.sink.mu.Lock()
			defer n.sink.mu.Unlock()
			return n.sink.terminated[p.UID] > 0, "not yet"
		})
		elapsed := time.Since(start)
		for _, f := range []string{"prestop", "sigterm"} {
			if _, err := os.Stat(filepath.Join(hostDir, f)); err != nil {
				t.Errorf("%s marker missing: the container did not get its preStop hook and SIGTERM (%v)", f, err)
			}
		}
		// It ignores SIGTERM, so only the end of the grace period stops it.
		if elapsed < 2500*time.Millisecond {
			t.Errorf("terminated after %s, before its %ds grace period ended", elapsed, grace)
		}
		st, _ := n.sink.get(p.UID)
		term := st.ContainerStatuses[0].State.Terminated
		if term == nil || term.ExitCode != 137 || st.Phase != kube.PodFailed || condition(st, kube.PodReady) != kube.ConditionFalse {
			t.Fatalf("final status: %s", describe(st))
		}
		for _, sb := range c.sandboxes(t, p.UID) {
			if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
				t.Fatalf("sandbox %s still ready after termination", sb.Id)
			}
		}
		// The cloud deletes the pod; everything it had goes away.
		n.src.deletePod(p.UID)
		n.rt.Trigger()
		waitFor(t, 30*time.Second, "the pod's sandboxes and containers to be removed", func() (bool, string) {
			s, ctrs := c.sandboxes(t, p.UID), c.containers(t, p.UID)
			return len(s) == 0 && len(ctrs) == 0, fmt.Sprintf("%d sandboxes, %d containers", len(s), len(ctrs))
		})
		waitFor(t, 10*time.Second, "the pod directory to be removed", func() (bool, string) {
			_, err := os.Stat(filepath.Join(n.cfg.RootDir, "pods", string(p.UID)))
			return os.IsNotExist(err), fmt.Sprint(err)
		})
	})

	t.Run("init containers run first; a Never pod ends Succeeded", func(t *testing.T) {
		t.Parallel()
		p := n.pod("job", kube.Container{Name: "main", Image: e.images.App, Args: []string{"cat", "/work/init-was-here"}})
		p.Spec.InitContainers = []kube.Container{{Name: "init", Image: e.images.App, Args: []string{"write", "/work/init-was-here", "yes"},
			VolumeMounts: []kube.VolumeMount{{Name: "work", MountPath: "/work"}}}}
		p.Spec.Containers[0].VolumeMounts = []kube.VolumeMount{{Name: "work", MountPath: "/work"}}
		p.Spec.Volumes = []kube.Volume{{Name: "work", VolumeSource: kube.VolumeSource{EmptyDir: &kube.EmptyDirVolumeSource{}}}}
		p.Spec.RestartPolicy = kube.RestartPolicyNever
		n.add(p)
		st := waitStatus(t, n.sink, p.UID, 90*time.Second, "Succeeded", func(st kube.PodStatus) bool { return st.Phase == kube.PodSucceeded })
		if ic := st.InitContainerStatuses[0]; ic.State.Terminated == nil || ic.State.Terminated.Reason != "Completed" {
			t.Fatalf("init container: %+v", ic.State)
		}
		if condition(st, kube.PodInitialized) != kube.ConditionTrue {
			t.Fatalf("not Initialized: %s", describe(st))
		}
	})

	t.Run("imagePullSecrets authenticate pulls", func(t *testing.T) {
		t.Parallel()
		ref := e.privateImage(t, "alice", "wonderland")
		auth := base64.StdEncoding.EncodeToString([]byte("alice:wonderland"))
		n.src.putSecret(&kube.Secret{ObjectMeta: kube.ObjectMeta{Name: "regcred", Namespace: "default"}, Type: kube.SecretTypeDockerConfigJson,
			Data: map[string][]byte{kube.DockerConfigJsonKey: []byte(`{"auths":{"http://` + e.reg.Addr + `":{"auth":"` + auth + `"}}}`)}})
		without := n.pod("private-denied", kube.Container{Name: "app", Image: ref, Args: []string{"sleep"}})
		n.add(without)
		waitStatus(t, n.sink, without.UID, 60*time.Second, "ErrImagePull without credentials", func(st kube.PodStatus) bool {
			w := st.ContainerStatuses[0].State.Waiting
			return w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff")
		})
		with := n.pod("private", kube.Container{Name: "app", Image: ref, Args: []string{"sleep"}})
		with.Spec.ImagePullSecrets = []kube.LocalObjectReference{{Name: "regcred"}}
		n.add(with)
		waitStatus(t, n.sink, with.UID, 60*time.Second, "Running with the pull secret", running)
	})

	t.Run("activeDeadlineSeconds stops the pod and fails it", func(t *testing.T) {
		t.Parallel()
		p := n.pod("deadline", kube.Container{Name: "app", Image: e.images.App, Args: []string{"sleep"}})
		p.Spec.ActiveDeadlineSeconds = ptrTo(int64(3))
		n.add(p)
		waitStatus(t, n.sink, p.UID, 60*time.Second, "Running", running)
		st := waitStatus(t, n.sink, p.UID, 30*time.Second, "Failed with DeadlineExceeded", func(st kube.PodStatus) bool {
			return st.Phase == kube.PodFailed && st.Reason == "DeadlineExceeded"
		})
		if st.ContainerStatuses[0].State.Terminated == nil {
			t.Fatalf("container still running: %s", describe(st))
		}
		time.Sleep(2 * time.Second)
		for _, ctr := range c.containers(t, p.UID) {
			if ctr.Metadata.Attempt > 0 {
				t.Fatalf("restarted after its deadline: %v", ctr)
			}
		}
	})

	t.Run("a slow image pull holds up only its own pod", func(t *testing.T) {
		t.Parallel()
		// Its own layer: a blob shared with other images would make their
		// pulls wait for this one inside containerd.
		ref, err := e.reg.Push("verge-test/slow", "v1", map[string]containerdtest.File{"app": {Data: e.images.Binary, Mode: 0o755},
			"slow": {Data: []byte("slow"), Mode: 0o644}}, []string{"/app"})
		if err != nil {
			t.Fatal(err)
		}
		e.reg.Slow("verge-test/slow", 8*time.Second)
		slow := n.pod("slowpull", kube.Container{Name: "app", Image: ref, Args: []string{"sleep"}})
		n.add(slow)
		waitFor(t, 20*time.Second, "the slow pull to start", func() (bool, string) {
			return hasEvent(n.sink.eventsFor("slowpull"), "Pulling"), fmt.Sprint(n.sink.eventsFor("slowpull"))
		})
		fast := n.pod("fast", kube.Container{Name: "app", Image: e.images.App, Args: []string{"serve", "-addr", ":8080"},
			ReadinessProbe: &kube.Probe{ProbeHandler: kube.ProbeHandler{HTTPGet: &kube.HTTPGetAction{Path: "/healthz", Port: kube.FromInt32(8080)}}, PeriodSeconds: 1}})
		n.add(fast)
		waitStatus(t, n.sink, fast.UID, 15*time.Second, "the other pod Ready while the pull runs", func(st kube.PodStatus) bool {
			return condition(st, kube.PodReady) == kube.ConditionTrue
		})
		st, _ := n.sink.get(slow.UID)
		if running(st) {
			t.Fatalf("the slow pod is already running; the test proved nothing: %s", describe(st))
		}
		if st.Phase != kube.PodPending || st.ContainerStatuses[0].State.Waiting == nil {
			t.Fatalf("a pod whose image is being pulled is reported Pending, waiting: %s", describe(st))
		}
		waitStatus(t, n.sink, slow.UID, 60*time.Second, "the slow pod Running once its pull ends", running)
	})

	t.Run("a sidecar starts before, serves during and stops after the main container", func(t *testing.T) {
		t.Parallel()
		always := kube.ContainerRestartPolicyAlways
		p := n.pod("sidecar", kube.Container{Name: "main", Image: e.images.App, Args: []string{"crash", "-after", "2s", "-code", "0"}})
		p.Spec.RestartPolicy = kube.RestartPolicyNever
		p.Spec.InitContainers = []kube.Container{
			{Name: "proxy", Image: e.images.App, Args: []string{"serve", "-addr", ":9090"}, RestartPolicy: &always,
				StartupProbe: &kube.Probe{ProbeHandler: kube.ProbeHandler{TCPSocket: &kube.TCPSocketAction{Port: kube.FromInt32(9090)}}, PeriodSeconds: 1}},
			{Name: "setup", Image: e.images.App, Args: []string{"exit", "0"}},
		}
		n.add(p)
		running := waitStatus(t, n.sink, p.UID, 60*time.Second, "main running beside the sidecar", func(st kube.PodStatus) bool {
			return len(st.ContainerStatuses) == 1 && st.ContainerStatuses[0].State.Running != nil
		})
		proxy := running.InitContainerStatuses[0]
		if proxy.State.Running == nil || proxy.Started == nil || !*proxy.Started || running.Phase != kube.PodRunning ||
			condition(running, kube.PodInitialized) != kube.ConditionTrue {
			t.Fatalf("while main runs: %s", describe(running))
		}
		if proxy.State.Running.StartedAt.After(running.ContainerStatuses[0].State.Running.StartedAt.Time) {
			t.Fatalf("main started before its sidecar")
		}
		st := waitStatus(t, n.sink, p.UID, 60*time.Second, "Succeeded", func(st kube.PodStatus) bool { return st.Phase == kube.PodSucceeded })
		if st.InitContainerStatuses[0].State.Terminated == nil {
			t.Fatalf("the sidecar kept running after the pod completed: %s", describe(st))
		}
	})

	t.Run("runtime state for the node's status", func(t *testing.T) {
		t.Parallel()
		st := n.rt.RuntimeState(context.Background())
		if !st.Ready || !strings.HasPrefix(st.Version, "containerd://1.") {
			t.Fatalf("runtime state %+v", st)
		}
	})

	t.Run("hostNetwork pods use the node's IP", func(t *testing.T) {
		t.Parallel()
		p := n.pod("hostnet", kube.Container{Name: "app", Image: e.images.App, Args: []string{"sleep"}})
		p.Spec.HostNetwork = true
		n.add(p)
		st := waitStatus(t, n.sink, p.UID, 60*time.Second, "Running", running)
		if st.PodIP != "127.0.0.1" || len(st.PodIPs) != 1 {
			t.Fatalf("hostNetwork pod IPs: %v", st.PodIPs)
		}
	})

	t.Run("a container created behind the runtime's back is removed within a reconcile period", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: e.images.App}}); err != nil {
			t.Fatal(err)
		}
		// The runtime may remove the sandbox before the container is in it
		// (that is its job); try again until both exist.
		var sb *runtimeapi.RunPodSandboxResponse
		for attempt := 0; ; attempt++ {
			sbCfg := &runtimeapi.PodSandboxConfig{
				Metadata: &runtimeapi.PodSandboxMetadata{Name: "intruder", Namespace: "default", Uid: fmt.Sprintf("intruder-uid-%d", attempt)},
				Linux:    &runtimeapi.LinuxPodSandboxConfig{CgroupParent: e.node.Instance.CgroupParent() + "/intruder"},
			}
			var err error
			sb, err = c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
			if err != nil {
				t.Fatal(err)
			}
			ctr, err := c.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, SandboxConfig: sbCfg,
				Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "intruder"}, Image: &runtimeapi.ImageSpec{Image: e.images.App}, Args: []string{"sleep"}}})
			if err == nil {
				_, err = c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ctr.ContainerId})
			}
			if err == nil {
				break
			}
			if attempt == 5 {
				t.Fatalf("creating the intruder: %v", err)
			}
		}
		created := time.Now()
		waitFor(t, n.cfg.ReconcilePeriod+5*time.Second, "the ghost to be removed", func() (bool, string) {
			resp, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{Id: sb.PodSandboxId}})
			return err == nil && len(resp.Items) == 0, fmt.Sprint(resp, err)
		})
		t.Logf("ghost removed %s after creation", time.Since(created).Round(100*time.Millisecond))
	})
}

// privateImage pushes the app image into a repository that requires
// user:password and returns its reference.
func (e *env) privateImage(t *testing.T, user, password string) string {
	t.Helper()
	ref, err := e.reg.Push("verge-test/private", "v1", map[string]containerdtest.File{"app": {Data: e.images.Binary, Mode: 0o755}}, []string{"/app"})
	if err != nil {
		t.Fatal(err)
	}
	e.reg.RequireAuth("verge-test/private", user, password)
	return ref
}

func hasEvent(events []string, reason string) bool {
	for _, e := range events {
		if strings.Contains(e, " "+reason+": ") {
			return true
		}
	}
	return false
}

// net formats an IP for a URL host.
func net(ip string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]"
	}
	return ip
}

func mustQuantity(s string) kube.Quantity { return kube.MustParse(s) }

func ptrTo[T any](v T) *T { return &v }
