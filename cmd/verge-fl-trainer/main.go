// Command verge-fl-trainer is a training worker of a FederatedLearningJob
// on Fashion-MNIST: it reads its shard from TRAIN_DATASET_URL (an index
// file written by verge-ai-prepare, or Fashion-MNIST's IDX files), trains
// a round at a time with pkg/ai/model, exchanges weights with the
// aggregator at AGG_IP:AGG_PORT, reports rounds to LC_SERVER, and exits 0
// with the final model. See docs/ai-worker-sdk.md#reference-workers.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/verge-edge/verge/internal/aiworkload"
	"github.com/verge-edge/verge/internal/logging"
	"github.com/verge-edge/verge/internal/version"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "verge-fl-trainer:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	logOpts := logging.Defaults()
	fs := pflag.NewFlagSet("verge-fl-trainer", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: verge-fl-trainer [flags]\n\nConfigured by the worker environment the Verge controllers set; the\nvariables are listed in docs/ai-worker-sdk.md#reference-workers.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&logOpts.Level, "log-level", logOpts.Level, "debug, info, warn or error")
	fs.StringVar(&logOpts.Format, "log-format", logOpts.Format, "text or json")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if *showVersion {
		fmt.Println(version.Version)
		return nil
	}
	log, err := logging.New(logOpts, os.Stderr)
	if err != nil {
		return err
	}
	cfg, err := aiworkload.LoadTrainerConfig(os.LookupEnv)
	if err != nil {
		return err
	}
	t, err := aiworkload.NewTrainer(cfg, aiworkload.TrainerOptions{Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return t.Start(ctx)
}
