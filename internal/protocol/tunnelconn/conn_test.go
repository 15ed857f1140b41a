package tunnelconn

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/protocol/syncpb"
)

// pipeStream is one end of an in-memory frame stream.
type pipeStream struct {
	in, out chan *syncpb.TunnelFrame
	done    chan struct{}
}

func (p *pipeStream) Send(f *syncpb.TunnelFrame) error {
	select {
	case p.out <- f:
		return nil
	case <-p.done:
		return io.EOF
	}
}

func (p *pipeStream) Recv() (*syncpb.TunnelFrame, error) {
	select {
	case f := <-p.in:
		return f, nil
	case <-p.done:
		return nil, io.EOF
	}
}

func pair() (*Conn, *Conn, func()) {
	a2b, b2a, done := make(chan *syncpb.TunnelFrame), make(chan *syncpb.TunnelFrame), make(chan struct{})
	stop := func() { close(done) }
	a := New(&pipeStream{in: b2a, out: a2b, done: done}, Config{})
	b := New(&pipeStream{in: a2b, out: b2a, done: done}, Config{})
	return a, b, stop
}

// A deadline set while a Read is already blocked interrupts it (what
// http.Server does before handing a connection to a Hijack).
func TestDeadlineInterruptsABlockedRead(t *testing.T) {
	a, _, stop := pair()
	defer stop()
	errc := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 1))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	_ = a.SetReadDeadline(time.Unix(1, 0))
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the blocked read ignored the deadline")
	}
	// A later deadline in the future, then none: reads work again.
	_ = a.SetReadDeadline(time.Now().Add(time.Hour))
	_ = a.SetReadDeadline(time.Time{})
	if a.rd.expired() {
		t.Fatal("the deadline is still expired after clearing it")
	}
}

func TestDataHalfCloseAndClose(t *testing.T) {
	a, b, stop := pair()
	defer stop()
	go func() {
		_, _ = a.Write([]byte("hello"))
		_ = a.CloseWrite()
	}()
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v", got, err)
	}
	// b can still write after a's half-close.
	go func() { _, _ = b.Write([]byte("back")) }()
	buf := make([]byte, 4)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "back" {
		t.Fatalf("reply %q, %v", buf, err)
	}
	go func() { _ = b.Close() }()
	if _, err := a.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the peer closed: %v", err)
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("a write after CloseWrite succeeded")
	}

	c, d, stop2 := pair()
	defer stop2()
	go func() { _ = d.Close() }()
	if _, err := c.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the peer closed: %v", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("write after the peer closed: %v", err)
	}
}
