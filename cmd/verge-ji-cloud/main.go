// Command verge-ji-cloud is the cloud worker of a JointInferenceService on
// Fashion-MNIST: it serves the cloud model (MODEL_URL) with Sedna's
// inference protocol on BIG_MODEL_BIND_PORT (5000):
//
//	POST /{SERVICE_NAME}/predict {"data": [784 pixels in [0, 1]]} → {"result": [10 probabilities]}
//
// See docs/ai-worker-sdk.md#reference-workers.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/verge-edge/verge/internal/aiworkload"
)

func main() {
	os.Exit(aiworkload.Command("verge-ji-cloud", os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr,
		func(ctx context.Context, lookup func(string) (string, bool), log *slog.Logger) error {
			cfg, err := aiworkload.LoadCloudConfig(lookup)
			if err != nil {
				return err
			}
			w, err := aiworkload.NewCloudWorker(cfg, nil, log)
			if err != nil {
				return err
			}
			return w.Start(ctx)
		}))
}
