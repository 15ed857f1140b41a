package fanout

import "github.com/verge-edge/verge/pkg/mapper/sink"

// queue is a bounded FIFO ring that drops its oldest element on overflow.
// It is not safe for concurrent use; the worker guards it.
type queue struct {
	buf   []sink.Sample
	head  int // index of the oldest element
	count int
}

func newQueue(capacity int) *queue { return &queue{buf: make([]sink.Sample, capacity)} }

// push appends s, dropping the oldest element when full; it reports whether
// one was dropped.
func (q *queue) push(s sink.Sample) (dropped bool) {
	if q.count == len(q.buf) {
		q.buf[q.head] = s
		q.head = (q.head + 1) % len(q.buf)
		return true
	}
	q.buf[(q.head+q.count)%len(q.buf)] = s
	q.count++
	return false
}

// take removes and returns up to n of the oldest elements.
func (q *queue) take(n int) []sink.Sample {
	if n > q.count {
		n = q.count
	}
	out := make([]sink.Sample, n)
	for i := range out {
		out[i] = q.buf[(q.head+i)%len(q.buf)]
		q.buf[(q.head+i)%len(q.buf)] = sink.Sample{}
	}
	q.head = (q.head + n) % len(q.buf)
	q.count -= n
	return out
}

func (q *queue) len() int { return q.count }
