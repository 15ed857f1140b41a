package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test runs this package's test binary again as a helper that
// writes to a store in a loop from several goroutines, printing each
// operation before it starts and again once it returned, and kills it with
// SIGKILL at a random moment. After each kill the store must hold every
// acknowledged operation, each in-flight one entirely or not at all, and a
// revision log consistent with the objects.
const (
	crashHelperEnv = "VERGE_STORE_CRASH_HELPER" // path of the store; set only in the helper
	crashSeedEnv   = "VERGE_STORE_CRASH_SEED"
	crashItersEnv  = "VERGE_STORE_CRASH_ITERATIONS"
	crashRunEnv    = "VERGE_STORE_CRASH_RUN"
	crashWorkers   = 3
)

func TestMain(m *testing.M) {
	if path := os.Getenv(crashHelperEnv); path != "" {
		os.Exit(crashHelper(path))
	}
	os.Exit(m.Run())
}

// crashObj is one object op of an apply; Data is derived from Key, RV and
// Size so that lines stay short (pipe writes up to 4 KiB are atomic).
type crashObj struct {
	Key, UID, RV string
	Size         int
	Delete       bool
}

func (o crashObj) data() []byte {
	return bytes.Repeat([]byte(o.Key+"@"+o.RV+";"), o.Size)
}

type crashOp struct {
	Kind    string // apply, enqueue, ack, put
	Objs    []crashObj
	Key     string // enqueue, ack, put
	Payload string // enqueue, put
	Prio    int
	ID, Gen int64 // ack
}

type crashLine struct {
	Ev  string // ready, begin, ok
	W   int
	Op  *crashOp `json:",omitempty"`
	Rev int64    `json:",omitempty"`
}

// crashHelper is the helper process: it never returns normally; the test
// kills it.
func crashHelper(path string) int {
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	run, _ := strconv.Atoi(os.Getenv(crashRunEnv))
	s, err := Open(path, Options{ChangeRetention: 1 << 30})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper open:", err)
		return 2
	}
	var mu sync.Mutex
	emit := func(l crashLine) {
		b, _ := json.Marshal(l)
		mu.Lock()
		defer mu.Unlock()
		_, _ = os.Stdout.Write(append(b, '\n')) // one write per line; a broken pipe means the test is gone
	}
	emit(crashLine{Ev: "ready"})
	fail := make(chan error)
	for w := range crashWorkers {
		go func() {
			if err := crashWorker(s, w, run, rand.New(rand.NewPCG(seed, uint64(run*crashWorkers+w))), emit); err != nil {
				fail <- fmt.Errorf("worker %d: %w", w, err)
			}
		}()
	}
	fmt.Fprintln(os.Stderr, "helper:", <-fail)
	return 3
}

func crashWorker(s *Store, w, run int, rng *rand.Rand, emit func(crashLine)) error {
	uids := map[string]string{}
	objs, err := s.List(ctx, fmt.Sprintf("pods/w%d/", w))
	if err != nil {
		return err
	}
	for _, o := range objs {
		uids[o.Key] = o.UID
	}
	for i := 0; ; i++ {
		var op crashOp
		switch r := rng.IntN(10); {
		case r < 5:
			op.Kind = "apply"
			n := 1 + rng.IntN(4)
			if rng.IntN(8) == 0 {
				n = 10 + rng.IntN(20)
			}
			for j := range n {
				key := fmt.Sprintf("pods/w%d/o%d", w, rng.IntN(12))
				o := crashObj{Key: key, RV: strconv.Itoa(run*1_000_000 + i*100 + j)}
				switch {
				case rng.IntN(4) == 0:
					o.Delete = true
					switch rng.IntN(3) {
					case 0:
						o.UID = uids[key]
					case 1:
						o.UID = "not-" + uids[key]
					}
				default:
					o.UID = uids[key]
					if o.UID == "" || rng.IntN(10) == 0 {
						o.UID = fmt.Sprintf("uid-%d-%d-%d", run, i, j)
					}
					o.Size = 1 + rng.IntN(60)
				}
				op.Objs = append(op.Objs, o)
			}
		case r < 7:
			op = crashOp{Kind: "enqueue", Key: fmt.Sprintf("w%d/r%d", w, rng.IntN(6)), Payload: fmt.Sprintf("p-%d-%d", run, i), Prio: rng.IntN(3)}
		case r < 9:
			rs, err := s.Pending(ctx, 1000, nil)
			if err != nil {
				return err
			}
			var mine []Report
			for _, r := range rs {
				if strings.HasPrefix(r.Key, fmt.Sprintf("w%d/", w)) {
					mine = append(mine, r)
				}
			}
			if len(mine) == 0 {
				continue
			}
			r := mine[rng.IntN(len(mine))]
			op = crashOp{Kind: "ack", Key: r.Key, ID: r.ID, Gen: r.Gen}
			if rng.IntN(4) == 0 {
				op.Gen-- // a stale ack: must not remove
			}
		default:
			op = crashOp{Kind: "put", Key: fmt.Sprintf("w%d/s%d", w, rng.IntN(3)), Payload: fmt.Sprintf("v-%d-%d", run, i)}
		}
		emit(crashLine{Ev: "begin", W: w, Op: &op})
		var rev int64
		var err error
		switch op.Kind {
		case "apply":
			var ops []Op
			for _, o := range op.Objs {
				ops = append(ops, Op{Delete: o.Delete, Object: Object{Meta: Meta{Key: o.Key, UID: o.UID, ResourceVersion: o.RV}, Kind: "Pod", Data: o.data()}})
			}
			rev, err = s.Apply(ctx, ops)
			for _, o := range op.Objs {
				switch {
				case !o.Delete:
					uids[o.Key] = o.UID
				case o.UID == "" || o.UID == uids[o.Key]:
					delete(uids, o.Key)
				}
			}
		case "enqueue":
			err = s.Enqueue(ctx, op.Key, "podstatus", op.Prio, []byte(op.Payload))
		case "ack":
			err = s.Ack(ctx, op.ID, op.Gen)
		case "put":
			err = s.PutState(ctx, op.Key, []byte(op.Payload))
		}
		if err != nil {
			return err
		}
		emit(crashLine{Ev: "ok", W: w, Rev: rev})
	}
}

// crashModel is what one worker's part of the store must hold.
type crashModel struct {
	Objs   map[string]crashObj
	Outbox map[string]crashEntry
	State  map[string]string
}

type crashEntry struct {
	Gen     int64
	Prio    int
	Payload string
}

func newCrashModel() crashModel {
	return crashModel{Objs: map[string]crashObj{}, Outbox: map[string]crashEntry{}, State: map[string]string{}}
}

func (m crashModel) clone() crashModel {
	return crashModel{Objs: maps.Clone(m.Objs), Outbox: maps.Clone(m.Outbox), State: maps.Clone(m.State)}
}

// apply returns the model after op, following the store's documented
// semantics.
func (m crashModel) apply(op crashOp) crashModel {
	m = m.clone()
	switch op.Kind {
	case "apply":
		for _, o := range op.Objs {
			old, ok := m.Objs[o.Key]
			switch {
			case o.Delete:
				if ok && (o.UID == "" || o.UID == old.UID) {
					delete(m.Objs, o.Key)
				}
			case ok && old.UID == o.UID && old.RV == o.RV:
			default:
				m.Objs[o.Key] = crashObj{Key: o.Key, UID: o.UID, RV: o.RV, Size: o.Size}
			}
		}
	case "enqueue":
		e := m.Outbox[op.Key]
		m.Outbox[op.Key] = crashEntry{Gen: e.Gen + 1, Prio: op.Prio, Payload: op.Payload}
	case "ack":
		if e, ok := m.Outbox[op.Key]; ok && e.Gen == op.Gen {
			delete(m.Outbox, op.Key)
		}
	case "put":
		m.State[op.Key] = op.Payload
	}
	return m
}

// observe reads worker w's part of the store into a model.
func observe(t *testing.T, s *Store, w int) crashModel {
	t.Helper()
	m := newCrashModel()
	objs, err := s.List(ctx, fmt.Sprintf("pods/w%d/", w))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		c := crashObj{Key: o.Key, UID: o.UID, RV: o.ResourceVersion}
		c.Size = bytes.Count(o.Data, []byte(";"))
		if !bytes.Equal(o.Data, c.data()) {
			t.Fatalf("%s holds data that no operation wrote: %.80q", o.Key, o.Data)
		}
		m.Objs[o.Key] = c
	}
	rs, err := s.Pending(ctx, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if strings.HasPrefix(r.Key, fmt.Sprintf("w%d/", w)) {
			m.Outbox[r.Key] = crashEntry{Gen: r.Gen, Prio: r.Priority, Payload: string(r.Payload)}
		}
	}
	for i := range 3 {
		key := fmt.Sprintf("w%d/s%d", w, i)
		v, ok, err := s.GetState(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			m.State[key] = string(v)
		}
	}
	return m
}

func TestCrashSafety(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(crashSeedEnv); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", crashSeedEnv, v, err)
		}
	}
	iters := 25
	if v := os.Getenv(crashItersEnv); v != "" {
		var err error
		if iters, err = strconv.Atoi(v); err != nil {
			t.Fatalf("%s=%q: %v", crashItersEnv, v, err)
		}
	}
	t.Logf("seed %d, %d kills (rerun with %s=%d; more kills with %s=N)", seed, iters, crashSeedEnv, seed, crashItersEnv)
	rng := rand.New(rand.NewPCG(seed, 0))
	path := filepath.Join(t.TempDir(), "store.db")

	models := make([]crashModel, crashWorkers)
	for w := range models {
		models[w] = newCrashModel()
	}
	var (
		changingRevs = map[int64]bool{} // revisions returned by applies that changed something
		lastRev      int64
		maxEntryID   int64
		entryIDs     = map[int64]string{} // entry id → key, as of the last check
		storeID      string
		stats        struct{ acked, inflightApplied, inflightLost, readyKills int }
	)
	for run := 1; run <= iters; run++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashHelperEnv+"="+path, fmt.Sprintf("%s=%d", crashSeedEnv, seed), fmt.Sprintf("%s=%d", crashRunEnv, run))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan crashLine, 1024)
		scanErr := make(chan error, 1)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 1<<16), 1<<20)
			for sc.Scan() {
				var l crashLine
				if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
					scanErr <- fmt.Errorf("helper printed %q: %w", sc.Text(), err)
					return
				}
				lines <- l
			}
			scanErr <- sc.Err()
		}()

		// Kill at a random moment: mostly while the workers are busy,
		// sometimes while the helper is still opening (and, in the first
		// run, creating) the store.
		var killAt <-chan time.Time
		if rng.IntN(8) == 0 {
			killAt = time.After(time.Duration(rng.IntN(150)) * time.Millisecond)
		}
		pending := make([]*crashOp, crashWorkers)
		var ackedRevs [crashWorkers][]int64
		killed := false
		for !killed {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("run %d: the helper exited by itself: %v\n%s", run, cmd.Wait(), stderr.String())
				}
				switch l.Ev {
				case "ready":
					if killAt == nil {
						killAt = time.After(time.Duration(rng.IntN(400)) * time.Millisecond)
					} else {
						stats.readyKills++
					}
				case "begin":
					if pending[l.W] != nil {
						t.Fatalf("run %d: worker %d began an op with one in flight", run, l.W)
					}
					pending[l.W] = l.Op
				case "ok":
					op := pending[l.W]
					if op == nil {
						t.Fatalf("run %d: worker %d acknowledged nothing", run, l.W)
					}
					next := models[l.W].apply(*op)
					if op.Kind == "apply" {
						if !reflect.DeepEqual(next.Objs, models[l.W].Objs) {
							if changingRevs[l.Rev] {
								t.Fatalf("run %d: revision %d returned twice for changing applies", run, l.Rev)
							}
							changingRevs[l.Rev] = true
						}
						ackedRevs[l.W] = append(ackedRevs[l.W], l.Rev)
					}
					models[l.W] = next
					pending[l.W] = nil
					stats.acked++
				}
			case <-killAt:
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		for l := range lines {
			// Lines written before the kill are still in the pipe.
			switch l.Ev {
			case "begin":
				pending[l.W] = l.Op
			case "ok":
				op := pending[l.W]
				models[l.W] = models[l.W].apply(*op)
				if op.Kind == "apply" {
					ackedRevs[l.W] = append(ackedRevs[l.W], l.Rev)
				}
				pending[l.W] = nil
				stats.acked++
			}
		}
		if err := <-scanErr; err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("run %d: helper ended with %v, not by the kill\n%s", run, err, stderr.String())
		}

		// Reopen and check.
		s, err := Open(path, Options{ChangeRetention: 1 << 30})
		if err != nil {
			t.Fatalf("run %d (seed %d): reopening after the kill: %v", run, seed, err)
		}
		if storeID == "" {
			storeID = s.ID()
		} else if s.ID() != storeID {
			t.Fatalf("run %d: the store ID changed", run)
		}
		for w := range crashWorkers {
			got := observe(t, s, w)
			switch {
			case reflect.DeepEqual(got, models[w]):
				if pending[w] != nil && !reflect.DeepEqual(models[w].apply(*pending[w]), models[w]) {
					stats.inflightLost++
				}
			case pending[w] != nil && reflect.DeepEqual(got, models[w].apply(*pending[w])):
				models[w] = got
				stats.inflightApplied++
			default:
				var in string
				if pending[w] != nil {
					b, _ := json.Marshal(pending[w])
					in = string(b)
				}
				t.Fatalf("run %d (seed %d): worker %d's data after the kill is neither the acknowledged state nor that plus the op in flight %s\n got %+v\nwant %+v",
					run, seed, w, in, got, models[w])
			}
			for i, r := range ackedRevs[w] {
				if r > s.Revision() {
					t.Fatalf("run %d: worker %d was given revision %d, the store is at %d", run, w, r, s.Revision())
				}
				if i > 0 && r < ackedRevs[w][i-1] {
					t.Fatalf("run %d: worker %d saw revisions go back: %v", run, w, ackedRevs[w])
				}
			}
		}
		if s.Revision() < lastRev {
			t.Fatalf("run %d: revision went back from %d to %d", run, lastRev, s.Revision())
		}
		lastRev = s.Revision()
		checkChangeLog(t, s, run)
		// Outbox ids: an entry that is new since the last check has an id
		// above every id seen before.
		rs, err := s.Pending(ctx, 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		now := map[int64]string{}
		newMax := maxEntryID
		for _, r := range rs {
			now[r.ID] = r.Key
			if key, ok := entryIDs[r.ID]; ok && key != r.Key {
				t.Fatalf("run %d: entry id %d moved from %s to %s", run, r.ID, key, r.Key)
			}
			if _, ok := entryIDs[r.ID]; !ok && r.ID <= maxEntryID {
				t.Fatalf("run %d: new entry %s got id %d, not above the %d seen before: an id was reused", run, r.Key, r.ID, maxEntryID)
			}
			newMax = max(newMax, r.ID)
		}
		entryIDs, maxEntryID = now, newMax
		if d, _ := s.OutboxDepth(ctx); d != len(rs) {
			t.Fatalf("run %d: outbox depth %d, %d entries", run, d, len(rs))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d operations acknowledged; at the kills %d in-flight operations had committed and %d had not; %d kills during open; final revision %d",
		stats.acked, stats.inflightApplied, stats.inflightLost, stats.readyKills, lastRev)
	if stats.acked == 0 {
		t.Fatal("the helper never acknowledged an operation; the test tested nothing")
	}
}

// checkChangeLog verifies that the log is contiguous from revision 1 and
// that replaying it gives exactly the objects table.
func checkChangeLog(t *testing.T, s *Store, run int) {
	t.Helper()
	replay := map[string]string{}
	var since int64
	for since < s.Revision() {
		cs, rev, err := s.Changes(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Revision != since+1 {
				t.Fatalf("run %d: change log jumps from %d to %d", run, since, c.Revision)
			}
			since = c.Revision
			o := c.Object
			_, had := replay[o.Key]
			switch c.Type {
			case Added:
				if had {
					t.Fatalf("run %d: revision %d adds %s, which exists", run, c.Revision, o.Key)
				}
				replay[o.Key] = fmt.Sprintf("%s/%s/%x", o.UID, o.ResourceVersion, o.Data)
			case Modified:
				if !had {
					t.Fatalf("run %d: revision %d modifies %s, which does not exist", run, c.Revision, o.Key)
				}
				replay[o.Key] = fmt.Sprintf("%s/%s/%x", o.UID, o.ResourceVersion, o.Data)
			case Deleted:
				if replay[o.Key] != fmt.Sprintf("%s/%s/%x", o.UID, o.ResourceVersion, o.Data) {
					t.Fatalf("run %d: revision %d deletes %s with a last state that is not the one stored", run, c.Revision, o.Key)
				}
				delete(replay, o.Key)
			}
		}
		if rev != since {
			t.Fatalf("run %d: Changes returned revision %d after change %d", run, rev, since)
		}
	}
	objs, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]string{}
	for _, o := range objs {
		table[o.Key] = fmt.Sprintf("%s/%s/%x", o.UID, o.ResourceVersion, o.Data)
	}
	if !maps.Equal(table, replay) {
		keys := slices.Sorted(maps.Keys(table))
		t.Fatalf("run %d: replaying the change log does not give the objects table (%d objects vs %d replayed; keys %v)", run, len(table), len(replay), keys)
	}
}
