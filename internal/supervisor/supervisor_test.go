package supervisor

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a log sink the test can read while the group writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func shSpec(t *testing.T, name, script string) Spec {
	return Spec{Name: name, Path: "/bin/sh", Args: []string{"-c", script}, LogPath: filepath.Join(t.TempDir(), name+".log"), StopTimeout: 2 * time.Second}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeadChildIsRestartedAndLogged(t *testing.T) {
	var logs syncBuffer
	g := NewGroup(slog.New(slog.NewTextHandler(&logs, nil)))
	defer g.Stop()
	p, err := g.Start(shSpec(t, "sleeper", "echo started; exec sleep 60"))
	if err != nil {
		t.Fatal(err)
	}
	started := func() int { b, _ := os.ReadFile(p.spec.LogPath); return strings.Count(string(b), "started\n") }
	waitFor(t, "the first run", func() bool { return started() == 1 })
	if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a restart", func() bool { return g.Restarts("sleeper") == 1 })
	np := g.Current("sleeper")
	if np.PID() == p.PID() || !alive(np.PID()) {
		t.Fatalf("restarted process %d not running", np.PID())
	}
	if !strings.Contains(logs.String(), "child process exited; restarting") || !strings.Contains(logs.String(), "process=sleeper") {
		t.Errorf("restart not logged:\n%s", logs.String())
	}
	waitFor(t, "the second run to log into the same file", func() bool { return started() == 2 })
}

func TestStopEndsChildrenAndTheirGroups(t *testing.T) {
	g := NewGroup(slog.New(slog.DiscardHandler))
	pidFile := filepath.Join(t.TempDir(), "grandchild")
	// The child starts a grandchild in its process group, then ignores
	// SIGTERM, so Stop must escalate to SIGKILL and reap the group.
	p, err := g.Start(shSpec(t, "stubborn", "sleep 60 & echo $! > "+pidFile+"; trap '' TERM; while true; do sleep 1; done"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the grandchild", func() bool { b, _ := os.ReadFile(pidFile); return len(bytes.TrimSpace(b)) > 0 })
	b, _ := os.ReadFile(pidFile)
	grandchild, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	start := time.Now()
	g.Stop()
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("Stop returned after %s, before the SIGTERM grace period", took)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("child still running after Stop")
	}
	waitFor(t, "the grandchild to die", func() bool { return !alive(grandchild) })
	if g.Restarts("stubborn") != 0 {
		t.Error("a child stopped by Stop was restarted")
	}
}

func TestExitErrorCarriesLogTail(t *testing.T) {
	g := NewGroup(slog.New(slog.DiscardHandler))
	defer g.Stop()
	p, err := g.Start(shSpec(t, "failing", "echo 'cannot bind 127.0.0.1:6443' >&2; exit 7"))
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	var ee *ExitError
	err = p.ExitError()
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "cannot bind 127.0.0.1:6443") || !strings.Contains(err.Error(), "exit status 7") || !strings.Contains(err.Error(), p.spec.LogPath) {
		t.Fatalf("ExitError lacks the log tail, status or path: %v", err)
	}
}

func TestStartMissingBinary(t *testing.T) {
	g := NewGroup(slog.New(slog.DiscardHandler))
	defer g.Stop()
	_, err := g.Start(Spec{Name: "ghost", Path: "/nonexistent/bin", LogPath: filepath.Join(t.TempDir(), "ghost.log")})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/bin") {
		t.Fatalf("want an error naming the missing binary, got %v", err)
	}
}
