// Command verge is the Verge CLI: local clusters, joining edge nodes and
// edge-local operations.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/verge-edge/verge/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
