package dataset

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// IDX element types, the third byte of an IDX magic number. Only unsigned
// bytes are supported: that is what image and label files hold.
const (
	idxTypeUbyte  = 0x08
	idxTypeSbyte  = 0x09
	idxTypeShort  = 0x0B
	idxTypeInt    = 0x0C
	idxTypeFloat  = 0x0D
	idxTypeDouble = 0x0E

	// MaxIDXBytes bounds the data section of an IDX file this package reads
	// (1 GiB, twenty times the Fashion-MNIST training images), so that a
	// corrupt header cannot make a reader allocate without limit.
	MaxIDXBytes = 1 << 30
	// maxIDXDims bounds the number of dimensions in a header.
	maxIDXDims = 16
)

// IDX is the content of an IDX file of unsigned bytes: Dims[0] items, each
// of Dims[1]×…×Dims[len-1] bytes, stored row-major in Data.
type IDX struct {
	Dims []int
	Data []byte
}

// Count is the number of items, Dims[0].
func (x *IDX) Count() int { return x.Dims[0] }

// ItemSize is the number of bytes per item, the product of Dims[1:] (1 for
// a one-dimensional file such as labels).
func (x *IDX) ItemSize() int {
	n := 1
	for _, d := range x.Dims[1:] {
		n *= d
	}
	return n
}

// FormatError reports a file that is not what it should be: a bad magic
// number, an unsupported element type, a size that does not match its
// header, a malformed index line. Path is empty when the data did not come
// from a named file.
type FormatError struct {
	Path    string
	Problem string
}

func (e *FormatError) Error() string {
	if e.Path == "" {
		return "dataset: " + e.Problem
	}
	return "dataset: " + e.Path + ": " + e.Problem
}

// ReadIDX reads an IDX file of unsigned bytes, gzip-compressed or plain
// (recognised by content, not by name). It checks the magic number, the
// element type, the dimensions and that the file holds exactly the bytes its
// header announces; errors name the file.
func ReadIDX(path string) (*IDX, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: open idx file: %w", err)
	}
	defer f.Close()
	x, err := DecodeIDX(f)
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) && fe.Path == "" {
			return nil, &FormatError{Path: path, Problem: fe.Problem}
		}
		return nil, fmt.Errorf("dataset: read idx file %s: %w", path, err)
	}
	return x, nil
}

// DecodeIDX decodes an IDX stream of unsigned bytes, gzip-compressed or
// plain. Malformed input yields a *FormatError with an empty Path.
func DecodeIDX(r io.Reader) (*IDX, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(2)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &FormatError{Problem: fmt.Sprintf("file too short for an IDX header (%d bytes)", len(head))}
		}
		return nil, err
	}
	var src io.Reader = br
	if head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		// Close only releases the decompressor; the stream's checksum is
		// checked when decodeIDX reads to its end.
		defer func() { _ = zr.Close() }()
		src = zr
	}
	x, err := decodeIDX(src)
	if err != nil {
		if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
			return nil, &FormatError{Problem: "corrupt gzip stream: " + err.Error()}
		}
		return nil, err
	}
	return x, nil
}

func decodeIDX(r io.Reader) (*IDX, error) {
	var magic [4]byte
	if n, err := io.ReadFull(r, magic[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &FormatError{Problem: fmt.Sprintf("file too short for an IDX header (%d bytes)", n)}
		}
		return nil, err
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, &FormatError{Problem: fmt.Sprintf("bad IDX magic number %#08x: the first two bytes must be zero", binary.BigEndian.Uint32(magic[:]))}
	}
	if t := magic[2]; t != idxTypeUbyte {
		return nil, &FormatError{Problem: fmt.Sprintf("IDX element type %s is not supported, only unsigned bytes (0x08)", idxTypeName(t))}
	}
	ndims := int(magic[3])
	if ndims == 0 || ndims > maxIDXDims {
		return nil, &FormatError{Problem: fmt.Sprintf("IDX header declares %d dimensions, want 1 to %d", ndims, maxIDXDims)}
	}
	raw := make([]byte, 4*ndims)
	if _, err := io.ReadFull(r, raw); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &FormatError{Problem: fmt.Sprintf("IDX header truncated: %d dimension sizes announced", ndims)}
		}
		return nil, err
	}
	dims := make([]int, ndims)
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(raw[4*i:]))
	}
	size := int64(1)
	for _, d := range dims {
		// Each factor is below 2^32 and size stays at most 2^30 here, so
		// the product cannot overflow.
		size *= int64(d)
		if size > MaxIDXBytes {
			return nil, &FormatError{Problem: fmt.Sprintf("IDX dimensions %v exceed the %d-byte limit", dims, MaxIDXBytes)}
		}
	}
	data, err := readExactly(r, size)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &FormatError{Problem: fmt.Sprintf("IDX data truncated: dimensions %v need %d bytes, file has %d", dims, size, len(data))}
		}
		return nil, err
	}
	var extra [1]byte
	switch n, err := io.ReadFull(r, extra[:]); {
	case n > 0:
		return nil, &FormatError{Problem: fmt.Sprintf("IDX file longer than its header says: dimensions %v need %d bytes, more follow", dims, size)}
	case !errors.Is(err, io.EOF):
		return nil, err
	}
	return &IDX{Dims: dims, Data: data}, nil
}

// EncodeIDX writes x as a plain (uncompressed) IDX file of unsigned bytes.
func EncodeIDX(w io.Writer, x *IDX) error {
	if len(x.Dims) == 0 || len(x.Dims) > maxIDXDims {
		return fmt.Errorf("dataset: encode idx: %d dimensions, want 1 to %d", len(x.Dims), maxIDXDims)
	}
	size := 1
	for _, d := range x.Dims {
		if d < 0 || uint64(d) > 1<<32-1 {
			return fmt.Errorf("dataset: encode idx: dimension %d out of range", d)
		}
		size *= d
	}
	if size != len(x.Data) {
		return fmt.Errorf("dataset: encode idx: dimensions %v need %d bytes, have %d", x.Dims, size, len(x.Data))
	}
	head := []byte{0, 0, idxTypeUbyte, byte(len(x.Dims))}
	for _, d := range x.Dims {
		head = binary.BigEndian.AppendUint32(head, uint32(d))
	}
	if _, err := w.Write(head); err != nil {
		return fmt.Errorf("dataset: encode idx: %w", err)
	}
	if _, err := w.Write(x.Data); err != nil {
		return fmt.Errorf("dataset: encode idx: %w", err)
	}
	return nil
}

func idxTypeName(t byte) string {
	switch t {
	case idxTypeSbyte:
		return "0x09 (signed byte)"
	case idxTypeShort:
		return "0x0B (int16)"
	case idxTypeInt:
		return "0x0C (int32)"
	case idxTypeFloat:
		return "0x0D (float32)"
	case idxTypeDouble:
		return "0x0E (float64)"
	}
	return fmt.Sprintf("%#02x (unknown)", t)
}

// readChunk is the most readExactly allocates ahead of the data it has
// read, so that a corrupt header costs memory only as far as data follows.
const readChunk = 16 << 20

// readExactly reads size bytes from r. On a short read it returns what it
// got and io.ErrUnexpectedEOF.
func readExactly(r io.Reader, size int64) ([]byte, error) {
	data := make([]byte, 0, min(size, readChunk))
	for int64(len(data)) < size {
		n := int(min(size-int64(len(data)), readChunk))
		data = slices.Grow(data, n)
		got, err := io.ReadFull(r, data[len(data):len(data)+n])
		data = data[:len(data)+got]
		if errors.Is(err, io.EOF) {
			return data, io.ErrUnexpectedEOF
		}
		if err != nil {
			return data, err
		}
	}
	return data, nil
}
