package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/verge-edge/verge/pkg/mapper/sink"
)

// Options tune every worker of a Fanout.
type Options struct {
	// QueueSize bounds each sink's buffer, in samples. Default 10000.
	QueueSize int
	// MaxBatch is the most samples one Write carries. Default 500.
	MaxBatch int
	// MaxAttempts is how many times a batch is written before it is given
	// up (the first try included). Default 5.
	MaxAttempts int
	// RetryMin and RetryMax bound the backoff between attempts; it doubles
	// from RetryMin with ±20% jitter. Defaults 200 ms and 10 s.
	RetryMin, RetryMax time.Duration
	// WriteTimeout bounds one Write. Default 10 s.
	WriteTimeout time.Duration
	// Linger is how long a worker waits after the first sample arrives
	// before writing, so samples that arrive together go in one batch
	// (one request instead of hundreds). 0 writes at once.
	Linger time.Duration

	Clock   clock.Clock
	Metrics *Metrics
	Logger  *slog.Logger
	// Jitter returns a factor in [0.8, 1.2) applied to each backoff; tests
	// make it constant.
	Jitter func() float64
}

func (o *Options) defaults() {
	if o.QueueSize <= 0 {
		o.QueueSize = 10000
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 500
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 200 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = 10 * time.Second
		if o.RetryMax < o.RetryMin {
			o.RetryMax = o.RetryMin
		}
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Jitter == nil {
		o.Jitter = func() float64 { return 0.8 + 0.4*rand.Float64() }
	}
}

// Backoff is the wait before attempt number attempt+1 after attempt failed
// attempts: RetryMin doubled per failure, capped at RetryMax, times jitter.
func Backoff(min, max time.Duration, attempt int, jitter float64) time.Duration {
	d := min
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return time.Duration(float64(d) * jitter)
}

// Status is what a worker has done, for health endpoints and people.
type Status struct {
	Sink        string    `json:"sink"`
	Queued      int       `json:"queued"`
	Written     uint64    `json:"written"`
	Dropped     uint64    `json:"dropped"`
	Failed      uint64    `json:"failed"`
	WriteErrors uint64    `json:"writeErrors"`
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	LastWriteAt time.Time `json:"lastWriteAt,omitzero"`
	// Healthy is false while the latest Write failed.
	Healthy bool `json:"healthy"`
}

// Worker owns one sink: its buffer, its goroutine and its counters.
type Worker struct {
	name string
	sink sink.Sink
	opts *Options

	mu     sync.Mutex
	q      *queue
	status Status
	closed bool

	wake chan struct{} // capacity 1: "the queue has something"
	stop chan struct{} // closed by Stop
	done chan struct{} // closed when the goroutine returns
	// flushCtx bounds the delivery of what is queued at Stop.
	flushCtx context.Context
	// runCtx is the parent of every Write; it ends when Stop's deadline
	// passes, so a hung sink cannot hold Stop beyond it.
	runCtx    context.Context
	cancelRun context.CancelFunc
}

// Start runs a worker for s. Name labels its metrics and status; it should
// be unique within a process.
func Start(name string, s sink.Sink, opts Options) *Worker {
	opts.defaults()
	w := &Worker{
		name:   name,
		sink:   s,
		opts:   &opts,
		q:      newQueue(opts.QueueSize),
		status: Status{Sink: name, Healthy: true},
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	w.runCtx, w.cancelRun = context.WithCancel(context.Background())
	go w.run()
	return w
}

// Name is the worker's sink name.
func (w *Worker) Name() string { return w.name }

// Enqueue adds samples to the buffer without blocking.
func (w *Worker) Enqueue(samples ...sink.Sample) {
	w.mu.Lock()
	if w.closed {
		w.status.Dropped += uint64(len(samples))
		w.mu.Unlock()
		w.opts.Metrics.samples.WithLabelValues(w.name, "dropped").Add(float64(len(samples)))
		return
	}
	var dropped int
	for _, s := range samples {
		if w.q.push(s) {
			dropped++
		}
	}
	w.status.Dropped += uint64(dropped)
	n := w.q.len()
	w.mu.Unlock()
	if dropped > 0 {
		w.opts.Metrics.samples.WithLabelValues(w.name, "dropped").Add(float64(dropped))
	}
	w.opts.Metrics.queued.WithLabelValues(w.name).Set(float64(n))
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Status returns a snapshot of the worker's counters.
func (w *Worker) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.status
	s.Queued = w.q.len()
	return s
}

// Stop stops accepting samples, delivers what is queued until ctx ends
// (one attempt per batch), closes the sink and waits for the worker.
// Samples still queued then are counted as dropped.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closed = true
	w.flushCtx = ctx
	w.mu.Unlock()
	close(w.stop)
	select {
	case <-w.done:
	case <-ctx.Done():
		w.cancelRun()
		<-w.done
	}
	w.cancelRun()
	err := w.sink.Close()
	w.opts.Metrics.forget(w.name)
	if err != nil {
		return fmt.Errorf("closing sink %s: %w", w.name, err)
	}
	return nil
}

func (w *Worker) run() {
	defer close(w.done)
	for {
		select {
		case <-w.wake:
			w.drain()
		case <-w.stop:
			w.flush()
			return
		}
	}
}

// drain delivers batches until the queue is empty or the worker stops.
func (w *Worker) drain() {
	if w.opts.Linger > 0 {
		w.mu.Lock()
		short := w.q.len() < w.opts.MaxBatch
		w.mu.Unlock()
		if short {
			t := w.opts.Clock.NewTimer(w.opts.Linger)
			select {
			case <-t.C():
			case <-w.stop:
				t.Stop()
				return
			}
		}
	}
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		batch := w.takeBatch()
		if len(batch) == 0 {
			return
		}
		w.deliver(batch)
	}
}

func (w *Worker) takeBatch() []sink.Sample {
	w.mu.Lock()
	batch := w.q.take(w.opts.MaxBatch)
	n := w.q.len()
	w.mu.Unlock()
	w.opts.Metrics.queued.WithLabelValues(w.name).Set(float64(n))
	return batch
}

// deliver writes one batch, retrying with backoff; it gives up after
// MaxAttempts or when the worker stops.
func (w *Worker) deliver(batch []sink.Sample) {
	for attempt := 1; ; attempt++ {
		err := w.write(w.runCtx, batch)
		if err == nil {
			return
		}
		if attempt >= w.opts.MaxAttempts {
			w.giveUp(batch, "failed", err)
			return
		}
		t := w.opts.Clock.NewTimer(Backoff(w.opts.RetryMin, w.opts.RetryMax, attempt, w.opts.Jitter()))
		select {
		case <-t.C():
		case <-w.stop:
			t.Stop()
			// Stop wants a final flush; put the batch back in front by
			// handing it to flush directly.
			w.flushBatch(batch)
			return
		}
	}
}

func (w *Worker) write(parent context.Context, batch []sink.Sample) error {
	ctx, cancel := context.WithTimeout(parent, w.opts.WriteTimeout)
	err := w.sink.Write(ctx, batch)
	cancel()
	now := w.opts.Clock.Now()
	if err != nil {
		w.mu.Lock()
		w.status.WriteErrors++
		w.status.LastError = err.Error()
		w.status.LastErrorAt = now
		w.status.Healthy = false
		w.mu.Unlock()
		w.opts.Metrics.writeErrors.WithLabelValues(w.name).Inc()
		w.opts.Logger.Debug("sink write failed", "sink", w.name, "samples", len(batch), "err", err)
		return err
	}
	w.mu.Lock()
	w.status.Written += uint64(len(batch))
	w.status.LastWriteAt = now
	w.status.Healthy = true
	w.mu.Unlock()
	w.opts.Metrics.samples.WithLabelValues(w.name, "written").Add(float64(len(batch)))
	h := w.opts.Metrics.latency.WithLabelValues(w.name)
	for _, s := range batch {
		if !s.Timestamp.IsZero() {
			h.Observe(now.Sub(s.Timestamp).Seconds())
		}
	}
	return nil
}

func (w *Worker) giveUp(batch []sink.Sample, result string, err error) {
	w.mu.Lock()
	if result == "failed" {
		w.status.Failed += uint64(len(batch))
	} else {
		w.status.Dropped += uint64(len(batch))
	}
	w.mu.Unlock()
	w.opts.Metrics.samples.WithLabelValues(w.name, result).Add(float64(len(batch)))
	if err != nil {
		w.opts.Logger.Warn("sink batch given up", "sink", w.name, "samples", len(batch), "err", err)
	}
}

// flush delivers what is queued, one attempt per batch, until the Stop
// deadline.
func (w *Worker) flush() {
	for {
		batch := w.takeBatch()
		if len(batch) == 0 {
			return
		}
		w.flushBatch(batch)
	}
}

func (w *Worker) flushBatch(batch []sink.Sample) {
	ctx := w.flushCtx
	if ctx == nil || ctx.Err() != nil {
		w.giveUp(batch, "dropped", nil)
		return
	}
	if err := w.write(ctx, batch); err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			w.giveUp(batch, "dropped", nil)
			return
		}
		w.giveUp(batch, "failed", err)
	}
}
