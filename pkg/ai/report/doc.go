// Package report sends worker reports to the node's local controller in
// Sedna's format: POST {LC_SERVER}/sedna/workers/{worker name}/info with
//
//	{"name": "<WORKER_NAME>", "namespace": "<NAMESPACE>",
//	 "ownerName": "<SERVICE_NAME or JOB_NAME>", "ownerKind": "jointinferenceservice",
//	 "kind": "inference", "status": "running",
//	 "ownerInfo": {"inferenceNumber": 1520, "hardExampleNumber": 212,
//	               "uploadCloudRatio": 0.139, "startTime": "2026-01-02 15:04:05",
//	               "updateTime": "2026-01-02 15:04:35"},
//	 "results": [{"format": "json", "url": "/models/round-3.json", "metrics": {…}}]}
//
// The local controller relays ownerInfo to the owning object's status
// (JointInferenceService.status.metrics; FederatedLearningJob round and
// metrics). Message mirrors the local controller's MessageContent, so both
// sides can share it.
//
// A Periodic reporter posts every LC_PERIOD (30 s) when something changed
// since the last report delivered, as Sedna's LCReporter does, plus a last
// report when it stops. A failed post is logged and retried at the next
// period with fresh numbers; nothing queues up. The package reads no environment itself (see workerenv).
package report
