// Package aiworkload is Verge's reference AI workloads: the four worker
// programs of a JointInferenceService and a FederatedLearningJob on
// Fashion-MNIST, and the data preparation that makes their inputs.
//
//   - EdgeWorker (cmd/verge-ji-edge): the edge model behind a local HTTP
//     API for applications, with hard examples sent to the cloud worker by
//     pkg/ai/jointinference's Client within a latency budget, and counters
//     reported to the local controller.
//   - CloudWorker (cmd/verge-ji-cloud): the cloud model behind Sedna's
//     POST /{service}/predict (pkg/ai/jointinference's Server).
//   - Aggregator (cmd/verge-fl-aggregator) and Trainer
//     (cmd/verge-fl-trainer): federated learning on pkg/ai/federated, with
//     pkg/ai/model's classifiers and pkg/ai/dataset's shards; the aggregator
//     writes the model to MODEL_URL after every round.
//   - Prepare (cmd/verge-ai-prepare): copies the Fashion-MNIST IDX files,
//     writes Sedna-style shard index files and trains the reference edge and
//     cloud models, under the paths the examples in examples/sedna use.
//
// Every worker is configured by the environment the Verge controllers give
// its pod (package workerenv reads Sedna's variables; Load*Config adds
// Verge's own and reports every bad variable at once), reads models and
// data only from paths (host paths or volumes mounted by the controller),
// and has Start(ctx) error, returning when ctx ends or its job is done.
//
// Model location convention (MODEL_URL, PRETRAINED_MODEL_URL): a path to a
// model file in pkg/ai/model's format, whatever its name (the reference
// files end in .vmodel), or a directory, which holds the model as
// ModelFileName. The aggregator writes to the same place: into the
// directory when MODEL_URL is one, else to the file.
//
// The package owns no global state and does not touch the cluster: it
// talks HTTP and WebSocket to its peers and to the local controller only.
package aiworkload
