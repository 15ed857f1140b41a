package mapper

import (
	"context"
	"errors"
	"hash/fnv"
	"time"

	"github.com/verge-edge/verge/pkg/mapper/fanout"
	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/value"
)

// phase spreads the samplers of many properties over their cycle so a
// device with 1,000 properties is not read in one burst; it is a stable
// function of the property's identity.
func phase(device, property string, cycle time.Duration) time.Duration {
	if cycle <= time.Millisecond {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(device + "\x00" + property))
	return time.Duration(uint64(h.Sum32())%uint64(cycle/time.Millisecond)) * time.Millisecond
}

// nextTick is the first tick after now on the grid prev + k·cycle; ticks
// missed while a slow read ran are skipped, not bunched up.
func nextTick(prev time.Time, cycle time.Duration, now time.Time) (next time.Time, skipped int64) {
	next = prev.Add(cycle)
	if next.After(now) {
		return next, 0
	}
	missed := int64(now.Sub(prev) / cycle)
	return prev.Add(time.Duration(missed+1) * cycle), missed
}

// sampler reads one property every collectCycle, first applying any
// desired value waiting for it, and hands each reading to its routes.
type sampler struct {
	r      *deviceRunner
	spec   *deviceSpec
	prop   *propSpec
	conn   Conn
	routes []*fanout.Worker
	kick   chan struct{} // capacity 1: sample now (a desired value arrived)
}

func (s *sampler) run(ctx context.Context) {
	clk := s.r.rt.clock
	next := clk.Now().Add(phase(s.spec.key, s.prop.cfg.Name, s.prop.collectCycle))
	for {
		if d := next.Sub(clk.Now()); d > 0 {
			t := clk.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-s.kick:
				t.Stop()
				s.once(ctx)
				continue
			case <-t.C():
			}
		}
		if ctx.Err() != nil {
			return
		}
		s.once(ctx)
		var skipped int64
		next, skipped = nextTick(next, s.prop.collectCycle, clk.Now())
		if skipped > 0 {
			s.r.rt.metrics.skippedTicks.Add(float64(skipped))
		}
	}
}

// once applies a waiting desired value, then reads and publishes.
func (s *sampler) once(ctx context.Context) {
	if v, ok := s.r.pendingDesired(s.prop.cfg.Name); ok {
		s.applyDesired(ctx, v)
	}
	rt := s.r.rt
	rctx, cancel := context.WithTimeout(ctx, rt.cfg.ReadTimeout)
	start := rt.clock.Now()
	v, err := s.conn.Read(rctx, s.prop.cfg)
	cancel()
	rt.metrics.readSeconds.Observe(rt.clock.Since(start).Seconds())
	if ctx.Err() != nil {
		return
	}
	var str string
	if err == nil {
		str, err = value.Format(s.prop.cfg.Type, v)
		if err != nil {
			err = ConfigErrorf(s.prop.cfg.Name, "the device returned a value that is not a %s: %v", s.prop.cfg.Type, err)
		}
	}
	if err != nil {
		rt.metrics.reads.WithLabelValues("error").Inc()
		s.r.readFailed(s.prop.cfg.Name, err)
		return
	}
	rt.metrics.reads.WithLabelValues("ok").Inc()
	smp := sink.Sample{
		Namespace: s.spec.cfg.Namespace, Device: s.spec.cfg.Name, Property: s.prop.cfg.Name,
		Value: str, Type: string(s.prop.cfg.Type), Timestamp: rt.clock.Now(),
	}
	s.r.readSucceeded(smp)
	for _, w := range s.routes {
		w.Enqueue(smp)
	}
}

// applyDesired writes a desired value to just this property.
func (s *sampler) applyDesired(ctx context.Context, desired string) {
	rt := s.r.rt
	p := s.prop.cfg
	fail := func(err error, retry bool) {
		rt.metrics.writes.WithLabelValues("desired", "error").Inc()
		s.r.desiredFailed(p.Name, desired, err, retry)
	}
	if p.AccessMode != ReadWrite {
		fail(errors.New("the property is ReadOnly; its desired value is ignored"), false)
		return
	}
	v, err := value.Parse(p.Type, desired)
	if err == nil {
		err = p.Limits.Check(v)
	}
	if err != nil {
		fail(err, false)
		return
	}
	wctx, cancel := context.WithTimeout(ctx, rt.cfg.ReadTimeout)
	err = s.conn.Write(wctx, p, v)
	cancel()
	if err != nil {
		fail(err, !IsConfigError(err) && !errors.Is(err, ErrNotWritable) && !errors.Is(err, ErrValueOutOfRange) && ctx.Err() == nil)
		return
	}
	rt.metrics.writes.WithLabelValues("desired", "ok").Inc()
	s.r.desiredApplied(p.Name, desired)
}
