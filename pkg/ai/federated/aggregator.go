package federated

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
)

// AggregatorConfig configures an Aggregator.
type AggregatorConfig struct {
	// Rounds is the round bookkeeping (participants, minimum, timeout,
	// stop condition, algorithm, initial weights).
	Rounds RoundConfig
	// JobName is used in logs.
	JobName string
	// MaxMessageBytes bounds one incoming message (default 64 MiB).
	MaxMessageBytes int64
	// PingInterval: each side pings this often; a peer silent for three
	// intervals is dropped (default 20 s).
	PingInterval time.Duration
	// WriteTimeout bounds one write (default 60 s).
	WriteTimeout time.Duration
	// SendQueue is each client's outbound queue, in messages (default 4).
	// A client too slow to take its messages is disconnected and may
	// rejoin.
	SendQueue int
	// FinishGrace: after the last round, the aggregator keeps serving the
	// final weights to clients that have not received them yet, for at
	// most this long (default 30 s).
	FinishGrace time.Duration
	// OnRound is called, on the aggregator's loop, after each round is
	// aggregated (and before the clients get it): save the model, report.
	// It must not block for long.
	OnRound func(RoundClosed)
	// Clock drives round deadlines (default: real time).
	Clock  clock.Clock
	Logger *slog.Logger
	// Registerer, if set, gets verge_fl_* metrics.
	Registerer prometheus.Registerer
}

// Aggregator is the aggregation worker: a WebSocket server speaking
// Sedna's protocol on any path (Sedna clients use /<algorithm name>), with
// the rounds run by a Coordinator on one goroutine.
type Aggregator struct {
	cfg      AggregatorConfig
	coord    *Coordinator
	upgrader websocket.Upgrader
	events   chan event
	loopDone chan struct{}
	metrics  aggMetrics

	mu       sync.Mutex
	snapshot AggregatorStatus
	conns    sync.WaitGroup
}

// AggregatorStatus is what GET on the aggregator's address returns.
type AggregatorStatus struct {
	Round    int      `json:"round"`
	Clients  []string `json:"clients"`
	Finished bool     `json:"finished"`
}

type aggMetrics struct {
	rounds    prometheus.Counter
	updates   *prometheus.CounterVec
	dropped   prometheus.Counter
	connected prometheus.Gauge
	duration  prometheus.Histogram
}

type eventKind int

const (
	evJoin eventKind = iota
	evLeave
	evUpdate
	evDelivered
)

type event struct {
	kind   eventKind
	conn   *aggConn
	update UpdateData
}

// NewAggregator checks the configuration.
func NewAggregator(cfg AggregatorConfig) (*Aggregator, error) {
	coord, err := NewCoordinator(cfg.Rounds)
	if err != nil {
		return nil, err
	}
	cfg.Rounds = coord.Config()
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 64 << 20
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = 20 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = time.Minute
	}
	if cfg.SendQueue == 0 {
		cfg.SendQueue = 4
	}
	if cfg.FinishGrace == 0 {
		cfg.FinishGrace = 30 * time.Second
	}
	if cfg.MaxMessageBytes < 0 || cfg.PingInterval < 0 || cfg.WriteTimeout < 0 || cfg.SendQueue < 0 || cfg.FinishGrace < 0 {
		return nil, errors.New("aggregator: MaxMessageBytes, PingInterval, WriteTimeout, SendQueue and FinishGrace must not be negative")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Aggregator{
		cfg:   cfg,
		coord: coord,
		upgrader: websocket.Upgrader{
			ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10,
			// Workers are not browsers; there is no origin to check.
			CheckOrigin: func(*http.Request) bool { return true },
		},
		events:   make(chan event, 64),
		loopDone: make(chan struct{}),
		metrics: aggMetrics{
			rounds: prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_fl_rounds_total", Help: "Aggregation rounds completed."}),
			updates: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "verge_fl_updates_total", Help: "Client updates received, by result (accepted or rejected).",
			}, []string{"result"}),
			dropped:   prometheus.NewCounter(prometheus.CounterOpts{Name: "verge_fl_stragglers_total", Help: "Connected clients left out of a round because they had not reported by its deadline."}),
			connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "verge_fl_clients_connected", Help: "Training clients connected now."}),
			duration: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name: "verge_fl_round_duration_seconds", Help: "Time from a round's opening to its aggregation.",
				Buckets: prometheus.ExponentialBuckets(1, 2, 14),
			}),
		},
		snapshot: AggregatorStatus{Clients: []string{}},
	}
	if r := cfg.Registerer; r != nil {
		for _, c := range []prometheus.Collector{a.metrics.rounds, a.metrics.updates, a.metrics.dropped, a.metrics.connected, a.metrics.duration} {
			if err := r.Register(c); err != nil {
				return nil, fmt.Errorf("aggregator: registering metrics: %w", err)
			}
		}
	}
	return a, nil
}

// Status returns the round, connected clients and whether training ended.
func (a *Aggregator) Status() AggregatorStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.snapshot
	s.Clients = slices.Clone(s.Clients)
	return s
}

// Handler serves WebSocket upgrades on every path, and the status as JSON
// to plain GETs. Connections are served only while Run runs.
func (a *Aggregator) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(a.Status())
			return
		}
		select {
		case <-a.loopDone:
			http.Error(w, "training is over", http.StatusGone)
			return
		default:
		}
		ws, err := a.upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // the upgrader has answered
		}
		a.conns.Add(1)
		defer a.conns.Done()
		a.serveConn(ws)
	})
}

// Serve runs the aggregator on ln until training is over (and the final
// weights have reached every client seen, or FinishGrace has passed), or
// ctx ends. It returns the final round's result.
func (a *Aggregator) Serve(ctx context.Context, ln net.Listener) (*RoundResult, error) {
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.cfg.Logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	loopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var res *RoundResult
	var loopErr error
	loopExited := make(chan struct{})
	go func() {
		defer close(loopExited)
		res, loopErr = a.Run(loopCtx)
	}()

	var srvErr error
	select {
	case <-loopExited:
	case err := <-errc:
		srvErr = fmt.Errorf("aggregator: %w", err)
		cancel()
		<-loopExited
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx) // hijacked WebSocket connections are closed by Run
	a.Wait()
	if srvErr != nil {
		return nil, srvErr
	}
	return res, loopErr
}

// Wait returns once every connection handler has returned (after Run).
func (a *Aggregator) Wait() { a.conns.Wait() }

// aggConn is one client connection.
type aggConn struct {
	ws       *websocket.Conn
	id       string
	verge    bool
	binary   bool
	out      chan outFrame
	done     chan struct{}
	closeOne sync.Once
}

type outFrame struct {
	data   []byte
	binary bool
	final  bool
}

func (c *aggConn) close() {
	c.closeOne.Do(func() {
		close(c.done)
		_ = c.ws.Close()
	})
}

func (a *Aggregator) serveConn(ws *websocket.Conn) {
	ws.SetReadLimit(a.cfg.MaxMessageBytes)
	deadline := func() { _ = ws.SetReadDeadline(time.Now().Add(3 * a.cfg.PingInterval)) }
	deadline()
	ws.SetPongHandler(func(string) error { deadline(); return nil })
	ws.SetPingHandler(func(data string) error {
		deadline()
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(a.cfg.WriteTimeout))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	})

	// The first message must be subscribe.
	m, err := readMessage(ws)
	if err != nil || m.Type != TypeSubscribe {
		reason := "send {\"type\": \"subscribe\", \"client_id\": …} first"
		if err != nil {
			reason = err.Error()
		}
		a.cfg.Logger.Warn("federated client refused", "remote", ws.RemoteAddr().String(), "reason", reason)
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, truncateReason(reason)), time.Now().Add(time.Second))
		_ = ws.Close()
		return
	}
	c := &aggConn{ws: ws, id: m.ClientID, out: make(chan outFrame, a.cfg.SendQueue), done: make(chan struct{})}
	if c.id == "" {
		c.id = randomID()
	}
	if m.Verge != nil {
		c.verge = true
		c.binary = slices.Contains(m.Verge.Encodings, EncodingBinary)
	}
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); a.writeLoop(c) }()
	defer func() {
		c.close()
		<-writerDone
		a.send(event{kind: evLeave, conn: c})
	}()
	if !a.send(event{kind: evJoin, conn: c}) {
		return
	}
	for {
		deadline()
		m, err := readMessage(ws)
		if err != nil {
			var me *malformedError
			if errors.As(err, &me) {
				a.cfg.Logger.Warn("federated client sent a malformed message", "client", c.id, "error", err)
				a.metrics.updates.WithLabelValues("rejected").Inc()
				continue
			}
			return
		}
		if m.Type == TypeUpdateWeight {
			if !a.send(event{kind: evUpdate, conn: c, update: *m.Update}) {
				return
			}
		}
	}
}

type malformedError struct{ err error }

func (e *malformedError) Error() string { return e.err.Error() }
func (e *malformedError) Unwrap() error { return e.err }

func readMessage(ws *websocket.Conn) (*Message, error) {
	kind, data, err := ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	m, err := Decode(data, kind == websocket.BinaryMessage)
	if err != nil {
		return nil, &malformedError{err}
	}
	return m, nil
}

// send hands an event to the loop; false once the loop has ended.
func (a *Aggregator) send(ev event) bool {
	select {
	case a.events <- ev:
		return true
	case <-a.loopDone:
		return false
	}
}

func (a *Aggregator) writeLoop(c *aggConn) {
	ping := time.NewTicker(a.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(a.cfg.WriteTimeout)); err != nil {
				c.close()
				return
			}
		case f := <-c.out:
			_ = c.ws.SetWriteDeadline(time.Now().Add(a.cfg.WriteTimeout))
			kind := websocket.TextMessage
			if f.binary {
				kind = websocket.BinaryMessage
			}
			if err := c.ws.WriteMessage(kind, f.data); err != nil {
				a.cfg.Logger.Info("federated client connection lost while sending", "client", c.id, "error", err)
				c.close()
				return
			}
			if f.final {
				a.send(event{kind: evDelivered, conn: c})
			}
		}
	}
}

// Run runs the rounds for connections arriving through Handler, until
// training is over (see Serve) or ctx ends. Serve calls it; call it
// yourself (once) only when serving Handler from your own HTTP server.
// Connections still open when it returns are closed.
func (a *Aggregator) Run(ctx context.Context) (*RoundResult, error) {
	defer close(a.loopDone)
	conns := map[string]*aggConn{}
	seen := map[string]bool{}
	delivered := map[string]bool{}
	var graceEnd time.Time
	timer := a.cfg.Clock.NewTimer(time.Hour)
	defer timer.Stop()
	defer func() {
		for _, c := range conns {
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "training is over"), time.Now().Add(time.Second))
			c.close()
		}
	}()

	// The newest result's encodings, JSON and binary, made once for all
	// clients.
	var cachedFor *RoundResult
	var cached [2][]byte
	encode := func(r *RoundResult, binary bool) ([]byte, bool) {
		if cachedFor != r {
			cachedFor, cached = r, [2][]byte{}
		}
		i := 0
		if binary {
			i = 1
		}
		if cached[i] == nil {
			b, _, err := Encode(r.Message(), binary)
			if err != nil {
				a.cfg.Logger.Error("encoding the round result failed", "round", r.Round, "error", err)
				return nil, false
			}
			cached[i] = b
		}
		return cached[i], true
	}
	enqueue := func(c *aggConn, data []byte, binary, final bool) {
		select {
		case c.out <- outFrame{data: data, binary: binary, final: final}:
		default:
			a.cfg.Logger.Warn("federated client too slow; disconnecting it", "client", c.id, "queue", a.cfg.SendQueue)
			c.close()
		}
	}
	sendResult := func(c *aggConn, r *RoundResult) {
		if b, ok := encode(r, c.binary); ok {
			enqueue(c, b, c.binary, r.Exit)
		}
	}
	publish := func() {
		ids := make([]string, 0, len(conns))
		for id := range conns {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		a.mu.Lock()
		a.snapshot = AggregatorStatus{Round: a.coord.Round(), Clients: ids, Finished: a.coord.Finished()}
		a.mu.Unlock()
		a.metrics.connected.Set(float64(len(conns)))
	}
	apply := func(acts []Action) {
		for _, act := range acts {
			switch act := act.(type) {
			case SendAck:
				c := conns[act.To]
				if c == nil {
					continue
				}
				round := act.Round
				ack := &Message{Type: TypeSubscribe, ClientID: c.id, RoundNumber: &round}
				if c.verge {
					enc := EncodingJSON
					if c.binary {
						enc = EncodingBinary
					}
					ack.Verge = &Extension{Protocol: ProtocolVersion, Encoding: enc}
				}
				if b, _, err := Encode(ack, false); err == nil {
					enqueue(c, b, false, false)
				}
			case Send:
				if c := conns[act.To]; c != nil {
					sendResult(c, act.Result)
				}
			case RoundClosed:
				a.metrics.rounds.Inc()
				a.metrics.dropped.Add(float64(len(act.Dropped)))
				a.metrics.duration.Observe(act.Duration.Seconds())
				a.cfg.Logger.Info("federated round aggregated", "job", a.cfg.JobName, "round", act.Result.Round,
					"clients", len(act.Result.Participants), "samples", act.Result.TotalSamples, "stragglers", act.Dropped, "metrics", act.Result.Metrics)
				if a.cfg.OnRound != nil {
					a.cfg.OnRound(act)
				}
				for _, c := range conns {
					sendResult(c, act.Result)
				}
			case RoundWaiting:
				a.cfg.Logger.Warn("federated round waiting for clients", "job", a.cfg.JobName, "round", act.Round,
					"updates", act.Have, "minimum", act.Need, "connected", act.Connected, "open", act.Open.Round(time.Second).String())
			case Rejected:
				a.metrics.updates.WithLabelValues("rejected").Inc()
				a.cfg.Logger.Warn("federated update rejected", "client", act.Client, "reason", act.Reason)
			case Finished:
				a.cfg.Logger.Info("federated training finished", "job", a.cfg.JobName, "round", act.Result.Round, "reason", act.Reason)
				graceEnd = a.cfg.Clock.Now().Add(a.cfg.FinishGrace)
			}
		}
	}
	rearm := func() {
		var next time.Time
		if d, ok := a.coord.NextDeadline(); ok {
			next = d
		}
		if !graceEnd.IsZero() && (next.IsZero() || graceEnd.Before(next)) {
			next = graceEnd
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(a.cfg.Clock.Now()), 0)
		}
		if !timer.Stop() {
			select {
			case <-timer.C():
			default:
			}
		}
		timer.Reset(wait)
	}
	allDelivered := func() bool {
		for id := range seen {
			if !delivered[id] {
				return false
			}
		}
		return true
	}

	for {
		if a.coord.Finished() && (allDelivered() || !a.cfg.Clock.Now().Before(graceEnd)) {
			return a.coord.Latest(), nil
		}
		rearm()
		select {
		case <-ctx.Done():
			return a.coord.Latest(), fmt.Errorf("aggregator stopped before training finished (round %d): %w", a.coord.Round(), ctx.Err())
		case <-timer.C():
			apply(a.coord.Tick(a.cfg.Clock.Now()))
		case ev := <-a.events:
			now := a.cfg.Clock.Now()
			switch ev.kind {
			case evJoin:
				if old := conns[ev.conn.id]; old != nil {
					a.cfg.Logger.Info("federated client reconnected; closing its old connection", "client", ev.conn.id)
					old.close()
				}
				conns[ev.conn.id] = ev.conn
				seen[ev.conn.id] = true
				a.cfg.Logger.Info("federated client joined", "client", ev.conn.id, "verge", ev.conn.verge, "binary", ev.conn.binary)
				apply(a.coord.Join(now, ev.conn.id, ev.conn.verge))
			case evLeave:
				if conns[ev.conn.id] == ev.conn {
					delete(conns, ev.conn.id)
					a.cfg.Logger.Info("federated client left", "client", ev.conn.id)
					apply(a.coord.Leave(now, ev.conn.id))
				}
			case evUpdate:
				if conns[ev.conn.id] != ev.conn {
					continue // from a replaced connection
				}
				wasFinished := a.coord.Finished()
				acts := a.coord.Update(now, ev.conn.id, ev.update)
				if !wasFinished && !slices.ContainsFunc(acts, isRejected) {
					a.metrics.updates.WithLabelValues("accepted").Inc()
				}
				apply(acts)
			case evDelivered:
				delivered[ev.conn.id] = true
			}
			publish()
		}
	}
}

func isRejected(a Action) bool { _, ok := a.(Rejected); return ok }

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func truncateReason(s string) string {
	// A close frame's reason must fit in 123 bytes.
	if len(s) > 120 {
		return s[:120]
	}
	return s
}
