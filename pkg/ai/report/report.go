package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/utils/clock"
)

// Owner kinds, as Sedna's workers send them.
const (
	KindJointInference      = "jointinferenceservice"
	KindFederatedLearning   = "federatedlearningjob"
	KindIncrementalLearning = "incrementallearningjob"
	KindLifelongLearning    = "lifelonglearningjob"
)

// Worker phases ("kind" in the message).
const (
	PhaseTrain     = "train"
	PhaseEval      = "eval"
	PhaseInference = "inference"
	PhaseDeploy    = "deploy"
)

// Worker statuses.
const (
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
)

// TimeLayout is Sedna's report time format ("%Y-%m-%d %H:%M:%S", local
// time).
const TimeLayout = "2006-01-02 15:04:05"

// Message is one worker report.
type Message struct {
	Name      string         `json:"name"`
	Namespace string         `json:"namespace"`
	OwnerName string         `json:"ownerName"`
	OwnerKind string         `json:"ownerKind"`
	OwnerInfo map[string]any `json:"ownerInfo,omitempty"`
	Kind      string         `json:"kind"`
	Status    string         `json:"status"`
	Results   []ModelResult  `json:"results,omitempty"`
}

// ModelResult describes a model a worker produced.
type ModelResult struct {
	Format  string `json:"format"`
	URL     string `json:"url"`
	Metrics any    `json:"metrics,omitempty"`
}

// Worker identifies the reporting worker.
type Worker struct {
	Name      string // WORKER_NAME
	Namespace string // NAMESPACE
	OwnerName string // SERVICE_NAME or JOB_NAME
	OwnerKind string // Kind* constant
}

// Message returns a report from w.
func (w Worker) Message(phase, status string, info map[string]any, results []ModelResult) Message {
	return Message{
		Name: w.Name, Namespace: w.Namespace, OwnerName: w.OwnerName, OwnerKind: w.OwnerKind,
		Kind: phase, Status: status, OwnerInfo: info, Results: results,
	}
}

// JointInferenceInfo is the ownerInfo of an edge worker: inferenceNumber,
// hardExampleNumber, uploadCloudRatio (hard / inferences), startTime and
// updateTime.
func JointInferenceInfo(inferences, hard uint64, start, now time.Time) map[string]any {
	ratio := 0.0
	if inferences > 0 {
		ratio = float64(hard) / float64(inferences)
	}
	return map[string]any{
		"inferenceNumber":   inferences,
		"hardExampleNumber": hard,
		"uploadCloudRatio":  ratio,
		"startTime":         start.Format(TimeLayout),
		"updateTime":        now.Format(TimeLayout),
	}
}

// FederatedInfo is the ownerInfo of a training worker after a round:
// currentRound, sampleCount, startTime and updateTime, plus the round's
// metrics (Verge; e.g. accuracy) when there are any.
func FederatedInfo(round, samples int, metrics map[string]float64, start, now time.Time) map[string]any {
	info := map[string]any{
		"currentRound": round,
		"sampleCount":  samples,
		"startTime":    start.Format(TimeLayout),
		"updateTime":   now.Format(TimeLayout),
	}
	for k, v := range metrics {
		if _, taken := info[k]; !taken {
			info[k] = v
		}
	}
	return info
}

// Client posts reports to one local controller.
type Client struct {
	base string
	http *http.Client
}

// NewClient checks lcServer (LC_SERVER, e.g. http://localhost:9100). A nil
// hc uses a client with a 10 s timeout.
func NewClient(lcServer string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(lcServer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("report: LC_SERVER %q must be an http(s) URL such as http://localhost:9100", lcServer)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{base: strings.TrimSuffix(lcServer, "/"), http: hc}, nil
}

// Send posts m. Any status but 2xx is an error carrying the body's start.
func (c *Client) Send(ctx context.Context, m Message) error {
	if m.Name == "" {
		return errors.New("report: the message has no worker name (WORKER_NAME)")
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("report: encoding: %w", err)
	}
	u := c.base + "/sedna/workers/" + url.PathEscape(m.Name) + "/info"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("report: posting to the local controller: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("report: the local controller answered %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

// BuildFunc makes the current report; ok false means there is nothing to
// report yet. Periodic sends it only when it differs from the last report
// delivered (ownerInfo's startTime and updateTime aside).
type BuildFunc func(start, now time.Time) (m Message, ok bool)

// PeriodicConfig configures a Periodic reporter.
type PeriodicConfig struct {
	Client *Client
	// Period is LC_PERIOD (default 30 s).
	Period time.Duration
	Build  BuildFunc
	Clock  clock.WithTicker
	Logger *slog.Logger
}

// Periodic posts a report every period while something changes.
type Periodic struct{ cfg PeriodicConfig }

// NewPeriodic checks the configuration.
func NewPeriodic(cfg PeriodicConfig) (*Periodic, error) {
	if cfg.Client == nil || cfg.Build == nil {
		return nil, errors.New("report: Client and Build are required")
	}
	if cfg.Period == 0 {
		cfg.Period = 30 * time.Second
	}
	if cfg.Period < 0 {
		return nil, fmt.Errorf("report: period %v must be positive", cfg.Period)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Periodic{cfg: cfg}, nil
}

// Start reports until ctx ends, then sends a last report (if anything
// changed) within 5 s, and returns nil.
func (p *Periodic) Start(ctx context.Context) error {
	start := p.cfg.Clock.Now()
	t := p.cfg.Clock.NewTicker(p.cfg.Period)
	defer t.Stop()
	var delivered string // fingerprint of the last report delivered
	send := func(ctx context.Context) {
		m, ok := p.cfg.Build(start, p.cfg.Clock.Now())
		if !ok {
			return
		}
		fp := fingerprint(m)
		if fp == delivered {
			return
		}
		if err := p.cfg.Client.Send(ctx, m); err != nil {
			p.cfg.Logger.Warn("worker report not delivered; next attempt at the next period", "error", err)
			return
		}
		delivered = fp
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			send(fctx)
			cancel()
			return nil
		case <-t.C():
			send(ctx)
		}
	}
}

// fingerprint identifies a report's content, times aside.
func fingerprint(m Message) string {
	info := make(map[string]any, len(m.OwnerInfo))
	for k, v := range m.OwnerInfo {
		if k != "startTime" && k != "updateTime" {
			info[k] = v
		}
	}
	m.OwnerInfo = info
	b, err := json.Marshal(m)
	if err != nil {
		return ""
	}
	return string(b)
}

// JointInference returns a BuildFunc for an edge worker reporting
// stats(), once there has been an inference.
func JointInference(w Worker, stats func() (inferences, hard uint64)) BuildFunc {
	return func(start, now time.Time) (Message, bool) {
		n, hard := stats()
		if n == 0 {
			return Message{}, false
		}
		return w.Message(PhaseInference, StatusRunning, JointInferenceInfo(n, hard, start, now), nil), true
	}
}
