package federated

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
	"github.com/verge-edge/verge/internal/cloud/sedna/worker"
)

// Kind is the kind this package reconciles.
const Kind = "FederatedLearningJob"

// Worker types and the aggregator's port (the upstream worker library's).
const (
	Aggregation = "aggregation"
	Train       = "train"
	AggPort     = 7363
)

// GenerationLabel records on each pod the job generation it runs. Pods of
// an older generation are stopped before the new generation's start, which
// is how an edit restarts the job exactly once.
const GenerationLabel = "verge.dev/job-generation"

// Reasons of aggregation problems.
const (
	ReasonUnknownAggregation = "UnknownAggregation"
	ReasonInvalidAggregation = "InvalidAggregation"
)

var gvk = sednav1.SchemeGroupVersion.WithKind(Kind)

// ServiceName is the aggregator's Service, "<job>-aggregation".
func ServiceName(job *sednav1.FederatedLearningJob) string { return job.Name + "-" + Aggregation }

// AggregatorName is the aggregator pod's name.
func AggregatorName(job *sednav1.FederatedLearningJob) string { return job.Name + "-" + Aggregation }

// TrainerName is the name of training worker i's pod.
func TrainerName(job *sednav1.FederatedLearningJob, i int) string {
	return fmt.Sprintf("%s-%s-%d", job.Name, Train, i)
}

// Resolved is what the spec refers to, read by the reconciler. Credentials
// are nil when the referenced object names none.
type Resolved struct {
	Model                *sednav1.Model
	ModelCredential      *worker.Credential
	Pretrained           *sednav1.Model // nil without pretrainedModel
	PretrainedCredential *worker.Credential
	Datasets             []*sednav1.Dataset // one per training worker
	DatasetCredentials   []*worker.Credential
	TransmitterCred      *worker.Credential
}

// Desired is every object a job owns for its current generation.
type Desired struct {
	Service    *corev1.Service
	Aggregator *corev1.Pod
	Trainers   []*corev1.Pod
}

// Pods lists the aggregator, then the trainers.
func (d *Desired) Pods() []*corev1.Pod {
	return append([]*corev1.Pod{d.Aggregator}, d.Trainers...)
}

// Build computes the desired objects. It fails with a *worker.Problem when
// the spec cannot be carried out.
func Build(job *sednav1.FederatedLearningJob, in Resolved, opts worker.Options) (*Desired, error) {
	spec := &job.Spec
	if err := checkAggregation(spec.Aggregation, opts); err != nil {
		return nil, err
	}
	if len(in.Datasets) != len(spec.TrainingWorkers) || len(in.DatasetCredentials) != len(spec.TrainingWorkers) {
		return nil, fmt.Errorf("resolved %d datasets for %d training workers", len(in.Datasets), len(spec.TrainingWorkers))
	}
	participants := strconv.Itoa(len(spec.TrainingWorkers))

	// Variables and sources every worker gets.
	common := map[string]string{
		"NAMESPACE":          job.Namespace,
		"JOB_NAME":           job.Name,
		"PARTICIPANTS_COUNT": participants,
		"LC_SERVER":          opts.LCServer,
		"TRANSMITTER":        "ws",
	}
	var commonSources []worker.Source
	if t := spec.Transmitter.S3; t != nil {
		common["TRANSMITTER"] = "s3"
		// Workers write the weights there themselves: pass the URL.
		commonSources = append(commonSources, worker.Source{What: "transmitter.s3.aggDataPath", URL: t.AggregationDataPath, EnvName: "AGG_DATA_PATH", Credential: in.TransmitterCred})
	}
	if a := spec.Aggregation; a != nil {
		common["AGGREGATION_ALGORITHM"] = a.Algorithm
		common["AGGREGATION_PARAMETERS"] = worker.ParametersJSON(a.Parameters)
	}
	commonSources = append(commonSources, worker.Source{
		What: fmt.Sprintf("aggregationWorker.model %q", in.Model.Name), URL: in.Model.Spec.URL, EnvName: "MODEL_URL", Download: true, Credential: in.ModelCredential,
	})
	if in.Pretrained != nil {
		commonSources = append(commonSources, worker.Source{
			What: fmt.Sprintf("pretrainedModel %q", in.Pretrained.Name), URL: in.Pretrained.Spec.URL, EnvName: "PRETRAINED_MODEL_URL", Download: true, Credential: in.PretrainedCredential,
		})
	}

	aggEnv := copyMap(common)
	aggEnv["AGG_BIND_PORT"] = strconv.Itoa(AggPort)
	if spec.MinClientsPerRound != nil {
		aggEnv["MIN_CLIENTS_PER_ROUND"] = strconv.Itoa(int(*spec.MinClientsPerRound))
	}
	if spec.RoundTimeout != nil {
		aggEnv["ROUND_TIMEOUT"] = spec.RoundTimeout.Duration.String()
	}
	if sc := spec.StopCondition; sc != nil {
		if sc.Rounds != nil {
			aggEnv["STOP_ROUNDS"] = strconv.Itoa(int(*sc.Rounds))
		}
		if m := sc.TargetMetric; m != nil {
			aggEnv["STOP_METRIC"] = m.Name
			aggEnv["STOP_METRIC_OPERATOR"] = m.Operator
			aggEnv["STOP_METRIC_VALUE"] = m.Value
		}
	}
	agg, err := pod(job, AggregatorName(job), Aggregation, &spec.AggregationWorker.Template, aggEnv, commonSources, opts)
	if err != nil {
		return nil, prefix(err, "aggregationWorker.template")
	}

	d := &Desired{Service: service(job), Aggregator: agg}
	for i, tw := range spec.TrainingWorkers {
		env := copyMap(common)
		env["AGG_IP"] = ServiceName(job) + "." + job.Namespace
		env["AGG_PORT"] = strconv.Itoa(AggPort)
		env["MODEL_NAME"] = spec.AggregationWorker.Model.Name
		env["DATASET_NAME"] = tw.Dataset.Name
		ds := in.Datasets[i]
		sources := append(append([]worker.Source(nil), commonSources...), worker.Source{
			What: fmt.Sprintf("trainingWorkers[%d].dataset %q", i, ds.Name), URL: ds.Spec.URL, EnvName: "TRAIN_DATASET_URL", Download: true, Credential: in.DatasetCredentials[i],
		})
		p, err := pod(job, TrainerName(job, i), Train, &spec.TrainingWorkers[i].Template, env, sources, opts)
		if err != nil {
			return nil, prefix(err, fmt.Sprintf("trainingWorkers[%d].template", i))
		}
		d.Trainers = append(d.Trainers, p)
	}
	h, err := worker.Hash(d.Service)
	if err != nil {
		return nil, err
	}
	d.Service.Annotations = map[string]string{worker.SpecHashAnnotation: h}
	return d, nil
}

func pod(job *sednav1.FederatedLearningJob, name, workerType string, tpl *sednav1.PodTemplate, env map[string]string, sources []worker.Source, opts worker.Options) (*corev1.Pod, error) {
	labels := worker.Labels(Kind, job.Name, string(job.UID), workerType)
	labels[GenerationLabel] = strconv.FormatInt(job.Generation, 10)
	t, err := worker.PodTemplate(tpl, worker.Params{
		Labels:                  labels,
		Env:                     append(worker.EnvFromMap(env), worker.PodNameEnv("WORKER_NAME")),
		Sources:                 sources,
		StorageInitializerImage: opts.StorageInitializerImage,
		// A worker that crashes restarts in place; the job goes on.
		RestartPolicy: corev1.RestartPolicyOnFailure,
	})
	if err != nil {
		return nil, err
	}
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Namespace:       job.Namespace,
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, gvk)},
		},
		Spec: t.Spec,
	}, nil
}

func service(job *sednav1.FederatedLearningJob) *corev1.Service {
	return &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            ServiceName(job),
			Namespace:       job.Namespace,
			Labels:          worker.Labels(Kind, job.Name, string(job.UID), Aggregation),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, gvk)},
		},
		Spec: corev1.ServiceSpec{
			// Selects the aggregator of whatever generation runs.
			Selector: worker.Labels(Kind, job.Name, string(job.UID), Aggregation),
			Ports: []corev1.ServicePort{{
				Name:       "tcp-0",
				Protocol:   corev1.ProtocolTCP,
				Port:       AggPort,
				TargetPort: intstr.FromInt32(AggPort),
			}},
		},
	}
}

// aggregationParameters are, per known algorithm, the numeric parameters
// and their valid range.
var aggregationParameters = map[string]map[string]struct{ min, max float64 }{
	"FedAvgM": {"momentum": {0, 0.999999}, "server_learning_rate": {1e-12, 1e6}},
	"FedProx": {"mu": {0, 1e6}},
}

func checkAggregation(a *sednav1.Aggregation, opts worker.Options) error {
	if a == nil {
		return nil
	}
	if !opts.KnowsAggregation(a.Algorithm) {
		return worker.Problemf(ReasonUnknownAggregation,
			"aggregation.algorithm %q is not a known algorithm (known: %s); fix the name, or add the algorithm to the controller's aggregations option if your workers implement it",
			a.Algorithm, strings.Join(opts.Aggregations, ", "))
	}
	seen := map[string]bool{}
	for _, p := range a.Parameters {
		if seen[p.Key] {
			return worker.Problemf(ReasonInvalidAggregation, "aggregation.parameters: key %q appears twice", p.Key)
		}
		seen[p.Key] = true
		r, ok := aggregationParameters[a.Algorithm][p.Key]
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(p.Value), 64)
		if err != nil || f < r.min || f > r.max {
			return worker.Problemf(ReasonInvalidAggregation, "aggregation: %s parameter %s=%q must be a number in [%g, %g]", a.Algorithm, p.Key, p.Value, r.min, r.max)
		}
	}
	return nil
}

func prefix(err error, where string) error {
	var p *worker.Problem
	if errors.As(err, &p) {
		return &worker.Problem{Reason: p.Reason, Message: where + ": " + p.Message}
	}
	return err
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+8)
	for k, v := range m {
		out[k] = v
	}
	return out
}
