package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/verge-edge/verge/api/crds"
)

// The quickstart: `verge up` ends with ready; the API answers; controllers
// and scheduler work; verge-cloud installed its CRDs and serves metrics; a
// verge-cloud that dies is restarted and leaves the CRDs untouched; a second
// `up` on the same directory is refused; Ctrl-C leaves nothing running; a
// new `up` resumes the same state and `verge down` stops it.
func TestUpQuickstart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "verge")
	ports := freePorts(t, 4)
	args := []string{"--edge-nodes", "0", "--apiserver-port", ports[0], "--cloud-ops-port", ports[1], "--hub-port", ports[2], "--tunnel-port", ports[3]}
	up := startUp(t, dataDir, args...)
	if !strings.Contains(up.Output(), "export KUBECONFIG="+filepath.Join(dataDir, "kubeconfig")) {
		t.Errorf("next steps do not say how to use the kubeconfig:\n%s", up.Output())
	}

	if got := kubectl(t, dataDir, "get", "--raw", "/readyz"); got != "ok" {
		t.Fatalf("/readyz = %q", got)
	}

	kubectl(t, dataDir, "create", "deployment", "web", "--image=x", "--replicas=2")
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		rs := kubectl(t, dataDir, "get", "replicasets", "-l", "app=web", "-o", "name")
		pods := kubectl(t, dataDir, "get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.status.phase}/{.status.conditions[?(@.type=='PodScheduled')].reason}{'\\n'}{end}")
		return strings.Count(rs, "replicaset") == 1 && strings.Count(pods, "Pending/Unschedulable") == 2, nil
	})
	if err != nil {
		t.Fatalf("want a ReplicaSet and 2 Pending pods the scheduler found unschedulable: %v\n%s", err, kubectl(t, dataDir, "get", "rs,pods", "-o", "wide"))
	}

	all, err := crds.All()
	if err != nil {
		t.Fatal(err)
	}
	before := crdVersions(t, dataDir, len(all))
	metrics := httpGet(t, "http://127.0.0.1:"+ports[1]+"/metrics")
	if !strings.Contains(metrics, "verge_cloud_info{") {
		t.Errorf("verge-cloud metrics lack verge_cloud_info")
	}

	// Kill verge-cloud: verge up restarts it, and the restarted one re-applies
	// its CRDs without changing them.
	cloud := processesMentioning(t, filepath.Join(dataDir, "cloud", "kubeconfig"))
	if len(cloud) != 1 {
		t.Fatalf("want one verge-cloud process, got %q", cloud)
	}
	pid, _ := strconv.Atoi(strings.SplitN(cloud[0], ":", 2)[0])
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, false, func(context.Context) (bool, error) {
		now := processesMentioning(t, filepath.Join(dataDir, "cloud", "kubeconfig"))
		return len(now) == 1 && now[0] != cloud[0] && httpStatus("http://127.0.0.1:"+ports[1]+"/readyz") == 200, nil
	})
	if err != nil {
		t.Fatalf("verge-cloud not restarted and ready: %v\n%s", err, up.Output())
	}
	if !strings.Contains(up.Output(), "child process exited; restarting") {
		t.Errorf("the restart was not logged:\n%s", up.Output())
	}
	if after := crdVersions(t, dataDir, len(all)); !equal(before, after) {
		t.Errorf("restarting verge-cloud changed CRDs: before %v after %v", before, after)
	}

	// A second up on the same directory is refused and says how to stop the first.
	second := exec.Command(filepath.Join(bin.dir, "verge"), "up", "--data-dir", dataDir, "--edge-nodes", "0", "--apiserver-port", ports[0])
	out, err := second.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already running") || !strings.Contains(string(out), "verge down --data-dir "+dataDir) {
		t.Fatalf("second verge up: err=%v, output:\n%s", err, out)
	}

	up.interrupt(t)
	if !strings.Contains(up.Output(), "stopped") {
		t.Errorf("no 'stopped' after Ctrl-C:\n%s", up.Output())
	}
	assertNothingRunning(t, dataDir)

	// Resume: the Deployment made before is still there; verge down stops it.
	up = startUp(t, dataDir, args...)
	kubectl(t, dataDir, "get", "deployment", "web")
	down := exec.Command(filepath.Join(bin.dir, "verge"), "down", "--data-dir", dataDir)
	if out, err := down.CombinedOutput(); err != nil {
		t.Fatalf("verge down: %v\n%s", err, out)
	}
	up.waitExit(t, 0)
	assertNothingRunning(t, dataDir)

	out, err = exec.Command(filepath.Join(bin.dir, "verge"), "down", "--data-dir", dataDir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no Verge cluster is running") {
		t.Errorf("verge down with nothing running: err=%v output:\n%s", err, out)
	}
}

func TestUpRefusesBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	dataDir := filepath.Join(t.TempDir(), "verge")
	others := freePorts(t, 3)
	up := launchUp(t, dataDir, "--edge-nodes", "0", "--apiserver-port", port, "--cloud-ops-port", others[0], "--hub-port", others[1], "--tunnel-port", others[2])
	up.waitExit(t, 1)
	if out := up.Output(); !strings.Contains(out, "port "+port) || !strings.Contains(out, "--apiserver-port") {
		t.Fatalf("error does not name port %s and the flag:\n%s", port, out)
	}
	assertNothingRunning(t, dataDir)
}

// A component whose build fails: the error shows the end of the build log
// and where the whole log is, and nothing is left running.
func TestUpReportsFailedBuild(t *testing.T) {
	src := filepath.Join(t.TempDir(), "controlplane")
	files := map[string]string{
		"go.mod": "module example.com/brokencp\n\ngo 1.26.0\n\ntool (\n" +
			"\texample.com/brokencp/cmd/etcd\n\texample.com/brokencp/cmd/kube-apiserver\n" +
			"\texample.com/brokencp/cmd/kube-controller-manager\n\texample.com/brokencp/cmd/kube-scheduler\n" +
			"\texample.com/brokencp/cmd/kubectl\n)\n",
		"cmd/etcd/main.go": "package main\n\nfunc main() { undefinedOnPurpose() }\n",
	}
	for _, name := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"} {
		files["cmd/"+name+"/main.go"] = "package main\n\nfunc main() {}\n"
	}
	for name, content := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("VERGE_CACHE_DIR", t.TempDir()) // keep the broken build out of the real cache
	dataDir := filepath.Join(t.TempDir(), "verge")
	ports := freePorts(t, 4)
	up := launchUp(t, dataDir, "--edge-nodes", "0", "--controlplane-source", src, "--apiserver-port", ports[0], "--cloud-ops-port", ports[1], "--hub-port", ports[2], "--tunnel-port", ports[3])
	up.waitExit(t, 1)
	out := up.Output()
	for _, want := range []string{"building etcd failed", "undefinedOnPurpose", "--- last lines of", "full log:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	assertNothingRunning(t, dataDir)
}

// crdVersions returns name → resourceVersion of Verge's CRDs, requiring all
// n to be Established.
func crdVersions(t testing.TB, dataDir string, n int) map[string]string {
	t.Helper()
	var list struct {
		Items []struct {
			Metadata struct{ Name, ResourceVersion string }
			Spec     struct{ Group string }
			Status   struct {
				Conditions []struct{ Type, Status string }
			}
		}
	}
	if err := json.Unmarshal([]byte(kubectl(t, dataDir, "get", "crd", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range list.Items {
		established := false
		for _, cond := range c.Status.Conditions {
			established = established || (cond.Type == "Established" && cond.Status == "True")
		}
		if !established {
			t.Errorf("CRD %s not established", c.Metadata.Name)
		}
		out[c.Metadata.Name] = c.Metadata.ResourceVersion
	}
	if len(out) != n {
		t.Fatalf("want %d Verge CRDs installed, found %d: %v", n, len(out), out)
	}
	return out
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func httpGet(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return string(body)
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
