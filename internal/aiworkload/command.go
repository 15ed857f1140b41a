package aiworkload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/verge-edge/verge/internal/logging"
	"github.com/verge-edge/verge/internal/version"
)

// Worker is what a worker binary runs: it reads its environment (lookup is
// os.LookupEnv), builds its worker and starts it until ctx ends.
type Worker func(ctx context.Context, lookup func(string) (string, bool), log *slog.Logger) error

// Command is the whole of a worker binary's main: the flags every worker
// shares (--log-level, --log-format, --version), logging, SIGTERM, and the
// worker. It returns the process's exit code; main passes it to os.Exit.
func Command(name string, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer, run Worker) int {
	if err := command(name, args, lookup, stdout, stderr, run); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

func command(name string, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer, run Worker) error {
	logOpts := logging.Defaults()
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s [flags]\n\nConfigured by the worker environment the Verge controllers set; the\nvariables are listed in docs/ai-worker-sdk.md#reference-workers.\n\n", name)
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
		fmt.Fprintln(stdout, version.Version)
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: workers are configured by their environment", fs.Args())
	}
	log, err := logging.New(logOpts, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return run(ctx, lookup, log)
}
