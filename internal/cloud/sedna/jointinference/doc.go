// Package jointinference is the JointInferenceService controller. For each
// service it keeps:
//
//   - the cloud worker Deployment "<name>-deployment-cloud" and its Service
//     "<name>-cloud" on port 5000;
//   - the edge worker Deployment "<name>-deployment-edge", placed by its
//     template's nodeName, nodeSelector or affinity;
//   - an autoscaling/v2 HorizontalPodAutoscaler "hpa-<deployment>" per
//     worker whose spec has hpa, deleted when hpa is removed;
//
// with the upstream Sedna environment contract (BIG_MODEL_IP/PORT,
// BIG_MODEL_BIND_PORT, HEM_NAME, HEM_PARAMETERS, MODEL_URL, SERVICE_NAME,
// NAMESPACE, WORKER_NAME, LC_SERVER). Every child carries a controller
// owner reference, so deleting the service lets the garbage collector
// remove them all.
//
// Ordering rules: desired objects come from the pure Build; children are
// written through package owned, so a child is created only after a live
// read confirms the parent exists and is not being deleted (nothing
// reappears after deletion) and rewritten only when the hash of what we
// want changed (reconciles cause no rollouts of their own); problems the
// user must fix become the Failed condition, never a terminal state, and
// workers already running keep their last good configuration meanwhile.
package jointinference
