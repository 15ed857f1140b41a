package model

import (
	"cmp"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/verge-edge/verge/pkg/ai/dataset"
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

// BenchmarkReferenceModels trains both reference models with their full
// settings on the 60,000 training images and reports their accuracy on the
// 10,000 test images, the training times, and the accuracy of a joint
// edge–cloud classifier that sends the 30 % of test images on which the
// edge model is least confident (lowest top probability) to the cloud
// model. Run it once: go test -run '^$' -bench ReferenceModels -benchtime 1x
func BenchmarkReferenceModels(b *testing.B) {
	train, test := fashionTrain(b), fashionTest(b)
	for b.Loop() {
		start := time.Now()
		edge := trainReference(b, EdgeArch(), EdgeTrainConfig(), train)
		edgeTime := time.Since(start)
		start = time.Now()
		cloud := trainReference(b, CloudArch(), CloudTrainConfig(), train)
		cloudTime := time.Since(start)

		pe, err := edge.PredictBatch(test.X)
		if err != nil {
			b.Fatal(err)
		}
		pc, err := cloud.PredictBatch(test.X)
		if err != nil {
			b.Fatal(err)
		}
		order := make([]int, test.Len())
		for i := range order {
			order[i] = i
		}
		confidence := func(i int) float32 { return pe[i][Argmax(pe[i])] }
		slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(confidence(i), confidence(j)) })
		toCloud := make([]bool, test.Len())
		for _, i := range order[:test.Len()*3/10] {
			toCloud[i] = true
		}
		var edgeRight, cloudRight, jointRight int
		for i, y := range test.Y {
			e, c := Argmax(pe[i]) == int(y), Argmax(pc[i]) == int(y)
			edgeRight += b2i(e)
			cloudRight += b2i(c)
			jointRight += b2i(toCloud[i] && c || !toCloud[i] && e)
		}
		n := float64(test.Len())
		b.ReportMetric(float64(edgeRight)/n, "edge-acc")
		b.ReportMetric(float64(cloudRight)/n, "cloud-acc")
		b.ReportMetric(float64(jointRight)/n, "joint30-acc")
		b.ReportMetric(edgeTime.Seconds(), "edge-train-s")
		b.ReportMetric(cloudTime.Seconds(), "cloud-train-s")
	}
}

func trainReference(b *testing.B, arch Arch, cfg TrainConfig, train *dataset.Set) *Model {
	m, err := New(arch, 1)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Train(context.Background(), train, cfg); err != nil {
		b.Fatal(err)
	}
	return m
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}
