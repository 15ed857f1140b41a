// Package podruntime is verge-edge's pod manager: it runs the pods bound to
// the node through a CRI runtime (containerd) without a kubelet.
//
// # Contract
//
// The caller supplies a Source (the desired state, backed by the edge store)
// and a Sink (where observations go, turned into reports for the cloud):
//
//   - Source.Pods returns every pod bound to the node, including pods with a
//     deletionTimestamp. It is authoritative: a pod it does not return is
//     stopped and its containers, sandboxes and volumes removed. It must
//     return an error — never an empty list — when the store cannot answer.
//   - Source.ConfigMap/Secret return the objects pods reference (a missing
//     one as an error wrapping ErrNotFound);
//     Source.ServiceAccountToken returns a token for projected volumes.
//   - Sink.PodStatus is called when a pod's computed status differs from the
//     last one reported (or, after a restart, from the status the Source's
//     pod carries). Sink.PodTerminated is called once per process for a pod
//     with a deletionTimestamp whose containers have all stopped and whose
//     sandbox is down: the cloud may now delete it. Sink.Event reports what
//     an operator must see (pulls, starts, kills, probe failures, back-off).
//     Sink methods are called from per-pod goroutines and must not block
//     for long.
//
// Container locates a pod's CRI container (ID, sandbox, log file) for the
// logs/exec tunnel; RuntimeState reports the runtime's version and
// readiness for the node status; UnmountVolumes is for tools that tear a
// node down (secret and projected volumes are tmpfs mounts that outlive
// the process, like the pods).
//
// Start runs until its context ends and does not stop pods when it returns:
// they keep running while verge-edge restarts. A new Runtime adopts them:
// sandboxes and containers carry labels with the pod's UID, name, namespace
// and container name, so nothing is recreated. Trigger asks for a reconcile
// after the desired state changed; calls coalesce.
//
// # What the runtime owns
//
// The CRI endpoint is dedicated to this node's verge-edge (a private
// containerd, see package containerd): every sandbox or container there that
// is not labelled for a pod the Source returns — including ones created
// behind Verge's back — is a ghost and is removed on the next reconcile
// (every Config.ReconcilePeriod and on Trigger). Missing sandboxes and
// containers are recreated; exited ones restart per restartPolicy, which
// also covers a host reboot (containerd reports the old sandboxes not ready
// and the containers exited) and a containerd restart.
//
// The runtime also owns Config.RootDir/pods/<uid> (volumes, termination
// message files), Config.PodLogDir/<namespace>_<name>_<uid> (CRI logs,
// <container>/<restartCount>.log as the kubelet lays them out, rotated by
// size) and the cgroups under Config.CgroupParent.
//
// # Structure
//
// Decisions are pure functions, tested table-driven: computeActions (what
// to create, start, kill and remove for one pod), computeStatus (PodStatus
// from the observation), restart back-off (backoff.go), the probe state
// machine (probe.go), env and volume rendering (env.go, volumes.go). The
// shell around them: one goroutine per pod (a slow image pull or a long
// grace period holds up only that pod), one per probe, a relist loop that
// notices container state changes every RelistPeriod, and the reconcile
// loop that reads the Source, wakes every pod and removes ghosts.
//
// Crash-loop back-off survives verge-edge restarts: each container records
// its back-off step in a CRI annotation, and the delay before the next start
// is derived from the previous container's step and run time
// (10 s doubling to 5 min; a container that ran 10 min resets it).
package podruntime
