// Package tensor holds model parameters as the SDK moves them: a Tensor is
// a dense float32 array with a shape, Weights is a model's ordered list of
// tensors (Sedna's "weights": one entry per layer variable, in the order
// the model's get_weights returns them).
//
// Two encodings:
//
//   - JSON, Sedna's wire form: Weights is a list whose entries are nested
//     lists of numbers (numpy's tolist()); a 0-d tensor is a bare number.
//     Decoding infers shapes and rejects ragged lists. Values are float32
//     in memory: numbers from a Python peer (float64) are rounded to the
//     nearest float32. UnmarshalJSON accepts Python's NaN and ±Infinity
//     (encoding/json rejects a document containing them before it gets
//     there), so a caller must still reject them with CheckFinite; encoding
//     refuses them.
//
//   - Binary: little-endian, for peers that negotiated it (see package
//     federated):
//
//     uint32 tensor count
//     per tensor: uint32 rank, rank × uint32 dimensions,
//     then product(dimensions) × float32 (IEEE 754, little-endian)
//
//     Decoding checks every length against the bytes present before
//     allocating, so a corrupt or hostile frame cannot make it allocate
//     more than the frame's own size.
//
// The package is pure: no I/O, no state.
package tensor
