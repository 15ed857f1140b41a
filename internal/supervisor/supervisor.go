// Package supervisor runs child processes, restarts the ones that die, and
// stops exactly the processes it started.
//
// Each child runs in its own process group, so a Ctrl-C in the terminal
// reaches only the parent, which then stops the children in reverse start
// order. Each child also gets SIGKILL if the parent dies without stopping it
// (Pdeathsig); because Linux sends that signal when the creating thread (not
// the process) exits, children are forked from one goroutine locked to its OS
// thread for the life of the Group.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/verge-edge/verge/internal/logtail"
)

// Spec describes a child process.
type Spec struct {
	Name string
	Path string
	Args []string
	// Env is the complete environment; nil inherits the parent's.
	Env []string
	// LogPath receives the child's stdout and stderr (appended).
	LogPath string
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	StopTimeout time.Duration
}

// ExitError reports a child that exited; its message carries the tail of
// the child's log and the log's path so the cause is visible at once.
type ExitError struct {
	Name    string
	LogPath string
	Tail    string
	Err     error
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s exited: %v\n--- last lines of %s ---\n%s--- full log: %s", e.Name, e.Err, e.LogPath, e.Tail, e.LogPath)
}

func (e *ExitError) Unwrap() error { return e.Err }

// Process is one run of a child.
type Process struct {
	spec Spec
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid once done is closed
}

// Name is the child's name from its Spec.
func (p *Process) Name() string { return p.spec.Name }

// PID returns the child's process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitError describes how the child exited; call it after Done is closed.
func (p *Process) ExitError() error {
	err := p.err
	if err == nil {
		err = errors.New("exit status 0")
	}
	return &ExitError{Name: p.spec.Name, LogPath: p.spec.LogPath, Tail: logtail.Lines(p.spec.LogPath, 20), Err: err}
}

// WaitHTTPReady polls url with client until it answers 200 OK. It fails
// early with ExitError if the process exits, and with the last answer and
// the process's log if ctx ends first.
func (p *Process) WaitHTTPReady(ctx context.Context, client *http.Client, url string) error {
	last := "no answer"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else if ctx.Err() == nil {
			last = err.Error()
		}
		select {
		case <-p.done:
			return p.ExitError()
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s (last answer: %s); its log: %s", p.spec.Name, url, last, p.spec.LogPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM to the child's process group and SIGKILL after the
// timeout; it returns when the child has exited.
func (p *Process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	timeout := p.spec.StopTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Reap anything the child left in its group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// Group owns a set of children. The zero value is not usable; call NewGroup.
type Group struct {
	logger  *slog.Logger
	spawnCh chan spawnReq
	quit    chan struct{}

	mu       sync.Mutex
	children []*child
	stopping bool
	wg       sync.WaitGroup
}

type child struct {
	spec     Spec
	current  *Process
	restarts int
}

type spawnReq struct {
	cmd   *exec.Cmd
	reply chan error
}

// Restart back-off bounds; a child that stayed up for stableAfter starts
// again from the minimum.
const (
	minBackoff  = time.Second
	maxBackoff  = 30 * time.Second
	stableAfter = time.Minute
)

// NewGroup starts the Group's spawner thread.
func NewGroup(logger *slog.Logger) *Group {
	g := &Group{logger: logger, spawnCh: make(chan spawnReq), quit: make(chan struct{})}
	go g.spawner()
	return g
}

func (g *Group) spawner() {
	runtime.LockOSThread() // never unlocked: the thread dies with the Group
	for {
		select {
		case req := <-g.spawnCh:
			req.reply <- req.cmd.Start()
		case <-g.quit:
			return
		}
	}
}

// Start runs a new child and keeps it running (restarting it with back-off
// if it dies) until Stop.
func (g *Group) Start(spec Spec) (*Process, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping {
		return nil, errors.New("supervisor is stopping")
	}
	p, err := g.launch(spec)
	if err != nil {
		return nil, err
	}
	c := &child{spec: spec, current: p}
	g.children = append(g.children, c)
	g.wg.Add(1)
	go g.watch(c)
	return p, nil
}

// Current returns the running process for the child named name, if any.
func (g *Group) Current(name string) *Process {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.children {
		if c.spec.Name == name {
			return c.current
		}
	}
	return nil
}

// PIDs returns the process IDs of all current children.
func (g *Group) PIDs() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var pids []int
	for _, c := range g.children {
		pids = append(pids, c.current.PID())
	}
	return pids
}

func (g *Group) launch(spec Spec) (*Process, error) {
	logFile, err := os.OpenFile(spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: opening log: %w", spec.Name, err)
	}
	fmt.Fprintf(logFile, "=== %s starting %s at %s ===\n", spec.Name, spec.Path, time.Now().Format(time.RFC3339))
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = spec.Env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	reply := make(chan error, 1)
	select {
	case g.spawnCh <- spawnReq{cmd: cmd, reply: reply}:
	case <-g.quit:
		logFile.Close()
		return nil, errors.New("supervisor is stopped")
	}
	if err := <-reply; err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", spec.Name, spec.Path, err)
	}
	p := &Process{spec: spec, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// watch restarts c each time it exits, until the Group stops.
func (g *Group) watch(c *child) {
	defer g.wg.Done()
	backoff := minBackoff
	for {
		g.mu.Lock()
		p := c.current
		g.mu.Unlock()
		started := time.Now()
		<-p.Done()
		g.mu.Lock()
		if g.stopping {
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		if time.Since(started) > stableAfter {
			backoff = minBackoff
		}
		g.logger.Warn("child process exited; restarting", "process", c.spec.Name, "pid", p.PID(),
			"error", fmt.Sprint(p.err), "backoff", backoff, "log", c.spec.LogPath)
		select {
		case <-time.After(backoff):
		case <-g.quit:
			return
		}
		backoff = min(backoff*2, maxBackoff)
		g.mu.Lock()
		if g.stopping {
			g.mu.Unlock()
			return
		}
		np, err := g.launch(c.spec)
		if err != nil {
			g.mu.Unlock()
			g.logger.Error("restarting child process failed", "process", c.spec.Name, "error", err)
			continue
		}
		c.current = np
		c.restarts++
		g.mu.Unlock()
		g.logger.Info("child process restarted", "process", c.spec.Name, "pid", np.PID(), "restarts", c.restarts)
	}
}

// Restarts returns how many times the child named name was restarted.
func (g *Group) Restarts(name string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.children {
		if c.spec.Name == name {
			return c.restarts
		}
	}
	return 0
}

// Stop stops every child, the most recently started first, and waits for
// each to exit before stopping the next (so, e.g., the API server is gone
// before its etcd). It is safe to call more than once.
func (g *Group) Stop() {
	g.mu.Lock()
	if g.stopping {
		g.mu.Unlock()
		g.wg.Wait()
		return
	}
	g.stopping = true
	children := append([]*child(nil), g.children...)
	g.mu.Unlock()
	for i := len(children) - 1; i >= 0; i-- {
		children[i].current.stop()
	}
	close(g.quit)
	g.wg.Wait()
}
