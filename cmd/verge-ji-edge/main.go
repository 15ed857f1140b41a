// Command verge-ji-edge is the edge worker of a JointInferenceService on
// Fashion-MNIST: it answers applications on the node with the edge model
// (MODEL_URL) behind a local HTTP API, sends hard examples (HEM_NAME,
// HEM_PARAMETERS) to the cloud worker within a latency budget, and reports
// its counters to LC_SERVER. Configuration is the worker environment the
// Verge controllers set; see docs/ai-worker-sdk.md#reference-workers.
//
//	POST /{SERVICE_NAME}/predict {"data": [784 pixels in [0, 1]]} → {"result": {...}}
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
		fmt.Fprintln(os.Stderr, "verge-ji-edge:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	logOpts := logging.Defaults()
	fs := pflag.NewFlagSet("verge-ji-edge", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: verge-ji-edge [flags]\n\nConfigured by the worker environment the Verge controllers set; the\nvariables are listed in docs/ai-worker-sdk.md#reference-workers.\n\n")
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
	cfg, err := aiworkload.LoadEdgeConfig(os.LookupEnv)
	if err != nil {
		return err
	}
	w, err := aiworkload.NewEdgeWorker(cfg, aiworkload.EdgeOptions{Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return w.Start(ctx)
}
