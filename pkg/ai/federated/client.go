package federated

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"k8s.io/utils/clock"

	"github.com/verge-edge/verge/pkg/ai/tensor"
)

// TrainRound is what a client trains: round Round (1-based), starting from
// Global, the aggregate of the previous round (nil for the first round
// unless the aggregator has an initial model: start from your own).
type TrainRound struct {
	Round  int
	Global tensor.Weights
}

// Update is a client's result for one round.
type Update struct {
	// NumSamples weights the update in the average; usually the number of
	// training samples (Sedna sends len(train_data)).
	NumSamples int
	Weights    tensor.Weights
	// Metrics are sent to the aggregator, which averages them per round
	// and may stop on one (stopCondition.targetMetric): e.g. the accuracy
	// of the round's starting model on local validation data.
	Metrics map[string]float64
}

// TrainFunc trains one round.
type TrainFunc func(ctx context.Context, r TrainRound) (Update, error)

// ClientConfig configures a Client. URL, ClientID and Train are required.
type ClientConfig struct {
	// URL is the aggregator's WebSocket address:
	// ws://{AGG_IP}:{AGG_PORT}/{algorithm} (workerenv builds it).
	URL string
	// ClientID names the client to the aggregator (WORKER_NAME).
	ClientID string
	// JobName is sent as Sedna's job_name (JOB_NAME).
	JobName string
	Train   TrainFunc
	// OnResult is called with each aggregate the client adopts (e.g. to
	// save the model and report the round to the local controller).
	OnResult func(*RoundResult)
	// Binary asks for the binary weight encoding; the aggregator may
	// decline (Sedna's always does), and JSON is used.
	Binary bool
	// MaxMessageBytes bounds one incoming message (default 64 MiB).
	MaxMessageBytes int64
	// DialTimeout bounds connecting and subscribing (default 10 s).
	DialTimeout time.Duration
	// PingInterval, as for the aggregator (default 20 s).
	PingInterval time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between attempts
	// to reach the aggregator (defaults 500 ms and 15 s).
	ReconnectMin, ReconnectMax time.Duration
	// GiveUpAfter: Run fails once the aggregator has been unreachable
	// this long (default 10 min).
	GiveUpAfter time.Duration
	Clock       clock.Clock
	Logger      *slog.Logger
}

// Client is a federated-learning training worker: it trains a round,
// sends the update, waits for the aggregate, and repeats until the
// aggregator says training is over. It reconnects when the connection
// drops, resending an update the aggregator may not have, and catches up
// when it missed rounds.
type Client struct {
	cfg ClientConfig
}

// NewClient checks the configuration.
func NewClient(cfg ClientConfig) (*Client, error) {
	var errs []error
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		errs = append(errs, fmt.Errorf("URL %q must be a ws:// address such as ws://fl-aggregation.default:7363/FedAvg (AGG_IP, AGG_PORT)", cfg.URL))
	}
	if cfg.ClientID == "" {
		errs = append(errs, errors.New("a client ID is required (ClientID, from WORKER_NAME)"))
	}
	if cfg.Train == nil {
		errs = append(errs, errors.New("a training function is required (Train)"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("federated client: %w", errors.Join(errs...))
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 64 << 20
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = 20 * time.Second
	}
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin = 500 * time.Millisecond
	}
	if cfg.ReconnectMax == 0 {
		cfg.ReconnectMax = 15 * time.Second
	}
	if cfg.GiveUpAfter == 0 {
		cfg.GiveUpAfter = 10 * time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg}, nil
}

// ErrAggregatorGone is returned (wrapped) when the aggregator stayed
// unreachable for GiveUpAfter.
var ErrAggregatorGone = errors.New("aggregator unreachable")

// Run trains until the aggregator sends the final aggregate, and returns
// it. Errors from Train end the run.
func (c *Client) Run(ctx context.Context) (*RoundResult, error) {
	st := &clientState{}
	var sess *session
	defer func() {
		if sess != nil {
			sess.close()
		}
	}()
	for {
		if sess == nil {
			var err error
			if sess, err = c.connect(ctx, st); err != nil {
				return nil, err
			}
		}
		res, err := c.step(ctx, sess, st)
		if res != nil {
			return res, nil
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var te *trainError
		if errors.As(err, &te) {
			return nil, te.err
		}
		c.cfg.Logger.Warn("aggregator connection lost; reconnecting", "error", err, "round", st.known+1)
		sess.close()
		sess = nil
	}
}

type trainError struct{ err error }

func (e *trainError) Error() string { return e.err.Error() }

// clientState survives reconnections.
type clientState struct {
	known   int            // rounds the client knows closed
	global  tensor.Weights // the latest aggregate
	pending *Update        // trained, not yet answered by an aggregate
	forRnd  int            // the round pending is for
}

func (st *clientState) adopt(r *RoundResult) {
	st.known, st.global = r.Round, r.Weights
	if st.pending != nil && st.forRnd <= r.Round {
		st.pending = nil
	}
}

// step does one unit of work on sess: adopt a newer aggregate, or train,
// or send and wait. It returns the final result when training is over.
func (c *Client) step(ctx context.Context, sess *session, st *clientState) (*RoundResult, error) {
	if r := sess.newer(st.known); r != nil {
		c.adopt(st, r)
		if r.Exit {
			return r, nil
		}
		return nil, nil
	}
	if a := sess.ackRound; a != nil && *a > st.known {
		// Rounds closed while this client was away: the aggregator sends
		// the latest after its acknowledgement. Train on that, not on
		// what this client had.
		r, err := sess.wait(ctx, *a)
		if err != nil {
			return nil, err
		}
		c.adopt(st, r)
		if r.Exit {
			return r, nil
		}
		return nil, nil
	}
	if st.pending == nil {
		round := st.known + 1
		u, err := c.cfg.Train(ctx, TrainRound{Round: round, Global: st.global.Clone()})
		if err != nil {
			return nil, &trainError{fmt.Errorf("training round %d: %w", round, err)}
		}
		st.pending, st.forRnd = &u, round
		// An aggregate that arrived while training makes the update
		// stale: adopt it instead of sending.
		if r := sess.newer(st.known); r != nil {
			c.cfg.Logger.Info("round closed while training; its update is dropped", "round", round)
			c.adopt(st, r)
			if r.Exit {
				return r, nil
			}
			return nil, nil
		}
	}
	if !sess.sent(st.forRnd) {
		if err := sess.sendUpdate(st.pending, st.forRnd, c.cfg.JobName); err != nil {
			return nil, err
		}
	}
	r, err := sess.wait(ctx, st.forRnd)
	if err != nil {
		return nil, err
	}
	c.adopt(st, r)
	if r.Exit {
		return r, nil
	}
	return nil, nil
}

func (c *Client) adopt(st *clientState, r *RoundResult) {
	st.adopt(r)
	if c.cfg.OnResult != nil {
		c.cfg.OnResult(r)
	}
}

// connect dials and subscribes, retrying with backoff for GiveUpAfter.
func (c *Client) connect(ctx context.Context, st *clientState) (*session, error) {
	start := c.cfg.Clock.Now()
	backoff := c.cfg.ReconnectMin
	for {
		sess, err := c.dial(ctx)
		if err == nil {
			c.resync(sess, st)
			return sess, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if c.cfg.Clock.Since(start) >= c.cfg.GiveUpAfter {
			return nil, fmt.Errorf("federated client: %w for %v: %w", ErrAggregatorGone, c.cfg.GiveUpAfter, err)
		}
		c.cfg.Logger.Info("cannot reach the aggregator; retrying", "url", c.cfg.URL, "error", err, "in", backoff.String())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.cfg.Clock.After(backoff):
		}
		backoff = min(2*backoff, c.cfg.ReconnectMax)
	}
}

// resync lines the client's state up with what the aggregator said in its
// acknowledgement.
func (c *Client) resync(sess *session, st *clientState) {
	if sess.ackRound == nil {
		return // a Sedna aggregator: it says nothing; resend what is pending
	}
	r := *sess.ackRound
	if r < st.known {
		// The aggregator restarted and lost its rounds: follow its
		// numbering; a pending update becomes the open round's.
		c.cfg.Logger.Warn("aggregator is behind this client; following its round numbers", "aggregator", r, "client", st.known)
		st.known = r
		if st.pending != nil {
			st.forRnd = r + 1
		}
	}
	// r > known: the catch-up result follows the acknowledgement; step
	// adopts it before anything else.
}

// session is one connection to the aggregator.
type session struct {
	ws       *websocket.Conn
	clientID string
	binary   bool
	ackRound *int
	timeout  time.Duration

	mu       sync.Mutex
	latest   *RoundResult
	readErr  error
	sentFor  int
	notify   chan struct{}
	done     chan struct{}
	stopPing chan struct{}
	closing  sync.Once
	wg       sync.WaitGroup
}

func (c *Client) dial(ctx context.Context) (*session, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	d := websocket.Dialer{HandshakeTimeout: c.cfg.DialTimeout, ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
	ws, resp, err := d.DialContext(dctx, c.cfg.URL, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", c.cfg.URL, err)
	}
	ws.SetReadLimit(c.cfg.MaxMessageBytes)
	encodings := []string{EncodingJSON}
	if c.cfg.Binary {
		encodings = []string{EncodingBinary, EncodingJSON}
	}
	sub := &Message{Type: TypeSubscribe, ClientID: c.cfg.ClientID, Verge: &Extension{Protocol: ProtocolVersion, Encodings: encodings}}
	b, _, err := Encode(sub, false)
	if err == nil {
		deadline, _ := dctx.Deadline()
		_ = ws.SetWriteDeadline(deadline)
		_ = ws.SetReadDeadline(deadline)
		err = ws.WriteMessage(websocket.TextMessage, b)
	}
	var ack *Message
	for err == nil && ack == nil {
		// Sedna's aggregator echoes the subscribe message; other
		// clients' join notices may come first.
		var m *Message
		m, err = readMessage(ws)
		if err == nil && m.Type == TypeSubscribe {
			ack = m
		}
	}
	if err != nil {
		_ = ws.Close()
		return nil, fmt.Errorf("subscribing to %s: %w", c.cfg.URL, err)
	}
	s := &session{
		ws: ws, clientID: c.cfg.ClientID, ackRound: ack.RoundNumber, timeout: c.cfg.PingInterval,
		binary: ack.Verge != nil && ack.Verge.Encoding == EncodingBinary,
		notify: make(chan struct{}, 1), done: make(chan struct{}), stopPing: make(chan struct{}),
	}
	_ = ws.SetWriteDeadline(time.Time{})
	s.wg.Add(2)
	go s.readLoop(c.cfg.Logger)
	go s.pingLoop()
	return s, nil
}

func (s *session) extendRead() { _ = s.ws.SetReadDeadline(time.Now().Add(3 * s.timeout)) }

func (s *session) readLoop(log *slog.Logger) {
	defer s.wg.Done()
	s.extendRead()
	s.ws.SetPongHandler(func(string) error { s.extendRead(); return nil })
	s.ws.SetPingHandler(func(data string) error {
		s.extendRead()
		err := s.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(s.timeout))
		var ne net.Error
		if errors.Is(err, websocket.ErrCloseSent) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil
		}
		return err
	})
	for {
		m, err := readMessage(s.ws)
		if err != nil {
			var me *malformedError
			if errors.As(err, &me) {
				log.Warn("aggregator sent a malformed message", "error", err)
				continue
			}
			s.mu.Lock()
			s.readErr = err
			s.mu.Unlock()
			close(s.done)
			return
		}
		s.extendRead()
		if m.Type != TypeRecvWeight || m.Result == nil {
			continue // subscribe echoes, join notices
		}
		r := &RoundResult{
			Round: m.Result.RoundNumber, TotalSamples: m.Result.TotalSample, Weights: m.Result.Weights,
			Exit: m.Result.ExitFlag == ExitOK, Metrics: m.Result.Metrics, Participants: m.Result.Participants,
		}
		s.mu.Lock()
		// Keep only the newest: an older aggregate is of no use.
		if s.latest == nil || r.Round >= s.latest.Round || r.Exit {
			s.latest = r
		}
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

func (s *session) pingLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.timeout)
	defer t.Stop()
	for {
		select {
		case <-s.stopPing:
			return
		case <-t.C:
			if err := s.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.timeout)); err != nil {
				_ = s.ws.Close()
				return
			}
		}
	}
}

// newer returns a received aggregate for a round after known, if any.
func (s *session) newer(known int) *RoundResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latest != nil && (s.latest.Round > known || s.latest.Exit) {
		r := s.latest
		s.latest = nil
		return r
	}
	return nil
}

func (s *session) sent(round int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sentFor == round
}

func (s *session) sendUpdate(u *Update, round int, job string) error {
	m := &Message{Type: TypeUpdateWeight, Client: s.clientID, JobName: job, Update: &UpdateData{
		NumSamples: u.NumSamples, Weights: u.Weights, RoundNumber: round, Metrics: u.Metrics,
	}}
	b, bin, err := Encode(m, s.binary)
	if err != nil {
		return &trainError{fmt.Errorf("encoding the update: %w", err)}
	}
	kind := websocket.TextMessage
	if bin {
		kind = websocket.BinaryMessage
	}
	_ = s.ws.SetWriteDeadline(time.Now().Add(3 * s.timeout))
	if err := s.ws.WriteMessage(kind, b); err != nil {
		return fmt.Errorf("sending the update for round %d: %w", round, err)
	}
	s.mu.Lock()
	s.sentFor = round
	s.mu.Unlock()
	return nil
}

// wait returns the aggregate closing round (or a later one).
func (s *session) wait(ctx context.Context, round int) (*RoundResult, error) {
	for {
		if r := s.newer(round - 1); r != nil {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.notify:
		case <-s.done:
			if r := s.newer(round - 1); r != nil {
				return r, nil
			}
			s.mu.Lock()
			err := s.readErr
			s.mu.Unlock()
			return nil, fmt.Errorf("waiting for round %d: %w", round, err)
		}
	}
}

func (s *session) close() {
	s.closing.Do(func() {
		close(s.stopPing)
		_ = s.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = s.ws.Close()
		s.wg.Wait()
	})
}
