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

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/verge-edge/verge/internal/containerd/containerdtest"
	"github.com/verge-edge/verge/internal/edge/podruntime"
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
		p := n.pod("chatty", corev1.Container{Name: "spam", Image: e.images.App, Args: []string{"spam"}})
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
		p := n.pod("web", corev1.Container{
			Name: "web", Image: e.images.App,
			Args:  []string{"serve", "-addr", ":8080", "-ready-file", "/data/ready"},
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
				PeriodSeconds: 1, FailureThreshold: 1},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
		})
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		n.add(p)

		st := waitStatus(t, n.sink, p.UID, 90*time.Second, "Running with a pod IP", func(st corev1.PodStatus) bool {
			return running(st) && st.PodIP != ""
		})
		cidr := netip.MustParsePrefix(e.node.Instance.Config().PodCIDR)
		if !cidr.Contains(netip.MustParseAddr(st.PodIP)) {
			t.Fatalf("pod IP %s is not in the node's pod CIDR %s", st.PodIP, cidr)
		}
		if st.HostIP != "127.0.0.1" || st.StartTime == nil || st.QOSClass != corev1.PodQOSBestEffort {
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
		if st, _ := n.sink.get(p.UID); condition(st, corev1.PodReady) != corev1.ConditionFalse || st.ContainerStatuses[0].Ready {
			t.Fatalf("Ready before the readiness probe passed: %s", describe(st))
		}
		if out, code := c.exec(t, p.UID, "web", "/app", "write", "/data/ready", "yes"); code != 0 {
			t.Fatalf("exec: %d %s", code, out)
		}
		waitStatus(t, n.sink, p.UID, 20*time.Second, "Ready", func(st corev1.PodStatus) bool {
			return condition(st, corev1.PodReady) == corev1.ConditionTrue && condition(st, corev1.ContainersReady) == corev1.ConditionTrue && st.ContainerStatuses[0].Ready
		})
		// And back: removing the file makes the pod unready.
		if _, code := c.exec(t, p.UID, "web", "/app", "write", "/data/ready", ""); code != 0 {
			t.Fatal("exec failed")
		}
	})

	t.Run("crasher reaches CrashLoopBackOff with a growing restartCount", func(t *testing.T) {
		t.Parallel()
		p := n.pod("crasher", corev1.Container{Name: "crash", Image: e.images.App, Args: []string{"crash", "-after", "100ms", "-code", "3"},
			TerminationMessagePath: "/dev/termination-log"})
		n.add(p)
		st := waitStatus(t, n.sink, p.UID, 60*time.Second, "CrashLoopBackOff with restartCount >= 2", func(st corev1.PodStatus) bool {
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
		if st.Phase != corev1.PodRunning || condition(st, corev1.PodReady) != corev1.ConditionFalse {
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
		waitStatus(t, n.sink, p.UID, 60*time.Second, "another restart", func(st corev1.PodStatus) bool {
			return st.ContainerStatuses[0].RestartCount > first
		})
		if !hasEvent(n.sink.eventsFor("crasher"), "BackOff") && !hasEvent(n.sink.eventsFor("crasher"), "Started") {
			t.Fatalf("events: %v", n.sink.eventsFor("crasher"))
		}
	})

	t.Run("ConfigMap as file and env, file updated in place", func(t *testing.T) {
		t.Parallel()
		n.src.putConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "default"},
			Data: map[string]string{"greeting": "hello", "mode": "fast"}})
		n.src.putSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "default"},
			Data: map[string][]byte{"password": []byte("s3cret")}})
		p := n.pod("config", corev1.Container{
			Name: "app", Image: e.images.App, Args: []string{"sleep"},
			Env: []corev1.EnvVar{
				{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "greeting"}}},
				{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "password"}}},
				{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				{Name: "MEM_LIMIT_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: mustQuantity("1Mi")}}},
				{Name: "COMPOSED", Value: "$(GREETING)-$(POD_NAME)"},
			},
			EnvFrom:      []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
			VolumeMounts: []corev1.VolumeMount{{Name: "settings", MountPath: "/etc/settings"}, {Name: "info", MountPath: "/etc/info"}},
			Resources:    corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: mustQuantity("64Mi"), corev1.ResourceCPU: mustQuantity("250m")}},
		})
		p.Spec.Volumes = []corev1.Volume{
			{Name: "settings", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
			{Name: "info", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Items: []corev1.KeyToPath{{Key: "password", Path: "secret/pw"}}}},
			}}}},
		}
		n.add(p)
		st := waitStatus(t, n.sink, p.UID, 90*time.Second, "Running", running)
		if st.QOSClass != corev1.PodQOSBurstable {
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

		n.src.putConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "default"},
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
		p := n.pod("noconfig", corev1.Container{Name: "app", Image: e.images.App, Args: []string{"sleep"},
			Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Key: "k"}}}}})
		n.add(p)
		st := waitStatus(t, n.sink, p.UID, 60*time.Second, "CreateContainerConfigError", func(st corev1.PodStatus) bool {
			return len(st.ContainerStatuses) == 1 && st.ContainerStatuses[0].State.Waiting != nil &&
				st.ContainerStatuses[0].State.Waiting.Reason == "CreateContainerConfigError"
		})
		if msg := st.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, `configmap "absent" not found`) || st.Phase != corev1.PodPending {
			t.Fatalf("message %q phase %s", msg, st.Phase)
		}
		n.src.putConfigMap(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "absent", Namespace: "default"}, Data: map[string]string{"k": "v"}})
		n.rt.Trigger()
		waitStatus(t, n.sink, p.UID, 30*time.Second, "Running once the ConfigMap exists", running)
	})

	t.Run("graceful deletion runs preStop, honours the grace period, then reports terminated", func(t *testing.T) {
		t.Parallel()
		hostDir := t.TempDir()
		p := n.pod("graceful", corev1.Container{
			Name: "web", Image: e.images.App,
			Args:         []string{"serve", "-addr", ":8080", "-ignore-term", "-term-marker", "/host/sigterm"},
			VolumeMounts: []corev1.VolumeMount{{Name: "host", MountPath: "/host"}},
			Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
				Command: []string{"/app", "write", "/host/prestop", "ran"}}}},
		})
		dirType := corev1.HostPathDirectory
		p.Spec.Volumes = []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir, Type: &dirType}}}}
		grace := int64(3)
		p.Spec.TerminationGracePeriodSeconds = &grace
		n.add(p)
		waitStatus(t, n.sink, p.UID, 90*time.Second, "Running", running)

		del := n.src.pod(p.UID)
		now := metav1.Now()
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
		if term == nil || term.ExitCode != 137 || st.Phase != corev1.PodFailed || condition(st, corev1.PodReady) != corev1.ConditionFalse {
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
		p := n.pod("job", corev1.Container{Name: "main", Image: e.images.App, Args: []string{"cat", "/work/init-was-here"}})
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: e.images.App, Args: []string{"write", "/work/init-was-here", "yes"},
			VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/work"}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "work", MountPath: "/work"}}
		p.Spec.Volumes = []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		n.add(p)
		st := waitStatus(t, n.sink, p.UID, 90*time.Second, "Succeeded", func(st corev1.PodStatus) bool { return st.Phase == corev1.PodSucceeded })
		if ic := st.InitContainerStatuses[0]; ic.State.Terminated == nil || ic.State.Terminated.Reason != "Completed" {
			t.Fatalf("init container: %+v", ic.State)
		}
		if condition(st, corev1.PodInitialized) != corev1.ConditionTrue {
			t.Fatalf("not Initialized: %s", describe(st))
		}
	})

	t.Run("imagePullSecrets authenticate pulls", func(t *testing.T) {
		t.Parallel()
		ref := e.privateImage(t, "alice", "wonderland")
		auth := base64.StdEncoding.EncodeToString([]byte("alice:wonderland"))
		n.src.putSecret(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "regcred", Namespace: "default"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"http://` + e.reg.Addr + `":{"auth":"` + auth + `"}}}`)}})
		without := n.pod("private-denied", corev1.Container{Name: "app", Image: ref, Args: []string{"sleep"}})
		n.add(without)
		waitStatus(t, n.sink, without.UID, 60*time.Second, "ErrImagePull without credentials", func(st corev1.PodStatus) bool {
			w := st.ContainerStatuses[0].State.Waiting
			return w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff")
		})
		with := n.pod("private", corev1.Container{Name: "app", Image: ref, Args: []string{"sleep"}})
		with.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
		n.add(with)
		waitStatus(t, n.sink, with.UID, 60*time.Second, "Running with the pull secret", running)
	})

	t.Run("activeDeadlineSeconds stops the pod and fails it", func(t *testing.T) {
		t.Parallel()
		p := n.pod("deadline", corev1.Container{Name: "app", Image: e.images.App, Args: []string{"sleep"}})
		p.Spec.ActiveDeadlineSeconds = ptrTo(int64(3))
		n.add(p)
		waitStatus(t, n.sink, p.UID, 60*time.Second, "Running", running)
		st := waitStatus(t, n.sink, p.UID, 30*time.Second, "Failed with DeadlineExceeded", func(st corev1.PodStatus) bool {
			return st.Phase == corev1.PodFailed && st.Reason == "DeadlineExceeded"
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
		slow := n.pod("slowpull", corev1.Container{Name: "app", Image: ref, Args: []string{"sleep"}})
		n.add(slow)
		waitFor(t, 20*time.Second, "the slow pull to start", func() (bool, string) {
			return hasEvent(n.sink.eventsFor("slowpull"), "Pulling"), fmt.Sprint(n.sink.eventsFor("slowpull"))
		})
		fast := n.pod("fast", corev1.Container{Name: "app", Image: e.images.App, Args: []string{"serve", "-addr", ":8080"},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1}})
		n.add(fast)
		waitStatus(t, n.sink, fast.UID, 15*time.Second, "the other pod Ready while the pull runs", func(st corev1.PodStatus) bool {
			return condition(st, corev1.PodReady) == corev1.ConditionTrue
		})
		st, _ := n.sink.get(slow.UID)
		if running(st) {
			t.Fatalf("the slow pod is already running; the test proved nothing: %s", describe(st))
		}
		if st.Phase != corev1.PodPending || st.ContainerStatuses[0].State.Waiting == nil {
			t.Fatalf("a pod whose image is being pulled is reported Pending, waiting: %s", describe(st))
		}
		waitStatus(t, n.sink, slow.UID, 60*time.Second, "the slow pod Running once its pull ends", running)
	})

	t.Run("a sidecar starts before, serves during and stops after the main container", func(t *testing.T) {
		t.Parallel()
		always := corev1.ContainerRestartPolicyAlways
		p := n.pod("sidecar", corev1.Container{Name: "main", Image: e.images.App, Args: []string{"crash", "-after", "2s", "-code", "0"}})
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		p.Spec.InitContainers = []corev1.Container{
			{Name: "proxy", Image: e.images.App, Args: []string{"serve", "-addr", ":9090"}, RestartPolicy: &always,
				StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9090)}}, PeriodSeconds: 1}},
			{Name: "setup", Image: e.images.App, Args: []string{"exit", "0"}},
		}
		n.add(p)
		running := waitStatus(t, n.sink, p.UID, 60*time.Second, "main running beside the sidecar", func(st corev1.PodStatus) bool {
			return len(st.ContainerStatuses) == 1 && st.ContainerStatuses[0].State.Running != nil
		})
		proxy := running.InitContainerStatuses[0]
		if proxy.State.Running == nil || proxy.Started == nil || !*proxy.Started || running.Phase != corev1.PodRunning ||
			condition(running, corev1.PodInitialized) != corev1.ConditionTrue {
			t.Fatalf("while main runs: %s", describe(running))
		}
		if proxy.State.Running.StartedAt.After(running.ContainerStatuses[0].State.Running.StartedAt.Time) {
			t.Fatalf("main started before its sidecar")
		}
		st := waitStatus(t, n.sink, p.UID, 60*time.Second, "Succeeded", func(st corev1.PodStatus) bool { return st.Phase == corev1.PodSucceeded })
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
		p := n.pod("hostnet", corev1.Container{Name: "app", Image: e.images.App, Args: []string{"sleep"}})
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

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }

func ptrTo[T any](v T) *T { return &v }
