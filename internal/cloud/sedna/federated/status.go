package federated

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
	"github.com/verge-edge/verge/internal/cloud/sedna/worker"
)

// Reasons of the phases that do not come from a Problem.
const (
	ReasonWorkersPending      = "WorkersPending"
	ReasonWorkersRunning      = "WorkersRunning"
	ReasonRestarting          = "Restarting"
	ReasonAggregatorSucceeded = "AggregatorSucceeded"
	ReasonAggregatorFailed    = "AggregatorFailed"
	ReasonTooFewTrainers      = "TooFewTrainers"
)

var conditionTypes = []string{sednav1.FLJobCondTraining, sednav1.FLJobCondComplete, sednav1.FLJobCondFailed}

// Observed is what the reconciler saw of the job's pods.
type Observed struct {
	// Pods of the current generation, by name (including ones being
	// deleted, which count as neither active nor finished).
	Pods map[string]*corev1.Pod
	// Stale is the number of pods of older generations still present.
	Stale int
}

// Finished reports whether the job has ended for its current generation:
// it succeeded, or failed in a way only an edit can undo. A finished job
// gets no new pods, even when its pods are deleted.
func Finished(job *sednav1.FederatedLearningJob) bool {
	st := job.Status
	if st.ObservedGeneration != job.Generation {
		return false
	}
	if st.Phase == sednav1.FLJobSucceeded {
		return true
	}
	c := meta.FindStatusCondition(st.Conditions, sednav1.FLJobCondFailed)
	return st.Phase == sednav1.FLJobFailed && c != nil && c.Status == metav1.ConditionTrue &&
		(c.Reason == ReasonAggregatorFailed || c.Reason == ReasonTooFewTrainers)
}

// Done reports whether the job must get no new pods: its status says it
// finished, or its current pods show it just did (the cached status may
// not have caught up yet).
func Done(job *sednav1.FederatedLearningJob, obs Observed) bool {
	if Finished(job) {
		return true
	}
	if obs.Stale > 0 {
		return false
	}
	phase, reason, _ := assess(job, nil, obs)
	return phase == sednav1.FLJobSucceeded || reason == ReasonAggregatorFailed || reason == ReasonTooFewTrainers
}

// ComputeStatus derives the job's status from a spec problem (nil when
// none) and its pods. Round and metrics belong to the workers and are kept,
// except that a new generation starts them afresh.
func ComputeStatus(job *sednav1.FederatedLearningJob, problem *worker.Problem, obs Observed, now metav1.Time) sednav1.FLJobStatus {
	st := *job.Status.DeepCopy()
	gen := job.Generation
	wasFinished := Finished(job)
	if st.ObservedGeneration != gen && obs.Stale == 0 {
		// A new run: what the previous generation reported is history.
		st.ObservedGeneration = gen
		st.Round, st.Metrics, st.StartTime, st.CompletionTime = 0, nil, nil, nil
	}

	st.Active, st.Succeeded, st.Failed = 0, 0, 0
	for _, p := range obs.Pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		switch p.Status.Phase {
		case corev1.PodSucceeded:
			st.Succeeded++
		case corev1.PodFailed:
			st.Failed++
		default:
			st.Active++
		}
	}
	if st.StartTime == nil && len(obs.Pods) > 0 && obs.Stale == 0 {
		st.StartTime = &now
	}
	if wasFinished {
		// Counts follow the pods; the verdict stands until an edit.
		return st
	}

	phase, reason, message := assess(job, problem, obs)
	st.Phase = phase
	if phase == sednav1.FLJobSucceeded && st.CompletionTime == nil {
		st.CompletionTime = &now
	}
	setConditions(&st.Conditions, phase, reason, message, gen, now)
	return st
}

// explains maps each phase to the condition type that carries its reason
// and message. Pending has no True condition; its explanation sits on
// Training, which is False until the workers run.
var explains = map[sednav1.FLJobPhase]string{
	sednav1.FLJobPending:   sednav1.FLJobCondTraining,
	sednav1.FLJobRunning:   sednav1.FLJobCondTraining,
	sednav1.FLJobSucceeded: sednav1.FLJobCondComplete,
	sednav1.FLJobFailed:    sednav1.FLJobCondFailed,
}

func setConditions(conds *[]metav1.Condition, phase sednav1.FLJobPhase, reason, message string, gen int64, now metav1.Time) {
	for _, t := range conditionTypes {
		c := metav1.Condition{Type: t, Status: metav1.ConditionFalse, Reason: reason, ObservedGeneration: gen, LastTransitionTime: now}
		if t == explains[phase] {
			c.Message = message
			if phase != sednav1.FLJobPending {
				c.Status = metav1.ConditionTrue
			}
		}
		meta.SetStatusCondition(conds, c)
	}
}

// PhaseCondition is the condition that explains the status's phase.
func PhaseCondition(st sednav1.FLJobStatus) metav1.Condition {
	if c := meta.FindStatusCondition(st.Conditions, explains[st.Phase]); c != nil {
		return *c
	}
	return metav1.Condition{}
}

func assess(job *sednav1.FederatedLearningJob, problem *worker.Problem, obs Observed) (sednav1.FLJobPhase, string, string) {
	if problem != nil {
		return sednav1.FLJobFailed, problem.Reason, problem.Message
	}
	if obs.Stale > 0 {
		return sednav1.FLJobPending, ReasonRestarting, fmt.Sprintf("the spec changed: waiting for %d pods of the previous run to stop", obs.Stale)
	}
	agg := obs.Pods[AggregatorName(job)]
	if agg != nil && agg.DeletionTimestamp == nil {
		switch agg.Status.Phase {
		case corev1.PodSucceeded:
			return sednav1.FLJobSucceeded, ReasonAggregatorSucceeded, "the aggregator finished training"
		case corev1.PodFailed:
			return sednav1.FLJobFailed, ReasonAggregatorFailed, fmt.Sprintf("aggregator pod %s failed: %s; edit the job to run it again", agg.Name, podFailure(agg))
		}
	}
	n := len(job.Spec.TrainingWorkers)
	need := n
	if m := job.Spec.MinClientsPerRound; m != nil {
		need = int(*m)
	}
	var failed []string
	running := 0
	for i := range n {
		p := obs.Pods[TrainerName(job, i)]
		if p == nil || p.DeletionTimestamp != nil {
			continue
		}
		switch p.Status.Phase {
		case corev1.PodFailed:
			failed = append(failed, fmt.Sprintf("%s (%s)", p.Name, podFailure(p)))
		case corev1.PodRunning, corev1.PodSucceeded:
			running++
		}
	}
	if n-len(failed) < need {
		sort.Strings(failed)
		return sednav1.FLJobFailed, ReasonTooFewTrainers, fmt.Sprintf("%d of %d training workers failed: %s; %d must remain (minClientsPerRound); edit the job to run it again",
			len(failed), n, strings.Join(failed, ", "), need)
	}
	if agg != nil && agg.DeletionTimestamp == nil && agg.Status.Phase == corev1.PodRunning && running+len(failed) == n {
		msg := "the aggregator and all training workers are running"
		if len(failed) > 0 {
			msg = fmt.Sprintf("the aggregator and %d of %d training workers are running", running, n)
		}
		return sednav1.FLJobRunning, ReasonWorkersRunning, msg
	}
	up := running
	if agg != nil && agg.Status.Phase == corev1.PodRunning {
		up++
	}
	return sednav1.FLJobPending, ReasonWorkersPending, fmt.Sprintf("%d of %d pods running", up, n+1)
}

func podFailure(p *corev1.Pod) string {
	if p.Status.Reason != "" || p.Status.Message != "" {
		return strings.TrimSpace(p.Status.Reason + " " + p.Status.Message)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return fmt.Sprintf("container %s exited with code %d", cs.Name, t.ExitCode)
		}
	}
	return "phase Failed"
}
