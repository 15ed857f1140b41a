// Package tunnelconn turns one tunnel Data stream (syncpb.TunnelFrame in
// both directions, see tunnel.proto) into a net.Conn. Both ends use it: the
// cloud for the connections it dials to a node, the edge for the
// connections its HTTP server accepts.
//
// # Contract
//
//   - Buffering is bounded: one received frame waits for Read at a time and
//     nothing more is taken from the stream until it is read, so gRPC flow
//     control stops a sender whose peer does not read. Writes are split
//     into frames of at most MaxFrame bytes.
//   - CloseWrite sends close_write (a half-close: the peer's reads end with
//     io.EOF, ours go on). Close sends close (the peer's writes fail from
//     then on) and then calls Config.Finish to end this side of the RPC;
//     Finish must not drop frames already sent (the edge half-closes the
//     stream, the cloud returns from its handler).
//   - Close never blocks behind a Write stuck in flow control: it aborts
//     the stream instead (Config.Abort), like a TCP reset.
//   - Deadlines follow net.Conn. A write deadline that expires while a
//     frame is blocked in flow control aborts the connection.
//   - The stream failing (the node's link lost) fails Read and Write with
//     the stream's error.
//
// Done is closed when the stream has ended (both sides finished, or it
// failed); the cloud's Data handler returns then or when the conn is
// closed.
package tunnelconn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/verge-edge/verge/internal/protocol/syncpb"
)

// MaxFrame is the most payload bytes per frame.
const MaxFrame = 32 << 10

// ErrPeerClosed is returned by Write after the peer closed the connection.
var ErrPeerClosed = errors.New("tunnel: connection closed by the other side")

// Stream is the gRPC Data stream, from either end.
type Stream interface {
	Send(*syncpb.TunnelFrame) error
	Recv() (*syncpb.TunnelFrame, error)
}

// Config says how to end the stream on this side.
type Config struct {
	// Finish ends this side of the RPC after the close frame was sent,
	// without dropping it. Called once, from Close.
	Finish func()
	// Abort ends the RPC at once (frames not yet on the wire may be lost).
	// It must make a blocked Send and Recv return. Called at most once.
	Abort func()
	// Local and Remote are the addresses the conn reports.
	Local, Remote net.Addr
}

// Conn is one tunnelled connection.
type Conn struct {
	s   Stream
	cfg Config

	frames   chan []byte   // pump → Read, one frame at a time
	readDone chan struct{} // no more data will arrive; readErr says why
	readErr  error
	done     chan struct{} // the stream has ended; streamErr says how
	// streamErr is nil for a clean end.
	streamErr error

	closed    chan struct{}
	closeOnce sync.Once
	abortOnce sync.Once

	readMu  sync.Mutex
	pending []byte

	writeMu     sync.Mutex
	writeClosed bool
	mu          sync.Mutex // guards peerClosed
	peerClosed  bool

	rd, wd deadline
}

// New starts reading s; the caller owns nothing else of s from now on.
func New(s Stream, cfg Config) *Conn {
	if cfg.Finish == nil {
		cfg.Finish = func() {}
	}
	if cfg.Abort == nil {
		cfg.Abort = func() {}
	}
	if cfg.Local == nil {
		cfg.Local = Addr("tunnel")
	}
	if cfg.Remote == nil {
		cfg.Remote = Addr("tunnel")
	}
	c := &Conn{
		s: s, cfg: cfg,
		frames:   make(chan []byte),
		readDone: make(chan struct{}),
		done:     make(chan struct{}),
		closed:   make(chan struct{}),
		rd:       newDeadline(), wd: newDeadline(),
	}
	go c.pump()
	return c
}

// pump receives frames until the stream ends.
func (c *Conn) pump() {
	endRead := sync.OnceFunc(func() { close(c.readDone) })
	for {
		f, err := c.s.Recv()
		if err != nil {
			if !isClosed(c.readDone) {
				c.readErr = io.EOF
				if !errors.Is(err, io.EOF) {
					c.readErr = fmt.Errorf("tunnel: %w", err)
				}
				endRead()
			}
			if !errors.Is(err, io.EOF) {
				c.streamErr = fmt.Errorf("tunnel: %w", err)
			}
			close(c.done)
			return
		}
		if len(f.Data) > 0 && !isClosed(c.readDone) {
			select {
			case c.frames <- f.Data:
			case <-c.closed: // nobody reads any more: discard
			}
		}
		if f.Close {
			c.mu.Lock()
			c.peerClosed = true
			c.mu.Unlock()
		}
		if (f.Close || f.CloseWrite) && !isClosed(c.readDone) {
			c.readErr = io.EOF
			endRead()
		}
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Done is closed when the stream has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if isClosed(c.closed) {
		return 0, net.ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.rd.expired() {
		return 0, os.ErrDeadlineExceeded
	}
	select {
	case b := <-c.frames:
		n := copy(p, b)
		c.pending = b[n:]
		return n, nil
	case <-c.readDone:
		return 0, c.readErr
	case <-c.closed:
		return 0, net.ErrClosed
	case <-c.rd.wait():
		return 0, os.ErrDeadlineExceeded
	}
}

// Write implements net.Conn.
func (c *Conn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	written := 0
	for {
		if err := c.writable(); err != nil {
			return written, err
		}
		if written == len(p) {
			return written, nil
		}
		chunk := p[written:min(len(p), written+MaxFrame)]
		if err := c.send(&syncpb.TunnelFrame{Data: chunk}); err != nil {
			return written, err
		}
		written += len(chunk)
	}
}

func (c *Conn) writable() error {
	c.mu.Lock()
	peerClosed := c.peerClosed
	c.mu.Unlock()
	switch {
	case isClosed(c.closed):
		return net.ErrClosed
	case c.writeClosed:
		return errors.New("tunnel: write after CloseWrite")
	case peerClosed:
		return ErrPeerClosed
	case isClosed(c.done) && c.streamErr != nil:
		return c.streamErr
	case isClosed(c.done):
		return ErrPeerClosed
	case c.wd.expired():
		return os.ErrDeadlineExceeded
	}
	return nil
}

// send sends one frame; a write deadline expiring meanwhile aborts the
// stream (a Send blocked in flow control cannot be interrupted otherwise).
func (c *Conn) send(f *syncpb.TunnelFrame) error {
	stop := make(chan struct{})
	expired := make(chan struct{})
	if wait, ok := c.wd.active(); ok {
		go func() {
			select {
			case <-wait:
				close(expired)
				c.abort()
			case <-stop:
			}
		}()
	}
	err := c.s.Send(f)
	close(stop)
	if err != nil {
		if isClosed(expired) {
			return os.ErrDeadlineExceeded
		}
		if isClosed(c.closed) {
			return net.ErrClosed
		}
		if errors.Is(err, io.EOF) {
			// The other side ended the RPC; Recv has the reason.
			<-c.done
			if c.streamErr != nil {
				return c.streamErr
			}
			return ErrPeerClosed
		}
		return fmt.Errorf("tunnel: %w", err)
	}
	return nil
}

// CloseWrite half-closes: the peer reads io.EOF after what was written.
func (c *Conn) CloseWrite() error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.writable(); err != nil {
		return err
	}
	c.writeClosed = true
	return c.send(&syncpb.TunnelFrame{CloseWrite: true})
}

// Close closes the connection; see the package doc.
func (c *Conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.closed)
	})
	if !first {
		return net.ErrClosed
	}
	if !c.writeMu.TryLock() {
		// A Write is blocked in flow control: reset.
		c.abort()
		return nil
	}
	defer c.writeMu.Unlock()
	if !isClosed(c.done) {
		_ = c.s.Send(&syncpb.TunnelFrame{Close: true})
	}
	c.cfg.Finish()
	return nil
}

func (c *Conn) abort() { c.abortOnce.Do(c.cfg.Abort) }

// Abort resets the connection at once.
func (c *Conn) Abort() {
	c.closeOnce.Do(func() { close(c.closed) })
	c.abort()
}

// LocalAddr implements net.Conn.
func (c *Conn) LocalAddr() net.Addr { return c.cfg.Local }

// RemoteAddr implements net.Conn.
func (c *Conn) RemoteAddr() net.Addr { return c.cfg.Remote }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error { c.rd.set(t); return nil }

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }

// Addr is a net.Addr naming a tunnel end, e.g. "node edge-1, tunnel 7".
type Addr string

// Network implements net.Addr.
func (a Addr) Network() string { return "tunnel" }
func (a Addr) String() string  { return string(a) }

// deadline is a settable deadline whose wait channel closes when it
// passes: net.Pipe's design. The channel exists from the start, so an
// operation already waiting sees a deadline set later (http.Server sets a
// past read deadline to interrupt its background read when a handler
// hijacks the connection).
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{}
	armed  bool // a deadline is set (not the zero time)
}

func newDeadline() deadline { return deadline{cancel: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait until it closed cancel
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	d.armed = !t.IsZero()
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		ch := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

// wait returns a channel closed when the deadline passes.
func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

// active returns the wait channel if a deadline is set.
func (d *deadline) active() (<-chan struct{}, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel, d.armed
}

func (d *deadline) expired() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return isClosed(d.cancel)
}
