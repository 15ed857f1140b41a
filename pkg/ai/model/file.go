package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"

	"github.com/verge-edge/verge/internal/atomicfile"
)

// The model file format, version 1. All integers are little-endian.
//
//	offset  size      field
//	0       8         magic "VRGMODEL"
//	8       2         format version, 1
//	10      2         flags, 0
//	12      4         inputs
//	16      4         classes
//	20      4         number of hidden layers, h
//	24      4·h       hidden layer widths
//	…       4         number of tensors, t (2 per layer)
//	then t times:
//	        2         name length, then the name (UTF-8)
//	        1         rank r, then r dimensions of 4 bytes
//	        4·∏dims   values, IEEE 754 float32
//	end     4         CRC-32C (Castagnoli) of every byte before it
//
// The tensors must be exactly the ones Weights returns for the arch.
const (
	fileMagic   = "VRGMODEL"
	fileVersion = 1
	// maxFileBytes bounds what Load reads: the largest Arch.Validate
	// accepts, with room for the header.
	maxFileBytes = 4*maxParams + 1<<20
)

// Errors a model file can yield; match them with errors.Is.
var (
	// ErrNotModel: the data does not start with the model file magic.
	ErrNotModel = errors.New("not a Verge model file")
	// ErrUnsupportedVersion: the file's format version is not one this
	// package reads.
	ErrUnsupportedVersion = errors.New("unsupported model file version")
	// ErrCorrupt: the checksum does not match, the file is truncated, or
	// its content is inconsistent.
	ErrCorrupt = errors.New("corrupt model file")
)

// checksum is the CRC-32C of b.
func checksum(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// MarshalBinary encodes the model in the model file format.
func (m *Model) MarshalBinary() ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	a := m.arch
	buf := make([]byte, 0, 64+4*a.NumParams())
	buf = append(buf, fileMagic...)
	buf = binary.LittleEndian.AppendUint16(buf, fileVersion)
	buf = binary.LittleEndian.AppendUint16(buf, 0)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(a.Inputs))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(a.Classes))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(a.Hidden)))
	for _, h := range a.Hidden {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(h))
	}
	ts := m.weightsLocked()
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(ts)))
	for _, t := range ts {
		buf = binary.LittleEndian.AppendUint16(buf, uint16(len(t.Name)))
		buf = append(buf, t.Name...)
		buf = append(buf, byte(len(t.Shape)))
		for _, d := range t.Shape {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(d))
		}
		for _, v := range t.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
	}
	return binary.LittleEndian.AppendUint32(buf, checksum(buf)), nil
}

// Unmarshal decodes a model from the model file format. Errors match
// ErrNotModel, ErrUnsupportedVersion or ErrCorrupt.
func Unmarshal(data []byte) (*Model, error) {
	m, err := unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("model: decode: %w", err)
	}
	return m, nil
}

func unmarshal(data []byte) (*Model, error) {
	if len(data) < len(fileMagic) || string(data[:len(fileMagic)]) != fileMagic {
		return nil, ErrNotModel
	}
	if len(data) < len(fileMagic)+4+4 {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, len(data))
	}
	if v := binary.LittleEndian.Uint16(data[8:]); v != fileVersion {
		return nil, fmt.Errorf("%w: version %d, this reader knows version %d", ErrUnsupportedVersion, v, fileVersion)
	}
	body := data[:len(data)-4]
	if stored, computed := binary.LittleEndian.Uint32(data[len(body):]), checksum(body); stored != computed {
		return nil, fmt.Errorf("%w: checksum %08x, computed %08x (truncated or damaged)", ErrCorrupt, stored, computed)
	}
	d := decoder{buf: body[12:]}
	if flags := binary.LittleEndian.Uint16(body[10:]); flags != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, flags)
	}
	arch := Arch{Inputs: d.u32(), Classes: d.u32()}
	nh := d.u32()
	if nh > maxHidden {
		return nil, fmt.Errorf("%w: %d hidden layers", ErrCorrupt, nh)
	}
	for range nh {
		arch.Hidden = append(arch.Hidden, d.u32())
	}
	if d.err != nil {
		return nil, d.err
	}
	if err := arch.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	m := newZero(arch)
	nt := d.u32()
	if nt != 2*len(m.layers) {
		return nil, fmt.Errorf("%w: %d tensors for a %s model, want %d", ErrCorrupt, nt, arch, 2*len(m.layers))
	}
	ts := make([]Tensor, 0, nt)
	for range nt {
		t := Tensor{Name: string(d.bytes(int(d.u16())))}
		rank := int(d.u8())
		if d.err == nil && (rank == 0 || rank > 2) {
			return nil, fmt.Errorf("%w: tensor %q has rank %d", ErrCorrupt, t.Name, rank)
		}
		for range rank {
			if dim := d.u32(); dim <= maxLayerWidth {
				t.Shape = append(t.Shape, dim)
			} else if d.err == nil {
				return nil, fmt.Errorf("%w: tensor %q has a dimension of %d", ErrCorrupt, t.Name, dim)
			}
		}
		n := t.Len() // at most maxLayerWidth² = maxParams
		raw := d.bytes(4 * n)
		if d.err != nil {
			return nil, d.err
		}
		t.Data = make([]float32, n)
		for i := range t.Data {
			t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		ts = append(ts, t)
	}
	if len(d.buf) != 0 {
		return nil, fmt.Errorf("%w: %d unexpected bytes after the tensors", ErrCorrupt, len(d.buf))
	}
	if err := m.SetWeights(ts); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return m, nil
}

// decoder reads little-endian fields from buf, remembering the first
// overrun as an ErrCorrupt error (later reads return zeros).
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.buf) {
		d.err = fmt.Errorf("%w: truncated (need %d more bytes, have %d)", ErrCorrupt, n, len(d.buf))
		return nil
	}
	b := d.buf[:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) u8() byte {
	if b := d.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if b := d.bytes(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

// u32 reads a uint32, capped at MaxInt32 so that it fits an int on every
// platform.
func (d *decoder) u32() int {
	if b := d.bytes(4); b != nil {
		return int(min(binary.LittleEndian.Uint32(b), math.MaxInt32))
	}
	return 0
}

// Save writes the model to path atomically (a temporary file renamed into
// place), so a worker polling the file never reads half a model.
func (m *Model) Save(path string) error {
	data, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("model: save %s: %w", path, err)
	}
	return nil
}

// Load reads a model file written by Save. Errors name the file and match
// ErrNotModel, ErrUnsupportedVersion, ErrCorrupt or fs.ErrNotExist.
func Load(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model: load: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("model: load %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("model: load %s: %w: larger than %d bytes", path, ErrCorrupt, maxFileBytes)
	}
	m, err := unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("model: load %s: %w", path, err)
	}
	return m, nil
}
