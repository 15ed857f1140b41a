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
	"log/slog"
	"os"

	"github.com/verge-edge/verge/internal/aiworkload"
)

func main() {
	os.Exit(aiworkload.Command("verge-ji-edge", os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr,
		func(ctx context.Context, lookup func(string) (string, bool), log *slog.Logger) error {
			cfg, err := aiworkload.LoadEdgeConfig(lookup)
			if err != nil {
				return err
			}
			w, err := aiworkload.NewEdgeWorker(cfg, aiworkload.EdgeOptions{Logger: log})
			if err != nil {
				return err
			}
			return w.Start(ctx)
		}))
}
