// Command verge-edge is Verge's edge agent: it keeps the node's link to the
// cloud, its local store, and its pods (through containerd's CRI). It is
// built static and pure Go for linux/amd64, arm64 and arm/v7. `verge join`
// writes its configuration file and starts it.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/verge-edge/verge/internal/edge/agent"
	"github.com/verge-edge/verge/internal/edge/config"
	"github.com/verge-edge/verge/internal/logging"
	"github.com/verge-edge/verge/internal/version"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "verge-edge:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := pflag.NewFlagSet("verge-edge", pflag.ContinueOnError)
	configPath := fs.String("config", "/var/lib/verge/edge.yaml", "configuration file written by `verge join`")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion || (fs.NArg() == 1 && fs.Arg(0) == "version") {
		fmt.Println(version.Version)
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: verge-edge takes only flags (see --help)", fs.Args())
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return fmt.Errorf("%w (has this node joined? run `verge join`)", err)
	}
	logger, err := logging.New(cfg.Log, os.Stderr)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, logger)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Start(ctx)
}
