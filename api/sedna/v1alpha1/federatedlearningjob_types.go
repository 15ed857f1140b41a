package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// FederatedLearningJob trains one model on data that stays where it is: each
// training worker trains on its local dataset and sends weights to the
// aggregation worker, which combines them and sends the result back, round
// after round.
//
// The name becomes part of a Service name ("<name>-aggregation"), so it must
// be a DNS label of at most 51 characters.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=fl,categories=sedna
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Round",type=integer,JSONPath=`.status.round`
// +kubebuilder:printcolumn:name="Active",type=integer,JSONPath=`.status.active`
// +kubebuilder:printcolumn:name="Succeeded",type=integer,JSONPath=`.status.succeeded`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failed`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 51 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label of at most 51 characters starting with a letter (it names the Service <name>-aggregation)"
type FederatedLearningJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec FLJobSpec `json:"spec"`
	// +optional
	Status FLJobStatus `json:"status,omitempty"`
}

// FLJobSpec describes the workers and, optionally, how rounds run.
//
// +kubebuilder:validation:XValidation:rule="!has(self.minClientsPerRound) || self.minClientsPerRound <= size(self.trainingWorkers)",message="minClientsPerRound must not exceed the number of trainingWorkers"
type FLJobSpec struct {
	AggregationWorker AggregationWorker `json:"aggregationWorker"`
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1000
	TrainingWorkers []TrainingWorker `json:"trainingWorkers"`
	// PretrainedModel seeds the first round.
	// +optional
	PretrainedModel PretrainedModel `json:"pretrainedModel,omitempty"`
	// Transmitter carries weights between workers: the aggregator's
	// WebSocket (default) or an S3 path.
	// +optional
	Transmitter Transmitter `json:"transmitter,omitempty"`

	// MinClientsPerRound lets a round complete with this many training
	// workers once roundTimeout has passed (default: all of them).
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinClientsPerRound *int32 `json:"minClientsPerRound,omitempty"`
	// RoundTimeout is how long the aggregator waits for the remaining
	// clients after minClientsPerRound have reported.
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="roundTimeout must be positive"
	// +optional
	RoundTimeout *metav1.Duration `json:"roundTimeout,omitempty"`
	// StopCondition ends training when any of its criteria is met.
	// +optional
	StopCondition *StopCondition `json:"stopCondition,omitempty"`
	// Aggregation selects the aggregation algorithm (default FedAvg).
	// +optional
	Aggregation *Aggregation `json:"aggregation,omitempty"`
}

// AggregationWorker runs the aggregator, reachable by the training workers
// through the Service "<job>-aggregation" on port 7363.
type AggregationWorker struct {
	// Model is where the aggregated model is written.
	Model    TrainModel  `json:"model"`
	Template PodTemplate `json:"template"`
}

// TrainingWorker trains on one dataset. Place it with the template's
// nodeName, nodeSelector or affinity.
type TrainingWorker struct {
	Dataset  TrainDataset `json:"dataset"`
	Template PodTemplate  `json:"template"`
}

// TrainDataset names the Dataset a training worker reads.
type TrainDataset struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// TrainModel names the Model the job produces.
type TrainModel struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// PretrainedModel names a Model to start from; empty means none.
type PretrainedModel struct {
	// +optional
	Name string `json:"name,omitempty"`
}

// Transmitter selects how weights travel; at most one field may be set.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.s3) && has(self.ws))",message="transmitter: set either s3 or ws, not both"
type Transmitter struct {
	// +optional
	S3 *S3Transmitter `json:"s3,omitempty"`
	// +optional
	WS *WSTransmitter `json:"ws,omitempty"`
}

// S3Transmitter exchanges weights through an S3 path.
type S3Transmitter struct {
	// +kubebuilder:validation:MinLength=1
	AggregationDataPath string `json:"aggDataPath"`
	// +optional
	CredentialName string `json:"credentialName,omitempty"`
}

// WSTransmitter exchanges weights over the aggregator's WebSocket.
type WSTransmitter struct{}

// StopCondition ends training when any criterion holds.
//
// +kubebuilder:validation:XValidation:rule="has(self.rounds) || has(self.targetMetric)",message="stopCondition needs rounds, targetMetric or both"
type StopCondition struct {
	// Rounds is the number of aggregation rounds to run.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Rounds *int32 `json:"rounds,omitempty"`
	// TargetMetric stops training once the aggregated model's metric
	// reaches a value.
	// +optional
	TargetMetric *TargetMetric `json:"targetMetric,omitempty"`
}

// TargetMetric is a threshold on a metric the workers report.
type TargetMetric struct {
	// Name of the metric, for example "accuracy" or "loss".
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Operator compares the metric with Value.
	// +kubebuilder:validation:Enum=">=";">";"<=";"<"
	Operator string `json:"operator"`
	// Value is a decimal number such as "0.9".
	// +kubebuilder:validation:Pattern=`^-?[0-9]+(\.[0-9]+)?$`
	Value string `json:"value"`
}

// Aggregation selects the algorithm that combines the clients' weights.
// Known names: FedAvg (sample-weighted mean), FedAvgM (FedAvg with server
// momentum) and FedProx (FedAvg on the server, proximal term on the
// clients). An unknown name is reported as a condition rather than
// rejected, so workers may bring algorithms of their own once the
// controller is told about them.
type Aggregation struct {
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_.-]*$`
	Algorithm string `json:"algorithm"`
	// Parameters such as "momentum" (FedAvgM) or "mu" (FedProx).
	// +optional
	Parameters []ParaSpec `json:"parameters,omitempty"`
}

// FLJobPhase summarises the job's state.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type FLJobPhase string

// Phases of a FederatedLearningJob.
const (
	// FLJobPending: pods are being created or are not all running.
	FLJobPending FLJobPhase = "Pending"
	// FLJobRunning: the aggregator and the training workers are running.
	FLJobRunning FLJobPhase = "Running"
	// FLJobSucceeded: the aggregator finished.
	FLJobSucceeded FLJobPhase = "Succeeded"
	// FLJobFailed: the spec cannot be carried out (fix it and the job
	// proceeds), or the aggregator failed, or too few training workers are
	// left (edit the spec to restart).
	FLJobFailed FLJobPhase = "Failed"
)

// Condition types of a FederatedLearningJob.
const (
	// FLJobCondTraining is True while the workers run.
	FLJobCondTraining = "Training"
	// FLJobCondComplete is True once the aggregator succeeded.
	FLJobCondComplete = "Complete"
	// FLJobCondFailed is True while the job is failed; its reason says why.
	FLJobCondFailed = "Failed"
)

// FLJobStatus is the observed state of the job.
type FLJobStatus struct {
	// Conditions are keyed by type; see the FLJobCond* constants.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// StartTime is when the controller first created the job's pods.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when the job succeeded.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// Active is the number of pods pending or running.
	// +optional
	Active int32 `json:"active"`
	// Succeeded is the number of pods that finished successfully.
	// +optional
	Succeeded int32 `json:"succeeded"`
	// Failed is the number of pods that failed.
	// +optional
	Failed int32 `json:"failed"`
	// +optional
	Phase FLJobPhase `json:"phase,omitempty"`

	// ObservedGeneration is the spec generation the current pods run.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Round is the last aggregation round the workers reported.
	// +optional
	Round int32 `json:"round,omitempty"`
	// Metrics of the aggregated model, as reported by the workers.
	// +optional
	Metrics []Metric `json:"metrics,omitempty"`
}

// FederatedLearningJobList is a list of FederatedLearningJobs.
//
// +kubebuilder:object:root=true
type FederatedLearningJobList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FederatedLearningJob `json:"items"`
}
