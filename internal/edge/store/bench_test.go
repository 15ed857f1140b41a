package store

import (
	"bytes"
	"fmt"
	"testing"
)

// A pod object of a typical size (protobuf-encoded pods are 1–4 KiB).
var benchData = bytes.Repeat([]byte("x"), 2048)

func benchObj(i int) Object {
	return Object{Meta: Meta{Key: fmt.Sprintf("pods/bench/p%d", i%500), UID: fmt.Sprintf("u%d", i%500), ResourceVersion: fmt.Sprint(i)}, Kind: "Pod", Data: benchData}
}

// BenchmarkApplySingle: one object per durable transaction (one fsync
// each), as live changes arrive.
// The synchronous=NORMAL variant shows what giving up durability (as
// KubeEdge's PR #2271 did) would buy; the store never runs that way.
func BenchmarkApplySingle(b *testing.B) {
	for _, normal := range []bool{false, true} {
		name := "synchronous=FULL"
		if normal {
			name = "synchronous=NORMAL-not-used"
		}
		b.Run(name, func(b *testing.B) {
			s := openT(b, Options{synchronousNormal: normal})
			b.SetBytes(int64(len(benchData)))
			b.ResetTimer()
			for i := range b.N {
				if _, err := s.Apply(ctx, []Op{{Object: benchObj(i)}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkApplyBatch100: 100 objects per transaction, as a resync after
// reconnect arrives.
func BenchmarkApplyBatch100(b *testing.B) {
	s := openT(b, Options{})
	b.SetBytes(100 * int64(len(benchData)))
	ops := make([]Op, 100)
	b.ResetTimer()
	for i := range b.N {
		for j := range ops {
			ops[j] = Op{Object: benchObj(i*100 + j)}
		}
		if _, err := s.Apply(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOutboxCycle: one report through the outbox — Enqueue, Pending,
// Ack — with 100 other reports waiting.
func BenchmarkOutboxCycle(b *testing.B) {
	s := openT(b, Options{})
	payload := bytes.Repeat([]byte("s"), 1024)
	for i := range 100 {
		if err := s.Enqueue(ctx, fmt.Sprintf("waiting/%d", i), "event", 2, payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		key := fmt.Sprintf("pods/bench/p%d", i%50)
		if err := s.Enqueue(ctx, key, "podstatus", 1, payload); err != nil {
			b.Fatal(err)
		}
		rs, err := s.Pending(ctx, 1, nil)
		if err != nil || len(rs) != 1 || rs[0].Key != key {
			b.Fatalf("Pending: %v %v", rs, err)
		}
		if err := s.Ack(ctx, rs[0].ID, rs[0].Gen); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet: a read while nothing writes.
func BenchmarkGet(b *testing.B) {
	s := openT(b, Options{})
	var ops []Op
	for i := range 500 {
		ops = append(ops, Op{Object: benchObj(i)})
	}
	mustApply(b, s, ops...)
	b.ResetTimer()
	for i := range b.N {
		if _, ok, err := s.Get(ctx, fmt.Sprintf("pods/bench/p%d", i%500)); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
