// Package federated runs federated learning on Sedna's WebSocket protocol:
// an Aggregator (the aggregation worker) and a Client (each training
// worker), interoperable with Sedna's Python AggregationClient and
// aggregation server.
//
// # Wire protocol
//
// The client connects to ws://{AGG_IP}:{AGG_PORT}/{algorithm} (the
// aggregator accepts any path) and sends JSON text frames:
//
//	{"type": "subscribe", "client_id": "<WORKER_NAME>",
//	 "verge": {"protocol": 1, "encodings": ["f32le", "json"]}}      ← "verge" only from Verge clients
//	{"type": "update_weight", "client": "<id>", "job_name": "<JOB_NAME>",
//	 "data": {"num_samples": 600, "weights": [[…], …],
//	          "round_number": 3, "metrics": {"accuracy": 0.84}}}     ← round_number, metrics: Verge
//
// The aggregator answers the subscribe with its echo (Sedna's clients read
// one message after subscribing), adding the rounds completed and the
// negotiated encoding:
//
//	{"type": "subscribe", "client_id": "<id>", "round_number": 2,
//	 "verge": {"protocol": 1, "encoding": "f32le"}}
//
// and sends every connected client each round's aggregate:
//
//	{"type": "recv_weight", "round_number": 3,
//	 "data": {"total_sample": 1800, "round_number": 3, "weights": [[…], …],
//	          "exit_flag": "continue" | "ok",
//	          "metrics": {…}, "participants": ["a", "b"]}}           ← metrics, participants: Verge
//
// Weights are a list of nested number lists, one per model variable
// (numpy's tolist()); see package tensor.
//
// # Binary encoding
//
// A Verge client may offer "f32le". If the aggregator accepts, the
// messages carrying weights travel, in both directions, as binary frames:
//
//	"VFL1" | uint32 LE header length | header | weights
//
// where header is the JSON message without its weights ("weights": null)
// and weights is tensor's binary encoding (little-endian float32 with
// shapes): about a third of the JSON size, and no number parsing.
// Everything else, and everything to or from Sedna peers, stays JSON.
//
// # Rounds
//
// The Coordinator (pure: events and times in, actions out) keeps the
// rounds; the Aggregator is its WebSocket shell, one goroutine owning it.
// Unlike upstream, which waits for every participant forever (a dead edge
// stalls the job, issue #459) and forgets the update of a client that
// disconnects:
//
//   - A round closes as soon as all Participants (PARTICIPANTS_COUNT)
//     have reported, or RoundTimeout (ROUND_TIMEOUT) after MinClients
//     (MIN_CLIENTS_PER_ROUND) have. Clients that had not reported are
//     stragglers: left out of that round, sent its aggregate like
//     everyone else, and welcome in the next one. With fewer than
//     MinClients updates the round stays open as long as it takes,
//     logging a warning every RoundTimeout.
//   - An update counts once received, even if its client disconnects
//     before the round closes. A client that reconnects is sent the latest
//     aggregate (Verge clients) and goes on from there. An update tagged
//     with a round that has closed is stale: dropped, and answered with
//     the latest aggregate.
//   - Training stops after the round that reaches StopCondition.Rounds
//     (STOP_ROUNDS, or Sedna's exit_round) or whose sample-weighted mean
//     metric meets the target (STOP_METRIC*). That round's aggregate
//     carries exit_flag "ok"; the aggregator then serves it for up to
//     FinishGrace to clients that have not received it, and Serve returns
//     it.
//
// Aggregation: FedAvg (Sedna's, sample-weighted mean), FedAvgM (server
// momentum: momentum, server_learning_rate), FedProx (FedAvg on the
// server; ProximalGradient adds μ(w − w_global) on the clients).
//
// Resources: each connection has a reader, a writer with a bounded queue
// (a client that cannot keep up is disconnected, and may rejoin), a read
// limit, pings, and deadlines; Serve returns only after every connection
// goroutine has ended. Client.Run keeps at most the newest aggregate in
// memory besides the current model.
package federated
