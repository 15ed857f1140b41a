package federated

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// proxy forwards TCP connections to target; cut drops every connection it
// carries, as a flaky edge link would.
type proxy struct {
	ln     net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	dials  int
	wg     sync.WaitGroup
	target string
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			p.mu.Lock()
			p.dials++
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(out, in); _ = out.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(in, out); _ = in.Close() }()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); p.cut(); p.wg.Wait() })
	return p
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func TestClientReconnectsAndCatchesUp(t *testing.T) {
	var mu sync.Mutex
	var participants []string
	var p *proxy
	url, _, wait := startAggregator(t, AggregatorConfig{
		// Every round needs both clients: finishing proves the cut one
		// came back.
		Rounds: RoundConfig{Participants: 2, Stop: StopCondition{Rounds: 3}},
		OnRound: func(rc RoundClosed) {
			mu.Lock()
			participants = append(participants, fmt.Sprint(rc.Result.Participants))
			mu.Unlock()
			if rc.Result.Round == 1 {
				p.cut() // before the round's aggregate goes out
			}
		},
	})
	hostPort := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/FedAvg")
	p = startProxy(t, hostPort)
	viaProxy := "ws://" + p.ln.Addr().String() + "/FedAvg"

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := &trainer{id: "a", target: 1, samples: 1}
	b := &trainer{id: "b", target: 3, samples: 1}
	errs := make(chan error, 2)
	go func() { _, err := a.run(ctx, viaProxy); errs <- err }()
	go func() { _, err := b.run(ctx, url); errs <- err }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	final, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	if final.Round != 3 || fmt.Sprint(participants) != "[[a b] [a b] [a b]]" {
		t.Fatalf("final round %d, participants per round %v", final.Round, participants)
	}
	p.mu.Lock()
	dials := p.dials
	p.mu.Unlock()
	if dials < 2 {
		t.Fatalf("client a connected %d times; the cut should have made it reconnect", dials)
	}
	// The cut client missed round 1's broadcast, caught up on reconnect
	// and trained round 2 from round 1's aggregate like the other.
	if fmt.Sprint(a.rounds) != "[1 2 3]" || a.globals[1][0].Data[0] != 2 {
		t.Fatalf("client a trained rounds %v from %v", a.rounds, a.globals)
	}
}
