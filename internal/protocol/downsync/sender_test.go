package downsync

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// rankByResource sends what pods depend on before pods, and deletes it
// after them.
func rankByResource(key string, deleting bool) int {
	switch strings.SplitN(key, "/", 2)[0] {
	case "secrets", "configmaps", "tokens":
		if deleting {
			return 2
		}
		return 0
	case "pods":
		return 1
	}
	return 3
}

func classOf(key string) string { return strings.SplitN(key, "/", 2)[0] }

// TestSenderScenarios runs the scripts in testdata/sender/*. Commands:
//
//	new [window=N]
//	set key=K uid=U rv=R      put an object into the view
//	remove key=K              take it out
//	connect [inv=K:U:R,...]   start a session with that inventory
//	disconnect
//	next [max=N]              print what the sender emits now
//	ack seq=N                 cumulative ack
//	horizon class=C rv=R
//	stats
func TestSenderScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata/sender", func(t *testing.T, path string) {
		var s *Sender
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(name string) string {
				for _, a := range d.CmdArgs {
					if a.Key == name && len(a.Vals) > 0 {
						return a.Vals[0]
					}
				}
				return ""
			}
			num := func(name string, def int) int {
				if v := arg(name); v != "" {
					n, err := strconv.Atoi(v)
					if err != nil {
						d.Fatalf(t, "bad %s=%s", name, v)
					}
					return n
				}
				return def
			}
			switch d.Cmd {
			case "new":
				s = NewSender(Config{Window: num("window", 0), Rank: rankByResource, Class: classOf})
				return ""
			case "set":
				s.Set(Object{Key: arg("key"), Version: Version{UID: arg("uid"), ResourceVersion: arg("rv")}, Body: arg("key") + "@" + arg("rv"), Pending: arg("pending") == "true"})
				return ""
			case "remove":
				s.Remove(arg("key"))
				return ""
			case "connect":
				var inv []Meta
				for _, a := range d.CmdArgs {
					if a.Key != "inv" {
						continue
					}
					for _, v := range strings.Split(strings.Join(a.Vals, ","), ",") {
						p := strings.Split(v, ":")
						if len(p) != 3 {
							d.Fatalf(t, "inventory entry %q is not key:uid:rv", v)
						}
						inv = append(inv, Meta{Key: p[0], Version: Version{UID: p[1], ResourceVersion: p[2]}})
					}
				}
				s.Connect(inv)
				return ""
			case "disconnect":
				s.Disconnect()
				return ""
			case "next":
				var b strings.Builder
				for _, m := range s.Next(num("max", 1000)) {
					switch m.Op {
					case OpSyncDone:
						fmt.Fprintf(&b, "%d syncdone\n", m.Seq)
					case OpDelete:
						fmt.Fprintf(&b, "%d delete %s uid=%s\n", m.Seq, m.Key, m.Version.UID)
					default:
						fmt.Fprintf(&b, "%d upsert %s %s/%s body=%v\n", m.Seq, m.Key, m.Version.UID, m.Version.ResourceVersion, m.Body)
					}
				}
				if b.Len() == 0 {
					return "(nothing)"
				}
				return b.String()
			case "ack":
				if err := s.Ack(uint64(num("seq", 0))); err != nil {
					return "error: " + err.Error()
				}
				return ""
			case "horizon":
				s.SetHorizon(arg("class"), uint64(num("rv", 0)))
				return ""
			case "stats":
				st := s.Stats()
				return fmt.Sprintf("sent=%d acked=%d resync-upserts=%d resync-deletes=%d sessions=%d inflight=%d pending=%d view=%d",
					st.Sent, st.Acked, st.ResyncUpserts, st.ResyncDeletes, st.Sessions, s.InFlight(), s.Pending(), s.ViewLen())
			}
			d.Fatalf(t, "unknown command %s", d.Cmd)
			return ""
		})
	})
}

func TestHolds(t *testing.T) {
	for _, tc := range []struct {
		have, want Version
		holds      bool
	}{
		{Version{"a", "5"}, Version{"a", "5"}, true},
		{Version{"a", "6"}, Version{"a", "5"}, true},
		{Version{"a", "5"}, Version{"a", "6"}, false},
		{Version{"b", "9"}, Version{"a", "5"}, false},
		{Version{"a", "x1"}, Version{"a", "x1"}, true},
		{Version{"a", "x2"}, Version{"a", "x1"}, false},
		{Version{"a", "10"}, Version{"a", "9"}, true}, // numeric, not lexical
	} {
		if got := Holds(tc.have, tc.want); got != tc.holds {
			t.Errorf("Holds(%v, %v) = %v, want %v", tc.have, tc.want, got, tc.holds)
		}
	}
}

func TestReceiverOrdering(t *testing.T) {
	r := NewReceiver()
	if err := r.Accept(Message{Seq: 2, Op: OpUpsert}); err == nil {
		t.Fatal("a gap must be an error")
	}
	for seq := uint64(1); seq <= 3; seq++ {
		if err := r.Accept(Message{Seq: seq, Op: OpUpsert}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Accept(Message{Seq: 3, Op: OpUpsert}); err == nil {
		t.Fatal("a repeat must be an error")
	}
	if ack, ok := r.Committed(2); !ok || ack != 2 {
		t.Fatalf("Committed(2) = %d,%v", ack, ok)
	}
	if _, ok := r.Committed(2); ok {
		t.Fatal("no new ack for the same commit")
	}
	if ack, _ := r.Committed(9); ack != 3 {
		t.Fatalf("cannot ack beyond what was accepted: got %d", ack)
	}
	if err := r.Accept(Message{Seq: 4, Op: Op(9)}); err == nil {
		t.Fatal("unknown op must be an error")
	}
}

// keysOf lists a map's keys sorted, for messages.
func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
