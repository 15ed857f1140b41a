package mapper

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/verge-edge/verge/pkg/mapper/fanout"
)

// router owns the sink workers: the cloud twin (one for the mapper) and one
// per distinct push destination, shared by every property that names it
// and stopped when the last one lets go.
type router struct {
	twin    *fanout.Worker
	factory SinkFactory
	opts    fanout.Options

	mu     sync.Mutex
	shared map[string]*sharedWorker
}

type sharedWorker struct {
	w    *fanout.Worker
	refs int
}

func (r *router) acquire(ctx context.Context, t PushTarget) (*fanout.Worker, error) {
	key := t.Key()
	r.mu.Lock()
	defer r.mu.Unlock()
	if sw, ok := r.shared[key]; ok {
		sw.refs++
		return sw.w, nil
	}
	s, err := r.factory(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("pushMethod %s: %w", t.Kind, err)
	}
	name := fmt.Sprintf("%s-%d", t.Kind, len(r.shared)+1)
	for r.nameTaken(name) {
		name += "x"
	}
	if n := s.Name(); n != "" && !r.nameTaken(n) {
		name = n
	}
	sw := &sharedWorker{w: fanout.Start(name, s, r.opts), refs: 1}
	r.shared[key] = sw
	return sw.w, nil
}

func (r *router) nameTaken(name string) bool {
	for _, sw := range r.shared {
		if sw.w.Name() == name {
			return true
		}
	}
	return r.twin != nil && r.twin.Name() == name
}

func (r *router) release(t PushTarget) {
	key := t.Key()
	r.mu.Lock()
	sw, ok := r.shared[key]
	if ok {
		sw.refs--
		if sw.refs == 0 {
			delete(r.shared, key)
		}
	}
	r.mu.Unlock()
	if ok && sw.refs == 0 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = sw.w.Stop(ctx)
		}()
	}
}

// workers lists every live worker, the twin first.
func (r *router) workers() []*fanout.Worker {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*fanout.Worker
	if r.twin != nil {
		out = append(out, r.twin)
	}
	for _, sw := range r.shared {
		out = append(out, sw.w)
	}
	return out
}

// stop flushes and closes every worker within ctx.
func (r *router) stop(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range r.workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.Stop(ctx)
		}()
	}
	wg.Wait()
}
