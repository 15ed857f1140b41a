package podruntime

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

const defaultVolumeMode os.FileMode = 0o644

// volumeKind names the per-kind directory under a pod's volumes (the
// kubelet's names, which tools and people recognise).
func volumeKind(v *kube.Volume) (string, error) {
	switch {
	case v.EmptyDir != nil:
		return "kubernetes.io~empty-dir", nil
	case v.ConfigMap != nil:
		return "kubernetes.io~configmap", nil
	case v.Secret != nil:
		return "kubernetes.io~secret", nil
	case v.Projected != nil:
		return "kubernetes.io~projected", nil
	case v.DownwardAPI != nil:
		return "kubernetes.io~downward-api", nil
	case v.HostPath != nil:
		return "", nil
	}
	return "", configErrorf("volume %q: its type is not supported at the edge (supported: configMap, secret, emptyDir, hostPath, projected, downwardAPI)", v.Name)
}

// tokenGetter returns service-account tokens for projected volumes.
type tokenGetter interface {
	ServiceAccountToken(ctx context.Context, namespace, podName, serviceAccount string, audiences []string, expirationSeconds int64) (string, error)
}

// renderVolume computes the content of an atomically written volume
// (configMap, secret, downwardAPI, projected).
func renderVolume(ctx context.Context, get objectGetter, tokens *tokenCache, pod *kube.Pod, v *kube.Volume, facts podFacts, now time.Time) (payload, error) {
	switch {
	case v.ConfigMap != nil:
		s := v.ConfigMap
		return configMapFiles(ctx, get, pod, s.Name, s.Items, s.Optional, modeOr(s.DefaultMode))
	case v.Secret != nil:
		s := v.Secret
		return secretFiles(ctx, get, pod, s.SecretName, s.Items, s.Optional, modeOr(s.DefaultMode))
	case v.DownwardAPI != nil:
		return downwardFiles(pod, v.DownwardAPI.Items, modeOr(v.DownwardAPI.DefaultMode), facts)
	case v.Projected != nil:
		p := payload{}
		def := modeOr(v.Projected.DefaultMode)
		for i, src := range v.Projected.Sources {
			var part payload
			var err error
			switch {
			case src.ConfigMap != nil:
				part, err = configMapFiles(ctx, get, pod, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, def)
			case src.Secret != nil:
				part, err = secretFiles(ctx, get, pod, src.Secret.Name, src.Secret.Items, src.Secret.Optional, def)
			case src.DownwardAPI != nil:
				part, err = downwardFiles(pod, src.DownwardAPI.Items, def, facts)
			case src.ServiceAccountToken != nil:
				t := src.ServiceAccountToken
				exp := int64(3600)
				if t.ExpirationSeconds != nil {
					exp = *t.ExpirationSeconds
				}
				var aud []string
				if t.Audience != "" {
					aud = []string{t.Audience}
				}
				var tok string
				tok, err = tokens.get(ctx, pod, v.Name+"/"+t.Path, aud, exp, now)
				part = payload{t.Path: {Data: []byte(tok), Mode: def}}
			default:
				err = configErrorf("volume %q: projected source %d is not supported at the edge (supported: configMap, secret, downwardAPI, serviceAccountToken)", v.Name, i)
			}
			if err != nil {
				return nil, err
			}
			for k, f := range part {
				p[k] = f
			}
		}
		return p, nil
	}
	return nil, configErrorf("volume %q has no content to render", v.Name)
}

func modeOr(m *int32) os.FileMode {
	if m == nil {
		return defaultVolumeMode
	}
	return os.FileMode(*m) & 0o777
}

func itemMode(m *int32, def os.FileMode) os.FileMode {
	if m == nil {
		return def
	}
	return os.FileMode(*m) & 0o777
}

func configMapFiles(ctx context.Context, get objectGetter, pod *kube.Pod, name string, items []kube.KeyToPath, optional *bool, def os.FileMode) (payload, error) {
	opt := optional != nil && *optional
	cm, err := get.ConfigMap(ctx, pod.Namespace, name)
	if err != nil {
		if errors.Is(err, ErrNotFound) && opt {
			return payload{}, nil
		}
		return nil, refError("configmap", name, err)
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles("configmap", name, data, items, opt, def)
}

func secretFiles(ctx context.Context, get objectGetter, pod *kube.Pod, name string, items []kube.KeyToPath, optional *bool, def os.FileMode) (payload, error) {
	opt := optional != nil && *optional
	s, err := get.Secret(ctx, pod.Namespace, name)
	if err != nil {
		if errors.Is(err, ErrNotFound) && opt {
			return payload{}, nil
		}
		return nil, refError("secret", name, err)
	}
	return keyFiles("secret", name, s.Data, items, opt, def)
}

// keyFiles maps keys to files: all keys when items is empty, else the
// listed ones at their paths and modes.
func keyFiles(kind, name string, data map[string][]byte, items []kube.KeyToPath, optional bool, def os.FileMode) (payload, error) {
	p := payload{}
	if len(items) == 0 {
		for k, v := range data {
			p[k] = file{Data: v, Mode: def}
		}
		return p, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, configErrorf("%s %q has no key %q", kind, name, it.Key)
		}
		p[it.Path] = file{Data: v, Mode: itemMode(it.Mode, def)}
	}
	return p, nil
}

func downwardFiles(pod *kube.Pod, items []kube.DownwardAPIVolumeFile, def os.FileMode, facts podFacts) (payload, error) {
	p := payload{}
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = fieldValue(pod, it.FieldRef.FieldPath, facts, true)
		case it.ResourceFieldRef != nil:
			c := findContainer(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return nil, configErrorf("downwardAPI item %q: container %q not found in the pod", it.Path, it.ResourceFieldRef.ContainerName)
			}
			v, err = resourceValue(it.ResourceFieldRef, c, facts.Allocatable)
		default:
			return nil, configErrorf("downwardAPI item %q has neither fieldRef nor resourceFieldRef", it.Path)
		}
		if err != nil {
			return nil, configErrorf("downwardAPI item %q: %v", it.Path, err)
		}
		p[it.Path] = file{Data: []byte(v), Mode: itemMode(it.Mode, def)}
	}
	return p, nil
}

// tokenCache keeps service-account tokens until 80 % of their lifetime has
// passed. When a refresh fails (offline) the old token is kept until it
// expires, so pods keep working as long as their tokens allow.
type tokenCache struct {
	src tokenGetter
	mu  sync.Mutex
	m   map[string]tokenEntry
}

type tokenEntry struct {
	token              string
	refreshAt, expires time.Time
}

func newTokenCache(src tokenGetter) *tokenCache {
	return &tokenCache{src: src, m: map[string]tokenEntry{}}
}

func (c *tokenCache) get(ctx context.Context, pod *kube.Pod, key string, aud []string, exp int64, now time.Time) (string, error) {
	k := string(pod.UID) + "/" + key + "/" + strings.Join(aud, ",") + "/" + strconv.FormatInt(exp, 10)
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if ok && now.Before(e.refreshAt) {
		return e.token, nil
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	tok, err := c.src.ServiceAccountToken(ctx, pod.Namespace, pod.Name, sa, aud, exp)
	if err != nil {
		if ok && now.Before(e.expires) {
			return e.token, nil
		}
		return "", fmt.Errorf("service account token for %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	iat, expAt, okTimes := jwtTimes(tok)
	if !okTimes {
		iat, expAt = now, now.Add(time.Duration(exp)*time.Second)
	}
	life := expAt.Sub(iat)
	e = tokenEntry{token: tok, refreshAt: iat.Add(life * 8 / 10), expires: expAt}
	if limit := now.Add(24 * time.Hour); e.refreshAt.After(limit) {
		e.refreshAt = limit
	}
	c.mu.Lock()
	c.m[k] = e
	c.mu.Unlock()
	return tok, nil
}

// forget drops a pod's tokens.
func (c *tokenCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if strings.HasPrefix(k, string(uid)+"/") {
			delete(c.m, k)
		}
	}
}

// jwtTimes reads iat and exp from a JWT's payload without verifying it
// (only to schedule the refresh).
func jwtTimes(tok string) (iat, exp time.Time, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return
	}
	var claims struct {
		Iat, Exp, Nbf int64
	}
	if json.Unmarshal(raw, &claims) != nil || claims.Exp == 0 {
		return
	}
	start := claims.Iat
	if start == 0 {
		start = claims.Nbf
	}
	if start == 0 || start >= claims.Exp {
		return
	}
	return time.Unix(start, 0), time.Unix(claims.Exp, 0), true
}

// volumeManager prepares pod volumes on the host.
type volumeManager struct {
	root   string
	get    objectGetter
	tokens *tokenCache
}

// volumeMountSource is where a volume lives on the host.
type volumeMountSource struct {
	HostPath string
	ReadOnly bool // content Verge owns and rewrites (configMap, secret, …)
}

func (m *volumeManager) podDir(uid types.UID) string {
	return filepath.Join(m.root, "pods", string(uid))
}

// setup creates or refreshes every volume of the pod and returns where
// each is on the host. It is idempotent; content that changed (a ConfigMap
// edit, a token refresh) is swapped in atomically.
func (m *volumeManager) setup(ctx context.Context, pod *kube.Pod, facts podFacts, now time.Time) (map[string]volumeMountSource, error) {
	out := make(map[string]volumeMountSource, len(pod.Spec.Volumes))
	gid := -1
	if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		gid = int(*sc.FSGroup)
	}
	var errs []error
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		src, err := m.setupOne(ctx, pod, v, facts, gid, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[v.Name] = src
	}
	return out, errors.Join(errs...)
}

func (m *volumeManager) setupOne(ctx context.Context, pod *kube.Pod, v *kube.Volume, facts podFacts, gid int, now time.Time) (volumeMountSource, error) {
	kind, err := volumeKind(v)
	if err != nil {
		return volumeMountSource{}, err
	}
	if v.HostPath != nil {
		return volumeMountSource{HostPath: v.HostPath.Path}, prepareHostPath(v)
	}
	dir := filepath.Join(m.podDir(pod.UID), "volumes", kind, v.Name)
	if v.EmptyDir != nil {
		return volumeMountSource{HostPath: dir}, prepareEmptyDir(dir, v.EmptyDir, gid)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return volumeMountSource{}, err
	}
	if v.Secret != nil || v.Projected != nil {
		// Secrets and tokens stay in memory, never on the node's disk.
		if err := ensureTmpfs(dir, ""); err != nil {
			return volumeMountSource{}, fmt.Errorf("volume %q: mounting tmpfs: %w", v.Name, err)
		}
	}
	p, err := renderVolume(ctx, m.get, m.tokens, pod, v, facts, now)
	if err != nil {
		return volumeMountSource{}, fmt.Errorf("volume %q: %w", v.Name, err)
	}
	if _, err := writeAtomicDir(dir, p, gid, now); err != nil {
		return volumeMountSource{}, fmt.Errorf("volume %q: %w", v.Name, err)
	}
	return volumeMountSource{HostPath: dir, ReadOnly: true}, nil
}

func prepareEmptyDir(dir string, ed *kube.EmptyDirVolumeSource, gid int) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	switch ed.Medium {
	case kube.StorageMediumDefault:
	case kube.StorageMediumMemory:
		opts := ""
		if ed.SizeLimit != nil && !ed.SizeLimit.IsZero() {
			opts = "size=" + strconv.FormatInt(ed.SizeLimit.Value(), 10)
		}
		if err := ensureTmpfs(dir, opts); err != nil {
			return fmt.Errorf("emptyDir medium Memory: %w", err)
		}
	default:
		return configErrorf("emptyDir medium %q is not supported at the edge (use \"\" or Memory)", ed.Medium)
	}
	mode := os.FileMode(0o777)
	if gid >= 0 {
		if err := os.Lchown(dir, -1, gid); err != nil {
			return err
		}
		mode |= os.ModeSetgid
	}
	return os.Chmod(dir, mode)
}

// prepareHostPath checks (or creates) a hostPath as its type demands.
func prepareHostPath(v *kube.Volume) error {
	hp := v.HostPath
	if !filepath.IsAbs(hp.Path) {
		return configErrorf("volume %q: hostPath %q must be absolute", v.Name, hp.Path)
	}
	t := kube.HostPathUnset
	if hp.Type != nil {
		t = *hp.Type
	}
	info, statErr := os.Stat(hp.Path)
	want := func(ok bool, what string) error {
		if statErr != nil {
			return configErrorf("volume %q: hostPath type check failed: %s is not a %s (%v)", v.Name, hp.Path, what, statErr)
		}
		if !ok {
			return configErrorf("volume %q: hostPath type check failed: %s is not a %s", v.Name, hp.Path, what)
		}
		return nil
	}
	switch t {
	case kube.HostPathUnset:
		return nil
	case kube.HostPathDirectoryOrCreate:
		if statErr != nil {
			return os.MkdirAll(hp.Path, 0o755)
		}
		return want(info.IsDir(), "directory")
	case kube.HostPathDirectory:
		return want(statErr == nil && info.IsDir(), "directory")
	case kube.HostPathFileOrCreate:
		if statErr != nil {
			if err := os.MkdirAll(filepath.Dir(hp.Path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
		return want(info.Mode().IsRegular(), "file")
	case kube.HostPathFile:
		return want(statErr == nil && info.Mode().IsRegular(), "file")
	case kube.HostPathSocket:
		return want(statErr == nil && info.Mode()&os.ModeSocket != 0, "socket")
	case kube.HostPathCharDev:
		return want(statErr == nil && info.Mode()&os.ModeCharDevice != 0, "character device")
	case kube.HostPathBlockDev:
		return want(statErr == nil && info.Mode()&os.ModeDevice != 0 && info.Mode()&os.ModeCharDevice == 0, "block device")
	}
	return configErrorf("volume %q: hostPath type %q is not known", v.Name, t)
}

// ensureTmpfs mounts a tmpfs on dir unless one already is (after a
// verge-edge restart the mount is still there).
func ensureTmpfs(dir, opts string) error {
	if mounted, err := isMountPoint(dir); err != nil || mounted {
		return err
	}
	data := "mode=0755"
	if opts != "" {
		data += "," + opts
	}
	return unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data)
}

// isMountPoint compares dir's device with its parent's.
func isMountPoint(dir string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(dir), &parent); err != nil {
		return false, err
	}
	return st.Dev != parent.Dev, nil
}

// cleanup unmounts and removes everything the pod had under RootDir.
func (m *volumeManager) cleanup(uid types.UID) error {
	m.tokens.forget(uid)
	dir := m.podDir(uid)
	if err := unmountUnder(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// podDirs lists the pod UIDs that have a directory under RootDir.
func (m *volumeManager) podDirs() []types.UID {
	entries, _ := os.ReadDir(filepath.Join(m.root, "pods"))
	var out []types.UID
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, types.UID(e.Name()))
		}
	}
	return out
}

// UnmountVolumes unmounts every volume mount (tmpfs for secrets, projected
// volumes and memory emptyDirs) under a pod runtime's RootDir. The runtime
// leaves them mounted when it stops, since the pods keep running; tools that
// tear a node down call this before deleting the directory.
func UnmountVolumes(rootDir string) error {
	return unmountUnder(filepath.Join(rootDir, "pods"))
}

// unmountUnder detaches every mount point at or below dir, deepest first.
func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	dir = filepath.Clean(dir)
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		mp := unescapeOctal(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	sort.Slice(points, func(a, b int) bool { return len(points[a]) > len(points[b]) })
	var errs []error
	for _, mp := range points {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeOctal undoes mountinfo's \NNN escapes.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
