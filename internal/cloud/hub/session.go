package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/verge-edge/verge/internal/cloud/nodeview"
	"github.com/verge-edge/verge/internal/protocol/downsync"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
	"github.com/verge-edge/verge/internal/protocol/wire"
)

type hubService struct {
	syncpb.UnimplementedHubServer
	s *Server
}

// errReplaced ends a session whose node connected again.
var errReplaced = errors.New("replaced by a newer connection from the same node")

// session is one node's open Sync stream. The sender and the timing maps
// are guarded by mu: the view's informer goroutines, the receive loop and
// the send loop all touch them.
type session struct {
	id     uint64
	node   string
	cancel context.CancelCauseFunc

	mu      sync.Mutex
	sender  *downsync.Sender
	changed map[string]time.Time // key → when its pending change reached us
	sentAt  map[uint64]time.Time // seq → when the change it carries reached us
	results []*syncpb.ReportResult
	// wake has room for one signal: "there may be something to send".
	wake chan struct{}
	// lastHeard is the last time anything arrived from the node.
	lastHeard time.Time
}

// sessionSink adapts a session to nodeview.Sink.
type sessionSink struct{ s *session }

func (k sessionSink) Set(o downsync.Object) {
	k.s.mu.Lock()
	k.s.sender.Set(o)
	if _, ok := k.s.changed[o.Key]; !ok {
		k.s.changed[o.Key] = time.Now()
	}
	k.s.mu.Unlock()
	k.s.poke()
}

func (k sessionSink) Remove(key string) {
	k.s.mu.Lock()
	k.s.sender.Remove(key)
	if _, ok := k.s.changed[key]; !ok {
		k.s.changed[key] = time.Now()
	}
	k.s.mu.Unlock()
	k.s.poke()
}

func (k sessionSink) SetHorizon(class string, rv uint64) {
	k.s.mu.Lock()
	k.s.sender.SetHorizon(class, rv)
	k.s.mu.Unlock()
	k.s.poke()
}

func (s *session) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// register makes sess the node's session, ending any previous one.
func (s *Server) register(node string, cancel context.CancelCauseFunc) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.sessions[node]; old != nil {
		old.cancel(errReplaced)
	}
	s.nextID++
	sess := &session{
		id: s.nextID, node: node, cancel: cancel,
		sender:  downsync.NewSender(downsync.Config{Window: s.cfg.Window, Rank: nodeview.Rank, Class: nodeview.Class}),
		changed: map[string]time.Time{}, sentAt: map[uint64]time.Time{},
		wake: make(chan struct{}, 1), lastHeard: s.cfg.Now(),
	}
	s.sessions[node] = sess
	s.metrics.connected.Set(float64(len(s.sessions)))
	return sess
}

// unregister removes sess unless a newer session replaced it; it reports
// whether sess was still the node's current session.
func (s *Server) unregister(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[sess.node] != sess {
		return false
	}
	delete(s.sessions, sess.node)
	s.metrics.connected.Set(float64(len(s.sessions)))
	return true
}

// Sync serves one node's control stream.
func (h *hubService) Sync(stream syncpb.Hub_SyncServer) error {
	s := h.s
	node, err := NodeFromContext(stream.Context())
	if err != nil {
		return err
	}
	hello, err := recvHello(stream, 30*time.Second)
	if err != nil {
		return err
	}
	if hello.ProtocolVersion != ProtocolVersion {
		return status.Errorf(codes.FailedPrecondition, "this verge-cloud speaks protocol version %d, the node sent %d: upgrade verge-edge or verge-cloud so they match", ProtocolVersion, hello.ProtocolVersion)
	}
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	sess := s.register(node, cancel)
	log := s.cfg.Logger.With("node", node, "session", sess.id)

	inventory := make([]downsync.Meta, 0, len(hello.Inventory))
	for _, e := range hello.Inventory {
		inventory = append(inventory, downsync.Meta{Key: e.Key, Version: downsync.Version{UID: e.Uid, ResourceVersion: e.ResourceVersion}})
	}
	unsubscribe := s.cfg.View.Subscribe(node, sessionSink{sess}, inventory)
	sess.mu.Lock()
	sess.sender.Connect(inventory)
	sess.mu.Unlock()
	s.cfg.Nodes.Connected(ctx, node, hello)
	log.Info("node connected", "inventory", len(inventory), "agentVersion", hello.AgentVersion)

	err = stream.Send(&syncpb.CloudMessage{Body: &syncpb.CloudMessage_Welcome{Welcome: &syncpb.Welcome{
		ProtocolVersion: ProtocolVersion, NodeName: node,
		HeartbeatSeconds: uint32(s.cfg.Heartbeat / time.Second), Window: uint32(s.cfg.Window),
	}}})
	if err == nil {
		recvErr := make(chan error, 1)
		go func() { recvErr <- s.receive(ctx, sess, stream) }()
		err = s.send(ctx, sess, stream, recvErr)
	}

	unsubscribe()
	current := s.unregister(sess)
	if current {
		s.cfg.Nodes.Disconnected(node)
	}
	reason := "closed"
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errReplaced):
		reason = "replaced"
	case err != nil && !errors.Is(err, io.EOF) && status.Code(err) != codes.Canceled:
		reason = "error"
	}
	s.metrics.sessions.WithLabelValues(reason).Inc()
	log.Info("node disconnected", "reason", reason, "error", err)
	if reason == "replaced" {
		return status.Error(codes.Aborted, errReplaced.Error())
	}
	return err
}

func recvHello(stream syncpb.Hub_SyncServer, timeout time.Duration) (*syncpb.Hello, error) {
	type result struct {
		m   *syncpb.EdgeMessage
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := stream.Recv()
		ch <- result{m, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		hello := r.m.GetHello()
		if hello == nil {
			return nil, status.Error(codes.InvalidArgument, "the first message of a Sync stream must be Hello")
		}
		return hello, nil
	case <-time.After(timeout):
		return nil, status.Error(codes.DeadlineExceeded, "no Hello within 30 s")
	}
}

// receive handles what the node sends until the stream ends.
func (s *Server) receive(ctx context.Context, sess *session, stream syncpb.Hub_SyncServer) error {
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		sess.mu.Lock()
		sess.lastHeard = s.cfg.Now()
		sess.mu.Unlock()
		switch b := m.Body.(type) {
		case *syncpb.EdgeMessage_Ack:
			if err := s.ack(sess, b.Ack.Seq); err != nil {
				return status.Error(codes.InvalidArgument, err.Error())
			}
		case *syncpb.EdgeMessage_Reports:
			for _, r := range b.Reports.Reports {
				s.submitReport(reportJob{ctx: ctx, node: sess.node, report: r, done: func(res *syncpb.ReportResult) {
					sess.mu.Lock()
					sess.results = append(sess.results, res)
					sess.mu.Unlock()
					sess.poke()
				}})
			}
		case *syncpb.EdgeMessage_Heartbeat:
			s.cfg.Nodes.Heartbeat(sess.node)
		case *syncpb.EdgeMessage_Hello:
			return status.Error(codes.InvalidArgument, "Hello is only valid as the first message")
		}
	}
}

func (s *Server) ack(sess *session, seq uint64) error {
	now := time.Now()
	sess.mu.Lock()
	defer sess.mu.Unlock()
	before := sess.sender.Stats().Acked
	if err := sess.sender.Ack(seq); err != nil {
		return err
	}
	s.metrics.objectsAcked.Add(float64(sess.sender.Stats().Acked - before))
	for q, at := range sess.sentAt {
		if q <= seq {
			s.metrics.deliveryLatency.Observe(now.Sub(at).Seconds())
			delete(sess.sentAt, q)
		}
	}
	return nil
}

// send writes objects, report results and heartbeats to the node.
func (s *Server) send(ctx context.Context, sess *session, stream syncpb.Hub_SyncServer, recvErr <-chan error) error {
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	sess.poke()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case err := <-recvErr:
			return err
		case <-heartbeat.C:
			sess.mu.Lock()
			silent := s.cfg.Now().Sub(sess.lastHeard)
			sess.mu.Unlock()
			if silent > 3*s.cfg.Heartbeat {
				return status.Errorf(codes.DeadlineExceeded, "nothing from the node for %s", silent.Round(time.Second))
			}
			if err := stream.Send(&syncpb.CloudMessage{Body: &syncpb.CloudMessage_Heartbeat{Heartbeat: &syncpb.Heartbeat{SentUnixNano: s.cfg.Now().UnixNano()}}}); err != nil {
				return err
			}
		case <-sess.wake:
			if err := s.flush(sess, stream); err != nil {
				return err
			}
		}
	}
}

// flush sends everything the session has ready.
func (s *Server) flush(sess *session, stream syncpb.Hub_SyncServer) error {
	for {
		sess.mu.Lock()
		results := sess.results
		sess.results = nil
		msgs := sess.sender.Next(s.cfg.BatchSize)
		now := time.Now()
		for _, m := range msgs {
			if m.Op == downsync.OpSyncDone {
				continue
			}
			if at, ok := sess.changed[m.Key]; ok {
				sess.sentAt[m.Seq] = at
				delete(sess.changed, m.Key)
			} else {
				sess.sentAt[m.Seq] = now
			}
		}
		sess.mu.Unlock()

		if len(results) > 0 {
			if err := stream.Send(&syncpb.CloudMessage{Body: &syncpb.CloudMessage_Results{Results: &syncpb.ReportResults{Results: results}}}); err != nil {
				return err
			}
		}
		if len(msgs) == 0 {
			return nil
		}
		batch := &syncpb.Objects{Objects: make([]*syncpb.Object, 0, len(msgs))}
		for _, m := range msgs {
			o, err := encodeObject(m)
			if err != nil {
				return status.Error(codes.Internal, err.Error())
			}
			batch.Objects = append(batch.Objects, o)
			s.metrics.objectsSent.WithLabelValues(m.Op.String()).Inc()
			s.metrics.bytesSent.Add(float64(len(o.Data)))
			if m.Resync {
				s.metrics.resyncObjects.WithLabelValues(m.Op.String()).Inc()
				s.metrics.resyncBytes.Add(float64(len(o.Data)))
			}
		}
		if err := stream.Send(&syncpb.CloudMessage{Body: &syncpb.CloudMessage_Objects{Objects: batch}}); err != nil {
			return err
		}
	}
}

func encodeObject(m downsync.Message) (*syncpb.Object, error) {
	o := &syncpb.Object{Seq: m.Seq, Key: m.Key, Uid: m.Version.UID, ResourceVersion: m.Version.ResourceVersion}
	switch m.Op {
	case downsync.OpUpsert:
		o.Op = syncpb.Op_OP_UPSERT
		enc, data, compressed, err := wire.Encode(m.Body)
		if err != nil {
			return nil, fmt.Errorf("object %s: %w", m.Key, err)
		}
		o.Encoding, o.Data, o.Compressed = enc, data, compressed
	case downsync.OpDelete:
		o.Op = syncpb.Op_OP_DELETE
	case downsync.OpSyncDone:
		o.Op = syncpb.Op_OP_SYNC_DONE
	}
	return o, nil
}
