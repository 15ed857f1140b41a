// Package kubeletapi serves, on an edge node, the kubelet API paths the
// API server calls for a pod: container logs, exec, attach and
// port-forward, plus /healthz. verge-edge serves it only through the
// tunnel to verge-cloud (package tunnel); it listens on no port, and
// verge-cloud authenticates the API server and picks the node.
//
//   - GET /containerLogs/{namespace}/{pod}/{container} reads the CRI log
//     files the runtime writes (podruntime), rotated ones included, with
//     the kubelet's query parameters: follow, previous, timestamps,
//     tailLines, sinceSeconds, sinceTime, limitBytes, stream. Fragments
//     of a long line (CRI tag P) and its end (F) are one line for
//     tailLines, sinceTime and timestamps. follow goes on through
//     rotations until the container stops or the client leaves.
//   - /exec, /attach (…/{pod}/{container} or …/{pod}/{uid}/{container})
//     and /portForward/{namespace}/{pod}[/{uid}] ask the CRI runtime for a
//     streaming URL and reverse-proxy the request — an upgrade to SPDY or
//     WebSocket — to the runtime's streaming server, as the kubelet does.
//     The protocols are negotiated between the client and the runtime.
//
// Containers are found through Config.Containers (podruntime.Runtime) and
// sandboxes and streaming URLs through the CRI. Nothing is cached: each
// request looks the container up again.
package kubeletapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/verge-edge/verge/internal/edge/podruntime"
)

// Containers finds a pod's containers (podruntime.Runtime).
type Containers interface {
	Container(ctx context.Context, namespace, pod, container string, previous bool) (podruntime.ContainerRef, error)
}

// CRI is the part of the CRI runtime service used here
// (runtimeapi.RuntimeServiceClient has it).
type CRI interface {
	Exec(ctx context.Context, in *runtimeapi.ExecRequest, opts ...grpc.CallOption) (*runtimeapi.ExecResponse, error)
	Attach(ctx context.Context, in *runtimeapi.AttachRequest, opts ...grpc.CallOption) (*runtimeapi.AttachResponse, error)
	PortForward(ctx context.Context, in *runtimeapi.PortForwardRequest, opts ...grpc.CallOption) (*runtimeapi.PortForwardResponse, error)
	ContainerStatus(ctx context.Context, in *runtimeapi.ContainerStatusRequest, opts ...grpc.CallOption) (*runtimeapi.ContainerStatusResponse, error)
	ListPodSandbox(ctx context.Context, in *runtimeapi.ListPodSandboxRequest, opts ...grpc.CallOption) (*runtimeapi.ListPodSandboxResponse, error)
}

// Config configures the handler.
type Config struct {
	// Containers finds containers; required.
	Containers Containers
	// CRIEndpoint is the CRI runtime's unix socket (path, or unix://path);
	// used when CRI is nil.
	CRIEndpoint string
	// CRI overrides CRIEndpoint (tests).
	CRI CRI
	// FollowPoll is how often a followed log is checked for new lines
	// (default 250 ms).
	FollowPoll time.Duration
	// Now is the clock for sinceSeconds (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Handler is the kubelet-compatible API.
type Handler struct {
	cfg   Config
	cri   CRI
	close func() error
	mux   *http.ServeMux
}

const criTimeout = 10 * time.Second

// New returns the handler; Close releases its CRI connection.
func New(cfg Config) (*Handler, error) {
	if cfg.Containers == nil {
		return nil, errors.New("kubeletapi: Containers is required")
	}
	if cfg.FollowPoll <= 0 {
		cfg.FollowPoll = 250 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, cri: cfg.CRI, close: func() error { return nil }}
	if h.cri == nil {
		if cfg.CRIEndpoint == "" {
			return nil, errors.New("kubeletapi: CRIEndpoint or CRI is required")
		}
		target := cfg.CRIEndpoint
		if u, err := url.Parse(target); err != nil || u.Scheme == "" {
			target = "unix://" + target
		}
		conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("kubeletapi: CRI endpoint %s: %w", cfg.CRIEndpoint, err)
		}
		h.cri = runtimeapi.NewRuntimeServiceClient(conn)
		h.close = conn.Close
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", h.containerLogs)
	for _, p := range []string{"/exec/{ns}/{pod}/{container}", "/exec/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, h.exec)
	}
	for _, p := range []string{"/attach/{ns}/{pod}/{container}", "/attach/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, h.attach)
	}
	for _, p := range []string{"/portForward/{ns}/{pod}", "/portForward/{ns}/{pod}/{uid}"} {
		mux.HandleFunc(p, h.portForward)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, fmt.Sprintf("%s is not served by verge-edge (only containerLogs, exec, attach, portForward and healthz)", r.URL.Path), http.StatusNotFound)
	})
	h.mux = mux
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Close releases the CRI connection.
func (h *Handler) Close() error { return h.close() }

// container looks up the container a request names, answering the
// request itself when it cannot be found.
func (h *Handler) container(w http.ResponseWriter, r *http.Request, previous bool) (podruntime.ContainerRef, bool) {
	ns, pod, name := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container")
	ref, err := h.cfg.Containers.Container(r.Context(), ns, pod, name, previous)
	switch {
	// 400, as the kubelet answers these: the API server passes a 400's
	// message on to the user (a 404's it replaces).
	case errors.Is(err, podruntime.ErrContainerNotFound) && previous:
		http.Error(w, fmt.Sprintf("pod %s/%s has no previous terminated container %q on this node", ns, pod, name), http.StatusBadRequest)
		return ref, false
	case errors.Is(err, podruntime.ErrContainerNotFound):
		http.Error(w, fmt.Sprintf("pod %s/%s has no container %q on this node (not started yet, or removed)", ns, pod, name), http.StatusBadRequest)
		return ref, false
	case err != nil:
		h.cfg.Logger.Warn("container lookup failed", "pod", ns+"/"+pod, "container", name, "error", err)
		http.Error(w, fmt.Sprintf("looking up container %q of pod %s/%s: %v", name, ns, pod, err), http.StatusInternalServerError)
		return ref, false
	}
	if uid := r.PathValue("uid"); uid != "" && uid != string(ref.PodUID) {
		http.Error(w, fmt.Sprintf("pod %s/%s on this node has uid %s, not %s", ns, pod, ref.PodUID, uid), http.StatusNotFound)
		return ref, false
	}
	return ref, true
}

func (h *Handler) containerLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts, err := parseLogOptions(q, h.cfg.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	previous, _ := parseBool(q, "previous")
	ref, ok := h.container(w, r, previous)
	if !ok {
		return
	}
	if ref.LogPath == "" {
		http.Error(w, fmt.Sprintf("container %q of pod %s/%s has no log file", r.PathValue("container"), r.PathValue("ns"), r.PathValue("pod")), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	rc := http.NewResponseController(w)
	fl := follower{
		poll:  h.cfg.FollowPoll,
		flush: func() { _ = rc.Flush() },
		running: func(ctx context.Context) bool {
			ctx, cancel := context.WithTimeout(ctx, criTimeout)
			defer cancel()
			st, err := h.cri.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ref.ID})
			if err != nil {
				// Gone (removed) ends the follow; a runtime hiccup does
				// not, unless the client left.
				return ctx.Err() == nil && !isNotFound(err)
			}
			return st.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING
		},
	}
	if !opts.follow || !ref.Running {
		opts.follow = false
	}
	if err := writeLogs(r.Context(), w, ref.LogPath, opts, fl); err != nil && r.Context().Err() == nil {
		h.cfg.Logger.Warn("writing container logs failed", "pod", r.PathValue("ns")+"/"+r.PathValue("pod"), "container", r.PathValue("container"), "error", err)
	}
}

// streamOptions are the stdin/stdout/stderr/tty query parameters of exec
// and attach ("1" or "true").
type streamOptions struct{ stdin, stdout, stderr, tty bool }

func parseStreamOptions(q url.Values) (streamOptions, error) {
	flag := func(k string) bool { v := q.Get(k); return v == "1" || v == "true" }
	o := streamOptions{stdin: flag("input"), stdout: flag("output"), stderr: flag("error"), tty: flag("tty")}
	if o.tty {
		o.stderr = false // a terminal has one output stream
	}
	if !o.stdin && !o.stdout && !o.stderr {
		return o, errors.New("at least one of stdin, stdout and stderr must be requested")
	}
	return o, nil
}

func (h *Handler) exec(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	so, err := parseStreamOptions(q)
	cmd := q["command"]
	if err == nil && len(cmd) == 0 {
		err = errors.New("no command given")
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ref, ok := h.runningContainer(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), criTimeout)
	defer cancel()
	resp, err := h.cri.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: ref.ID, Cmd: cmd, Tty: so.tty, Stdin: so.stdin, Stdout: so.stdout, Stderr: so.stderr})
	if err != nil {
		h.criError(w, "exec", err)
		return
	}
	h.proxyStream(w, r, resp.Url)
}

func (h *Handler) attach(w http.ResponseWriter, r *http.Request) {
	so, err := parseStreamOptions(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ref, ok := h.runningContainer(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), criTimeout)
	defer cancel()
	resp, err := h.cri.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: ref.ID, Tty: so.tty, Stdin: so.stdin, Stdout: so.stdout, Stderr: so.stderr})
	if err != nil {
		h.criError(w, "attach", err)
		return
	}
	h.proxyStream(w, r, resp.Url)
}

func (h *Handler) runningContainer(w http.ResponseWriter, r *http.Request) (podruntime.ContainerRef, bool) {
	ref, ok := h.container(w, r, false)
	if ok && !ref.Running {
		http.Error(w, fmt.Sprintf("container %q of pod %s/%s is not running", r.PathValue("container"), r.PathValue("ns"), r.PathValue("pod")), http.StatusBadRequest)
		return ref, false
	}
	return ref, ok
}

func (h *Handler) portForward(w http.ResponseWriter, r *http.Request) {
	ns, pod, uid := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("uid")
	ctx, cancel := context.WithTimeout(r.Context(), criTimeout)
	defer cancel()
	sel := map[string]string{"io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.name": pod}
	if uid != "" {
		sel["io.kubernetes.pod.uid"] = uid
	}
	list, err := h.cri.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
		LabelSelector: sel,
	}})
	if err != nil {
		h.criError(w, "listing pod sandboxes", err)
		return
	}
	sandboxes := list.GetItems()
	if len(sandboxes) == 0 {
		http.Error(w, fmt.Sprintf("pod %s/%s has no running sandbox on this node", ns, pod), http.StatusNotFound)
		return
	}
	sort.Slice(sandboxes, func(i, j int) bool { return sandboxes[i].CreatedAt > sandboxes[j].CreatedAt })
	resp, err := h.cri.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sandboxes[0].Id})
	if err != nil {
		h.criError(w, "port-forward", err)
		return
	}
	h.proxyStream(w, r, resp.Url)
}

func (h *Handler) criError(w http.ResponseWriter, what string, err error) {
	h.cfg.Logger.Warn("CRI call failed", "call", what, "error", err)
	http.Error(w, fmt.Sprintf("the container runtime failed %s: %v", what, err), http.StatusInternalServerError)
}

// proxyStream forwards the request (an upgrade) to the runtime's streaming
// server at rawURL, as the kubelet does.
func (h *Handler) proxyStream(w http.ResponseWriter, r *http.Request, rawURL string) {
	target, err := url.Parse(rawURL)
	if err != nil || !target.IsAbs() {
		http.Error(w, fmt.Sprintf("the container runtime returned an unusable streaming URL %q", rawURL), http.StatusInternalServerError)
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			u := *target
			pr.Out.URL = &u
			pr.Out.Host = target.Host
		},
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(h.cfg.Logger.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			h.cfg.Logger.Warn("streaming server unreachable", "error", err)
			http.Error(w, "the container runtime's streaming server failed: "+err.Error(), http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(w, r)
}

func isNotFound(err error) bool { return status.Code(err) == codes.NotFound }
