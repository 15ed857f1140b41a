// Command verge-ai-eval reproduces the figures of docs/ai-benchmarks.md
// from scratch: it prepares Fashion-MNIST (from the Debian package
// dataset-fashion-mnist), trains the reference models, and measures joint
// inference and federated learning through the reference workers on
// loopback, then prints markdown tables.
//
//	verge-ai-eval [joint|federated|all] [--out FILE] [--work-dir DIR]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/verge-edge/verge/internal/aieval"
	"github.com/verge-edge/verge/internal/aiworkload"
	"github.com/verge-edge/verge/internal/logging"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "verge-ai-eval:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg := aieval.DefaultConfig("")
	logOpts := logging.Defaults()
	logOpts.Level = "warn"
	fs := pflag.NewFlagSet("verge-ai-eval", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: verge-ai-eval [joint|federated|all] [flags]\n\n")
		fs.PrintDefaults()
	}
	out := fs.String("out", "", "write the markdown here (default: standard output)")
	fs.StringVar(&cfg.WorkDir, "work-dir", "", "where to prepare data and models (default: a temporary directory, removed afterwards)")
	fs.StringVar(&cfg.DatasetDir, "dataset-dir", cfg.DatasetDir, "directory of the Fashion-MNIST IDX files")
	fs.DurationVar(&cfg.Joint.Budget, "budget", cfg.Joint.Budget, "the edge worker's latency budget")
	fs.IntVar(&cfg.Joint.HTTPSamples, "http-samples", cfg.Joint.HTTPSamples, "test images sent through the edge and cloud workers over HTTP")
	fs.IntVar(&cfg.Joint.OutageSamples, "outage-samples", cfg.Joint.OutageSamples, "requests per cloud-outage run with the circuit breaker on")
	fs.IntVar(&cfg.Joint.NoBreakerSamples, "no-breaker-samples", cfg.Joint.NoBreakerSamples, "requests per cloud-outage run with the breaker off")
	fs.StringVar(&cfg.FL.Arch, "fl-arch", cfg.FL.Arch, "model trained by federated learning: softmax (the edge model) or mlp (the cloud model, ~15x slower)")
	fs.IntVar(&cfg.FL.Rounds, "rounds", cfg.FL.Rounds, "federated rounds")
	fs.BoolVar(&cfg.FL.Variants, "fl-variants", cfg.FL.Variants, "also run FedAvgM, FedProx and shards without shared samples")
	fs.IntVar(&cfg.TrainSamples, "train-samples", 0, "train the reference models on this many images (0: all 60,000; for quick checks only)")
	fs.StringVar(&logOpts.Level, "log-level", logOpts.Level, "progress on standard error: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	which := aieval.All
	switch rest := fs.Args(); len(rest) {
	case 0:
	case 1:
		which = aieval.Which(rest[0])
	default:
		return fmt.Errorf("one selection expected (joint, federated or all), got %v", rest)
	}
	if cfg.FL.Arch != aiworkload.ArchSoftmax && cfg.FL.Arch != aiworkload.ArchMLP {
		return fmt.Errorf("--fl-arch %q: use softmax or mlp", cfg.FL.Arch)
	}
	log, err := logging.New(logOpts, os.Stderr)
	if err != nil {
		return err
	}
	cfg.Logger = log
	if cfg.WorkDir == "" {
		dir, err := os.MkdirTemp("", "verge-ai-eval-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.WorkDir = dir
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := aieval.Run(ctx, cfg, which)
	if err != nil {
		return err
	}
	var w io.Writer = os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	command := strings.TrimSpace("verge-ai-eval " + strings.Join(args, " "))
	if err := res.Markdown(w, command); err != nil {
		return err
	}
	if f, ok := w.(*os.File); ok && f != os.Stdout {
		return f.Close()
	}
	return nil
}
