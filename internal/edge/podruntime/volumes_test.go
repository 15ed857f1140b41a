package podruntime

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

func TestRenderVolumes(t *testing.T) {
	mode := int32(0o600)
	opt := true
	objs := objects{
		cms:     map[string]*kube.ConfigMap{"ns/cfg": {Data: map[string]string{"a": "1", "b": "2"}, BinaryData: map[string][]byte{"bin": {0, 1}}}},
		secrets: map[string]*kube.Secret{"ns/sec": {Data: map[string][]byte{"pw": []byte("x")}}},
	}
	pod := &kube.Pod{ObjectMeta: kube.ObjectMeta{Name: "p", Namespace: "ns", UID: "u", Labels: map[string]string{"b": "2", "a": "1"}}}
	tokens := newTokenCache(tokenFunc(func(ns, podName, sa string, aud []string, exp int64) (string, error) {
		return ns + "/" + podName + "/" + sa + "/" + strings.Join(aud, ",") + "/" + itoa32(int32(exp)), nil
	}))
	cases := []struct {
		name string
		vol  kube.VolumeSource
		want map[string]string // path → data@mode
		err  string
	}{
		{"configMap, all keys", kube.VolumeSource{ConfigMap: &kube.ConfigMapVolumeSource{LocalObjectReference: kube.LocalObjectReference{Name: "cfg"}}},
			map[string]string{"a": "1@644", "b": "2@644", "bin": "\x00\x01@644"}, ""},
		{"configMap items with modes", kube.VolumeSource{ConfigMap: &kube.ConfigMapVolumeSource{LocalObjectReference: kube.LocalObjectReference{Name: "cfg"},
			Items: []kube.KeyToPath{{Key: "a", Path: "dir/a.txt", Mode: &mode}}, DefaultMode: ptr(int32(0o440))}},
			map[string]string{"dir/a.txt": "1@600"}, ""},
		{"configMap missing key", kube.VolumeSource{ConfigMap: &kube.ConfigMapVolumeSource{LocalObjectReference: kube.LocalObjectReference{Name: "cfg"},
			Items: []kube.KeyToPath{{Key: "zz", Path: "zz"}}}}, nil, `has no key "zz"`},
		{"optional missing configMap", kube.VolumeSource{ConfigMap: &kube.ConfigMapVolumeSource{LocalObjectReference: kube.LocalObjectReference{Name: "nope"}, Optional: &opt}},
			map[string]string{}, ""},
		{"missing configMap", kube.VolumeSource{ConfigMap: &kube.ConfigMapVolumeSource{LocalObjectReference: kube.LocalObjectReference{Name: "nope"}}},
			nil, `configmap "nope" not found`},
		{"secret with defaultMode", kube.VolumeSource{Secret: &kube.SecretVolumeSource{SecretName: "sec", DefaultMode: &mode}},
			map[string]string{"pw": "x@600"}, ""},
		{"downwardAPI", kube.VolumeSource{DownwardAPI: &kube.DownwardAPIVolumeSource{Items: []kube.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &kube.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "name", FieldRef: &kube.ObjectFieldSelector{FieldPath: "metadata.name"}}}}},
			map[string]string{"labels": "a=\"1\"\nb=\"2\"@644", "name": "p@644"}, ""},
		{"projected service account token, configMap, downwardAPI", kube.VolumeSource{Projected: &kube.ProjectedVolumeSource{Sources: []kube.VolumeProjection{
			{ServiceAccountToken: &kube.ServiceAccountTokenProjection{Path: "token", Audience: "api", ExpirationSeconds: ptr(int64(600))}},
			{ConfigMap: &kube.ConfigMapProjection{LocalObjectReference: kube.LocalObjectReference{Name: "cfg"}, Items: []kube.KeyToPath{{Key: "a", Path: "ca.crt"}}}},
			{DownwardAPI: &kube.DownwardAPIProjection{Items: []kube.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &kube.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		}}}, map[string]string{"token": "ns/p/default/api/600@644", "ca.crt": "1@644", "namespace": "ns@644"}, ""},
		{"projected cluster trust bundle is refused", kube.VolumeSource{Projected: &kube.ProjectedVolumeSource{Sources: []kube.VolumeProjection{
			{ClusterTrustBundle: &kube.Unsupported{}}}}}, nil, "not supported at the edge"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := &kube.Volume{Name: "v", VolumeSource: tc.vol}
			p, err := renderVolume(context.Background(), objs, tokens, pod, v, podFacts{}, t0)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, f := range p {
				got[k] = string(f.Data) + "@" + octal(f.Mode)
			}
			for k, w := range tc.want {
				if got[k] != w {
					t.Errorf("%s: got %q, want %q", k, got[k], w)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("files %v, want %v", got, tc.want)
			}
		})
	}
}

func octal(m os.FileMode) string {
	const digits = "01234567"
	p := uint32(m.Perm())
	return string([]byte{digits[p>>6&7], digits[p>>3&7], digits[p&7]})
}

type tokenFunc func(ns, podName, sa string, aud []string, exp int64) (string, error)

func (f tokenFunc) ServiceAccountToken(_ context.Context, ns, podName, sa string, aud []string, exp int64) (string, error) {
	return f(ns, podName, sa, aud, exp)
}

func jwt(iat, exp int64) string {
	claims, _ := json.Marshal(map[string]int64{"iat": iat, "exp": exp})
	return "e30." + base64.RawURLEncoding.EncodeToString(claims) + ".sig"
}

func TestTokenCacheRefreshAndOffline(t *testing.T) {
	calls := 0
	var fail error
	now := time.Unix(1_000_000, 0)
	cache := newTokenCache(tokenFunc(func(_, _, _ string, _ []string, _ int64) (string, error) {
		calls++
		if fail != nil {
			return "", fail
		}
		return jwt(now.Unix(), now.Unix()+1000), nil
	}))
	pod := &kube.Pod{ObjectMeta: kube.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}
	first, err := cache.get(context.Background(), pod, "v/token", nil, 1000, now)
	if err != nil || calls != 1 {
		t.Fatal(err, calls)
	}
	// Before 80 % of its life the cached token is used.
	if tok, _ := cache.get(context.Background(), pod, "v/token", nil, 1000, now.Add(799*time.Second)); tok != first || calls != 1 {
		t.Fatalf("refreshed too early (calls %d)", calls)
	}
	// After, a refresh; if the cloud is unreachable the old token serves
	// until it expires.
	fail = errors.New("offline")
	if tok, err := cache.get(context.Background(), pod, "v/token", nil, 1000, now.Add(801*time.Second)); err != nil || tok != first || calls != 2 {
		t.Fatalf("offline refresh: %q %v calls %d", tok, err, calls)
	}
	if _, err := cache.get(context.Background(), pod, "v/token", nil, 1000, now.Add(1001*time.Second)); err == nil {
		t.Fatal("an expired token must not be served")
	}
}

func TestAtomicDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	changed, err := writeAtomicDir(dir, payload{"a": {Data: []byte("1"), Mode: 0o644}, "sub/b": {Data: []byte("2"), Mode: 0o600}}, -1, t0)
	if err != nil || !changed {
		t.Fatal(err, changed)
	}
	if read("a") != "1" || read("sub/b") != "2" {
		t.Fatalf("content a=%q sub/b=%q", read("a"), read("sub/b"))
	}
	if info, _ := os.Stat(filepath.Join(dir, "sub/b")); info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", info.Mode())
	}
	// Same content: nothing changes, not even the generation.
	gen1, _ := os.Readlink(filepath.Join(dir, dataLink))
	changed, err = writeAtomicDir(dir, payload{"a": {Data: []byte("1"), Mode: 0o644}, "sub/b": {Data: []byte("2"), Mode: 0o600}}, -1, t0.Add(time.Second))
	gen2, _ := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil || changed || gen1 != gen2 {
		t.Fatalf("rewrote identical content: changed=%v %v→%v %v", changed, gen1, gen2, err)
	}
	// New content: swapped in, removed keys disappear, the old generation
	// is gone.
	changed, err = writeAtomicDir(dir, payload{"a": {Data: []byte("one"), Mode: 0o644}, "c": {Data: []byte("3"), Mode: 0o644}}, -1, t0.Add(2*time.Second))
	if err != nil || !changed {
		t.Fatal(err)
	}
	if read("a") != "one" || read("c") != "3" || !strings.Contains(read("sub/b"), "no such file") {
		t.Fatalf("after update a=%q c=%q sub/b=%q", read("a"), read("c"), read("sub/b"))
	}
	if _, err := os.Stat(filepath.Join(dir, gen1)); !os.IsNotExist(err) {
		t.Fatalf("old generation %s still there", gen1)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 4 { // ..<gen>, ..data, a, c
		t.Fatalf("directory holds %v", names)
	}
	// Paths that could escape are refused.
	for _, bad := range []string{"../x", "/abs", "a/../../x", "..hidden", ""} {
		if _, err := writeAtomicDir(dir, payload{bad: {Data: []byte("x"), Mode: 0o644}}, -1, t0); err == nil {
			t.Errorf("path %q accepted", bad)
		}
	}
}

func TestHostPathTypes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	hp := func(path string, typ kube.HostPathType) *kube.Volume {
		return &kube.Volume{Name: "h", VolumeSource: kube.VolumeSource{HostPath: &kube.HostPathVolumeSource{Path: path, Type: &typ}}}
	}
	cases := []struct {
		vol *kube.Volume
		ok  bool
	}{
		{hp(dir, kube.HostPathDirectory), true},
		{hp(file, kube.HostPathDirectory), false},
		{hp(file, kube.HostPathFile), true},
		{hp(filepath.Join(dir, "missing"), kube.HostPathFile), false},
		{hp(filepath.Join(dir, "new/dir"), kube.HostPathDirectoryOrCreate), true},
		{hp(filepath.Join(dir, "new2/file"), kube.HostPathFileOrCreate), true},
		{hp(file, kube.HostPathSocket), false},
		{hp("relative", kube.HostPathUnset), false},
	}
	for _, tc := range cases {
		err := prepareHostPath(tc.vol)
		if (err == nil) != tc.ok {
			t.Errorf("%s (%s): err %v, want ok=%v", tc.vol.HostPath.Path, *tc.vol.HostPath.Type, err, tc.ok)
		}
	}
	if info, err := os.Stat(filepath.Join(dir, "new2/file")); err != nil || !info.Mode().IsRegular() {
		t.Fatalf("FileOrCreate did not create a file: %v", err)
	}
}

func TestSafeSubPath(t *testing.T) {
	base := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(base, "escape")); err != nil {
		t.Fatal(err)
	}
	if p, err := safeSubPath(base, "logs/app"); err != nil || !strings.HasSuffix(p, "logs/app") {
		t.Fatalf("a new subPath is created inside: %q %v", p, err)
	}
	for _, bad := range []string{"escape", "escape/x", "../x", "/etc"} {
		if _, err := safeSubPath(base, bad); err == nil {
			t.Errorf("subPath %q accepted", bad)
		}
	}
}
