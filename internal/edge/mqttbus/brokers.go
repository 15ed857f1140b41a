package mqttbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Embedded is an MQTT broker inside verge-edge (mochi-mqtt). It accepts
// every client: keep it on loopback (the default) unless the network it
// listens on is trusted.
type Embedded struct {
	// Listen is host:port.
	Listen string
	Logger *slog.Logger

	mu     sync.Mutex
	server *mqtt.Server
	addr   net.Addr
	nextID int
}

// Start listens; a busy port is an error saying so.
func (e *Embedded) Start(context.Context) error {
	log := e.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := mqtt.New(&mqtt.Options{InlineClient: true, Logger: log.With("component", "mqtt-broker")})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return err
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "verge-edge", Address: e.Listen})
	if err := s.AddListener(tcp); err != nil {
		return fmt.Errorf("embedded MQTT broker cannot listen on %s: %w (set devices.mqtt.listen to a free address, or devices.mqtt.mode to external or off)", e.Listen, err)
	}
	if err := s.Serve(); err != nil {
		return fmt.Errorf("embedded MQTT broker: %w", err)
	}
	if h, _, err := net.SplitHostPort(e.Listen); err == nil && !isLoopback(h) {
		log.Warn("the embedded MQTT broker accepts any client and listens beyond loopback", "listen", e.Listen)
	}
	e.mu.Lock()
	e.server = s
	e.addr, _ = net.ResolveTCPAddr("tcp", tcp.Address())
	e.mu.Unlock()
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Addr is the address the broker listens on (after Start).
func (e *Embedded) Addr() net.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addr
}

func (e *Embedded) srv() (*mqtt.Server, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.server == nil {
		return nil, errors.New("the embedded MQTT broker is not running")
	}
	return e.server, nil
}

// Publish sends a message from verge-edge (QoS 1, not retained).
func (e *Embedded) Publish(topic string, payload []byte) error {
	s, err := e.srv()
	if err != nil {
		return err
	}
	return s.Publish(topic, payload, false, 1)
}

// Subscribe delivers messages matching filter to handler.
func (e *Embedded) Subscribe(filter string, handler func(topic string, payload []byte)) error {
	s, err := e.srv()
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.nextID++
	id := e.nextID
	e.mu.Unlock()
	return s.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		handler(pk.TopicName, pk.Payload)
	})
}

// Close stops the broker and disconnects its clients.
func (e *Embedded) Close() error {
	e.mu.Lock()
	s := e.server
	e.server = nil
	e.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.Close()
}

// External is a client of an MQTT broker verge-edge does not run.
type External struct {
	// Broker is e.g. tcp://127.0.0.1:1883.
	Broker string
	// ClientID identifies verge-edge at the broker.
	ClientID     string
	Username     string
	PasswordFile string
	Logger       *slog.Logger

	mu     sync.Mutex
	client paho.Client
	subs   map[string]func(string, []byte)
}

// Start connects; it fails when the broker cannot be reached. Later
// outages are bridged by reconnecting, and subscriptions are renewed.
func (x *External) Start(context.Context) error {
	opts := paho.NewClientOptions().AddBroker(x.Broker).SetClientID(x.ClientID).
		SetAutoReconnect(true).SetMaxReconnectInterval(30 * time.Second).SetConnectTimeout(10 * time.Second).
		SetCleanSession(true).SetOrderMatters(false)
	if x.Username != "" {
		opts.SetUsername(x.Username)
	}
	if x.PasswordFile != "" {
		// Read at every connection, so a rotated Secret takes effect.
		opts.SetCredentialsProvider(func() (string, string) {
			b, err := os.ReadFile(x.PasswordFile)
			if err != nil && x.Logger != nil {
				x.Logger.Warn("MQTT password file unreadable", "file", x.PasswordFile, "error", err)
			}
			return x.Username, strings.TrimSpace(string(b))
		})
	}
	opts.SetOnConnectHandler(func(c paho.Client) {
		x.mu.Lock()
		defer x.mu.Unlock()
		for f, h := range x.subs {
			c.Subscribe(f, 1, wrap(h))
		}
	})
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		err := tok.Error()
		if err == nil {
			err = errors.New("timed out")
		}
		return fmt.Errorf("connecting to the MQTT broker %s: %w (check devices.mqtt.broker)", x.Broker, err)
	}
	x.mu.Lock()
	x.client = c
	if x.subs == nil {
		x.subs = map[string]func(string, []byte){}
	}
	x.mu.Unlock()
	return nil
}

func wrap(h func(string, []byte)) paho.MessageHandler {
	return func(_ paho.Client, m paho.Message) { h(m.Topic(), m.Payload()) }
}

// Publish sends a message (QoS 1).
func (x *External) Publish(topic string, payload []byte) error {
	x.mu.Lock()
	c := x.client
	x.mu.Unlock()
	if c == nil || !c.IsConnectionOpen() {
		return fmt.Errorf("not connected to the MQTT broker %s", x.Broker)
	}
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(5 * time.Second) {
		return fmt.Errorf("publishing to %s timed out", topic)
	}
	return tok.Error()
}

// Subscribe delivers messages matching filter to handler, also after a
// reconnect.
func (x *External) Subscribe(filter string, handler func(topic string, payload []byte)) error {
	x.mu.Lock()
	x.subs[filter] = handler
	c := x.client
	x.mu.Unlock()
	tok := c.Subscribe(filter, 1, wrap(handler))
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("subscribing to %s timed out", filter)
	}
	return tok.Error()
}

// Close disconnects.
func (x *External) Close() error {
	x.mu.Lock()
	c := x.client
	x.client = nil
	x.mu.Unlock()
	if c != nil {
		c.Disconnect(250)
	}
	return nil
}
