// Package jointinference is the runtime of a JointInferenceService's two
// workers, wire-compatible with Sedna's Python library in both directions.
//
// The cloud worker runs a Server: POST /{SERVICE_NAME}/predict with
// {"data": …, "callback"?: …} answers {"result": …} from a PredictFunc
// (Sedna's InferenceServer), plus GET /{SERVICE_NAME} and GET /healthz.
// Request bodies are bounded, concurrency is bounded (excess gets 503 at
// once rather than a queue), a prediction has a deadline, and malformed
// input gets a 4xx with {"detail": …}.
//
// The edge worker runs a Client: for each sample it runs the edge model,
// asks the hard-example filter (package hem), and sends hard examples to
// the cloud worker. Unlike upstream, which retries a dead cloud for at least
// 12 s per sample and sends requests without any timeout, every Infer call
// has a latency budget (default 200 ms, edge model included): the cloud
// call gets what is left, a circuit breaker stops calling a failing cloud
// for a while, and whenever the cloud cannot answer in time the edge's
// answer is returned, with the reason. Infer fails only when the edge model
// does.
//
// Ordering and state: the Breaker is a pure state machine (time passed in,
// not safe for concurrent use); the Client serialises access to it and
// records each call's verdict against the breaker generation the call was
// permitted in, so late answers never flip a breaker that has moved on.
// Answers the cloud gives for bad input (4xx other than 408/429) and calls
// the caller cancels do not count against the cloud. Counters are atomic;
// Stats and the Prometheus collectors read the same values.
//
// The counters map onto Sedna's worker report (package report):
// inferenceNumber = Inferences, hardExampleNumber = HardExamples,
// uploadCloudRatio = HardExamples / Inferences. Upstream counts each hard
// example twice in inferenceNumber; Verge counts every sample once.
package jointinference
