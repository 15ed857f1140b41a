package downsync

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
)

// event is one informer event of the simulated cloud.
type event struct {
	key    string
	remove bool
	ver    Version
}

// replica is a verge-cloud replica whose informer sees the event stream
// with its own lag.
type replica struct {
	sender  *Sender
	applied int // events[:applied] are in its view
}

func (r *replica) catchUp(events []event, upTo int) {
	for ; r.applied < upTo; r.applied++ {
		e := events[r.applied]
		if e.remove {
			r.sender.Remove(e.key)
		} else {
			r.sender.Set(Object{Key: e.key, Version: e.ver, Body: e.ver})
		}
		rv, _ := strconv.ParseUint(e.ver.ResourceVersion, 10, 64)
		r.sender.SetHorizon("pods", rv)
	}
}

// edge is the simulated node: its store and its session.
type edge struct {
	store map[string]Version
	recv  *Receiver
}

func (e *edge) inventory() []Meta {
	var inv []Meta
	for k, v := range e.store {
		inv = append(inv, Meta{Key: k, Version: v})
	}
	return inv
}

// TestRandomizedConvergence runs seeded random schedules of changes, lagging
// replicas, message delivery, commits, acks and link drops, and checks that
// the edge applies in order, never regresses an object, and converges to the
// view once things settle.
func TestRandomizedConvergence(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { simulate(t, seed) })
	}
}

func simulate(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	var events []event
	live := map[string]Version{} // the apiserver's truth
	rv := uint64(0)
	uids := 0
	newEvent := func() {
		key := fmt.Sprintf("pods/ns/p%d", rng.IntN(8))
		rv++
		if v, ok := live[key]; ok && rng.IntN(4) == 0 {
			delete(live, key)
			events = append(events, event{key: key, remove: true, ver: Version{UID: v.UID, ResourceVersion: strconv.FormatUint(rv, 10)}})
			return
		}
		v, ok := live[key]
		if !ok || rng.IntN(10) == 0 { // created, or recreated under a new UID
			uids++
			v.UID = fmt.Sprintf("u%d", uids)
		}
		v.ResourceVersion = strconv.FormatUint(rv, 10)
		live[key] = v
		events = append(events, event{key: key, ver: v})
	}

	cfg := Config{Window: 1 + rng.IntN(4), Rank: rankByResource, Class: classOf}
	replicas := []*replica{{sender: NewSender(cfg)}, {sender: NewSender(cfg)}}
	for _, r := range replicas {
		r.sender.SetHorizon("pods", 0)
	}
	ed := &edge{store: map[string]Version{}}
	var cur *replica // the replica the edge is connected to
	var transit []Message
	var acks []uint64
	highest := map[string]Version{} // per key+uid, the newest the edge ever held

	connect := func() {
		cur = replicas[rng.IntN(len(replicas))]
		cur.sender.Connect(ed.inventory())
		ed.recv = NewReceiver()
		transit, acks = nil, nil
	}
	disconnect := func() {
		if cur != nil {
			cur.sender.Disconnect()
		}
		cur, transit, acks = nil, nil, nil
	}
	apply := func(m Message) {
		if err := ed.recv.Accept(m); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		switch m.Op {
		case OpUpsert:
			have, held := ed.store[m.Key]
			if held && have.UID != m.Version.UID && live[m.Key].UID == have.UID {
				t.Fatalf("seed %d: replaced live %s %v with stale %v", seed, m.Key, have, m.Version)
			}
			if ShouldApply(have, held, m.Version) {
				if h, ok := highest[m.Key+"/"+m.Version.UID]; ok && !Holds(m.Version, h) {
					t.Fatalf("seed %d: %s regressed from %v to %v", seed, m.Key, h, m.Version)
				}
				ed.store[m.Key] = m.Version
				highest[m.Key+"/"+m.Version.UID] = m.Version
			}
		case OpDelete:
			if l, ok := live[m.Key]; ok && l.UID == m.Version.UID {
				t.Fatalf("seed %d: deleted %s %v, which is live", seed, m.Key, l)
			}
			if have, ok := ed.store[m.Key]; ok && (m.Version.UID == "" || have.UID == m.Version.UID) {
				delete(ed.store, m.Key)
			}
		case OpSyncDone:
			ed.recv.SyncDone()
		}
	}

	step := func(chaos bool) {
		switch r := rng.IntN(10); {
		case r < 2 && chaos:
			newEvent()
		case r < 4:
			for _, rep := range replicas {
				rep.catchUp(events, rep.applied+rng.IntN(len(events)-rep.applied+1))
			}
		case r < 6 && cur != nil:
			transit = append(transit, cur.sender.Next(1+rng.IntN(3))...)
		case r < 8 && cur != nil && len(transit) > 0:
			n := 1 + rng.IntN(len(transit))
			for _, m := range transit[:n] {
				apply(m)
			}
			transit = transit[n:]
			if ack, ok := ed.recv.Committed(^uint64(0)); ok {
				acks = append(acks, ack)
			}
		case r < 9 && cur != nil && len(acks) > 0:
			for _, a := range acks {
				if err := cur.sender.Ack(a); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
			}
			acks = nil
		case chaos && rng.IntN(4) == 0:
			disconnect()
		case cur == nil:
			connect()
		}
	}
	for range 400 {
		step(true)
	}
	// Settle: every replica catches up fully; the link stays up.
	for _, rep := range replicas {
		rep.catchUp(events, len(events))
	}
	if cur == nil {
		connect()
	}
	for range 2000 {
		step(false)
		if cur.sender.Pending() == 0 && cur.sender.InFlight() == 0 && len(transit) == 0 && len(acks) == 0 && ed.recv.Synced() {
			break
		}
	}
	if !ed.recv.Synced() {
		t.Fatalf("seed %d: never synced", seed)
	}
	if len(ed.store) != len(live) {
		t.Fatalf("seed %d: edge holds %v, want %v", seed, keysOf(ed.store), keysOf(live))
	}
	for k, want := range live {
		if got := ed.store[k]; got != want {
			t.Fatalf("seed %d: %s = %v at the edge, want %v", seed, k, got, want)
		}
	}
}
