// Package mqttsink publishes samples to an MQTT broker, the
// pushMethod.mqtt destination of a device property.
//
// Upstream opened a new connection for every reading and exited the mapper
// when the broker was down. This sink keeps one connection per
// destination, reconnects with backoff in the background, and fails a
// Write promptly while the broker is unreachable so the SDK can retry the
// batch. QoS 1 and 2 publishes complete only when the broker acknowledges
// them.
//
// Each sample is one message: the topic is the configured topic with
// {namespace}, {device} and {property} filled in, the payload is JSON
// {"namespace","device","property","value","type","timestamp"}.
package mqttsink

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/verge-edge/verge/pkg/mapper/sink"
	"github.com/verge-edge/verge/pkg/mapper/sink/internal/sinkutil"
	"github.com/verge-edge/verge/pkg/mapper/sink/secret"
)

// Config mirrors pushMethod.mqtt of the Device CRD.
type Config struct {
	// Address is the broker URL, e.g. "mqtt://127.0.0.1:1883". Schemes:
	// mqtt and tcp (plain), mqtts, ssl and tls (TLS), ws and wss. A bare
	// "host:port" means mqtt.
	Address string `json:"address,omitempty"`
	// Topic to publish to; {namespace}, {device} and {property} are
	// replaced per sample. Empty means DefaultTopic.
	Topic string `json:"topic,omitempty"`
	// QoS is 0, 1 or 2.
	QoS int32 `json:"qos,omitempty"`
	// Retained asks the broker to keep the latest message per topic.
	Retained bool `json:"retained,omitempty"`
}

// DefaultTopic is used when the config names none; it is the device data
// topic of KubeEdge's mapper framework.
const DefaultTopic = "$ke/events/device/{namespace}/{device}/data/update"

// Options are the settings that are not in the CRD.
type Options struct {
	// ClientID; "verge-mapper-" and a random suffix when empty. Two
	// clients with one ID take the connection from each other.
	ClientID string
	// Username and Password, when they name a source, are sent on every
	// connect (read again each time, so rotated Secrets apply).
	Username, Password secret.Credential
	// LookupEnv reads environment variables; os.LookupEnv when nil.
	LookupEnv secret.LookupEnv
	// TLSConfig for TLS and wss brokers; system roots when nil.
	TLSConfig *tls.Config
	// ConnectTimeout bounds one connection attempt; default 10 s.
	ConnectTimeout time.Duration
	// MaxReconnectInterval caps the backoff between attempts; default 30 s.
	MaxReconnectInterval time.Duration
	// KeepAlive is the MQTT keep-alive; default 30 s.
	KeepAlive time.Duration
	// Logger receives connection changes; discarded when nil.
	Logger *slog.Logger
	// Now stamps samples that carry no timestamp; time.Now when nil.
	Now func() time.Time
}

// Sink is one MQTT connection. It is safe for concurrent use.
type Sink struct {
	addr     string
	topic    sinkutil.Template
	qos      byte
	retained bool
	opts     Options
	client   mqtt.Client

	mu      sync.Mutex
	lastErr error
	skipped map[string]bool // properties whose topic was unusable, logged once

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

var _ sink.Sink = (*Sink)(nil)

// New validates cfg and starts connecting in the background; it does not
// wait for the broker, so a mapper starts while the broker is down.
func New(cfg Config, opts Options) (*Sink, error) {
	addr, err := brokerURL(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("pushMethod.mqtt: %w", err)
	}
	topic := cfg.Topic
	if topic == "" {
		topic = DefaultTopic
	}
	tmpl, err := sinkutil.ParseTemplate(topic)
	if err != nil {
		return nil, fmt.Errorf("pushMethod.mqtt: topic %w", err)
	}
	if strings.ContainsAny(topic, "+#\x00") {
		return nil, fmt.Errorf("pushMethod.mqtt: topic %q contains a wildcard (+ or #) or NUL; a publish topic must name one topic", topic)
	}
	if cfg.QoS < 0 || cfg.QoS > 2 {
		return nil, fmt.Errorf("pushMethod.mqtt: qos %d is invalid: use 0, 1 or 2", cfg.QoS)
	}
	if opts.ClientID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		opts.ClientID = "verge-mapper-" + hex.EncodeToString(b[:])
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.MaxReconnectInterval <= 0 {
		opts.MaxReconnectInterval = 30 * time.Second
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Sink{
		addr:     addr,
		topic:    tmpl,
		qos:      byte(cfg.QoS),
		retained: cfg.Retained,
		opts:     opts,
		lastErr:  errors.New("not connected yet"),
		skipped:  map[string]bool{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	co := mqtt.NewClientOptions().
		AddBroker(addr).
		SetClientID(opts.ClientID).
		SetCleanSession(true).
		// MQTT 3.1.1, stated: left implicit, paho writes the version it
		// settled on into its options, unlocked, after connecting, while
		// its other goroutines read them.
		SetProtocolVersion(4).
		SetOrderMatters(false).
		SetAutoReconnect(true).
		SetConnectRetry(false). // the first connection is retried by connectLoop, which keeps the error
		SetMaxReconnectInterval(opts.MaxReconnectInterval).
		SetConnectTimeout(opts.ConnectTimeout).
		SetWriteTimeout(opts.ConnectTimeout).
		SetKeepAlive(opts.KeepAlive).
		SetPingTimeout(opts.ConnectTimeout).
		SetOnConnectHandler(s.onConnect).
		SetConnectionLostHandler(s.onLost)
	if opts.TLSConfig != nil {
		co.SetTLSConfig(opts.TLSConfig)
	}
	if !opts.Username.IsZero() || !opts.Password.IsZero() {
		co.SetCredentialsProvider(s.credentials)
	}
	s.client = mqtt.NewClient(co)
	go s.connectLoop()
	return s, nil
}

func brokerURL(address string) (string, error) {
	a := strings.TrimSpace(address)
	if a == "" {
		return "", errors.New("address is empty: set it to the broker URL, e.g. mqtt://127.0.0.1:1883")
	}
	if !strings.Contains(a, "://") {
		a = "mqtt://" + a
	}
	u, err := url.Parse(a)
	if err != nil {
		return "", fmt.Errorf("address %q is not a broker URL: %w", address, err)
	}
	defPort := ""
	switch u.Scheme {
	case "mqtt", "tcp":
		defPort = "1883"
	case "mqtts", "ssl", "tls":
		defPort = "8883"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("address %q has scheme %q: use mqtt, tcp, mqtts, ssl, tls, ws or wss", address, u.Scheme)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("address %q has no host", address)
	}
	if u.Port() == "" && defPort != "" {
		u.Host = net.JoinHostPort(u.Hostname(), defPort)
	}
	return u.String(), nil
}

func (s *Sink) credentials() (string, string) {
	user, _, err := s.opts.Username.Resolve(s.opts.LookupEnv)
	if err != nil {
		s.opts.Logger.Warn("mqtt credentials unreadable", "broker", s.addr, "err", err)
	}
	pass, _, err := s.opts.Password.Resolve(s.opts.LookupEnv)
	if err != nil {
		s.opts.Logger.Warn("mqtt credentials unreadable", "broker", s.addr, "err", err)
	}
	return user, pass
}

func (s *Sink) onConnect(mqtt.Client) {
	s.mu.Lock()
	s.lastErr = nil
	s.mu.Unlock()
	s.opts.Logger.Info("mqtt connected", "broker", s.addr)
}

func (s *Sink) onLost(_ mqtt.Client, err error) {
	s.mu.Lock()
	s.lastErr = fmt.Errorf("connection lost: %w", err)
	s.mu.Unlock()
	s.opts.Logger.Warn("mqtt connection lost", "broker", s.addr, "err", err)
}

// connectLoop makes the first connection, retrying with backoff; after it
// succeeds, paho's auto-reconnect keeps the connection up.
func (s *Sink) connectLoop() {
	defer close(s.done)
	wait := 500 * time.Millisecond
	for {
		tok := s.client.Connect()
		select {
		case <-tok.Done():
		case <-s.stop:
			return
		}
		err := tok.Error()
		if err == nil {
			return
		}
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		s.opts.Logger.Debug("mqtt connect failed", "broker", s.addr, "err", err)
		select {
		case <-time.After(wait):
		case <-s.stop:
			return
		}
		wait = min(wait*2, s.opts.MaxReconnectInterval)
	}
}

// Name identifies the destination.
func (s *Sink) Name() string { return "mqtt " + s.addr + " " + s.topic.String() }

// Connected reports whether the connection is up now.
func (s *Sink) Connected() bool { return s.client.IsConnectionOpen() }

// Write publishes every sample and waits until each publish completes
// (for QoS 1 and 2, until the broker acknowledges it). While the broker is
// unreachable it fails at once instead of queueing.
func (s *Sink) Write(ctx context.Context, batch []sink.Sample) error {
	if len(batch) == 0 {
		return nil
	}
	// paho silently drops QoS 0 messages published while reconnecting;
	// check first so the SDK keeps and retries them.
	if !s.client.IsConnectionOpen() {
		s.mu.Lock()
		cause := s.lastErr
		s.mu.Unlock()
		return fmt.Errorf("mqtt sink: not connected to %s: %w", s.addr, cause)
	}
	tokens := make([]mqtt.Token, 0, len(batch))
	for _, smp := range batch {
		topic := s.topic.Expand(smp)
		if bad := badTopic(topic); bad != "" {
			s.skip(smp, topic, bad)
			continue
		}
		payload, err := sinkutil.MarshalRecord(smp, s.opts.Now)
		if err != nil {
			return fmt.Errorf("mqtt sink: encoding sample: %w", err)
		}
		tokens = append(tokens, s.client.Publish(topic, s.qos, s.retained, payload))
	}
	for _, tok := range tokens {
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				return fmt.Errorf("mqtt sink: publishing to %s: %w", s.addr, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("mqtt sink: waiting for %s: %w", s.addr, ctx.Err())
		}
	}
	return nil
}

// badTopic says why an expanded topic cannot be published to, or "".
func badTopic(topic string) string {
	switch {
	case topic == "":
		return "the topic is empty"
	case len(topic) > 65535:
		return "the topic is longer than 65535 bytes"
	case strings.ContainsAny(topic, "+#\x00"):
		return "the topic contains + or # (a property or device name with a wildcard character)"
	}
	return ""
}

// skip drops a sample whose topic can never be published to: retrying
// would not help, and a wildcard publish makes brokers drop the client.
func (s *Sink) skip(smp sink.Sample, topic, why string) {
	key := smp.Namespace + "/" + smp.Device + "/" + smp.Property
	s.mu.Lock()
	first := !s.skipped[key]
	s.skipped[key] = true
	s.mu.Unlock()
	if first {
		s.opts.Logger.Warn("mqtt sample skipped", "device", smp.Namespace+"/"+smp.Device, "property", smp.Property, "topic", topic, "reason", why)
	}
}

// Close stops reconnecting and disconnects, waiting up to 250 ms for
// publishes in flight.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.client.Disconnect(250)
	})
	return nil
}
