// Command verge-fl-trainer is a training worker of a FederatedLearningJob
// on Fashion-MNIST: it reads its shard from TRAIN_DATASET_URL (an index
// file written by verge-ai-prepare, or Fashion-MNIST's IDX files), trains
// a round at a time with pkg/ai/model, exchanges weights with the
// aggregator at AGG_IP:AGG_PORT, reports rounds to LC_SERVER, and exits 0
// with the final model. See docs/ai-worker-sdk.md#reference-workers.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/verge-edge/verge/internal/aiworkload"
)

func main() {
	os.Exit(aiworkload.Command("verge-fl-trainer", os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr,
		func(ctx context.Context, lookup func(string) (string, bool), log *slog.Logger) error {
			cfg, err := aiworkload.LoadTrainerConfig(lookup)
			if err != nil {
				return err
			}
			w, err := aiworkload.NewTrainer(cfg, aiworkload.TrainerOptions{Logger: log})
			if err != nil {
				return err
			}
			return w.Start(ctx)
		}))
}
