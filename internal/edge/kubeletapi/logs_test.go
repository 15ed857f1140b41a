package kubeletapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/verge-edge/verge/internal/edge/podruntime"
)

func TestParseEntry(t *testing.T) {
	ts := "2026-01-02T03:04:05.123456789Z"
	for _, tc := range []struct {
		line    string
		stream  string
		partial bool
		msg     string
		bad     bool
	}{
		{line: ts + " stdout F hello world\n", stream: "stdout", msg: "hello world\n"},
		{line: ts + " stderr P part one\n", stream: "stderr", partial: true, msg: "part one"},
		{line: ts + " stdout F:x:y tagged\n", stream: "stdout", msg: "tagged\n"},
		{line: ts + " stdout F \n", stream: "stdout", msg: "\n"},
		{line: ts + " stdout F\n", stream: "stdout", msg: "\n"},
		{line: ts + " stdout F no newline yet", stream: "stdout", msg: "no newline yet\n"},
		{line: ts + " stdout F  two spaces\n", stream: "stdout", msg: " two spaces\n"},
		{line: "garbage\n", bad: true},
		{line: "2026-13-02T03:04:05Z stdout F x\n", bad: true},
		{line: ts + " stdin F x\n", bad: true},
		{line: ts + " stdout Q x\n", bad: true},
	} {
		e, err := parseEntry([]byte(tc.line))
		if tc.bad {
			if err == nil {
				t.Errorf("%q parsed", tc.line)
			}
			continue
		}
		if err != nil || e.stream != tc.stream || e.partial != tc.partial || string(e.msg) != tc.msg {
			t.Errorf("%q: got %+v (%q), %v", tc.line, e, e.msg, err)
		}
	}
}

// fakeContainers returns one container per name, or ErrContainerNotFound.
type fakeContainers struct {
	refs     map[string]podruntime.ContainerRef // "ns/pod/name"
	previous map[string]podruntime.ContainerRef
}

func (f *fakeContainers) Container(_ context.Context, ns, pod, name string, previous bool) (podruntime.ContainerRef, error) {
	m := f.refs
	if previous {
		m = f.previous
	}
	ref, ok := m[ns+"/"+pod+"/"+name]
	if !ok {
		return ref, fmt.Errorf("container %q: %w", name, podruntime.ErrContainerNotFound)
	}
	return ref, nil
}

// fakeCRI answers ContainerStatus from a running flag.
type fakeCRI struct {
	CRI
	running atomic.Bool
}

func (f *fakeCRI) ContainerStatus(context.Context, *runtimeapi.ContainerStatusRequest, ...grpc.CallOption) (*runtimeapi.ContainerStatusResponse, error) {
	state := runtimeapi.ContainerState_CONTAINER_EXITED
	if f.running.Load() {
		state = runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{State: state}}, nil
}

func (f *fakeCRI) Exec(context.Context, *runtimeapi.ExecRequest, ...grpc.CallOption) (*runtimeapi.ExecResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake")
}

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// crilog renders CRI log lines: each item is "stream tag msg" at t0+i s.
func crilog(start int, items ...string) string {
	var b strings.Builder
	for i, it := range items {
		stream, rest, _ := strings.Cut(it, " ")
		tag, msg, _ := strings.Cut(rest, " ")
		fmt.Fprintf(&b, "%s %s %s %s\n", t0.Add(time.Duration(start+i)*time.Second).Format(time.RFC3339Nano), stream, tag, msg)
	}
	return b.String()
}

type logEnv struct {
	dir  string
	path string
	cri  *fakeCRI
	srv  *httptest.Server
}

func newLogEnv(t *testing.T) *logEnv {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "c", "0.log")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	cri := &fakeCRI{}
	h, err := New(Config{
		Containers: &fakeContainers{
			refs:     map[string]podruntime.ContainerRef{"ns/web/c": {ID: "cid", PodUID: "uid-1", LogPath: path, Running: true}},
			previous: map[string]podruntime.ContainerRef{},
		},
		CRI:        cri,
		FollowPoll: 10 * time.Millisecond,
		Now:        func() time.Time { return t0.Add(time.Hour) },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &logEnv{dir: dir, path: path, cri: cri, srv: srv}
}

func (e *logEnv) write(t *testing.T, file, content string) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
}

func (e *logEnv) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestContainerLogs(t *testing.T) {
	e := newLogEnv(t)
	// Two rotated files and the current one (podruntime's naming).
	e.write(t, e.path+".20260501-120000.000000000", crilog(0, "stdout F one", "stderr F two"))
	e.write(t, e.path+".20260501-120002.000000000", crilog(2, "stdout P thr", "stdout P e", "stdout F e", "stderr F four"))
	e.write(t, e.path, crilog(6, "stdout F five", "stderr P si", "stderr F x", "stdout F six-out"))
	ts := func(i int) string { return t0.Add(time.Duration(i) * time.Second).Format(timestampFormat) }

	all := "one\ntwo\nthree\nfour\nfive\nsix\nsix-out\n"
	for _, tc := range []struct{ query, want string }{
		{"", all},
		{"?tailLines=2", "six\nsix-out\n"},
		{"?tailLines=3", "five\nsix\nsix-out\n"},
		// the tail reaches into rotated files, and a merged line counts once
		{"?tailLines=5", "three\nfour\nfive\nsix\nsix-out\n"},
		{"?tailLines=0", ""},
		{"?tailLines=100", all},
		{"?timestamps=true&tailLines=4", ts(5) + " four\n" + ts(6) + " five\n" + ts(7) + " six\n" + ts(9) + " six-out\n"},
		{"?sinceTime=" + t0.Add(5*time.Second).Format(time.RFC3339), "four\nfive\nsix\nsix-out\n"},
		{"?sinceTime=" + t0.Add(5*time.Second).Format(time.RFC3339) + "&tailLines=2", "six\nsix-out\n"},
		{"?limitBytes=10", "one\ntwo\nth"},
		{"?limitBytes=1000", all},
		{"?stream=Stderr", "two\nfour\nsix\n"},
		{"?stream=Stdout&tailLines=2", "five\nsix-out\n"},
	} {
		code, body := e.get(t, "/containerLogs/ns/web/c"+tc.query)
		if code != 200 || body != tc.want {
			t.Errorf("%s: %d %q, want %q", tc.query, code, body, tc.want)
		}
	}
	// sinceSeconds counts back from the handler's clock (t0 + 1h).
	code, body := e.get(t, "/containerLogs/ns/web/c?sinceSeconds=3593")
	if code != 200 || body != "six\nsix-out\n" {
		t.Errorf("sinceSeconds: %d %q", code, body)
	}
}

func TestContainerLogsTimestampsWithInterleavedPartials(t *testing.T) {
	e := newLogEnv(t)
	e.write(t, e.path, crilog(0, "stdout P a", "stderr F err", "stdout F b"))
	ts := func(i int) string { return t0.Add(time.Duration(i) * time.Second).Format(timestampFormat) }
	_, body := e.get(t, "/containerLogs/ns/web/c?timestamps=1")
	// One timestamp per line, from its first fragment.
	if want := ts(0) + " a" + ts(1) + " err\nb\n"; body != want {
		t.Fatalf("got %q, want %q", body, want)
	}
}

func TestContainerLogsErrors(t *testing.T) {
	e := newLogEnv(t)
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/containerLogs/ns/web/nope", 400, `pod ns/web has no container "nope"`},
		{"/containerLogs/ns/web/c?previous=true", 400, `pod ns/web has no previous terminated container "c"`},
		{"/containerLogs/ns/web/c?tailLines=-1", 400, "tailLines"},
		{"/containerLogs/ns/web/c?follow=maybe", 400, "follow"},
		{"/containerLogs/ns/web/c?sinceTime=yesterday", 400, "sinceTime"},
		{"/containerLogs/ns/web/c?limitBytes=0", 400, "limitBytes"},
		{"/containerLogs/ns/web/c?stream=Both", 400, "stream"},
		{"/stats/summary", 404, "not served by verge-edge"},
		{"/exec/ns/web/wrong-uid/c?command=ls&output=1", 404, "has uid uid-1, not wrong-uid"},
		{"/exec/ns/web/c?output=1", 400, "no command"},
		{"/exec/ns/web/c?command=ls", 400, "at least one of stdin"},
	} {
		code, body := e.get(t, tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want %d with %q", tc.path, code, body, tc.code, tc.want)
		}
	}
	// No log file yet (the container has written nothing) is an empty log.
	if code, body := e.get(t, "/containerLogs/ns/web/c"); code != 200 || body != "" {
		t.Errorf("missing file: %d %q", code, body)
	}
}

// TestFollowThroughRotation follows a log while lines are appended, the
// file is rotated as podruntime rotates it (rename, then a new file), a
// line is written in two pieces, and the container stops.
func TestFollowThroughRotation(t *testing.T) {
	e := newLogEnv(t)
	e.cri.running.Store(true)
	e.write(t, e.path, crilog(0, "stdout F before"))
	resp, err := http.Get(e.srv.URL + "/containerLogs/ns/web/c?follow=true&tailLines=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 100)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(lines)
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				lines <- string(buf[:n])
			}
			if err != nil {
				return
			}
		}
	})
	got := ""
	waitFor := func(want string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for !strings.HasSuffix(got, want) {
			select {
			case s, ok := <-lines:
				if !ok {
					t.Fatalf("stream ended; got %q, waiting for %q", got, want)
				}
				got += s
			case <-deadline:
				t.Fatalf("got %q, waiting for %q", got, want)
			}
		}
	}
	waitFor("before\n")
	e.write(t, e.path, crilog(1, "stdout F during"))
	waitFor("during\n")
	// A line written in two pieces is not shown half.
	half := crilog(2, "stdout F whole line")
	e.write(t, e.path, half[:20])
	time.Sleep(50 * time.Millisecond)
	e.write(t, e.path, half[20:])
	waitFor("during\nwhole line\n")
	// Rotation: rename aside, the runtime writes a last line to the old
	// file, then reopens a new one.
	if err := os.Rename(e.path, e.path+".20260501-120003.000000000"); err != nil {
		t.Fatal(err)
	}
	e.write(t, e.path+".20260501-120003.000000000", crilog(3, "stdout F last in old"))
	time.Sleep(50 * time.Millisecond)
	e.write(t, e.path, crilog(4, "stdout F first in new"))
	waitFor("last in old\nfirst in new\n")
	e.write(t, e.path, crilog(5, "stdout F bye"))
	e.cri.running.Store(false)
	wg.Wait()
	for s := range lines {
		got += s
	}
	if want := "before\nduring\nwhole line\nlast in old\nfirst in new\nbye\n"; got != want {
		t.Fatalf("followed %q, want %q", got, want)
	}
}

func TestFollowEndsWhenClientLeaves(t *testing.T) {
	e := newLogEnv(t)
	e.cri.running.Store(true)
	e.write(t, e.path, crilog(0, "stdout F x"))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/containerLogs/ns/web/c?follow=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if n, _ := resp.Body.Read(buf); string(buf[:n]) != "x\n" {
		t.Fatalf("read %q", buf[:n])
	}
	cancel()
	resp.Body.Close()
	// The server side ends: httptest.Server.Close (cleanup) waits for
	// handlers and would time the test out otherwise.
	done := make(chan struct{})
	go func() { e.srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the follow goes on after the client left")
	}
}
