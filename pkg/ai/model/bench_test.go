package model

import (
	"context"
	"testing"
)

// BenchmarkGemmNT measures the matrix product at the shape of the cloud
// model's first layer on a batch of 64 (64×784 by 256×784), on one
// goroutine.
func BenchmarkGemmNT(b *testing.B) {
	const m, n, k = 64, 256, 784
	a, w, c := make([]float32, m*k), make([]float32, n*k), make([]float32, m*n)
	for i := range a {
		a[i] = float32(i%7) * 0.1
	}
	for i := range w {
		w[i] = float32(i%5) * 0.1
	}
	for b.Loop() {
		gemmNT(c, a, w, m, n, k, 1)
	}
	b.ReportMetric(float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
}

// benchmarkTrainEpoch trains one epoch over the 60,000 training images
// with the arch's reference settings, from the same initial weights each
// time.
func benchmarkTrainEpoch(b *testing.B, arch Arch, cfg TrainConfig) {
	train := fashionTrain(b)
	init, err := New(arch, 1)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Epochs = 1
	for b.Loop() {
		m := init.Clone()
		if _, err := m.Train(context.Background(), train, cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(train.Len())*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

func BenchmarkTrainEdgeEpoch(b *testing.B)  { benchmarkTrainEpoch(b, EdgeArch(), EdgeTrainConfig()) }
func BenchmarkTrainCloudEpoch(b *testing.B) { benchmarkTrainEpoch(b, CloudArch(), CloudTrainConfig()) }

// benchmarkPredict predicts the 10,000 test images in one PredictBatch.
func benchmarkPredict(b *testing.B, arch Arch) {
	test := fashionTest(b)
	m, err := New(arch, 1)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := m.PredictBatch(test.X); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(test.Len())*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

func BenchmarkPredictEdge(b *testing.B)  { benchmarkPredict(b, EdgeArch()) }
func BenchmarkPredictCloud(b *testing.B) { benchmarkPredict(b, CloudArch()) }

// BenchmarkPredictOneCloud is the latency of one sample, as a cloud worker
// serving single requests sees it.
func BenchmarkPredictOneCloud(b *testing.B) {
	test := fashionTest(b)
	m, err := New(CloudArch(), 1)
	if err != nil {
		b.Fatal(err)
	}
	x := test.Sample(0)
	for b.Loop() {
		if _, err := m.Predict(x); err != nil {
			b.Fatal(err)
		}
	}
}
