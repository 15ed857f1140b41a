package tunnel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The ConfigMap the API server publishes its client CA in.
const (
	authConfigMapNamespace = "kube-system"
	authConfigMapName      = "extension-apiserver-authentication"
	clientCAKey            = "client-ca-file"
)

// PodLookup reads pods from an informer cache (nodeview.Watcher has it).
type PodLookup interface {
	Pod(namespace, name string) (*corev1.Pod, bool)
}

// ProxyConfig configures the HTTPS server the API server calls.
type ProxyConfig struct {
	// Listen is the address, e.g. ":10350". It must be reachable at the
	// edge nodes' addresses from the API server (see docs/logs-exec.md).
	Listen string
	// Dial opens a connection to a node's kubelet-compatible server
	// (Service.DialNode).
	Dial func(ctx context.Context, node string) (net.Conn, error)
	// Pods finds the node a pod is bound to; a pod the cache has not seen
	// yet is read from Kube.
	Pods PodLookup
	// Kube reads the client CA ConfigMap and pods the cache lacks.
	Kube kubernetes.Interface
	// Certificate is the serving certificate.
	Certificate tls.Certificate
	// ClientCARefresh is how often the client CA is read again (default
	// 1 min).
	ClientCARefresh time.Duration
	Logger          *slog.Logger
	Registry        prometheus.Registerer
}

// Proxy serves the kubelet API paths the API server uses for pods on edge
// nodes, forwarding each to the pod's node over a tunnel.
type Proxy struct {
	cfg      ProxyConfig
	authz    *authorizer
	clientCA atomic.Pointer[x509.CertPool]
	addr     chan net.Addr
	handler  http.Handler
	requests *prometheus.CounterVec
}

// NewProxy returns the proxy; Start serves it.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if cfg.Dial == nil || cfg.Pods == nil || cfg.Kube == nil {
		return nil, errors.New("tunnel proxy: Dial, Pods and Kube are required")
	}
	if cfg.ClientCARefresh <= 0 {
		cfg.ClientCARefresh = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{cfg: cfg, addr: make(chan net.Addr, 1), authz: newAuthorizer(cfg.Kube)}
	p.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verge_tunnel_requests_total",
		Help: "Kubelet API requests from the API server, by endpoint and HTTP status code.",
	}, []string{"endpoint", "code"})
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(p.requests)
	}
	p.handler = p.routes()
	return p, nil
}

// Handler is the routing without TLS (the server wraps it).
func (p *Proxy) Handler() http.Handler { return p.handler }

// Addr returns the bound address once Start listens.
func (p *Proxy) Addr(ctx context.Context) (net.Addr, error) {
	select {
	case a := <-p.addr:
		p.addr <- a
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Ready says whether the client CA has been loaded (until then every
// handshake fails).
func (p *Proxy) Ready() error {
	if p.clientCA.Load() == nil {
		return fmt.Errorf("client CA not loaded yet from ConfigMap %s/%s", authConfigMapNamespace, authConfigMapName)
	}
	return nil
}

// Start serves until ctx ends. A busy port does not fail Start: the
// address is retried every 5 s (with an error logged) while the rest of
// verge-cloud goes on, since tunnels are only one of its features.
func (p *Proxy) Start(ctx context.Context) error {
	caDone := make(chan struct{})
	go func() { defer close(caDone); p.refreshClientCA(ctx) }()
	defer func() { <-caDone }()
	var l net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		if l, err = net.Listen("tcp", p.cfg.Listen); err == nil {
			break
		}
		if attempt%12 == 0 {
			p.cfg.Logger.Error("the tunnel proxy cannot listen; kubectl logs/exec/port-forward to edge nodes fail until it can (retrying every 5 s)", "address", p.cfg.Listen, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
	base := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{p.cfg.Certificate},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		// Upgrades (exec, attach, port-forward) need HTTP/1.1.
		NextProtos: []string{"http/1.1"},
	}
	tlsConfig := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			pool := p.clientCA.Load()
			if pool == nil {
				return nil, errors.New("verge-cloud has not loaded the cluster's client CA yet")
			}
			c := base.Clone()
			c.ClientCAs = pool
			return c, nil
		},
	}
	srv := &http.Server{
		Handler:           p.handler,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(p.cfg.Logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	p.addr <- l.Addr()
	p.cfg.Logger.Info("tunnel proxy serving", "address", l.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(l, tlsConfig)) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(shutdown)
		cancel()
		_ = srv.Close() // hijacked streams (exec, port-forward) are not waited for
		err = nil
	}
	return err
}

// refreshClientCA reads the client CA now and every ClientCARefresh (every
// 5 s until the first success).
func (p *Proxy) refreshClientCA(ctx context.Context) {
	for {
		err := p.loadClientCA(ctx)
		if err != nil && ctx.Err() == nil {
			p.cfg.Logger.Error("reading the cluster's client CA failed; the tunnel proxy refuses the API server until it succeeds", "error", err)
		}
		wait := p.cfg.ClientCARefresh
		if p.clientCA.Load() == nil {
			wait = min(wait, 5*time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (p *Proxy) loadClientCA(ctx context.Context) error {
	cm, err := p.cfg.Kube.CoreV1().ConfigMaps(authConfigMapNamespace).Get(ctx, authConfigMapName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	pemData := cm.Data[clientCAKey]
	pool := x509.NewCertPool()
	if pemData == "" || !pool.AppendCertsFromPEM([]byte(pemData)) {
		return fmt.Errorf("ConfigMap %s/%s has no certificates under %s", authConfigMapNamespace, authConfigMapName, clientCAKey)
	}
	p.clientCA.Store(pool)
	return nil
}

// routes are the kubelet paths the API server calls for pods.
func (p *Proxy) routes() http.Handler {
	mux := http.NewServeMux()
	for _, r := range []struct{ endpoint, pattern string }{
		{"containerLogs", "/containerLogs/{ns}/{pod}/{container}"},
		{"exec", "/exec/{ns}/{pod}/{container}"},
		{"exec", "/exec/{ns}/{pod}/{uid}/{container}"},
		{"attach", "/attach/{ns}/{pod}/{container}"},
		{"attach", "/attach/{ns}/{pod}/{uid}/{container}"},
		{"portForward", "/portForward/{ns}/{pod}"},
		{"portForward", "/portForward/{ns}/{pod}/{uid}"},
	} {
		mux.Handle(r.pattern, p.forwarder(r.endpoint))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p.requests.WithLabelValues("other", "404").Inc()
		http.Error(w, fmt.Sprintf("%s is not served for edge nodes: verge-cloud tunnels only containerLogs, exec, attach and portForward", r.URL.Path), http.StatusNotFound)
	})
	return mux
}

type nodeKey struct{}

func (p *Proxy) forwarder(endpoint string) http.Handler {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return p.cfg.Dial(ctx, ctx.Value(nodeKey{}).(string))
		},
		// One tunnel per request: idle connections would hold tunnels
		// (limited per node) for nothing.
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: 2 * time.Minute,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = r.In.Context().Value(nodeKey{}).(string)
			r.Out.Host = r.Out.URL.Host
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(p.cfg.Logger.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			node, _ := r.Context().Value(nodeKey{}).(string)
			// Always 502: the API server shows a 5xx's message to the
			// user except for 503 and 504, whose message it replaces.
			var refused *RefusedError
			switch {
			case errors.Is(err, ErrTooManyTunnels), errors.As(err, &refused):
				w.Header().Set("Retry-After", "5")
			case errors.Is(err, context.Canceled):
				return // the API server went away
			}
			p.cfg.Logger.Warn("tunnel to node failed", "node", node, "path", r.URL.Path, "error", err)
			http.Error(w, fmt.Sprintf("verge-cloud could not reach node %s: %v", node, err), http.StatusBadGateway)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			code := strconv.Itoa(rec.code())
			if rec.status == 0 && r.Header.Get("Upgrade") != "" {
				code = "101" // hijacked by the reverse proxy
			}
			p.requests.WithLabelValues(endpoint, code).Inc()
		}()
		ns, name := r.PathValue("ns"), r.PathValue("pod")
		pod, err := p.pod(r.Context(), ns, name)
		if err != nil {
			code := http.StatusBadGateway
			if apierrors.IsNotFound(err) {
				code = http.StatusNotFound
			}
			http.Error(rec, err.Error(), code)
			return
		}
		if uid := r.PathValue("uid"); uid != "" && uid != string(pod.UID) {
			http.Error(rec, fmt.Sprintf("pod %s/%s has uid %s, not %s", ns, name, pod.UID, uid), http.StatusNotFound)
			return
		}
		if pod.Spec.NodeName == "" {
			http.Error(rec, fmt.Sprintf("pod %s/%s is not bound to a node yet", ns, name), http.StatusNotFound)
			return
		}
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(rec, "a client certificate is required", http.StatusUnauthorized)
			return
		}
		caller := r.TLS.PeerCertificates[0]
		verb := verbFor(r.Method)
		allowed, reason, err := p.authz.authorize(r.Context(), caller, verb, pod.Spec.NodeName)
		if err != nil {
			http.Error(rec, err.Error(), http.StatusBadGateway)
			return
		}
		if !allowed {
			p.cfg.Logger.Warn("kubelet API request refused", "user", caller.Subject.CommonName, "node", pod.Spec.NodeName, "path", r.URL.Path, "reason", reason)
			http.Error(rec, fmt.Sprintf("%s may not %s nodes/proxy of node %s (grant it with RBAC, as for a kubelet) %s", caller.Subject.CommonName, verb, pod.Spec.NodeName, reason), http.StatusForbidden)
			return
		}
		rp.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), nodeKey{}, pod.Spec.NodeName)))
	})
}

// pod reads a pod from the cache, or from the API server if the cache has
// not seen it yet.
func (p *Proxy) pod(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	if pod, ok := p.cfg.Pods.Pod(ns, name); ok {
		return pod, nil
	}
	pod, err := p.cfg.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, apierrors.NewNotFound(corev1.Resource("pods"), ns+"/"+name)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up pod %s/%s: %w", ns, name, err)
	}
	return pod, nil
}

// statusRecorder notes the status code; Unwrap lets the reverse proxy
// hijack and flush through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}
