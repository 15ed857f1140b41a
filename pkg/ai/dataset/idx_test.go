package dataset

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func encodeIDX(t *testing.T, x *IDX) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := EncodeIDX(&buf, x); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestIDXRoundTripPlainAndGzip(t *testing.T) {
	want := &IDX{Dims: []int{3, 2, 2}, Data: []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255}}
	plain := encodeIDX(t, want)
	if got := plain[:4]; !bytes.Equal(got, []byte{0, 0, 0x08, 3}) {
		t.Fatalf("magic = % x, want 00 00 08 03", got)
	}
	for name, data := range map[string][]byte{"plain": plain, "gzip": gzipBytes(t, plain)} {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeIDX(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Dims, want.Dims) || !bytes.Equal(got.Data, want.Data) {
				t.Fatalf("decoded %v %v, want %v %v", got.Dims, got.Data, want.Dims, want.Data)
			}
			if got.Count() != 3 || got.ItemSize() != 4 {
				t.Fatalf("Count, ItemSize = %d, %d, want 3, 4", got.Count(), got.ItemSize())
			}
		})
	}
}

func TestDecodeIDXRejectsMalformedFiles(t *testing.T) {
	valid := encodeIDX(t, &IDX{Dims: []int{2, 3}, Data: []byte{1, 2, 3, 4, 5, 6}})
	corruptGzip := gzipBytes(t, valid)
	corruptGzip[len(corruptGzip)-6] ^= 0xff // CRC-32 trailer
	for _, tc := range []struct {
		name, data, problem string
	}{
		{"empty", "", "too short"},
		{"short header", "\x00\x00\x08", "too short"},
		{"bad magic", "\x12\x34\x08\x01\x00\x00\x00\x01x", "bad IDX magic"},
		{"float32 elements", "\x00\x00\x0d\x01\x00\x00\x00\x01abcd", "0x0D (float32) is not supported"},
		{"zero dims", "\x00\x00\x08\x00", "0 dimensions"},
		{"truncated dims", "\x00\x00\x08\x02\x00\x00\x00\x01", "header truncated"},
		{"truncated data", string(valid[:len(valid)-1]), "truncated: dimensions [2 3] need 6 bytes, file has 5"},
		{"trailing data", string(valid) + "x", "longer than its header"},
		{"too large", "\x00\x00\x08\x02\xff\xff\xff\xff\xff\xff\xff\xff", "exceed"},
		{"corrupt gzip", string(corruptGzip), "corrupt gzip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeIDX(strings.NewReader(tc.data))
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FormatError", err)
			}
			if !strings.Contains(fe.Problem, tc.problem) {
				t.Fatalf("problem %q does not contain %q", fe.Problem, tc.problem)
			}
		})
	}
}

func TestReadIDXNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "labels-idx1-ubyte")
	if err := os.WriteFile(path, []byte("\x00\x00\x08\x01\x00\x00\x00\x05ab"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadIDX(path)
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Path != path {
		t.Fatalf("err = %v, want a *FormatError for %s", err, path)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("message %q should name the file and the problem", err)
	}

	_, err = ReadIDX(filepath.Join(dir, "missing"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v, want os.ErrNotExist", err)
	}
}

func TestEncodeIDXChecksSizes(t *testing.T) {
	var buf bytes.Buffer
	if err := EncodeIDX(&buf, &IDX{Dims: []int{2, 2}, Data: []byte{1, 2, 3}}); err == nil {
		t.Fatal("encoded 3 bytes for dimensions [2 2]")
	}
	if err := EncodeIDX(&buf, &IDX{}); err == nil {
		t.Fatal("encoded a file without dimensions")
	}
}
