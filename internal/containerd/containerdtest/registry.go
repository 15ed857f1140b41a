// Package containerdtest gives tests a real containerd node: a private
// containerd instance (package containerd) started under a supervisor, a
// loopback pull-only OCI registry serving images built from the static
// test program in testdata/testapp, and clean-up of everything at the end.
package containerdtest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Registry is a minimal OCI distribution server on 127.0.0.1 that serves
// pulls of images pushed into it in-process. Repositories may require
// HTTP basic auth.
type Registry struct {
	// Addr is host:port, the prefix of every image reference it serves.
	Addr string

	mu        sync.Mutex
	blobs     map[string][]byte            // digest → content
	manifests map[string]map[string]string // repo → tag or digest → manifest digest
	auth      map[string][2]string         // repo → user, password
	delay     map[string]time.Duration     // repo → wait before each blob
	srv       *http.Server
}

// StartRegistry serves a registry until the test ends.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	r := &Registry{Addr: l.Addr().String(), blobs: map[string][]byte{}, manifests: map[string]map[string]string{}, auth: map[string][2]string{}, delay: map[string]time.Duration{}}
	r.srv = &http.Server{Handler: r}
	go r.srv.Serve(l) //nolint:errcheck // ends with Close
	t.Cleanup(func() { _ = r.srv.Close() })
	return r
}

// Slow makes every blob of repo take d to start arriving (a slow link).
func (r *Registry) Slow(repo string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay[repo] = d
}

// Close stops serving (a registry that went away: offline).
func (r *Registry) Close() { _ = r.srv.Close() }

// RequireAuth makes repo answer only to user:password.
func (r *Registry) RequireAuth(repo, user, password string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.auth[repo] = [2]string{user, password}
}

// File is one file of an image layer.
type File struct {
	Data []byte
	Mode int64
}

// Push stores a single-layer image made of files (paths without a leading
// slash) under repo:tag and returns its reference.
func (r *Registry) Push(repo, tag string, files map[string]File, entrypoint []string) (string, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names) // a deterministic layer
	dirs := map[string]bool{}
	for _, n := range names {
		parts := strings.Split(n, "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/") + "/"
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}); err != nil {
					return "", err
				}
			}
		}
		f := files[n]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: f.Mode, Size: int64(len(f.Data))}); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	// Uncompressed: gzip in a race-instrumented test binary costs tens of
	// seconds for a few megabytes, and loopback does not need it.
	layer := raw.Bytes()
	diffID := digest(layer)
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": entrypoint, "Env": []string{"PATH=/usr/local/bin:/usr/bin:/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	if err != nil {
		return "", err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer), "size": len(layer)}},
	})
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range [][]byte{layer, config, manifest} {
		r.blobs[digest(b)] = b
	}
	if r.manifests[repo] == nil {
		r.manifests[repo] = map[string]string{}
	}
	r.manifests[repo][tag] = digest(manifest)
	r.manifests[repo][digest(manifest)] = digest(manifest)
	return r.Addr + "/" + repo + ":" + tag, nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ServeHTTP answers the read side of the distribution API.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, "read-only registry", http.StatusMethodNotAllowed)
		return
	}
	path := strings.TrimPrefix(req.URL.Path, "/v2/")
	if path == "" || path == req.URL.Path {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		fmt.Fprint(w, "{}")
		return
	}
	var repo, kind, ref string
	if i := strings.LastIndex(path, "/manifests/"); i >= 0 {
		repo, kind, ref = path[:i], "manifests", path[i+len("/manifests/"):]
	} else if i := strings.LastIndex(path, "/blobs/"); i >= 0 {
		repo, kind, ref = path[:i], "blobs", path[i+len("/blobs/"):]
	} else {
		http.NotFound(w, req)
		return
	}
	r.mu.Lock()
	cred, needAuth := r.auth[repo]
	delay := r.delay[repo]
	var body []byte
	var dgst string
	switch kind {
	case "manifests":
		dgst = r.manifests[repo][ref]
		body = r.blobs[dgst]
	case "blobs":
		dgst = ref
		body = r.blobs[ref]
	}
	r.mu.Unlock()
	if needAuth {
		user, pass, ok := req.BasicAuth()
		if !ok || user != cred[0] || pass != cred[1] {
			w.Header().Set("WWW-Authenticate", `Basic realm="containerdtest"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
	}
	if body == nil {
		http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
		return
	}
	if kind == "blobs" && delay > 0 {
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
			return
		}
	}
	if kind == "manifests" {
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	w.Header().Set("Docker-Content-Digest", dgst)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	if req.Method == http.MethodGet {
		w.Write(body) //nolint:errcheck // the client sees a short body
	}
}
