package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	clocktesting "k8s.io/utils/clock/testing"
)

var ctx = context.Background()

func openAt(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func openT(t testing.TB, opts Options) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "edge.db"), opts)
}

func obj(key, uid, rv, data string) Object {
	return Object{Meta: Meta{Key: key, UID: uid, ResourceVersion: rv}, Kind: kindOf(key), Data: []byte(data)}
}

func kindOf(key string) string {
	switch strings.SplitN(key, "/", 2)[0] {
	case "pods":
		return "Pod"
	case "configmaps":
		return "ConfigMap"
	}
	return "Other"
}

func put(o Object) Op { return Op{Object: o} }

func del(key, uid string) Op { return Op{Delete: true, Object: Object{Meta: Meta{Key: key, UID: uid}}} }

func mustApply(t testing.TB, s *Store, ops ...Op) int64 {
	t.Helper()
	rev, err := s.Apply(ctx, ops)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return rev
}

// summary renders objects as "key uid/rv data" for compact comparisons.
func summary(objs []Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, fmt.Sprintf("%s %s/%s %s", o.Key, o.UID, o.ResourceVersion, o.Data))
	}
	return out
}

func changeSummary(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%d %s %s %s/%s %s", c.Revision, c.Type, c.Object.Key, c.Object.UID, c.Object.ResourceVersion, c.Object.Data))
	}
	return out
}

func list(t testing.TB, s *Store, prefix string) []string {
	t.Helper()
	objs, err := s.List(ctx, prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return summary(objs)
}

func changes(t testing.TB, s *Store, since int64) ([]string, int64) {
	t.Helper()
	cs, rev, err := s.Changes(ctx, since)
	if err != nil {
		t.Fatalf("Changes(%d): %v", since, err)
	}
	return changeSummary(cs), rev
}

// metricValue reads a counter or gauge.
func metricValue(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	if c := pb.GetCounter(); c != nil {
		return c.GetValue()
	}
	return pb.GetGauge().GetValue()
}

func TestApply(t *testing.T) {
	seed := []Op{put(obj("pods/ns/a", "u1", "10", "a10")), put(obj("configmaps/ns/c", "c1", "5", "c5"))}
	tests := []struct {
		name        string
		ops         []Op
		wantRev     int64
		wantObjects []string
		wantChanges []string // after the seed (revisions 1 and 2)
	}{{
		name:        "same UID and resourceVersion again is a no-op",
		ops:         []Op{put(obj("pods/ns/a", "u1", "10", "other bytes"))},
		wantRev:     2,
		wantObjects: []string{"configmaps/ns/c c1/5 c5", "pods/ns/a u1/10 a10"},
	}, {
		name:        "newer resourceVersion modifies",
		ops:         []Op{put(obj("pods/ns/a", "u1", "11", "a11"))},
		wantRev:     3,
		wantObjects: []string{"configmaps/ns/c c1/5 c5", "pods/ns/a u1/11 a11"},
		wantChanges: []string{"3 modified pods/ns/a u1/11 a11"},
	}, {
		name:        "a new UID under the same key is a deletion then an addition",
		ops:         []Op{put(obj("pods/ns/a", "u2", "20", "new pod"))},
		wantRev:     4,
		wantObjects: []string{"configmaps/ns/c c1/5 c5", "pods/ns/a u2/20 new pod"},
		wantChanges: []string{"3 deleted pods/ns/a u1/10 a10", "4 added pods/ns/a u2/20 new pod"},
	}, {
		name:        "delete with the stored UID removes and logs the last state",
		ops:         []Op{del("pods/ns/a", "u1")},
		wantRev:     3,
		wantObjects: []string{"configmaps/ns/c c1/5 c5"},
		wantChanges: []string{"3 deleted pods/ns/a u1/10 a10"},
	}, {
		name:        "delete with another UID leaves the object",
		ops:         []Op{del("pods/ns/a", "u-old")},
		wantRev:     2,
		wantObjects: []string{"configmaps/ns/c c1/5 c5", "pods/ns/a u1/10 a10"},
	}, {
		name:        "delete without UID removes whatever is there",
		ops:         []Op{del("configmaps/ns/c", "")},
		wantRev:     3,
		wantObjects: []string{"pods/ns/a u1/10 a10"},
		wantChanges: []string{"3 deleted configmaps/ns/c c1/5 c5"},
	}, {
		name:        "delete of a missing key is a no-op",
		ops:         []Op{del("pods/ns/missing", "")},
		wantRev:     2,
		wantObjects: []string{"configmaps/ns/c c1/5 c5", "pods/ns/a u1/10 a10"},
	}, {
		name: "ops apply in order within one batch, one revision each",
		ops: []Op{put(obj("pods/ns/b", "u3", "1", "b1")), put(obj("pods/ns/b", "u3", "2", "b2")),
			del("pods/ns/a", ""), put(obj("nodes//edge-1", "n1", "7", "node"))},
		wantRev:     6,
		wantObjects: []string{"configmaps/ns/c c1/5 c5", "nodes//edge-1 n1/7 node", "pods/ns/b u3/2 b2"},
		wantChanges: []string{"3 added pods/ns/b u3/1 b1", "4 modified pods/ns/b u3/2 b2",
			"5 deleted pods/ns/a u1/10 a10", "6 added nodes//edge-1 n1/7 node"},
	}, {
		name:        "without a resourceVersion identical data is a no-op",
		ops:         []Op{put(obj("serviceaccounttokens/ns/t", "", "", "tok")), put(obj("serviceaccounttokens/ns/t", "", "", "tok"))},
		wantRev:     3,
		wantObjects: []string{"configmaps/ns/c c1/5 c5", "pods/ns/a u1/10 a10", "serviceaccounttokens/ns/t / tok"},
		wantChanges: []string{"3 added serviceaccounttokens/ns/t / tok"},
	}, {
		name:        "without a resourceVersion new data modifies",
		ops:         []Op{put(obj("serviceaccounttokens/ns/t", "", "", "tok")), put(obj("serviceaccounttokens/ns/t", "", "", "tok2"))},
		wantRev:     4,
		wantObjects: []string{"configmaps/ns/c c1/5 c5", "pods/ns/a u1/10 a10", "serviceaccounttokens/ns/t / tok2"},
		wantChanges: []string{"3 added serviceaccounttokens/ns/t / tok", "4 modified serviceaccounttokens/ns/t / tok2"},
	}, {
		name:        "an empty batch changes nothing",
		wantRev:     2,
		wantObjects: []string{"configmaps/ns/c c1/5 c5", "pods/ns/a u1/10 a10"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openT(t, Options{})
			if rev := mustApply(t, s, seed...); rev != 2 {
				t.Fatalf("seed revision = %d, want 2", rev)
			}
			changed := s.Changed()
			rev := mustApply(t, s, tc.ops...)
			if rev != tc.wantRev {
				t.Errorf("revision = %d, want %d", rev, tc.wantRev)
			}
			if s.Revision() != tc.wantRev {
				t.Errorf("Revision() = %d, want %d", s.Revision(), tc.wantRev)
			}
			if got := list(t, s, ""); !reflect.DeepEqual(got, tc.wantObjects) {
				t.Errorf("objects:\n got %q\nwant %q", got, tc.wantObjects)
			}
			got, crev := changes(t, s, 2)
			if !reflect.DeepEqual(got, tc.wantChanges) {
				t.Errorf("changes:\n got %q\nwant %q", got, tc.wantChanges)
			}
			if crev != tc.wantRev {
				t.Errorf("Changes revision = %d, want %d", crev, tc.wantRev)
			}
			select {
			case <-changed:
				if len(tc.wantChanges) == 0 {
					t.Error("Changed fired for a commit with no changes")
				}
			default:
				if len(tc.wantChanges) > 0 {
					t.Error("Changed did not fire")
				}
			}
		})
	}
}

func TestApplyRejectsBadKeysAtomically(t *testing.T) {
	s := openT(t, Options{})
	mustApply(t, s, put(obj("pods/ns/a", "u1", "1", "a")))
	for _, key := range []string{"", "pods", "pods/ns", "/ns/a", "pods/ns/"} {
		_, err := s.Apply(ctx, []Op{put(obj("pods/ns/b", "u2", "1", "b")), put(obj(key, "u", "1", "x"))})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "<resource>/<namespace>/<name>") {
			t.Errorf("key %q: error %v, want ErrInvalid explaining the key format", key, err)
		}
	}
	if got, want := list(t, s, ""), []string{"pods/ns/a u1/1 a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("objects after rejected batches: %q, want %q", got, want)
	}
	if s.Revision() != 1 {
		t.Errorf("revision %d after rejected batches, want 1", s.Revision())
	}
}

func TestGetListInventory(t *testing.T) {
	s := openT(t, Options{})
	mustApply(t, s,
		put(obj("pods/default/web-1", "p1", "3", "w1")),
		put(obj("pods/default/web-2", "p2", "4", "w2")),
		put(obj("pods/kube-system/dns", "p3", "5", "d")),
		put(obj("pods/default_x/y", "p4", "6", "underscore")),
		put(obj("configmaps/default/cfg", "c1", "7", "c")),
		put(obj("nodes//edge-1", "n1", "8", "n")),
	)
	o, ok, err := s.Get(ctx, "pods/default/web-2")
	if err != nil || !ok {
		t.Fatalf("Get: %v %v", ok, err)
	}
	want := Object{Meta: Meta{Key: "pods/default/web-2", UID: "p2", ResourceVersion: "4"}, Kind: "Pod", Data: []byte("w2"), Revision: 2}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("Get = %+v, want %+v", o, want)
	}
	if _, ok, err := s.Get(ctx, "pods/default/nope"); ok || err != nil {
		t.Errorf("Get(missing) = %v, %v; want not found, no error", ok, err)
	}
	if m, ok, err := s.GetMeta(ctx, "nodes//edge-1"); !ok || err != nil || m != (Meta{Key: "nodes//edge-1", UID: "n1", ResourceVersion: "8"}) {
		t.Errorf("GetMeta = %+v %v %v", m, ok, err)
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"pods/default/", []string{"pods/default/web-1 p1/3 w1", "pods/default/web-2 p2/4 w2"}},
		{"pods/", []string{"pods/default/web-1 p1/3 w1", "pods/default/web-2 p2/4 w2", "pods/default_x/y p4/6 underscore", "pods/kube-system/dns p3/5 d"}},
		{"nodes/", []string{"nodes//edge-1 n1/8 n"}},
		{"secrets/", nil},
		{"pods/default_", []string{"pods/default_x/y p4/6 underscore"}},
	} {
		if got := list(t, s, tc.prefix); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("List(%q):\n got %q\nwant %q", tc.prefix, got, tc.want)
		}
	}
	inv, err := s.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantInv := []Meta{
		{"configmaps/default/cfg", "c1", "7"}, {"nodes//edge-1", "n1", "8"}, {"pods/default/web-1", "p1", "3"},
		{"pods/default/web-2", "p2", "4"}, {"pods/default_x/y", "p4", "6"}, {"pods/kube-system/dns", "p3", "5"},
	}
	if !reflect.DeepEqual(inv, wantInv) {
		t.Errorf("Inventory:\n got %v\nwant %v", inv, wantInv)
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{{"a", "b", true}, {"pods/", "pods0", true}, {"a\xff", "b", true}, {"\xff\xff", "", false}} {
		got, ok := prefixEnd(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("prefixEnd(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRevisionsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edge.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := s.ID()
	var seen []int64
	seen = append(seen, mustApply(t, s, put(obj("pods/ns/a", "u1", "1", "a")), put(obj("pods/ns/b", "u2", "1", "b"))))
	seen = append(seen, mustApply(t, s, del("pods/ns/a", ""), del("pods/ns/b", "")))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The store is empty now; its revisions must still not start over.
	s = openAt(t, path, Options{})
	if s.ID() != id {
		t.Errorf("store ID changed across reopen: %s → %s", id, s.ID())
	}
	if s.Revision() != 4 {
		t.Errorf("revision after reopen = %d, want 4", s.Revision())
	}
	seen = append(seen, mustApply(t, s, put(obj("pods/ns/a", "u3", "1", "a"))))
	if !reflect.DeepEqual(seen, []int64{2, 4, 5}) {
		t.Errorf("revisions = %v, want [2 4 5]", seen)
	}
	got, rev := changes(t, s, 0)
	want := []string{"1 added pods/ns/a u1/1 a", "2 added pods/ns/b u2/1 b", "3 deleted pods/ns/a u1/1 a", "4 deleted pods/ns/b u2/1 b", "5 added pods/ns/a u3/1 a"}
	if !reflect.DeepEqual(got, want) || rev != 5 {
		t.Errorf("changes across reopen:\n got %q (rev %d)\nwant %q (rev 5)", got, rev, want)
	}
}

func TestChanges(t *testing.T) {
	s := openT(t, Options{ChangeRetention: 150, changesPerCall: 40})
	// 250 changes in three batches; the log keeps the last 150.
	for b := range 3 {
		var ops []Op
		for i := range 100 {
			if b*100+i >= 250 {
				break
			}
			ops = append(ops, put(obj(fmt.Sprintf("pods/ns/p%03d", i), "u", fmt.Sprint(b+1), fmt.Sprint(b))))
		}
		mustApply(t, s, ops...)
	}
	if s.Revision() != 250 {
		t.Fatalf("revision %d, want 250", s.Revision())
	}
	if _, _, err := s.Changes(ctx, 99); !errors.Is(err, ErrCompacted) {
		t.Errorf("Changes(99) error %v, want ErrCompacted", err)
	}
	if _, _, err := s.Changes(ctx, 251); !errors.Is(err, ErrCompacted) || !strings.Contains(err.Error(), "replaced store") {
		t.Errorf("Changes(from the future) error %v, want ErrCompacted about a replaced store", err)
	}
	// Page through from the oldest revision kept.
	since := int64(100)
	var all []Change
	for since < s.Revision() {
		cs, rev, err := s.Changes(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) > 40 {
			t.Fatalf("%d changes in one call", len(cs))
		}
		all = append(all, cs...)
		since = rev
	}
	if len(all) != 150 {
		t.Fatalf("%d changes, want 150", len(all))
	}
	for i, c := range all {
		if c.Revision != int64(101+i) || c.Object.Revision != c.Revision {
			t.Fatalf("change %d has revision %d (object %d), want %d", i, c.Revision, c.Object.Revision, 101+i)
		}
	}
	if c := all[0]; c.Type != Modified || c.Object.Key != "pods/ns/p000" || string(c.Object.Data) != "1" {
		t.Errorf("first change kept = %s %s %s", c.Type, c.Object.Key, c.Object.Data)
	}
	if cs, rev, err := s.Changes(ctx, 250); len(cs) != 0 || rev != 250 || err != nil {
		t.Errorf("Changes(current) = %d changes, %d, %v", len(cs), rev, err)
	}
	if _, _, err := s.Changes(ctx, -1); !errors.Is(err, ErrInvalid) {
		t.Errorf("Changes(-1) error %v", err)
	}
}

func TestWait(t *testing.T) {
	s := openT(t, Options{})
	done := make(chan int64)
	go func() {
		rev, err := s.Wait(ctx, 0)
		if err != nil {
			t.Error(err)
		}
		done <- rev
	}()
	select {
	case <-done:
		t.Fatal("Wait returned before any change")
	case <-time.After(50 * time.Millisecond):
	}
	mustApply(t, s, put(obj("pods/ns/a", "u", "1", "a")))
	if rev := <-done; rev != 1 {
		t.Errorf("Wait returned %d, want 1", rev)
	}
	if rev, err := s.Wait(ctx, 0); rev != 1 || err != nil {
		t.Errorf("Wait behind the store = %d, %v", rev, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := s.Wait(cctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with an ending context: %v", err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	if _, err := s.Wait(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait across Close: %v, want ErrClosed", err)
	}
}

func pending(t testing.TB, s *Store, n int, skip func(int64) bool) []Report {
	t.Helper()
	rs, err := s.Pending(ctx, n, skip)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return rs
}

func reportSummary(rs []Report) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s g%d p%d %s", r.Key, r.Gen, r.Priority, r.Payload))
	}
	return out
}

type enq struct {
	key, kind string
	prio      int
	payload   string
}

func TestOutboxOrderAndCoalescing(t *testing.T) {
	tests := []struct {
		name string
		enqs []enq
		want []string
	}{{
		name: "priority first, then age",
		enqs: []enq{{"ev/1", "event", 2, "e1"}, {"pod/a", "podstatus", 1, "a"}, {"node", "nodestatus", 0, "n"}, {"pod/b", "podstatus", 1, "b"}, {"ev/2", "event", 2, "e2"}},
		want: []string{"node g1 p0 n", "pod/a g1 p1 a", "pod/b g1 p1 b", "ev/1 g1 p2 e1", "ev/2 g1 p2 e2"},
	}, {
		name: "re-enqueueing a key replaces its payload, bumps its generation and keeps its place",
		enqs: []enq{{"pod/a", "podstatus", 1, "a1"}, {"pod/b", "podstatus", 1, "b1"}, {"pod/a", "podstatus", 1, "a2"}, {"pod/a", "podstatus", 1, "a3"}},
		want: []string{"pod/a g3 p1 a3", "pod/b g1 p1 b1"},
	}, {
		name: "the newest priority applies",
		enqs: []enq{{"x", "podstatus", 1, "x1"}, {"y", "podstatus", 1, "y1"}, {"x", "nodestatus", 0, "x2"}},
		want: []string{"x g2 p0 x2", "y g1 p1 y1"},
	}, {
		name: "empty payloads are kept",
		enqs: []enq{{"k", "event", 2, ""}},
		want: []string{"k g1 p2 "},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openT(t, Options{})
			for _, e := range tc.enqs {
				if err := s.Enqueue(ctx, e.key, e.kind, e.prio, []byte(e.payload)); err != nil {
					t.Fatal(err)
				}
			}
			if got := reportSummary(pending(t, s, 100, nil)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Pending:\n got %q\nwant %q", got, tc.want)
			}
			if d, _ := s.OutboxDepth(ctx); d != len(tc.want) {
				t.Errorf("OutboxDepth = %d, want %d", d, len(tc.want))
			}
		})
	}
}

func TestOutboxTimestamps(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	s := openT(t, Options{Clock: clk})
	if err := s.Enqueue(ctx, "pod/a", "podstatus", 1, []byte("1")); err != nil {
		t.Fatal(err)
	}
	first := clk.Now()
	clk.SetTime(first.Add(time.Minute))
	if err := s.Enqueue(ctx, "pod/a", "podstatus", 1, []byte("2")); err != nil {
		t.Fatal(err)
	}
	r := pending(t, s, 1, nil)[0]
	if !r.Enqueued.Equal(first) || !r.Updated.Equal(first.Add(time.Minute)) {
		t.Errorf("Enqueued %v Updated %v; want %v and a minute later", r.Enqueued, r.Updated, first)
	}
}

func TestPendingSkipAndLimit(t *testing.T) {
	s := openT(t, Options{})
	for i := range 5 {
		if err := s.Enqueue(ctx, fmt.Sprintf("k%d", i), "podstatus", 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	all := pending(t, s, 10, nil)
	inflight := map[int64]bool{all[0].ID: true, all[2].ID: true}
	got := reportSummary(pending(t, s, 2, func(id int64) bool { return inflight[id] }))
	if want := []string{"k1 g1 p1 ", "k3 g1 p1 "}; !reflect.DeepEqual(got, want) {
		t.Errorf("Pending(2, skip k0 k2) = %q, want %q", got, want)
	}
	if _, err := s.Pending(ctx, 0, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Pending(0) error %v", err)
	}
}

func TestAck(t *testing.T) {
	type step struct {
		enqueue string // key to enqueue
		ack     string // key whose entry to ack …
		gen     int64  // … at this generation (0: the one Pending showed last)
		firstID bool   // … using the first entry id the key ever had
	}
	tests := []struct {
		name  string
		steps []step
		want  []string
	}{{
		name:  "ack at the current generation removes",
		steps: []step{{enqueue: "a"}, {enqueue: "b"}, {ack: "a"}},
		want:  []string{"b g1"},
	}, {
		name:  "ack at an older generation keeps the newer payload",
		steps: []step{{enqueue: "a"}, {enqueue: "a"}, {ack: "a", gen: 1}},
		want:  []string{"a g2"},
	}, {
		name:  "ack of a generation not yet stored does nothing",
		steps: []step{{enqueue: "a"}, {ack: "a", gen: 5}},
		want:  []string{"a g1"},
	}, {
		name:  "a repeated ack is harmless",
		steps: []step{{enqueue: "a"}, {ack: "a"}, {ack: "a"}},
	}, {
		name:  "a key queued again is a new entry that a late ack of the old one cannot remove",
		steps: []step{{enqueue: "a"}, {ack: "a"}, {enqueue: "a"}, {ack: "a", gen: 1, firstID: true}},
		want:  []string{"a g1"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openT(t, Options{})
			last := map[string]ReportRef{}
			first := map[string]int64{}
			var ids []int64 // every distinct entry id, in the order seen
			for _, st := range tc.steps {
				if st.enqueue != "" {
					if err := s.Enqueue(ctx, st.enqueue, "podstatus", 1, []byte(st.enqueue)); err != nil {
						t.Fatal(err)
					}
					for _, r := range pending(t, s, 100, nil) {
						if prev, ok := last[r.Key]; !ok || prev.ID != r.ID {
							ids = append(ids, r.ID)
						}
						if _, ok := first[r.Key]; !ok {
							first[r.Key] = r.ID
						}
						last[r.Key] = ReportRef{r.ID, r.Gen}
					}
					continue
				}
				ref := last[st.ack]
				if st.gen != 0 {
					ref.Gen = st.gen
				}
				if st.firstID {
					ref.ID = first[st.ack]
				}
				if err := s.Ack(ctx, ref.ID, ref.Gen); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, r := range pending(t, s, 100, nil) {
				got = append(got, fmt.Sprintf("%s g%d", r.Key, r.Gen))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("outbox = %q, want %q", got, tc.want)
			}
			for i := 1; i < len(ids); i++ {
				if ids[i] <= ids[i-1] {
					t.Errorf("entry ids %v: an id was reused or went back", ids)
				}
			}
			if d, _ := s.OutboxDepth(ctx); d != len(tc.want) {
				t.Errorf("OutboxDepth = %d, want %d", d, len(tc.want))
			}
		})
	}
}

func TestAckMany(t *testing.T) {
	s := openT(t, Options{})
	for _, k := range []string{"a", "b", "c"} {
		if err := s.Enqueue(ctx, k, "podstatus", 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	rs := pending(t, s, 10, nil)
	if err := s.Enqueue(ctx, "b", "podstatus", 1, []byte("newer")); err != nil {
		t.Fatal(err)
	}
	var refs []ReportRef
	for _, r := range rs {
		refs = append(refs, ReportRef{r.ID, r.Gen})
	}
	if err := s.AckMany(ctx, refs); err != nil {
		t.Fatal(err)
	}
	if got, want := reportSummary(pending(t, s, 10, nil)), []string{"b g2 p1 newer"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after AckMany: %q, want %q", got, want)
	}
}

func TestOutboxLimits(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openT(t, Options{OutboxLimit: 5, OutboxKindLimits: map[string]int{"event": 2}, Metrics: reg})
	for _, e := range []enq{{"node", "nodestatus", 0, "n"}, {"ev/1", "event", 2, "1"}, {"ev/2", "event", 2, "2"}, {"ev/3", "event", 2, "3"}, {"ev/4", "event", 2, "4"}} {
		if err := s.Enqueue(ctx, e.key, e.kind, e.prio, []byte(e.payload)); err != nil {
			t.Fatal(err)
		}
	}
	// Coalescing an event at the cap evicts nothing.
	if err := s.Enqueue(ctx, "ev/3", "event", 2, []byte("3b")); err != nil {
		t.Fatal(err)
	}
	got := reportSummary(pending(t, s, 10, nil))
	if want := []string{"node g1 p0 n", "ev/3 g2 p2 3b", "ev/4 g1 p2 4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("with events capped at 2: %q, want %q", got, want)
	}
	if n := metricValue(t, s.metrics.evicted.WithLabelValues("event")); n != 2 {
		t.Errorf("evicted metric = %v, want 2", n)
	}
	for i := range 2 {
		if err := s.Enqueue(ctx, fmt.Sprintf("pod/%d", i), "podstatus", 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	err := s.Enqueue(ctx, "pod/9", "podstatus", 1, nil)
	if !errors.Is(err, ErrOutboxFull) || !strings.Contains(err.Error(), "pod/9") {
		t.Errorf("enqueue beyond OutboxLimit: %v, want ErrOutboxFull naming the report", err)
	}
	if err := s.Enqueue(ctx, "pod/0", "podstatus", 1, []byte("coalesced")); err != nil {
		t.Errorf("coalescing into a full outbox: %v", err)
	}
	if d, _ := s.OutboxDepth(ctx); d != 5 {
		t.Errorf("depth %d, want 5", d)
	}
	if v := metricValue(t, s.metrics.depth); v != 5 {
		t.Errorf("depth metric %v, want 5", v)
	}
	if v := metricValue(t, s.metrics.full); v != 1 {
		t.Errorf("full metric %v, want 1", v)
	}
	if err := s.Enqueue(ctx, "", "event", 1, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("enqueue without key: %v", err)
	}
}

func TestState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edge.db")
	s := openAt(t, path, Options{})
	if _, ok, err := s.GetState(ctx, "cert"); ok || err != nil {
		t.Fatalf("GetState on an empty store: %v %v", ok, err)
	}
	for _, v := range []string{"v1", "v2"} {
		if err := s.PutState(ctx, "cert", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutState(ctx, "gone", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteState(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, Options{})
	if v, ok, err := s.GetState(ctx, "cert"); string(v) != "v2" || !ok || err != nil {
		t.Errorf("GetState(cert) after reopen = %q %v %v", v, ok, err)
	}
	if _, ok, _ := s.GetState(ctx, "gone"); ok {
		t.Error("deleted state came back")
	}
	if err := s.PutState(ctx, "", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("PutState without key: %v", err)
	}
}
