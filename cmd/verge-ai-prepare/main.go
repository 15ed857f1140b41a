// Command verge-ai-prepare writes what the Fashion-MNIST examples in
// examples/sedna read: copies of the dataset's IDX files, Sedna-style index
// files of the splits and of the federated-learning shards, and the
// trained reference edge and cloud models.
//
//	verge-ai-prepare --out /var/lib/verge
//
// writes /var/lib/verge/data/{fmnist-shard-<i>.txt, fmnist-train.txt,
// fmnist-test.txt, *-ubyte.gz} and /var/lib/verge/models/{fmnist-softmax.vmodel,
// fmnist-mlp.vmodel, fmnist-federated/}.
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
	"github.com/verge-edge/verge/pkg/ai/dataset"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "verge-ai-prepare:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg := aiworkload.DefaultPrepareConfig("")
	logOpts := logging.Defaults()
	fs := pflag.NewFlagSet("verge-ai-prepare", pflag.ContinueOnError)
	fs.StringVar(&cfg.Out, "out", "/var/lib/verge", "output directory: gets data/ and models/")
	fs.StringVar(&cfg.DatasetDir, "dataset-dir", dataset.DefaultFashionMNISTDir, "directory of the Fashion-MNIST IDX files (apt-get install dataset-fashion-mnist)")
	fs.IntVar(&cfg.Shards, "shards", cfg.Shards, "number of federated-learning shards")
	fs.IntVar(&cfg.Skew.ClassesPerClient, "classes-per-shard", cfg.Skew.ClassesPerClient, "main classes of each shard (0: IID shards)")
	fs.Float64Var(&cfg.Skew.IIDFraction, "iid-fraction", cfg.Skew.IIDFraction, "share of every class spread over all shards")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the shards")
	noModels := fs.Bool("no-models", false, "write only the data, not the trained models (the cloud model takes 1-2 minutes on 2 cores)")
	fs.IntVar(&cfg.TrainSamples, "train-samples", 0, "train the models on this many training images (0: all 60,000)")
	fs.StringVar(&logOpts.Level, "log-level", logOpts.Level, "debug, info, warn or error")
	fs.StringVar(&logOpts.Format, "log-format", logOpts.Format, "text or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg.Models = !*noModels
	log, err := logging.New(logOpts, os.Stderr)
	if err != nil {
		return err
	}
	cfg.Logger = log
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := aiworkload.Prepare(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("data:   %s (shards %v)\n", p.DataDir, p.Shards)
	if cfg.Models {
		fmt.Printf("models: %s (test accuracy %.2f %%), %s (test accuracy %.2f %%)\n",
			p.EdgeModel, 100*p.EdgeAccuracy, p.CloudModel, 100*p.CloudAccuracy)
	}
	fmt.Printf("federated model directory: %s\n", p.FederatedDir)
	return nil
}
