// Command verge-cloud is Verge's cloud side: the hub edge nodes connect to
// and the controllers for edge nodes, devices and AI jobs.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/spf13/pflag"

	"github.com/verge-edge/verge/api/crds"
	"github.com/verge-edge/verge/internal/cloud/app"
	"github.com/verge-edge/verge/internal/cloud/config"
	"github.com/verge-edge/verge/internal/logging"
	"github.com/verge-edge/verge/internal/version"
)

func main() {
	if err := run(); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "verge-cloud:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) > 1 && os.Args[1] == "--version" {
		fmt.Println(version.Version)
		return nil
	}
	cfg, err := config.FromArgs("verge-cloud", os.Args[1:])
	if err != nil {
		return err
	}
	logger, err := logging.New(cfg.Log, os.Stderr)
	if err != nil {
		return err
	}
	// client-go and controller-runtime log through klog: one format per
	// process.
	klog.SetSlogLogger(logger)
	all, err := crds.All()
	if err != nil {
		return err
	}
	a, err := app.New(cfg, all, logger)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Run(ctx)
}
