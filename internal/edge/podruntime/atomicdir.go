package podruntime

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// file is one file of a volume's content.
type file struct {
	Data []byte
	Mode os.FileMode
}

// payload is a volume's content by relative path.
type payload map[string]file

// dataLink is the symlink naming the current generation of an atomic
// directory; user-visible names are symlinks through it.
const dataLink = "..data"

// writeAtomicDir makes the visible content of dir exactly p, so that a
// reader inside the container sees the old content or the new, never a mix:
// the files are written to a fresh hidden directory "..<timestamp>.<rand>",
// a symlink "..data" is switched to it with one rename, and each top-level
// name is a symlink "name -> ..data/name". gid >= 0 makes the files
// group-owned and group-readable (the pod's fsGroup). It reports whether it
// changed anything.
func writeAtomicDir(dir string, p payload, gid int, now time.Time) (bool, error) {
	if err := validatePayload(p); err != nil {
		return false, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	old, _ := os.Readlink(filepath.Join(dir, dataLink))
	if old != "" && sameContent(filepath.Join(dir, old), p, gid) {
		return false, ensureUserLinks(dir, p)
	}

	gen, err := os.MkdirTemp(dir, now.UTC().Format("..2006_01_02_15_04_05.")+"*")
	if err != nil {
		return false, err
	}
	if err := os.Chmod(gen, 0o755); err != nil {
		return false, err
	}
	paths := sortedPaths(p)
	for _, rel := range paths {
		f := p[rel]
		full := filepath.Join(gen, rel)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			os.RemoveAll(gen)
			return false, err
		}
		mode := f.Mode
		if gid >= 0 {
			mode |= 0o440
		}
		if err := os.WriteFile(full, f.Data, mode); err != nil {
			os.RemoveAll(gen)
			return false, err
		}
		// WriteFile's mode is subject to the umask.
		if err := os.Chmod(full, mode); err != nil {
			os.RemoveAll(gen)
			return false, err
		}
		if gid >= 0 {
			if err := os.Lchown(full, -1, gid); err != nil {
				os.RemoveAll(gen)
				return false, err
			}
		}
	}

	tmp := filepath.Join(dir, dataLink+"_tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
		os.RemoveAll(gen)
		return false, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		os.Remove(tmp)
		os.RemoveAll(gen)
		return false, err
	}
	if err := ensureUserLinks(dir, p); err != nil {
		return true, err
	}
	if old != "" && old != filepath.Base(gen) && strings.HasPrefix(old, "..") {
		os.RemoveAll(filepath.Join(dir, old))
	}
	// Generations left by a crash between MkdirTemp and the rename.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() && strings.HasPrefix(n, "..") && n != filepath.Base(gen) {
			os.RemoveAll(filepath.Join(dir, n))
		}
	}
	return true, nil
}

// validatePayload rejects paths that could escape the directory or clash
// with its bookkeeping names.
func validatePayload(p payload) error {
	for rel := range p {
		if rel == "" || filepath.IsAbs(rel) {
			return configErrorf("volume file path %q must be a non-empty relative path", rel)
		}
		for _, part := range strings.Split(rel, "/") {
			if part == ".." || part == "." || part == "" {
				return configErrorf("volume file path %q must not contain '..', '.' or empty elements", rel)
			}
		}
		if strings.HasPrefix(rel, "..") {
			return configErrorf("volume file path %q must not start with '..'", rel)
		}
	}
	return nil
}

func sortedPaths(p payload) []string {
	out := make([]string, 0, len(p))
	for k := range p {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// topLevel returns the first path element of every payload path.
func topLevel(p payload) map[string]bool {
	out := map[string]bool{}
	for rel := range p {
		out[strings.SplitN(rel, "/", 2)[0]] = true
	}
	return out
}

// ensureUserLinks creates "name -> ..data/name" for each top-level name and
// removes links for names that are gone.
func ensureUserLinks(dir string, p payload) error {
	want := topLevel(p)
	for name := range want {
		link := filepath.Join(dir, name)
		target := filepath.Join(dataLink, name)
		if cur, err := os.Readlink(link); err == nil {
			if cur == target {
				continue
			}
			os.Remove(link)
		} else if !errors.Is(err, fs.ErrNotExist) {
			// Something that is not a symlink sits there: not ours to keep.
			if err := os.RemoveAll(link); err != nil {
				return err
			}
		}
		if err := os.Symlink(target, link); err != nil {
			return fmt.Errorf("linking %s: %w", link, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "..") || want[n] {
			continue
		}
		if e.Type()&fs.ModeSymlink != 0 {
			os.Remove(filepath.Join(dir, n))
		}
	}
	return nil
}

// sameContent reports whether gen holds exactly p (data and modes).
func sameContent(gen string, p payload, gid int) bool {
	count := 0
	same := true
	err := filepath.WalkDir(gen, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(gen, path)
		f, ok := p[rel]
		if !ok {
			same = false
			return filepath.SkipAll
		}
		count++
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := f.Mode
		if gid >= 0 {
			mode |= 0o440
		}
		if info.Mode().Perm() != mode.Perm() {
			same = false
			return filepath.SkipAll
		}
		data, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(data, f.Data) {
			same = false
			return filepath.SkipAll
		}
		return nil
	})
	return err == nil && same && count == len(p)
}
