package aieval

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/verge-edge/verge/pkg/ai/hem"
)

// Markdown writes the figures as markdown tables, with the command that
// produced them.
func (r *Results) Markdown(w io.Writer, command string) error {
	b := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("Command: `%s`  \n", command)
	p("Machine: %s/%s, %d CPUs (GOMAXPROCS %d), %s, %s; load average before the run %s  \n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel(), runtime.Version(), r.LoadBefore)
	p("Total time: %s (preparing the data and training both reference models: edge %s, cloud %s)\n\n",
		r.Took.Round(time.Second), r.Prepared.EdgeTraining.Round(100*time.Millisecond), r.Prepared.CloudTraining.Round(100*time.Millisecond))
	if r.Joint != nil {
		r.jointMarkdown(p)
	}
	if r.FL != nil {
		r.flMarkdown(p)
	}
	return b.Flush()
}

func pct(v float64) string { return fmt.Sprintf("%.2f %%", 100*v) }

func pts(v float64) string { return fmt.Sprintf("%+.2f", 100*v) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func yesNo(b bool) string {
	if b {
		return "**yes**"
	}
	return "no"
}

func (r *Results) jointMarkdown(p func(string, ...any)) {
	j, jc := r.Joint, r.Config.Joint
	p("### (a) Joint inference: accuracy and share sent to the cloud\n\n")
	p("%s test images. Edge model: softmax regression 784→10; cloud model: MLP 784→256→128→10; both trained from scratch on %s training images (`pkg/ai/model`, %s). ",
		thousands(j.Samples), thousands(r.Prepared.ModelSamples), r.trainingSettings())
	p("A sample is hard when the filter says so on the edge model's probabilities (CrossEntropy: `1 + Σ p ln p / ln 10 < threshold_cross_entropy`; Threshold: the top probability, as the score of one box, `< threshold`); hard samples take the cloud model's answer. ")
	p("Goal: joint accuracy at most %.0f point below cloud-only with at most %.0f %% of the samples sent to the cloud.\n\n", 100*jc.MaxGap, 100*jc.MaxCloudRatio)
	p("| Configuration | Threshold | Sent to the cloud | Accuracy | vs cloud-only | Goal met |\n|---|---|---|---|---|---|\n")
	p("| edge only | — | 0 %% | %s | %s | — |\n", pct(j.EdgeAccuracy), pts(j.EdgeAccuracy-j.CloudAccuracy))
	p("| cloud only | — | 100 %% | %s | 0 | — |\n", pct(j.CloudAccuracy))
	for _, pt := range j.Points {
		p("| %s | `%s` %g | %s | %s | %s | %s |\n", pt.Filter, pt.Param, pt.Threshold, pct(pt.CloudRatio), pct(pt.Accuracy),
			pts(pt.Accuracy-j.CloudAccuracy), yesNo(pt.MeetsGoal))
	}
	p("\n")
	for _, name := range []string{hem.NameCrossEntropy, hem.NameThreshold} {
		if c := j.Chosen[name]; c != nil {
			p("- **%s meets the goal** from `%s` = %g: %s of the samples to the cloud, %s accuracy (%s points against cloud-only).\n",
				name, c.Param, c.Threshold, pct(c.CloudRatio), pct(c.Accuracy), pts(c.Accuracy-j.CloudAccuracy))
		} else {
			p("- %s does not meet the goal at any threshold tried.\n", name)
		}
	}
	if h := j.HTTP; h != nil {
		p("\nThrough the workers (`verge-ji-edge` and `verge-ji-cloud` code on loopback HTTP, one request at a time, budget %s), %s `%s` = %g, %s test images: ",
			jc.Budget, h.Point.Filter, h.Point.Param, h.Point.Threshold, thousands(h.Samples))
		p("accuracy %s (the sweep above: %s on the same images), %s sent to the cloud, %d answered by it, fallbacks %s; ",
			pct(h.Accuracy), pct(h.Offline), pct(h.CloudRatio), h.FromCloud, fallbacks(h.Fallbacks))
		p("latency seen by the application p50 %s, p99 %s, max %s (hard samples: p50 %s, p99 %s, max %s).\n\n",
			ms(h.Latency.P50), ms(h.Latency.P99), ms(h.Latency.Max), ms(h.HardLat.P50), ms(h.HardLat.P99), ms(h.HardLat.Max))
	}
	if len(j.Outages) == 0 {
		return
	}
	p("### (b) Joint inference with the cloud unreachable\n\n")
	p("The edge worker (same filter and threshold, budget %s) answers the first N test images, one request at a time over loopback HTTP, with the cloud worker up, its port closed (connection refused), or a black hole that accepts connections and never answers. ", jc.Budget)
	p("Latency is what the application measured around each HTTP request; \"edge worker\" is the worker's own measure of the inference (edge model, filter, cloud call). With the breaker off, every hard sample tries the cloud. ")
	p("Upstream Sedna's edge library retries a failed cloud call 5 times 3 s apart (at least 12 s per hard sample) and sets no request timeout, so a black hole blocks it indefinitely (figures from its code, not measured here).\n\n")
	p("| Cloud | Breaker | Requests | Hard | Answered | By the cloud | Fallbacks | p50 | p99 | max | max, edge worker | Upstream Sedna |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, o := range j.Outages {
		up := "—"
		switch o.Cloud {
		case "refused":
			up = fmt.Sprintf("≥ 12 s per hard sample, ≥ %s in all", (time.Duration(o.Hard) * 12 * time.Second).String())
		case "black hole":
			up = "blocks on the first hard sample"
		}
		br := "on"
		if !o.Breaker {
			br = "off"
		}
		p("| %s | %s | %d | %d | %d | %d | %s | %s | %s | %s | %s | %s |\n", o.Cloud, br, o.Requests, o.Hard, o.Answered, o.FromCloud,
			fallbacks(o.Fallbacks), ms(o.Client.P50), ms(o.Client.P99), ms(o.Client.Max), ms(o.Server.Max), up)
	}
	worst := time.Duration(0)
	allAnswered := true
	for _, o := range j.Outages {
		worst = max(worst, o.Client.Max)
		allAnswered = allAnswered && o.Answered == o.Requests
	}
	p("\nEvery request answered: %s. Slowest request in any run: %s, against a budget of %s", yesNo(allAnswered), ms(worst), jc.Budget)
	if worst > jc.Budget {
		p(" (%s over: timer and scheduling slack after the budget's deadline fires, plus the HTTP round trip)", ms(worst-jc.Budget))
	}
	p(".\n\n")
}

func fallbacks(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func (r *Results) flMarkdown(p func(string, ...any)) {
	f, fc := r.FL, r.Config.FL
	arch := "softmax regression 784→10 (the edge model)"
	if f.Arch != "softmax" {
		arch = "MLP 784→256→128→10 (the cloud model)"
	}
	p("### (c) Federated learning on class-skewed shards\n\n")
	p("Model: %s. %d trainers and the aggregator (`verge-fl-trainer` and `verge-fl-aggregator` code, configured from the environment the controller gives them) over the WebSocket protocol on loopback. ", arch, len(f.ShardSizes))
	total := 0
	for _, n := range f.ShardSizes {
		total += n
	}
	p("Shards: `dataset.SplitClassSkew` of the %s training images, %d main classes per trainer, %.0f %% of every class shared, seed %d: sizes %v, share of each shard in its 4 largest classes %s. ",
		thousands(total), fc.Skew.ClassesPerClient, 100*fc.Skew.IIDFraction, fc.ShardSeed, f.ShardSizes, pctList(f.ShardTopShare))
	p("Each round every trainer trains %s (batch 64, momentum 0.9) at learning rate %g × %g^(round−1), from the same seeded initial weights in round 1. ", plural(fc.LocalEpochs, "local epoch"), fc.LearningRate, fc.LRDecay)
	p("Centralized: the same model trained on %s training images (%s): **%s** (%s). Target: within %.0f points, %s. Accuracy is on the %s test images after each round.\n\n",
		thousands(r.Prepared.ModelSamples), r.trainingSettings(), pct(f.Centralized), f.CentralizedTook.Round(100*time.Millisecond), 100*fc.TargetGap, pct(f.Target), thousands(f.TestSamples))
	p("| Run | Rounds to the target | Accuracy after %d rounds | Best | Gap to centralized | Bytes up / down | Time |\n|---|---|---|---|---|---|---|\n", fc.Rounds)
	for _, run := range f.Runs {
		reached := "not reached"
		if run.ReachedAt > 0 {
			reached = fmt.Sprintf("**%d**", run.ReachedAt)
		}
		p("| %s | %s | %s | %s | %s | %s / %s | %s |\n", run.Name, reached, pct(run.Final), pct(run.Best),
			pts(run.Final-f.Centralized), bytesStr(run.BytesUp), bytesStr(run.BytesDown), run.Took.Round(100*time.Millisecond))
	}
	if len(f.Runs) > 0 {
		main := f.Runs[0]
		p("\nTest accuracy after each round, %s:\n\n| Round |", main.Name)
		for i := range main.Curve {
			p(" %d |", i+1)
		}
		p("\n|---|%s\n| Accuracy |", strings.Repeat("---|", len(main.Curve)))
		for _, a := range main.Curve {
			p(" %.2f |", 100*a)
		}
		p("\n\n")
	}
	if len(f.Runs) > 1 && f.Runs[1].Encoding != f.Runs[0].Encoding {
		b, j := f.Runs[0], f.Runs[1]
		same := len(b.Curve) == len(j.Curve)
		for i := range b.Curve {
			same = same && i < len(j.Curve) && b.Curve[i] == j.Curve[i]
		}
		total := func(r FLRun) int64 { return r.BytesUp + r.BytesDown }
		p("On the wire (%d rounds, %d trainers, both directions): JSON %s, binary %s — binary is %.1f %% of JSON. Same accuracy after every round with both encodings: %s.\n\n",
			fc.Rounds, len(f.ShardSizes), bytesStr(total(j)), bytesStr(total(b)), 100*float64(total(b))/float64(total(j)), yesNo(same))
	}
	if k := f.Kill; k != nil {
		p("### (d) A trainer killed mid-job\n\n")
		p("FedAvg as above, with `MIN_CLIENTS_PER_ROUND=%d` and `ROUND_TIMEOUT=%s`; trainer %s's context is cancelled after round %d, as SIGTERM does in the binary.\n\n",
			fc.Clients-1, fc.RoundTimeout, k.Killed, fc.KillAfter)
		p("| Completed | Rounds | Trainers per round | Accuracy after the last round | Killed trainer | Other trainers | Time |\n|---|---|---|---|---|---|---|\n")
		others := "all finished"
		for _, e := range k.TrainerErrs {
			if e != "" {
				others = "error: " + e
			}
		}
		p("| %s | %d | %v | %s | %s | %s | %s |\n\n", yesNo(k.Completed), len(k.Curve), k.Participants, pct(k.Final),
			orDash(k.KilledErr), others, k.Took.Round(100*time.Millisecond))
		p("Each round after the kill closes %s after the second update (the round timeout), and the aggregator offers the final model for up to `FINISH_GRACE` (2 s here) to the trainer that never comes back before it exits. ", fc.RoundTimeout)
		if len(f.Runs) > 0 {
			p("Against the same job without the failure (%s): %s points", pct(f.Runs[0].Final), pts(k.Final-f.Runs[0].Final))
			if k.Final < f.Runs[0].Final {
				p("; from round %d on, the killed trainer's main classes are seen only through the other shards' shared samples", fc.KillAfter+1)
			}
			p(".")
		}
		p("\n\n")
	}
}

// trainingSettings describes how the reference models were trained.
func (r *Results) trainingSettings() string {
	if r.Config.EdgeTrain.Epochs == 0 && r.Config.CloudTrain.Epochs == 0 {
		return "the reference settings, 8 epochs"
	}
	return fmt.Sprintf("%d and %d epochs, reduced settings", r.Config.EdgeTrain.Epochs, r.Config.CloudTrain.Epochs)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func pctList(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.0f %%", 100*x)
	}
	return strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func bytesStr(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
