// Package reports applies the status reports edge nodes send (node status,
// pod status, terminated pods, events, devices) to the Kubernetes API, after checking
// that the sending node may write them: a node writes status only for
// itself and for pods bound to it, and events only about those. The hub
// calls Apply concurrently; each call is idempotent, because a report may
// arrive twice (the edge resends what was in flight when a link drops).
package reports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/verge-edge/verge/internal/cloud/nodeview"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
	"github.com/verge-edge/verge/internal/protocol/wire"
)

// PodLookup reads pods from an informer cache.
type PodLookup interface {
	Pod(namespace, name string) (*corev1.Pod, bool)
}

// Applier applies reports.
type Applier struct {
	// Devices applies device reports; nil refuses them.
	Devices DeviceReports

	Kube   kubernetes.Interface
	Pods   PodLookup
	Logger *slog.Logger
	// KubeletPort, when set, replaces the port in every node status's
	// daemonEndpoints.kubeletEndpoint: the API server then calls the
	// node's kubelet API (logs, exec, port-forward) at that port of the
	// node's address, where verge-cloud's tunnel proxy listens.
	KubeletPort int32
}

// Apply authorizes and applies one report from node.
func (a *Applier) Apply(ctx context.Context, node string, r *syncpb.Report) (syncpb.Outcome, string, time.Duration) {
	if r.Kind == wire.ReportDevice {
		return a.applyDevice(ctx, node, r)
	}
	err := a.apply(ctx, node, r)
	if err == nil {
		return syncpb.Outcome_OUTCOME_ACCEPTED, "", 0
	}
	var denied *deniedError
	switch {
	case errors.As(err, &denied):
		a.Logger.Warn("report refused", "node", node, "kind", r.Kind, "key", r.Key, "reason", denied.msg)
		return syncpb.Outcome_OUTCOME_REJECTED, denied.msg, 0
	case transient(err):
		return syncpb.Outcome_OUTCOME_RETRY, err.Error(), retryAfter(err)
	default:
		a.Logger.Warn("report could not be applied", "node", node, "kind", r.Kind, "key", r.Key, "error", err)
		return syncpb.Outcome_OUTCOME_REJECTED, err.Error(), 0
	}
}

// deniedError is a report the node may not make.
type deniedError struct{ msg string }

func (e *deniedError) Error() string { return e.msg }

func deny(format string, args ...any) error { return &deniedError{fmt.Sprintf(format, args...)} }

func (a *Applier) apply(ctx context.Context, node string, r *syncpb.Report) error {
	switch r.Kind {
	case wire.ReportNodeStatus:
		var n corev1.Node
		if err := wire.Decode(r.Encoding, r.Data, r.Compressed, &n); err != nil {
			return deny("malformed node status: %v", err)
		}
		if n.Name != node {
			return deny("node %s may not report the status of node %s", node, n.Name)
		}
		if a.KubeletPort != 0 {
			n.Status.DaemonEndpoints.KubeletEndpoint.Port = a.KubeletPort
		}
		return a.patchStatus(ctx, func(body []byte) error {
			_, err := a.Kube.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, body, metav1.PatchOptions{FieldManager: nodeview.NodeFieldManager}, "status")
			if apierrors.IsNotFound(err) {
				// The Node is created when the node connects; its first
				// status can overtake that.
				return retryLater{err}
			}
			return err
		}, map[string]any{"status": n.Status})
	case wire.ReportPodStatus, wire.ReportPodTerminated:
		var p corev1.Pod
		if err := wire.Decode(r.Encoding, r.Data, r.Compressed, &p); err != nil {
			return deny("malformed pod report: %v", err)
		}
		current, err := a.podOnNode(ctx, node, p.Namespace, p.Name)
		if err != nil {
			return err
		}
		if current.UID != p.UID {
			return deny("pod %s/%s is now a different pod (uid %s, report is about %s)", p.Namespace, p.Name, current.UID, p.UID)
		}
		if r.Kind == wire.ReportPodTerminated {
			return a.deleteTerminated(ctx, current)
		}
		// Strategic merge keeps conditions other controllers own (keyed by
		// type) and the uid makes the patch fail on a recreated pod.
		status, err := podStatusPatch(&p.Status)
		if err != nil {
			return deny("malformed pod status: %v", err)
		}
		return a.patchStatus(ctx, func(body []byte) error {
			_, err := a.Kube.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, body, metav1.PatchOptions{FieldManager: nodeview.NodeFieldManager}, "status")
			return err
		}, map[string]any{"metadata": map[string]any{"uid": p.UID}, "status": status})
	case wire.ReportEvent:
		var e corev1.Event
		if err := wire.Decode(r.Encoding, r.Data, r.Compressed, &e); err != nil {
			return deny("malformed event: %v", err)
		}
		return a.createEvent(ctx, node, &e)
	}
	return deny("unknown report kind %q", r.Kind)
}

// podStatusPatch renders a pod status for a strategic merge patch. Lists
// merged by key would otherwise keep entries the node no longer reports:
// the addresses (keyed by IP) must be replaced as a whole — a pod whose
// sandbox was recreated has a new IP, not two.
func podStatusPatch(st *corev1.PodStatus) (map[string]any, error) {
	data, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	for _, list := range []string{"podIPs", "hostIPs"} {
		entries, _ := m[list].([]any)
		m[list] = append(entries, map[string]any{"$patch": "replace"})
	}
	return m, nil
}

func (a *Applier) patchStatus(ctx context.Context, patch func([]byte) error, body map[string]any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return patch(data)
}

// podOnNode returns the pod if it is bound to node. The cache is tried
// first; a miss is checked live (the cache may lag a pod another replica
// just delivered).
func (a *Applier) podOnNode(ctx context.Context, node, namespace, name string) (*corev1.Pod, error) {
	pod, ok := a.Pods.Pod(namespace, name)
	if !ok {
		var err error
		pod, err = a.Kube.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, deny("pod %s/%s no longer exists", namespace, name)
		}
		if err != nil {
			return nil, err
		}
	}
	if pod.Spec.NodeName != node {
		return nil, deny("node %s may not write the status of pod %s/%s, which is bound to %q", node, namespace, name, pod.Spec.NodeName)
	}
	return pod, nil
}

// deleteTerminated completes a graceful deletion once the edge has stopped
// everything of the pod, as the kubelet does.
func (a *Applier) deleteTerminated(ctx context.Context, pod *corev1.Pod) error {
	if pod.DeletionTimestamp == nil {
		return deny("pod %s/%s is not being deleted", pod.Namespace, pod.Name)
	}
	err := a.Kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // already gone, or a newer pod of that name: nothing to do
	}
	return err
}

func (a *Applier) createEvent(ctx context.Context, node string, e *corev1.Event) error {
	ref := e.InvolvedObject
	switch ref.Kind {
	case "Node":
		if ref.Name != node {
			return deny("node %s may not report events about node %s", node, ref.Name)
		}
		e.Namespace = metav1.NamespaceDefault
	case "Pod":
		if _, err := a.podOnNode(ctx, node, ref.Namespace, ref.Name); err != nil {
			return err
		}
		e.Namespace = ref.Namespace
	default:
		return deny("node %s may not report events about a %s", node, ref.Kind)
	}
	e.Source = corev1.EventSource{Component: "verge-edge", Host: node}
	e.ReportingController = "verge.dev/edge"
	e.ReportingInstance = node
	e.ResourceVersion = ""
	_, err := a.Kube.CoreV1().Events(e.Namespace).Create(ctx, e, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil // a resend of an event already recorded
	}
	return err
}

// retryLater marks an error that will go away by itself.
type retryLater struct{ error }

func (r retryLater) Unwrap() error { return r.error }

// transient reports whether err may succeed later: the API server was
// unreachable, overloaded, or timed out.
func transient(err error) bool {
	var ne net.Error
	var rl retryLater
	switch {
	case errors.As(err, &rl), errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded):
		return true
	case apierrors.IsTooManyRequests(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err), apierrors.IsUnexpectedServerError(err):
		return true
	case apierrors.IsConflict(err):
		return true
	}
	var status apierrors.APIStatus
	return !errors.As(err, &status) // not an API answer at all: a connection problem
}

func retryAfter(err error) time.Duration {
	if s, ok := apierrors.SuggestsClientDelay(err); ok {
		return time.Duration(s) * time.Second
	}
	return 2 * time.Second
}
