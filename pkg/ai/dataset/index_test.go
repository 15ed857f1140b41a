package dataset

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestIndexRoundTripWithRelativePaths(t *testing.T) {
	dir := t.TempDir()
	images := &IDX{Dims: []int{4, 2}, Data: []byte{0, 255, 51, 51, 102, 102, 153, 153}}
	if err := os.WriteFile(filepath.Join(dir, "imgs-idx2-ubyte.gz"), gzipBytes(t, encodeIDX(t, images)), 0o644); err != nil {
		t.Fatal(err)
	}
	labels := []uint8{3, 1, 4, 1}
	entries := IndexEntries("imgs-idx2-ubyte.gz", labels, []int{2, 0, 3})

	var buf bytes.Buffer
	if err := WriteIndex(&buf, entries); err != nil {
		t.Fatal(err)
	}
	if want := "imgs-idx2-ubyte.gz#2 4\nimgs-idx2-ubyte.gz#0 3\nimgs-idx2-ubyte.gz#3 1\n"; buf.String() != want {
		t.Fatalf("index text %q, want %q", buf.String(), want)
	}
	parsed, err := ParseIndex(strings.NewReader(buf.String() + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(parsed, entries) {
		t.Fatalf("parsed %v, want %v", parsed, entries)
	}

	sub := filepath.Join(dir, "shards")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	// The index lives in a subdirectory and points back up with "..".
	for i := range entries {
		entries[i].Images = "../" + entries[i].Images
	}
	buf.Reset()
	if err := WriteIndex(&buf, entries); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sub, "shard-0.txt")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadIndex(path, 5)
	if err != nil {
		t.Fatal(err)
	}
	if s.Dim != 2 || s.Classes != 5 || !slices.Equal(s.Y, []uint8{4, 3, 1}) || !slices.Equal(s.X, []float32{0.4, 0.4, 0, 1, 0.6, 0.6}) {
		t.Fatalf("LoadIndex = %+v", s)
	}
}

func TestLoadIndexOfFashionMNISTShard(t *testing.T) {
	test := loadTest(t)
	imagesPath, _, err := FashionMNISTFiles("", TestSplit)
	if err != nil {
		t.Fatal(err)
	}
	shards, err := SplitIID(test.Len(), 50, 1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "fmnist-shard-0.txt")
	var buf bytes.Buffer
	if err := WriteIndex(&buf, IndexEntries(imagesPath, test.Y, shards[0])); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadIndex(path, FashionMNISTClasses)
	if err != nil {
		t.Fatal(err)
	}
	want := test.Subset(shards[0])
	if !slices.Equal(got.X, want.X) || !slices.Equal(got.Y, want.Y) || got.Dim != want.Dim {
		t.Fatal("shard loaded through its index differs from the subset")
	}
}

func TestIndexErrorsNameFileAndLine(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "imgs"), encodeIDX(t, &IDX{Dims: []int{2, 3}, Data: make([]byte, 6)}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "labels"), encodeIDX(t, &IDX{Dims: []int{2}, Data: make([]byte, 2)}), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, text, problem string
	}{
		{"one field", "imgs#0\n", "line 1"},
		{"no item", "imgs#0 1\nimgs 1\n", "line 2"},
		{"bad item", "imgs#x 1\n", "item \"x\""},
		{"bad label", "imgs#0 256\n", "label \"256\""},
		{"item beyond file", "imgs#2 1\n", "item 2 is beyond the 2 items"},
		{"label beyond classes", "imgs#1 3\n", "label 3, want below 3"},
		{"missing images", "nope#0 1\n", "nope"},
		{"labels file as images", "labels#0 1\n", "not an images file"},
		{"empty", "\n\n", "no samples"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "index.txt")
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadIndex(path, 3)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("err = %v, want it to name %s and %q", err, path, tc.problem)
			}
		})
	}
	if _, err := LoadIndex(filepath.Join(dir, "absent.txt"), 3); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("absent index: err = %v", err)
	}
	var buf bytes.Buffer
	for _, bad := range []IndexEntry{{Images: "a b", Item: 0}, {Images: "", Item: 0}, {Images: "a#b"}, {Images: "a", Item: -1}} {
		if err := WriteIndex(&buf, []IndexEntry{bad}); err == nil {
			t.Errorf("WriteIndex accepted %+v", bad)
		}
	}
}

func loadTest(t *testing.T) *Set {
	t.Helper()
	s, err := LoadFashionMNIST("", TestSplit)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
