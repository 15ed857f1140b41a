package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A second verge-cloud replica serves the kubelet API for a node connected
// to the first one by relaying the request there: what the API server gets
// when it calls a replica the node is not connected to.
func TestSecondReplicaRelaysLogs(t *testing.T) {
	c := startEdgeCluster(t, 1)
	image := c.pushTestApp(t, "demo/talker:v1")
	c.kubectl(t, "run", "talker", "--image="+image, "--restart=Never", "--env=GREETING=hello-through-the-relay", "--", "env")
	c.waitPhase(t, "talker", "Succeeded", 2*time.Minute)

	p := freePorts(t, 3)
	ops, hub, tunnelPort := "127.0.0.1:"+p[0], "127.0.0.1:"+p[1], "127.0.0.1:"+p[2]
	ctx, cancel := context.WithCancel(context.Background())
	second := exec.CommandContext(ctx, filepath.Join(bin.dir, "verge-cloud"),
		"--kubeconfig="+filepath.Join(c.dataDir, "cloud", "kubeconfig"), "--ops-address="+ops,
		"--hub-listen="+hub, "--tunnel-listen="+tunnelPort, "--tunnel-peer-address="+hub)
	var log strings.Builder
	second.Stdout, second.Stderr = &log, &log
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = second.Wait() })
	eventually(t, time.Minute, "the second replica is ready", func() (bool, string) {
		resp, err := http.Get("http://" + ops + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200, string(body)
	})

	// Call the second replica as the API server does: with its kubelet
	// client certificate (it checks no kubelet serving certificate unless
	// told a CA, and neither does this client).
	pki := filepath.Join(c.dataDir, "cluster", "pki")
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "apiserver-kubelet-client.crt"), filepath.Join(pki, "apiserver-kubelet-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}, //nolint:gosec // as the API server without --kubelet-certificate-authority
	}}
	eventually(t, 30*time.Second, "the pod's logs through the second replica", func() (bool, string) {
		resp, err := client.Get("https://" + tunnelPort + "/containerLogs/default/talker/talker")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(body), "GREETING=hello-through-the-relay"), resp.Status + " " + string(body)
	})
	if n := metric(t, "http://"+ops+"/metrics", `verge_tunnel_dials_total{result="relayed"}`); n < 1 {
		t.Errorf("the second replica counted %v relayed dials\n%s", n, log.String())
	}
}
