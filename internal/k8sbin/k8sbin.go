// Package k8sbin finds or builds the upstream control-plane binaries (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and kubectl) pinned
// by the tools/controlplane Go module.
//
// Binaries are cached in a directory named after the Kubernetes version and a
// hash of everything that determines the build (the module's files, the Go
// version and the target platform), so a build happens once per pin change.
// Concurrent callers (parallel test packages, `verge up`) serialise on a file
// lock and the second one reuses the first one's result. A build writes into
// a temporary directory that is renamed into place only when every binary
// built, so a crash mid-build never leaves a half-populated cache entry.
package k8sbin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/mod/modfile"

	"github.com/verge-edge/verge/internal/logtail"
)

// Names of the binaries every control plane needs, in build order (the
// smaller ones first so a broken toolchain fails fast).
var required = []string{"etcd", "kube-scheduler", "kube-apiserver", "kube-controller-manager", "kubectl"}

// Binaries holds absolute paths of the built upstream binaries.
type Binaries struct {
	Dir                   string
	KubernetesVersion     string
	Etcd                  string
	KubeAPIServer         string
	KubeControllerManager string
	KubeScheduler         string
	Kubectl               string
}

// Options says where the module source is, where to cache, and where to
// report progress.
type Options struct {
	// SourceDir is the tools/controlplane module directory.
	SourceDir string
	// CacheDir is the root of Verge's cache (see DefaultCacheDir).
	CacheDir string
	// Progress receives human-readable progress lines; nil discards them.
	Progress io.Writer
	// ProgressEvery is how often a long build reports that it is still going.
	ProgressEvery time.Duration
}

// BuildError is returned when the Go toolchain fails to build a component.
// Its message carries the tail of the build log and the log's path.
type BuildError struct {
	Component string
	LogPath   string
	Tail      string
	Err       error
}

func (e *BuildError) Error() string {
	return fmt.Sprintf("building %s failed: %v\n--- last lines of %s ---\n%s--- full log: %s",
		e.Component, e.Err, e.LogPath, e.Tail, e.LogPath)
}

func (e *BuildError) Unwrap() error { return e.Err }

// DefaultCacheDir returns $VERGE_CACHE_DIR, or verge/ under the user's cache
// directory.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("VERGE_CACHE_DIR"); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: set VERGE_CACHE_DIR: %w", err)
	}
	return filepath.Join(d, "verge"), nil
}

// FindSource looks for tools/controlplane in dir and its parents, the way a
// command run from anywhere inside a Verge checkout should find it.
func FindSource(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		candidate := filepath.Join(d, "tools", "controlplane")
		if _, err := os.Stat(filepath.Join(candidate, "go.mod")); err == nil {
			return candidate, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no tools/controlplane/go.mod in %s or any parent: run from a Verge source checkout or pass the module directory explicitly", dir)
		}
	}
}

// Ensure returns the cached binaries for the pin in opts.SourceDir, building
// them first if needed.
func Ensure(ctx context.Context, opts Options) (*Binaries, error) {
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	src, err := readSource(opts.SourceDir)
	if err != nil {
		return nil, err
	}
	goVersion, err := goEnv(ctx, opts.SourceDir, "GOVERSION")
	if err != nil {
		return nil, err
	}
	key := src.key(goVersion)
	root := filepath.Join(opts.CacheDir, "controlplane")
	dir := filepath.Join(root, src.k8sVersion+"-"+key)
	if bins, ok := complete(dir, src.k8sVersion); ok {
		return bins, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockFile(ctx, filepath.Join(root, ".lock"), progress)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another process may have finished the build while we waited.
	if bins, ok := complete(dir, src.k8sVersion); ok {
		return bins, nil
	}
	fmt.Fprintf(progress, "building Kubernetes %s control plane into %s (first run only; several minutes)\n", src.k8sVersion, dir)
	start := time.Now()
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	logDir := filepath.Join(root, "logs", filepath.Base(dir))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	every := opts.ProgressEvery
	if every <= 0 {
		every = 15 * time.Second
	}
	for i, name := range required {
		fmt.Fprintf(progress, "[%d/%d] building %s\n", i+1, len(required), name)
		b := build{
			sourceDir: opts.SourceDir,
			pkg:       src.tools[name],
			out:       filepath.Join(tmp, name),
			logPath:   filepath.Join(logDir, "build-"+name+".log"),
			ldflags:   versionLDFlags(src.k8sVersion),
		}
		if err := b.run(ctx, name, progress, every); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "VERSION"), []byte(src.k8sVersion+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("installing built binaries: %w", err)
	}
	fmt.Fprintf(progress, "control plane built in %s\n", time.Since(start).Round(time.Second))
	bins, ok := complete(dir, src.k8sVersion)
	if !ok {
		return nil, fmt.Errorf("binaries missing from %s right after building them", dir)
	}
	return bins, nil
}

type source struct {
	k8sVersion string
	tools      map[string]string // binary name → package path
	digest     []byte            // hash of every file in the module directory
}

// readSource parses the module's go.mod and hashes its files.
func readSource(dir string) (*source, error) {
	gomod := filepath.Join(dir, "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		return nil, fmt.Errorf("reading the control-plane pin: %w", err)
	}
	mf, err := modfile.Parse(gomod, data, nil)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", gomod, err)
	}
	src := &source{k8sVersion: "unknown", tools: map[string]string{}}
	for _, r := range mf.Require {
		if r.Mod.Path == "k8s.io/kubernetes" {
			src.k8sVersion = r.Mod.Version
		}
	}
	for _, t := range mf.Tool {
		src.tools[path.Base(t.Path)] = t.Path
	}
	for _, name := range required {
		if src.tools[name] == "" {
			return nil, fmt.Errorf("%s declares no tool for %s: add a `tool` line for its main package", gomod, name)
		}
	}
	h := sha256.New()
	var files []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(b))
		h.Write(b)
	}
	src.digest = h.Sum(nil)
	return src, nil
}

// key names a cache entry: the source, the toolchain and the platform.
func (s *source) key(goVersion string) string {
	h := sha256.New()
	h.Write(s.digest)
	fmt.Fprintf(h, "\x00%s\x00%s/%s", goVersion, runtime.GOOS, runtime.GOARCH)
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func complete(dir, version string) (*Binaries, bool) {
	b := &Binaries{
		Dir:                   dir,
		KubernetesVersion:     version,
		Etcd:                  filepath.Join(dir, "etcd"),
		KubeAPIServer:         filepath.Join(dir, "kube-apiserver"),
		KubeControllerManager: filepath.Join(dir, "kube-controller-manager"),
		KubeScheduler:         filepath.Join(dir, "kube-scheduler"),
		Kubectl:               filepath.Join(dir, "kubectl"),
	}
	for _, p := range []string{b.Etcd, b.KubeAPIServer, b.KubeControllerManager, b.KubeScheduler, b.Kubectl, filepath.Join(dir, "VERSION")} {
		if _, err := os.Stat(p); err != nil {
			return nil, false
		}
	}
	return b, true
}

// versionLDFlags stamps the release into the binaries the way upstream's
// release build does, so `kubectl version` and the API's /version report the
// pinned release instead of v0.0.0-master.
func versionLDFlags(version string) string {
	flags := []string{"-s", "-w"}
	major, minor := "", ""
	if parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		flags = append(flags,
			"-X", pkg+".gitVersion="+version,
			"-X", pkg+".gitMajor="+major,
			"-X", pkg+".gitMinor="+minor,
			"-X", pkg+".gitTreeState=clean",
		)
	}
	return strings.Join(flags, " ")
}

type build struct {
	sourceDir, pkg, out, logPath, ldflags string
}

// run builds one binary with `go build -v`, logging everything to logPath
// and reporting every `every` how many packages have been compiled.
func (b build) run(ctx context.Context, name string, progress io.Writer, every time.Duration) error {
	logFile, err := os.Create(b.logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	var compiled atomic.Int64
	cmd := exec.CommandContext(ctx, "go", "build", "-v", "-trimpath", "-ldflags", b.ldflags, "-o", b.out, b.pkg)
	cmd.Dir = b.sourceDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	// go build -v prints one line per package it compiles.
	cmd.Stdout = logFile
	cmd.Stderr = lineCounter{w: logFile, n: &compiled}
	if err := cmd.Start(); err != nil {
		return &BuildError{Component: name, LogPath: b.logPath, Err: fmt.Errorf("starting go build: %w", err)}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	start := time.Now()
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			fmt.Fprintf(progress, "      %s: %d packages compiled, %s elapsed\n", name, compiled.Load(), time.Since(start).Round(time.Second))
		case err := <-done:
			if err != nil {
				return &BuildError{Component: name, LogPath: b.logPath, Tail: logtail.Lines(b.logPath, 20), Err: err}
			}
			return nil
		}
	}
}

// lineCounter passes writes through and counts the newlines in them.
type lineCounter struct {
	w io.Writer
	n *atomic.Int64
}

func (c lineCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(bytes.Count(p, []byte("\n"))))
	return c.w.Write(p)
}

func goEnv(ctx context.Context, dir, name string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", name)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("go env %s: %w: %s", name, err, ee.Stderr)
		}
		return "", fmt.Errorf("the Go toolchain is needed to build the control plane: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// lockFile takes an exclusive flock on p, saying so if it has to wait.
func lockFile(ctx context.Context, p string, progress io.Writer) (func(), error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintf(progress, "waiting for another build of the control plane to finish (lock %s)\n", p)
		for {
			select {
			case <-ctx.Done():
				f.Close()
				return nil, ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
				break
			}
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
