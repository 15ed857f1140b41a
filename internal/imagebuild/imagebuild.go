// Package imagebuild packages a static binary as a container image and
// pushes it to a registry: the image has one layer holding the binary at
// /<name> and runs it as its entrypoint. `verge image build` uses it for
// users' programs and `verge up` for the pause image its edge nodes run in
// every pod sandbox.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Spec describes an image.
type Spec struct {
	// Binary is the program, a static Linux executable.
	Binary []byte
	// Name is its file name in the image (default "app").
	Name string
	// Args are appended to the entrypoint (the image's CMD).
	Args []string
	// Arch is the CPU architecture (default: the binary's, from its ELF
	// header).
	Arch string
}

// Build makes the image. The layer and config carry a fixed timestamp, so
// the same binary always yields the same digest.
func Build(s Spec) (v1.Image, error) {
	if s.Name == "" {
		s.Name = "app"
	}
	if s.Arch == "" {
		arch, err := elfArch(s.Binary)
		if err != nil {
			return nil, err
		}
		s.Arch = arch
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: s.Name, Mode: 0o755, Size: int64(len(s.Binary)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(s.Binary); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", s.Arch
	cf.Config.Entrypoint = []string{"/" + s.Name}
	cf.Config.Cmd = s.Args
	cf.Config.WorkingDir = "/"
	return mutate.ConfigFile(img, cf)
}

// elfArch reads the GOARCH-style architecture of a Linux executable.
func elfArch(bin []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return "", errors.New("the binary is not a Linux executable (ELF): build it with GOOS=linux CGO_ENABLED=0")
	}
	defer func() { _ = f.Close() }()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", errors.New("the file is not an executable")
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", errors.New("the binary is dynamically linked; the image has no libc: build it static (CGO_ENABLED=0)")
		}
	}
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	case elf.EM_ARM:
		return "arm", nil
	case elf.EM_386:
		return "386", nil
	}
	return "", fmt.Errorf("unsupported architecture %s", f.Machine)
}

// Push uploads img as ref (host:port/repository:tag) over plain HTTP (the
// local registry listens on loopback) and returns the reference by digest.
func Push(ctx context.Context, img v1.Image, ref string) (string, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", fmt.Errorf("image name %q: %w (want HOST:PORT/NAME:TAG)", ref, err)
	}
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithTransport(http.DefaultTransport)); err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return r.Context().Digest(d.String()).String(), nil
}

// BuildFile reads a binary from path and builds its image, named after the
// file.
func BuildFile(path string, args []string) (v1.Image, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	img, err := Build(Spec{Binary: bin, Name: filepath.Base(path), Args: args})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}
