package model

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, arch := range []Arch{EdgeArch(), CloudArch(), {Inputs: 3, Hidden: []int{2, 2, 2}, Classes: 2}} {
		m, err := New(arch, 5)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "models", "m.bin")
		if err := m.Save(path); err != nil {
			t.Fatal(err)
		}
		got, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Arch().Equal(arch) || !weightsEqual(got.Weights(), m.Weights()) {
			t.Fatalf("%s: loaded model differs", arch)
		}
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(len(fileMagic) + 4 + 12 + 4*len(arch.Hidden) + 4 + 4*arch.NumParams() + 4); info.Size() < want {
			t.Fatalf("%s: file of %d bytes, want at least %d", arch, info.Size(), want)
		}
	}
}

func TestMarshalIsStable(t *testing.T) {
	m, _ := New(Arch{Inputs: 2, Classes: 2}, 1)
	if err := m.SetWeights([]Tensor{
		{Name: "dense0/weight", Shape: []int{2, 2}, Data: []float32{1, -2, 0.5, 0}},
		{Name: "dense0/bias", Shape: []int{2}, Data: []float32{0.25, -1}},
	}); err != nil {
		t.Fatal(err)
	}
	data, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// The layout of docs/ai-reference-models.md, byte for byte.
	want := []byte("VRGMODEL")
	want = binary.LittleEndian.AppendUint16(want, 1)
	want = binary.LittleEndian.AppendUint16(want, 0)
	for _, v := range []uint32{2, 2, 0, 2} { // inputs, classes, hidden layers, tensors
		want = binary.LittleEndian.AppendUint32(want, v)
	}
	want = append(binary.LittleEndian.AppendUint16(want, 13), "dense0/weight"...)
	want = append(want, 2)
	want = binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(want, 2), 2)
	for _, v := range []uint32{0x3f800000, 0xc0000000, 0x3f000000, 0} {
		want = binary.LittleEndian.AppendUint32(want, v)
	}
	want = append(binary.LittleEndian.AppendUint16(want, 11), "dense0/bias"...)
	want = append(want, 1)
	want = binary.LittleEndian.AppendUint32(want, 2)
	for _, v := range []uint32{0x3e800000, 0xbf800000} {
		want = binary.LittleEndian.AppendUint32(want, v)
	}
	want = binary.LittleEndian.AppendUint32(want, checksum(want))
	if !slices.Equal(data, want) {
		t.Fatalf("encoding\n% x\nwant\n% x", data, want)
	}
	// CRC-32C of "123456789" is e3069283: the checksum is the standard one.
	if got := checksum([]byte("123456789")); got != 0xe3069283 {
		t.Fatalf("checksum = %08x", got)
	}
}

func TestUnmarshalRejectsDamagedFiles(t *testing.T) {
	m, _ := New(Arch{Inputs: 4, Hidden: []int{3}, Classes: 2}, 1)
	good, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	resum := func(b []byte) []byte {
		body := b[:len(b)-4]
		return binary.LittleEndian.AppendUint32(slices.Clone(body), checksum(body))
	}
	edit := func(f func(b []byte) []byte) []byte { return f(slices.Clone(good)) }
	for _, tc := range []struct {
		name    string
		data    []byte
		want    error
		problem string
	}{
		{"empty", nil, ErrNotModel, ""},
		{"other file", []byte("\x00\x00\x08\x01 an IDX file"), ErrNotModel, ""},
		{"version 2", edit(func(b []byte) []byte { b[8] = 2; return resum(b) }), ErrUnsupportedVersion, "version 2"},
		{"flipped bit", edit(func(b []byte) []byte { b[40] ^= 1; return b }), ErrCorrupt, "checksum"},
		{"truncated", good[:len(good)-9], ErrCorrupt, "checksum"},
		{"header only", good[:14], ErrCorrupt, ""},
		{"flags", edit(func(b []byte) []byte { b[10] = 1; return resum(b) }), ErrCorrupt, "flags"},
		{"arch", edit(func(b []byte) []byte { b[16] = 1; return resum(b) }), ErrCorrupt, "classes"},
		{"tensor count", edit(func(b []byte) []byte { b[28] = 3; return resum(b) }), ErrCorrupt, "3 tensors"},
		{"tensor name", edit(func(b []byte) []byte { b[34] = 'X'; return resum(b) }), ErrCorrupt, "missing"},
		{"tensor shape", edit(func(b []byte) []byte { b[48]++; return resum(b) }), ErrCorrupt, ""},
		{"trailing bytes", resum(append(slices.Clone(good[:len(good)-4]), 0, 0, 0, 0, 0)), ErrCorrupt, "unexpected bytes"},
		{"NaN", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[len(b)-8:], 0x7fc00000)
			return resum(b)
		}), ErrCorrupt, "NaN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal(tc.data)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.problem)
			}
		})
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "absent.bin"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("absent: err = %v", err)
	}
	path := filepath.Join(dir, "model.bin")
	if err := os.WriteFile(path, []byte("VRGMODEL\x01\x00\x00\x00garbage!"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want ErrCorrupt naming %s", err, path)
	}
}
