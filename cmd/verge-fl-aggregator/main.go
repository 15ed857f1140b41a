// Command verge-fl-aggregator is the aggregation worker of a
// FederatedLearningJob: Sedna's aggregation WebSocket on AGG_BIND_PORT
// (7363), rounds and stop condition from the job (PARTICIPANTS_COUNT,
// MIN_CLIENTS_PER_ROUND, ROUND_TIMEOUT, STOP_*, AGGREGATION_ALGORITHM:
// FedAvg, FedAvgM, FedProx). It writes the aggregated model to MODEL_URL
// after every round and exits 0 when training is over. See
// docs/ai-worker-sdk.md#reference-workers.
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
		fmt.Fprintln(os.Stderr, "verge-fl-aggregator:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	logOpts := logging.Defaults()
	fs := pflag.NewFlagSet("verge-fl-aggregator", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: verge-fl-aggregator [flags]\n\nConfigured by the worker environment the Verge controllers set; the\nvariables are listed in docs/ai-worker-sdk.md#reference-workers.\n\n")
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
	cfg, err := aiworkload.LoadAggregatorConfig(os.LookupEnv)
	if err != nil {
		return err
	}
	a, err := aiworkload.NewAggregator(cfg, aiworkload.AggregatorOptions{Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Start(ctx)
}
