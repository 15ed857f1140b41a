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
	"log/slog"
	"os"

	"github.com/verge-edge/verge/internal/aiworkload"
)

func main() {
	os.Exit(aiworkload.Command("verge-fl-aggregator", os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr,
		func(ctx context.Context, lookup func(string) (string, bool), log *slog.Logger) error {
			cfg, err := aiworkload.LoadAggregatorConfig(lookup)
			if err != nil {
				return err
			}
			w, err := aiworkload.NewAggregator(cfg, aiworkload.AggregatorOptions{Logger: log})
			if err != nil {
				return err
			}
			return w.Start(ctx)
		}))
}
