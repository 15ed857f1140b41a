// Package e2e drives the Verge binaries the way a user does: it builds them,
// runs `verge up`, and talks to the result with kubectl and HTTP.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/k8sbin"
	"github.com/verge-edge/verge/internal/loopback"
	"github.com/verge-edge/verge/internal/testenv"
	"github.com/verge-edge/verge/internal/version"
)

// bin holds the binaries built for this test run.
var bin struct {
	dir string
	k8s *k8sbin.Binaries
}

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "verge-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("go", "build", "-tags", version.BuildTags, "-trimpath", "-ldflags=-s -w", "-o", dir+"/", "./cmd/verge", "./cmd/verge-cloud", "./cmd/verge-edge", "./cmd/verge-pause", "./cmd/verge-devsim", "./cmd/verge-mapper-modbus")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as released: static
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("building the binaries: %w\n%s", err, out)
	}
	bin.dir = dir
	if bin.k8s, err = testenv.Binaries(context.Background()); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// upProcess is a running `verge up`.
type upProcess struct {
	cmd     *exec.Cmd
	dataDir string
	mu      sync.Mutex
	seen    map[string]time.Time // when each output line first appeared
	output  bytes.Buffer
	ready   chan struct{}
	exited  chan struct{}
	err     error
}

// Between returns how long after line a the line b appeared in the output.
func (u *upProcess) Between(a, b string) (time.Duration, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	ta, oka := u.seen[a]
	tb, okb := u.seen[b]
	return tb.Sub(ta), oka && okb
}

func (u *upProcess) Output() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.output.String()
}

// startUp runs `verge up` with args and returns once it printed "ready"
// and the next steps after it.
func startUp(t testing.TB, dataDir string, args ...string) *upProcess {
	t.Helper()
	u := launchUp(t, dataDir, args...)
	select {
	case <-u.ready:
	case <-u.exited:
		t.Fatalf("verge up exited before ready: %v\n%s", u.err, u.Output())
	case <-time.After(5 * time.Minute):
		t.Fatalf("verge up not ready within 5 minutes:\n%s", u.Output())
	}
	return u
}

func launchUp(t testing.TB, dataDir string, args ...string) *upProcess {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin.dir, "verge"), append([]string{"up", "--data-dir", dataDir}, args...)...)
	cmd.Dir = "." // inside the checkout, so tools/controlplane is found
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	u := &upProcess{cmd: cmd, dataDir: dataDir, ready: make(chan struct{}), exited: make(chan struct{}), seen: map[string]time.Time{}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		readySeen := false
		for sc.Scan() {
			u.mu.Lock()
			u.output.WriteString(sc.Text() + "\n")
			if _, ok := u.seen[sc.Text()]; !ok {
				u.seen[sc.Text()] = time.Now()
			}
			u.mu.Unlock()
			// The ready message ends with how to stop the cluster.
			if strings.HasPrefix(sc.Text(), "Stop with Ctrl-C") && !readySeen {
				readySeen = true
				close(u.ready)
			}
		}
	}()
	go func() {
		u.err = cmd.Wait()
		_ = pw.Close()
		close(u.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-u.exited:
		default:
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGINT)
			select {
			case <-u.exited:
			case <-time.After(time.Minute):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
		}
	})
	return u
}

// interrupt sends Ctrl-C's signal and waits for a clean exit.
func (u *upProcess) interrupt(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(u.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	u.waitExit(t, 0)
}

func (u *upProcess) waitExit(t testing.TB, wantCode int) {
	t.Helper()
	select {
	case <-u.exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("verge up did not exit:\n%s", u.Output())
	}
	if code := u.cmd.ProcessState.ExitCode(); code != wantCode {
		t.Fatalf("verge up exit code %d, want %d:\n%s", code, wantCode, u.Output())
	}
}

// kubectl runs the pinned kubectl against a verge up data directory.
func kubectl(t testing.TB, dataDir string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin.k8s.Kubectl, append([]string{"--kubeconfig", filepath.Join(dataDir, "kubeconfig")}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// processesMentioning lists running processes (other than this test) whose
// command line contains s.
func processesMentioning(t testing.TB, s string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		line := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.Contains(line, s) {
			found = append(found, fmt.Sprintf("%d: %s", pid, line))
		}
	}
	return found
}

func assertNothingRunning(t testing.TB, dataDir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := processesMentioning(t, dataDir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left running:\n%s", strings.Join(left, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freePorts(t testing.TB, n int) []string {
	t.Helper()
	var ports []string
	for range n {
		p, err := loopback.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, strconv.Itoa(p))
	}
	return ports
}
