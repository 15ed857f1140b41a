// Package testserver starts real servers on loopback for the sink tests:
// an MQTT broker, redis-server and MariaDB from their Debian packages, and a
// restartable HTTP server. Each can be stopped and started again on the
// same port, so tests can check that a sink recovers without being
// re-created. A missing binary fails the test with the package to install.
package testserver

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/loopback"
)

// Process is a server run as a child process on 127.0.0.1:Port.
type Process struct {
	t    testing.TB
	name string
	// Port and Addr ("127.0.0.1:port") the server listens on.
	Port int
	Addr string
	// Dir is a private temporary directory for the server's files.
	Dir string

	argv  []string
	ready string // a line in the output that means "accepting clients"

	mu     sync.Mutex
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func lookPath(t testing.TB, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, bin)); serr == nil {
				return filepath.Join(dir, bin)
			}
		}
		t.Fatalf("%s not found: install the Debian package %s (apt-get install -y %s)", bin, pkg, pkg)
	}
	return p
}

func newProcess(t testing.TB, name string) *Process {
	t.Helper()
	port, err := loopback.FreePort()
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	return &Process{
		t:    t,
		name: name,
		Port: port,
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Dir:  t.TempDir(),
	}
}

// Start runs the server and waits until it accepts connections.
func (p *Process) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.t.Fatalf("%s is already running", p.name)
	}
	out := &syncBuffer{}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Dir = p.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	// The server dies with the test binary even if cleanup never runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting %s: %v", p.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			p.t.Fatalf("%s exited during start-up:\n%s", p.name, out.String())
		default:
		}
		if (p.ready == "" || strings.Contains(out.String(), p.ready)) && dialable(p.Addr) {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			p.t.Fatalf("%s did not accept connections on %s within 30s:\n%s", p.name, p.Addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.cmd = cmd
	p.out = out
	p.exited = exited
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// Stop terminates the server (SIGTERM, then SIGKILL after 10 s) and waits
// until its port is closed. Stopping a stopped server does nothing.
func (p *Process) Stop() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
	for i := 0; i < 100 && dialable(p.Addr); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// Output is what the server printed in its latest run.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil {
		return ""
	}
	return p.out.String()
}

func (p *Process) register() {
	p.t.Cleanup(p.Stop)
	p.Start()
}

// MQTTBroker starts the Eclipse MQTT broker from Debian, allowing
// anonymous clients.
func MQTTBroker(t testing.TB) *Process {
	t.Helper()
	const name = "mosquitto" //nolint:misspell // the broker's name
	bin := lookPath(t, name, name)
	p := newProcess(t, name)
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nconnection_messages true\n", p.Port)
	if os.Geteuid() == 0 {
		// Otherwise the broker drops to its own system user, which cannot
		// read the test's temporary directory.
		conf += "user root\n"
	}
	cfgPath := filepath.Join(p.Dir, name+".conf")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p.argv = []string{bin, "-c", cfgPath}
	p.register()
	return p
}

// Redis starts a redis-server without persistence. A non-empty password
// is required from clients (requirepass).
func Redis(t testing.TB, password string) *Process {
	t.Helper()
	bin := lookPath(t, "redis-server", "redis-server")
	p := newProcess(t, "redis-server")
	p.argv = []string{bin,
		"--port", strconv.Itoa(p.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", p.Dir,
	}
	if password != "" {
		p.argv = append(p.argv, "--requirepass", password)
	}
	p.ready = "Ready to accept connections"
	p.register()
	return p
}

// MariaDB starts a private MariaDB with its own data directory and creates
// database db with user user/password (all privileges on db). The data
// directory survives Stop/Start.
func MariaDB(t testing.TB, db, user, password string) *Process {
	t.Helper()
	server := lookPath(t, "mariadbd", "mariadb-server")
	install := lookPath(t, "mariadb-install-db", "mariadb-server")
	p := newProcess(t, "mariadbd")
	data := filepath.Join(p.Dir, "data")
	args := []string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal", "--skip-test-db"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.Command(install, args...)
	cmd.Dir = p.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	quote := func(s string) string {
		return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
	}
	init := fmt.Sprintf("CREATE DATABASE IF NOT EXISTS `%s`;\nCREATE USER IF NOT EXISTS %s@'127.0.0.1' IDENTIFIED BY %s;\nGRANT ALL ON `%s`.* TO %s@'127.0.0.1';\n",
		db, quote(user), quote(password), db, quote(user))
	initPath := filepath.Join(p.Dir, "init.sql")
	if err := os.WriteFile(initPath, []byte(init), 0o600); err != nil {
		t.Fatal(err)
	}
	p.argv = []string{server, "--no-defaults",
		"--datadir=" + data,
		"--socket=" + filepath.Join(p.Dir, "mysqld.sock"),
		"--pid-file=" + filepath.Join(p.Dir, "mysqld.pid"),
		"--port=" + strconv.Itoa(p.Port), "--bind-address=127.0.0.1",
		"--skip-name-resolve", "--skip-log-bin",
		"--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
		"--init-file=" + initPath,
	}
	if os.Geteuid() == 0 {
		p.argv = append(p.argv, "--user=root")
	}
	p.ready = "ready for connections"
	p.register()
	return p
}

// HTTP is an HTTP server on a fixed loopback port that can be stopped and
// started again; it counts the TCP connections it accepted.
type HTTP struct {
	t       testing.TB
	Addr    string
	URL     string
	handler http.Handler

	mu    sync.Mutex
	srv   *http.Server
	conns int
}

// NewHTTP starts an HTTP server for h.
func NewHTTP(t testing.TB, h http.Handler) *HTTP {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &HTTP{t: t, Addr: l.Addr().String(), URL: "http://" + l.Addr().String(), handler: h}
	s.serve(l)
	t.Cleanup(s.Stop)
	return s
}

func (s *HTTP) serve(l net.Listener) {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.mu.Lock()
				s.conns++
				s.mu.Unlock()
			}
		},
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

// Conns is how many connections the server has accepted so far.
func (s *HTTP) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Stop closes the listener and every connection.
func (s *HTTP) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Start listens on the same address again.
func (s *HTTP) Start() {
	s.t.Helper()
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", s.Addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listening on %s again: %v", s.Addr, err)
	}
	s.serve(l)
}
