// Command verge-edge is Verge's edge agent: it keeps the node's link to the
// cloud, its local store, and its pods (through containerd's CRI). It is
// built static and pure Go for linux/amd64, arm64 and arm/v7. `verge join`
// writes its configuration file and starts it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
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
	flags := pflag.NewFlagSet("verge-edge", pflag.ContinueOnError)
	configPath := flags.String("config", "/var/lib/verge/edge.yaml", "configuration file written by `verge join`")
	showVersion := flags.Bool("version", false, "print the version and exit")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *showVersion || (flags.NArg() == 1 && flags.Arg(0) == "version") {
		fmt.Println(version.Version)
		return nil
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: verge-edge takes only flags (see --help)", flags.Args())
	}
	cfg, err := config.Load(*configPath)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w (has this node joined? run `verge join`)", err)
	}
	if err != nil {
		return err
	}
	tuneMemory(cfg.EnablePprof)
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

// tuneMemory sets the Go runtime for a long-lived agent on a small device.
// Its live heap is a few MiB and it allocates slowly when idle, so the
// default GOGC=100 (heap may double before a collection, with a 4 MiB
// floor) costs more resident memory than the collections it saves: at 25
// the heap may grow by a quarter, which at idle with 10 pods is about one
// collection every 3 s of well under a millisecond (docs/benchmarks.md).
// An explicit GOGC in the environment wins. Heap profiling keeps a
// sampled stack table that costs about a MiB resident; it is kept only
// when pprof is served.
func tuneMemory(pprofServed bool) {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(25)
	}
	if !pprofServed {
		runtime.MemProfileRate = 0
	}
}
