package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/verge-edge/verge/internal/edge/identity"
)

// credentials serves the node's TLS credentials to the link and keeps them
// fresh. A certificate that expired while the node was offline does not
// stop the node — its pods keep running from the store — but it cannot
// connect until it is re-joined (`verge join` writes fresh credentials
// into the same directory); each connection attempt looks for them.
type credentials struct {
	dir, address, node string
	log                *slog.Logger
	now                func() time.Time
	// renewed is told when a renewal produced a new certificate.
	renewed func()

	mu      sync.Mutex
	manager *identity.Manager
	// startRenewal runs a manager's renewal loop (set by Start).
	startRenewal func(*identity.Manager)
	warned       bool
}

// TLS returns the TLS configuration for the next connection.
func (c *credentials) TLS() (*tls.Config, error) {
	m, err := c.current()
	if err != nil {
		return nil, err
	}
	return m.TLS()
}

// current returns a manager with a certificate that has not expired,
// loading the credentials again when there is none yet or it expired.
func (c *credentials) current() (*identity.Manager, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.manager != nil && c.now().Before(c.manager.NotAfter()) {
		return c.manager, nil
	}
	m, err := identity.NewManager(c.dir, c.address, c.log)
	if err != nil {
		if !c.warned {
			c.log.Error("the node cannot connect to the cloud; pods keep running from the store", "error", err)
			c.warned = true
		}
		return nil, err
	}
	if name := m.NodeName(); name != c.node {
		return nil, errors.New("the node certificate in " + c.dir + " is for node " + name + ", but this node is configured as " + c.node + ": re-join with the right --node-name")
	}
	c.manager, c.warned = m, false
	if c.startRenewal != nil {
		c.startRenewal(m)
	}
	return m, nil
}

// Start renews whichever certificate is current until ctx ends.
func (c *credentials) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	var stopPrev context.CancelFunc
	c.mu.Lock()
	c.startRenewal = func(m *identity.Manager) {
		if stopPrev != nil {
			stopPrev()
		}
		rctx, cancel := context.WithCancel(ctx)
		stopPrev = cancel
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = m.Start(rctx, c.renewed)
		}()
	}
	if c.manager != nil {
		c.startRenewal(c.manager)
	}
	c.mu.Unlock()
	<-ctx.Done()
	c.mu.Lock()
	c.startRenewal = nil
	c.mu.Unlock()
	wg.Wait()
	return nil
}
