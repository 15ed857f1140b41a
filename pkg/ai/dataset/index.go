package dataset

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
)

// IndexEntry is one line of a Sedna-style txt index: a sample, named by the
// IDX images file that holds it and its item number there, and its label.
//
// Sedna's Dataset (format txt) points at an index file with one "path
// label" line per sample; its local controller reports the line count as
// numberOfSamples. Verge's reference workloads keep the images in IDX files
// and write the path as "<idx file>#<item>", for example
//
//	/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz#41 7
//
// so that an index describes a shard without copying images, and the
// controller's sample count stays true.
type IndexEntry struct {
	// Images is the IDX images file; a relative path is resolved against
	// the directory of the index file. It must not contain whitespace.
	Images string
	// Item is the sample's position in Images, from 0.
	Item int
	// Label is the sample's class.
	Label uint8
}

// IndexEntries returns the entries for the samples at indices of the IDX
// images file images, whose labels are labels (indexed like the file).
func IndexEntries(images string, labels []uint8, indices []int) []IndexEntry {
	out := make([]IndexEntry, len(indices))
	for i, idx := range indices {
		out[i] = IndexEntry{Images: images, Item: idx, Label: labels[idx]}
	}
	return out
}

// WriteIndex writes entries as index lines, one per sample, each ending in
// a newline.
func WriteIndex(w io.Writer, entries []IndexEntry) error {
	bw := bufio.NewWriter(w)
	for i, e := range entries {
		if e.Images == "" || strings.ContainsFunc(e.Images, unicode.IsSpace) || strings.Contains(e.Images, "#") {
			return fmt.Errorf("dataset: index entry %d: images path %q is empty or contains whitespace or '#'", i, e.Images)
		}
		if e.Item < 0 {
			return fmt.Errorf("dataset: index entry %d: negative item %d", i, e.Item)
		}
		fmt.Fprintf(bw, "%s#%d %d\n", e.Images, e.Item, e.Label)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("dataset: write index: %w", err)
	}
	return nil
}

// ParseIndex reads index lines ("<idx file>#<item> <label>", separated by
// spaces or tabs). Blank lines are skipped; any other malformed line yields
// a *FormatError naming the line. Writers should not emit blank lines:
// Sedna's controller may count them as samples.
func ParseIndex(r io.Reader) ([]IndexEntry, error) {
	var out []IndexEntry
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		e, problem := parseIndexLine(text)
		if problem != "" {
			return nil, &FormatError{Problem: fmt.Sprintf("index line %d %q: %s", line, text, problem)}
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dataset: read index: %w", err)
	}
	return out, nil
}

func parseIndexLine(text string) (IndexEntry, string) {
	fields := strings.Fields(text)
	if len(fields) != 2 {
		return IndexEntry{}, "want two fields, \"<idx file>#<item> <label>\""
	}
	ref, labelText := fields[0], fields[1]
	hash := strings.LastIndexByte(ref, '#')
	if hash <= 0 {
		return IndexEntry{}, "the sample must be \"<idx file>#<item>\""
	}
	item, err := strconv.Atoi(ref[hash+1:])
	if err != nil || item < 0 {
		return IndexEntry{}, fmt.Sprintf("item %q is not a non-negative integer", ref[hash+1:])
	}
	label, err := strconv.ParseUint(labelText, 10, 8)
	if err != nil {
		return IndexEntry{}, fmt.Sprintf("label %q is not an integer from 0 to 255", labelText)
	}
	return IndexEntry{Images: ref[:hash], Item: item, Label: uint8(label)}, ""
}

// LoadIndex reads the index file at path and the IDX images files it names
// (each once), and returns the samples in index order as a Set with the
// given number of classes, features scaled to [0, 1]. Errors name the
// index file, and the line or IDX file at fault.
func LoadIndex(path string, classes int) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: open index: %w", err)
	}
	defer f.Close()
	entries, err := ParseIndex(f)
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return nil, &FormatError{Path: path, Problem: fe.Problem}
		}
		return nil, fmt.Errorf("dataset: %s: %w", path, err)
	}
	if len(entries) == 0 {
		return nil, &FormatError{Path: path, Problem: "index lists no samples"}
	}
	if classes < 1 || classes > MaxClasses {
		return nil, fmt.Errorf("dataset: load index %s: %d classes, want 1 to %d", path, classes, MaxClasses)
	}

	base := filepath.Dir(path)
	files := map[string]*IDX{}
	s := &Set{Y: make([]uint8, 0, len(entries)), Classes: classes}
	for i, e := range entries {
		images := e.Images
		if !filepath.IsAbs(images) {
			images = filepath.Join(base, images)
		}
		x, ok := files[images]
		if !ok {
			x, err = ReadIDX(images)
			if err != nil {
				return nil, fmt.Errorf("dataset: index %s: %w", path, err)
			}
			if len(x.Dims) < 2 {
				return nil, &FormatError{Path: path, Problem: fmt.Sprintf("%s has dimensions %v, not an images file", images, x.Dims)}
			}
			files[images] = x
		}
		switch {
		case s.Dim == 0:
			s.Dim = x.ItemSize()
			s.X = make([]float32, 0, len(entries)*s.Dim)
		case x.ItemSize() != s.Dim:
			return nil, &FormatError{Path: path, Problem: fmt.Sprintf("sample %d: %s has %d features per item, earlier samples %d", i, images, x.ItemSize(), s.Dim)}
		}
		if e.Item >= x.Count() {
			return nil, &FormatError{Path: path, Problem: fmt.Sprintf("sample %d: item %d is beyond the %d items of %s", i, e.Item, x.Count(), images)}
		}
		if int(e.Label) >= classes {
			return nil, &FormatError{Path: path, Problem: fmt.Sprintf("sample %d: label %d, want below %d", i, e.Label, classes)}
		}
		for _, b := range x.Data[e.Item*s.Dim : (e.Item+1)*s.Dim] {
			s.X = append(s.X, float32(b)/255)
		}
		s.Y = append(s.Y, e.Label)
	}
	return s, nil
}
