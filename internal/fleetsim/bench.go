package fleetsim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/verge-edge/verge/internal/edge/hubclient"
	"github.com/verge-edge/verge/internal/pki"
	"github.com/verge-edge/verge/internal/protocol/wire"
)

// createdAnnotation carries the time (Unix nanoseconds) a benchmark pod
// was submitted, so its delivery can be timed at the edge.
const createdAnnotation = "fleetsim.verge.dev/created"

// Bench runs measurements against a running verge-cloud.
type Bench struct {
	Kube kubernetes.Interface
	Hub  string
	CA   *pki.CA
	// CloudMetrics is verge-cloud's /metrics URL.
	CloudMetrics string
	Out          io.Writer
	Logger       *slog.Logger
	// Prefix names the simulated nodes.
	Prefix string
}

// Percentiles of a set of durations.
type Percentiles struct{ P50, P99, Max time.Duration }

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return Percentiles{P50: at(0.50), P99: at(0.99), Max: d[len(d)-1]}
}

// Cleanup deletes the Node objects of simulated nodes (their Leases go
// with them), so finished runs do not leave thousands of NotReady nodes
// for the controller-manager to watch over.
func (b *Bench) Cleanup(ctx context.Context, f *Fleet) {
	f.Stop()
	_ = parallel(ctx, 16, len(f.Nodes), func(ctx context.Context, i int) error {
		_ = b.Kube.CoreV1().Nodes().Delete(ctx, f.Nodes[i].Name, metav1.DeleteOptions{})
		return nil
	})
}

func (b *Bench) fleet(ctx context.Context, nodes int, onCommit func(string, []hubclient.Op, time.Time)) (*Fleet, error) {
	f, err := Start(ctx, Config{Hub: b.Hub, CA: b.CA, Nodes: nodes, Prefix: b.Prefix, OnCommit: onCommit, Logger: b.Logger})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := waitFor(ctx, 10*time.Minute, func() bool { _, s := f.Connected(); return s == nodes }); err != nil {
		c, s := f.Connected()
		f.Stop()
		return nil, fmt.Errorf("only %d of %d simulated nodes connected (%d synced): %w", c, nodes, s, err)
	}
	fmt.Fprintf(b.Out, "%d simulated nodes connected and synced in %s\n", nodes, time.Since(start).Round(time.Millisecond))
	return f, nil
}

// Delivery times pods from submission to commit in the simulated nodes'
// stores, over nodes nodes.
func (b *Bench) Delivery(ctx context.Context, nodes, pods int) (Percentiles, error) {
	var mu sync.Mutex
	seen := map[string]bool{}
	var lat []time.Duration
	ns := fmt.Sprintf("fleetsim-%d", time.Now().Unix())
	onCommit := func(_ string, ops []hubclient.Op, at time.Time) {
		for _, op := range ops {
			if op.Delete || !strings.HasPrefix(op.Object.Key, "pods/"+ns+"/") {
				continue
			}
			var p corev1.Pod
			if wire.Decode(wire.EncodingFor(op.Object.Key), op.Object.Data, false, &p) != nil {
				continue
			}
			sent, err := strconv.ParseInt(p.Annotations[createdAnnotation], 10, 64)
			mu.Lock()
			if err == nil && !seen[op.Object.Key] {
				seen[op.Object.Key] = true
				lat = append(lat, at.Sub(time.Unix(0, sent)))
			}
			mu.Unlock()
		}
	}
	f, err := b.fleet(ctx, nodes, onCommit)
	if err != nil {
		return Percentiles{}, err
	}
	defer b.Cleanup(context.WithoutCancel(ctx), f)
	if err := b.namespace(ctx, ns); err != nil {
		return Percentiles{}, err
	}
	defer b.dropNamespace(ns)
	b.settle(ctx)
	histBefore, err := b.cloudHistogram(ctx, "verge_hub_delivery_seconds")
	if err != nil {
		return Percentiles{}, err
	}
	start := time.Now()
	err = parallel(ctx, 16, pods, func(ctx context.Context, i int) error {
		p := benchPod(fmt.Sprintf("p%d", i), fmt.Sprintf("%s-%d", b.prefix(), i%nodes))
		p.Annotations[createdAnnotation] = strconv.FormatInt(time.Now().UnixNano(), 10)
		_, err := b.Kube.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return Percentiles{}, err
	}
	if err := waitFor(ctx, 5*time.Minute, func() bool { mu.Lock(); defer mu.Unlock(); return len(lat) == pods }); err != nil {
		return Percentiles{}, fmt.Errorf("only %d of %d pods delivered: %w", len(lat), pods, err)
	}
	mu.Lock()
	p := percentiles(lat)
	mu.Unlock()
	fmt.Fprintf(b.Out, "delivery of %d pods to %d nodes (submitted over %s), submit → committed at the edge: p50 %s  p99 %s  max %s\n",
		pods, nodes, time.Since(start).Round(time.Millisecond), p.P50.Round(time.Microsecond), p.P99.Round(time.Microsecond), p.Max.Round(time.Microsecond))
	if histAfter, err := b.cloudHistogram(ctx, "verge_hub_delivery_seconds"); err == nil {
		d := histAfter.minus(histBefore)
		fmt.Fprintf(b.Out, "hub's view (informer event → edge ack, %d objects incl. tokens and status echoes): p50 ≤ %s  p99 ≤ %s\n",
			d.count, d.quantile(0.5), d.quantile(0.99))
	}
	return p, nil
}

// settle waits until verge-cloud has applied the reports a fresh fleet
// sends (node status, leases), so measurements do not include that surge.
func (b *Bench) settle(ctx context.Context) {
	_ = waitFor(ctx, 2*time.Minute, func() bool {
		v, err := b.cloudMetric(ctx, "verge_hub_report_queue_depth")
		return err == nil && v == 0
	})
	time.Sleep(5 * time.Second)
}

// WireBytes updates pods already on the nodes and compares the bytes the
// hub sent for the updates with the same objects as plain JSON.
func (b *Bench) WireBytes(ctx context.Context, nodes, updates int) error {
	ns := fmt.Sprintf("fleetsim-wire-%d", time.Now().Unix())
	var mu sync.Mutex
	var jsonBytes, count int
	measuring := false
	onCommit := func(_ string, ops []hubclient.Op, _ time.Time) {
		for _, op := range ops {
			if op.Delete || !strings.HasPrefix(op.Object.Key, "pods/"+ns+"/") {
				continue
			}
			var p corev1.Pod
			if wire.Decode(wire.EncodingFor(op.Object.Key), op.Object.Data, false, &p) != nil {
				continue
			}
			j, _ := json.Marshal(&p)
			mu.Lock()
			if measuring {
				jsonBytes += len(j)
				count++
			}
			mu.Unlock()
		}
	}
	f, err := b.fleet(ctx, nodes, onCommit)
	if err != nil {
		return err
	}
	defer b.Cleanup(context.WithoutCancel(ctx), f)
	if err := b.namespace(ctx, ns); err != nil {
		return err
	}
	defer b.dropNamespace(ns)
	if err := parallel(ctx, 16, updates, func(ctx context.Context, i int) error {
		_, err := b.Kube.CoreV1().Pods(ns).Create(ctx, benchPod(fmt.Sprintf("p%d", i), fmt.Sprintf("%s-%d", b.prefix(), i%nodes)), metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	// Wait for the creations and the status reports they cause to settle.
	if err := waitFor(ctx, 5*time.Minute, func() bool { return countPods(f, ns) == updates }); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	before, err := b.cloudMetric(ctx, "verge_hub_object_bytes_sent_total")
	if err != nil {
		return err
	}
	mu.Lock()
	measuring = true
	mu.Unlock()
	if err := parallel(ctx, 16, updates, func(ctx context.Context, i int) error {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"fleetsim.verge.dev/rev":"%d"}}}`, time.Now().UnixNano())
		_, err := b.Kube.CoreV1().Pods(ns).Patch(ctx, fmt.Sprintf("p%d", i), types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	}); err != nil {
		return err
	}
	if err := waitFor(ctx, 5*time.Minute, func() bool { mu.Lock(); defer mu.Unlock(); return count >= updates }); err != nil {
		return fmt.Errorf("only %d of %d updates arrived: %w", count, updates, err)
	}
	after, err := b.cloudMetric(ctx, "verge_hub_object_bytes_sent_total")
	if err != nil {
		return err
	}
	// The same pods as the API serves them (managedFields included), as
	// JSON: what forwarding the objects verbatim would send.
	list, err := b.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	full := 0
	for i := range list.Items {
		j, _ := json.Marshal(&list.Items[i])
		full += len(j)
	}
	mu.Lock()
	defer mu.Unlock()
	fullPerUpdate := float64(full) / float64(len(list.Items))
	fmt.Fprintf(b.Out, "%d pod updates: %d bytes on the wire (hub counter; %.0f per update); as JSON: %d bytes (%.0f per update) without managedFields, %.0f per update as the API serves them; wire/full-JSON = %.2f\n",
		count, int(after-before), (after-before)/float64(count), jsonBytes, float64(jsonBytes)/float64(count), fullPerUpdate, (after-before)/float64(count)/fullPerUpdate)
	return nil
}

// MemoryAndRestart connects nodes, reports verge-cloud's resident memory
// per connected node, then calls restart (which must kill verge-cloud and
// have it come back) and times until every node is connected and synced
// again.
func (b *Bench) MemoryAndRestart(ctx context.Context, nodes int, restart func() error) error {
	idle, err := b.cloudMetric(ctx, "process_resident_memory_bytes")
	if err != nil {
		return err
	}
	f, err := b.fleet(ctx, nodes, nil)
	if err != nil {
		return err
	}
	defer b.Cleanup(context.WithoutCancel(ctx), f)
	time.Sleep(5 * time.Second) // let status reports and lease writes settle
	loaded, err := b.cloudMetric(ctx, "process_resident_memory_bytes")
	if err != nil {
		return err
	}
	fmt.Fprintf(b.Out, "verge-cloud resident memory: %.1f MiB idle, %.1f MiB with %d nodes connected: %.1f KiB per node\n",
		idle/(1<<20), loaded/(1<<20), nodes, (loaded-idle)/float64(nodes)/1024)
	if restart == nil {
		return nil
	}
	start := time.Now()
	if err := restart(); err != nil {
		return err
	}
	// Wait until the nodes noticed the loss, then until all are back.
	_ = waitFor(ctx, 30*time.Second, func() bool { c, _ := f.Connected(); return c < nodes })
	if err := waitFor(ctx, 15*time.Minute, func() bool { _, s := f.Connected(); return s == nodes }); err != nil {
		c, s := f.Connected()
		return fmt.Errorf("after the restart only %d of %d nodes reconnected (%d synced): %w", c, nodes, s, err)
	}
	fmt.Fprintf(b.Out, "all %d nodes connected and synced again %s after verge-cloud was killed\n", nodes, time.Since(start).Round(time.Millisecond))
	return nil
}

func (b *Bench) prefix() string {
	if b.Prefix == "" {
		return "sim"
	}
	return b.Prefix
}

func (b *Bench) namespace(ctx context.Context, ns string) error {
	_, err := b.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	return err
}

func (b *Bench) dropNamespace(ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = b.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
}

// cloudMetric reads one unlabelled sample from verge-cloud's /metrics.
func (b *Bench) cloudMetric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.CloudMetrics, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reading verge-cloud metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found at %s", name, b.CloudMetrics)
}

// histogram is a Prometheus histogram's cumulative buckets.
type histogram struct {
	bounds []float64
	counts []float64
	count  uint64
}

func (h histogram) minus(o histogram) histogram {
	d := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts)), count: h.count - o.count}
	for i := range h.counts {
		d.counts[i] = h.counts[i]
		if i < len(o.counts) {
			d.counts[i] -= o.counts[i]
		}
	}
	return d
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h histogram) quantile(q float64) string {
	want := q * float64(h.count)
	for i, c := range h.counts {
		if c >= want {
			return (time.Duration(h.bounds[i] * float64(time.Second))).String()
		}
	}
	return "+Inf"
}

// cloudHistogram reads a histogram from verge-cloud's /metrics.
func (b *Bench) cloudHistogram(ctx context.Context, name string) (histogram, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.CloudMetrics, nil)
	if err != nil {
		return histogram{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return histogram{}, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return histogram{}, err
	}
	mf, ok := families[name]
	if !ok || len(mf.Metric) == 0 || mf.Metric[0].Histogram == nil {
		return histogram{}, fmt.Errorf("histogram %s not found", name)
	}
	var h histogram
	for _, bk := range mf.Metric[0].Histogram.Bucket {
		h.bounds = append(h.bounds, bk.GetUpperBound())
		h.counts = append(h.counts, float64(bk.GetCumulativeCount()))
	}
	h.count = mf.Metric[0].Histogram.GetSampleCount()
	return h, nil
}

func benchPod(name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "fleetsim"}, Annotations: map[string]string{}},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			AutomountServiceAccountToken: new(bool),
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.local/fleetsim/app:1.0",
				Ports: []corev1.ContainerPort{{ContainerPort: 8080, Name: "http"}},
				Env:   []corev1.EnvVar{{Name: "MODE", Value: "bench"}},
			}},
		},
	}
}

func countPods(f *Fleet, ns string) int {
	n := 0
	for _, node := range f.Nodes {
		n += node.Store.CountPrefix("pods/" + ns + "/")
	}
	return n
}

// parallel runs fn(0..n-1) on workers goroutines, stopping at the first error.
func parallel(ctx context.Context, workers, n int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
