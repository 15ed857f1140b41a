// Package federated is the FederatedLearningJob controller. For each job it
// keeps an aggregator pod "<job>-aggregation" behind the Service
// "<job>-aggregation" (port 7363) and one training pod "<job>-train-<i>"
// per training worker, with the upstream Sedna environment contract
// (AGG_IP/AGG_PORT, AGG_BIND_PORT, PARTICIPANTS_COUNT, TRAIN_DATASET_URL,
// MODEL_URL, PRETRAINED_MODEL_URL, TRANSMITTER, AGG_DATA_PATH, MODEL_NAME,
// DATASET_NAME, JOB_NAME, NAMESPACE, WORKER_NAME, LC_SERVER) plus the
// variables of Verge's additive fields (MIN_CLIENTS_PER_ROUND,
// ROUND_TIMEOUT, STOP_ROUNDS, STOP_METRIC*, AGGREGATION_ALGORITHM,
// AGGREGATION_PARAMETERS).
//
// Rules, all derived from the job and its pods on every reconcile (the
// controller keeps no state between reconciles and none shared between
// jobs):
//
//   - A pod deleted by accident is recreated, under the same name once the
//     old one is gone, while the job lives and has not finished.
//   - Nothing is created for a job that is gone or being deleted: the job
//     is read afresh from the API server before any creation (upstream
//     issue #466, ghost instances).
//   - Each pod is labelled with the job generation it runs. A new
//     generation (an edit of the spec) stops every pod of the old one,
//     waits until they are gone, then starts the new run: one restart per
//     edit.
//   - The job succeeds when the aggregator succeeds. It fails when the
//     aggregator fails or fewer training workers than minClientsPerRound
//     (default: all) are left; only an edit restarts it. Problems with the
//     spec or its references (a missing Model or Dataset, an unknown
//     aggregation) are also the Failed phase, but clear when fixed.
package federated
