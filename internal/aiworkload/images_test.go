package aiworkload

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeImages(t *testing.T) {
	flat := make([]float32, ImageDim)
	for i := range flat {
		flat[i] = float32(i%256) / 255
	}
	rows := make([][]float32, ImageSide)
	for r := range rows {
		rows[r] = flat[r*ImageSide : (r+1)*ImageSide]
	}
	enc := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		name  string
		data  json.RawMessage
		n     int
		batch bool
	}{
		{"784", enc(flat), 1, false},
		{"28x28", enc(rows), 1, false},
		{"2x784", enc([][]float32{flat, flat}), 2, true},
		{"3x28x28", enc([][][]float32{rows, rows, rows}), 3, true},
	} {
		imgs, batch, err := DecodeImages(c.data)
		if err != nil || len(imgs) != c.n || batch != c.batch {
			t.Errorf("%s: %d images, batch %v, %v", c.name, len(imgs), batch, err)
			continue
		}
		for _, img := range imgs {
			if !equalFloats(img, flat) {
				t.Errorf("%s: pixels changed", c.name)
			}
		}
	}
	bright := append([]float32{255}, flat[1:]...)
	for _, c := range []struct {
		name string
		data json.RawMessage
		want string
	}{
		{"short", enc([]float32{0.5, 0.5}), "shape [2]"},
		{"bytes", enc(bright), "pixels must be in [0, 1]"},
		{"negative", enc(append([]float32{-0.1}, flat[1:]...)), "pixels must be in [0, 1]"},
		{"text", json.RawMessage(`"cat.png"`), "nested lists of numbers"},
		{"ragged", json.RawMessage(`[[0.1],[0.1,0.2]]`), "nested lists of numbers"},
		{"empty batch", json.RawMessage(`[]`), "shape [0]"},
	} {
		if _, _, err := DecodeImages(c.data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestNewPrediction(t *testing.T) {
	p := NewPrediction([]float32{0, 0, 0, 0, 0, 0, 0, 0.9, 0.05, 0.05})
	if p.Label != 7 || p.Class != "Sneaker" {
		t.Errorf("%+v", p)
	}
}
