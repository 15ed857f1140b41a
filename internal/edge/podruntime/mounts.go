package podruntime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// containerMounts maps a container's volumeMounts onto host paths. A
// subPath (or expanded subPathExpr) must stay inside its volume after
// symlinks are resolved; a missing subPath directory is created, as the
// kubelet does.
func containerMounts(c *kube.Container, vols map[string]volumeMountSource, env []envVar, termMsgHostPath string) ([]*runtimeapi.Mount, error) {
	lookup := func(name string) (string, bool) {
		for i := len(env) - 1; i >= 0; i-- {
			if env[i].Name == name {
				return env[i].Value, true
			}
		}
		return "", false
	}
	var mounts []*runtimeapi.Mount
	for _, vm := range c.VolumeMounts {
		src, ok := vols[vm.Name]
		if !ok {
			return nil, configErrorf("volumeMount %q of container %s names no volume of the pod", vm.Name, c.Name)
		}
		host := src.HostPath
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expand(vm.SubPathExpr, lookup)
			if strings.Contains(sub, "$(") {
				return nil, configErrorf("volumeMount %q: subPathExpr %q refers to a variable the container does not define", vm.Name, vm.SubPathExpr)
			}
		}
		if sub != "" {
			p, err := safeSubPath(host, sub)
			if err != nil {
				return nil, configErrorf("volumeMount %q: %v", vm.Name, err)
			}
			host = p
		}
		mounts = append(mounts, &runtimeapi.Mount{
			ContainerPath: vm.MountPath,
			HostPath:      host,
			Readonly:      vm.ReadOnly || src.ReadOnly,
			Propagation:   propagationOf(vm.MountPropagation),
		})
	}
	if termMsgHostPath != "" && c.TerminationMessagePath != "" {
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: c.TerminationMessagePath, HostPath: termMsgHostPath})
	}
	return mounts, nil
}

// safeSubPath joins base and sub and checks that the result, with symlinks
// resolved, is inside base.
func safeSubPath(base, sub string) (string, error) {
	if filepath.IsAbs(sub) {
		return "", fmt.Errorf("subPath %q must be relative", sub)
	}
	for _, part := range strings.Split(filepath.ToSlash(sub), "/") {
		if part == ".." {
			return "", fmt.Errorf("subPath %q must not contain '..'", sub)
		}
	}
	realBase, err := filepath.EvalSymlinks(base)
	if err != nil {
		return "", err
	}
	full := filepath.Join(base, sub)
	if _, err := os.Lstat(full); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(full, 0o755); err != nil {
			return "", err
		}
	}
	real, err := filepath.EvalSymlinks(full)
	if err != nil {
		return "", err
	}
	if real != realBase && !strings.HasPrefix(real, realBase+"/") {
		return "", fmt.Errorf("subPath %q resolves to %s, outside the volume", sub, real)
	}
	return real, nil
}
