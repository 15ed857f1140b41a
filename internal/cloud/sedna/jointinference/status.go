package jointinference

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
	"github.com/verge-edge/verge/internal/cloud/sedna/worker"
)

// Reasons of the phases that do not come from a Problem.
const (
	ReasonWorkersAvailable    = "WorkersAvailable"
	ReasonWorkersNotAvailable = "WorkersNotAvailable"
	ReasonWorkerFailed        = "WorkerFailed"
)

var conditionTypes = []string{
	sednav1.JointInferenceServiceCondPending,
	sednav1.JointInferenceServiceCondRunning,
	sednav1.JointInferenceServiceCondFailed,
}

// ComputeStatus derives the status from a spec problem (nil when none) and
// the two worker Deployments (nil when missing). Metrics, written by the
// workers, are kept as they are. Failure is never sticky: the phase follows
// the Deployments and the problem every time.
func ComputeStatus(ji *sednav1.JointInferenceService, problem *worker.Problem, edge, cloud *appsv1.Deployment, now metav1.Time) sednav1.JointInferenceServiceStatus {
	st := *ji.Status.DeepCopy()
	if st.StartTime == nil {
		st.StartTime = &now
	}
	st.ObservedGeneration = ji.Generation
	st.EdgeWorker = workerStatus(edge)
	st.CloudWorker = workerStatus(cloud)

	st.Active, st.Failed = 0, 0
	var failures, waiting []string
	for _, w := range []struct {
		name string
		dep  *appsv1.Deployment
	}{{"edge", edge}, {"cloud", cloud}} {
		switch {
		case w.dep == nil:
			waiting = append(waiting, w.name+" worker: Deployment not created yet")
		case failure(w.dep) != "":
			st.Failed++
			failures = append(failures, fmt.Sprintf("%s worker (Deployment %s): %s", w.name, w.dep.Name, failure(w.dep)))
		case available(w.dep):
			st.Active++
		default:
			waiting = append(waiting, fmt.Sprintf("%s worker: %d of %d replicas available", w.name, w.dep.Status.AvailableReplicas, desiredReplicas(w.dep)))
		}
	}

	var phase sednav1.JointInferenceServicePhase
	var reason, message string
	switch {
	case problem != nil:
		phase, reason, message = sednav1.JointInferenceServiceFailed, problem.Reason, problem.Message
	case len(failures) > 0:
		phase, reason, message = sednav1.JointInferenceServiceFailed, ReasonWorkerFailed, strings.Join(failures, "; ")
	case st.Active == 2:
		phase, reason, message = sednav1.JointInferenceServiceRunning, ReasonWorkersAvailable, "edge and cloud workers are available"
	default:
		phase, reason, message = sednav1.JointInferenceServicePending, ReasonWorkersNotAvailable, strings.Join(waiting, "; ")
	}
	st.Phase = phase
	worker.SetExclusiveConditions(&st.Conditions, conditionTypes, string(phase), reason, message, ji.Generation, now)
	return st
}

func workerStatus(d *appsv1.Deployment) *sednav1.WorkerStatus {
	if d == nil {
		return nil
	}
	return &sednav1.WorkerStatus{
		Deployment:        d.Name,
		Replicas:          d.Status.Replicas,
		UpdatedReplicas:   d.Status.UpdatedReplicas,
		ReadyReplicas:     d.Status.ReadyReplicas,
		AvailableReplicas: d.Status.AvailableReplicas,
	}
}

func desiredReplicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas != nil {
		return *d.Spec.Replicas
	}
	return 1
}

func available(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue && d.Status.AvailableReplicas > 0
		}
	}
	return false
}

// failure is the Deployment controller's verdict that a worker cannot make
// progress ("" when none).
func failure(d *appsv1.Deployment) string {
	for _, c := range d.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			return c.Message
		case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded":
			return c.Message
		}
	}
	return ""
}

func phaseCondition(st sednav1.JointInferenceServiceStatus) *metav1.Condition {
	return meta.FindStatusCondition(st.Conditions, string(st.Phase))
}

func phaseReason(st sednav1.JointInferenceServiceStatus) string {
	if c := phaseCondition(st); c != nil {
		return c.Reason
	}
	return ""
}

func phaseMessage(st sednav1.JointInferenceServiceStatus) string {
	if c := phaseCondition(st); c != nil {
		return c.Message
	}
	return ""
}
