package v1alpha1

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// JointInferenceService runs a small model on the edge and a big model in
// the cloud: the edge worker answers every request itself and sends the
// samples its hard-example-mining algorithm flags to the cloud worker.
//
// The name becomes part of a Service name ("<name>-cloud"), so it must be a
// DNS label of at most 57 characters.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ji,categories=sedna
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Active",type=integer,JSONPath=`.status.active`
// +kubebuilder:printcolumn:name="Inferences",type=string,JSONPath=`.status.metrics[?(@.key=="inferenceNumber")].value`
// +kubebuilder:printcolumn:name="Hard",type=string,JSONPath=`.status.metrics[?(@.key=="hardExampleNumber")].value`
// +kubebuilder:printcolumn:name="Cloud-Ratio",type=string,JSONPath=`.status.metrics[?(@.key=="uploadCloudRatio")].value`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 57 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label of at most 57 characters starting with a letter (it names the Service <name>-cloud)"
type JointInferenceService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec JointInferenceServiceSpec `json:"spec"`
	// +optional
	Status JointInferenceServiceStatus `json:"status,omitempty"`
}

// JointInferenceServiceSpec describes the two workers.
type JointInferenceServiceSpec struct {
	EdgeWorker  EdgeWorker  `json:"edgeWorker"`
	CloudWorker CloudWorker `json:"cloudWorker"`
}

// EdgeWorker runs the small model close to the data. Place it with the
// template's nodeName, nodeSelector or affinity.
type EdgeWorker struct {
	Model             SmallModel        `json:"model"`
	HardExampleMining HardExampleMining `json:"hardExampleMining"`
	Template          PodTemplate       `json:"template"`
	// HPA scales the edge Deployment; without it the Deployment keeps the
	// replica count it has (one at creation).
	// +optional
	HPA *HPA `json:"hpa,omitempty"`
}

// CloudWorker runs the big model behind a Service on port 5000.
type CloudWorker struct {
	Model    BigModel    `json:"model"`
	Template PodTemplate `json:"template"`
	// HPA scales the cloud Deployment; without it the Deployment keeps the
	// replica count it has (one at creation).
	// +optional
	HPA *HPA `json:"hpa,omitempty"`
}

// SmallModel names the Model the edge worker loads.
type SmallModel struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// BigModel names the Model the cloud worker loads.
type BigModel struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// HardExampleMining selects the algorithm that decides which samples go to
// the cloud. Known names: Threshold, CrossEntropy, IBT, Random, CloudOnly,
// EdgeOnly and BertRouter; an unknown name is reported as a condition
// rather than rejected, so workers may bring algorithms of their own once
// the controller is told about them.
type HardExampleMining struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +optional
	Parameters []ParaSpec `json:"parameters,omitempty"`
}

// HPA is the part of a HorizontalPodAutoscaler (autoscaling/v2) spec a
// worker may set; the target is always the worker's Deployment.
//
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || self.maxReplicas >= self.minReplicas",message="hpa.maxReplicas must be greater than or equal to hpa.minReplicas"
type HPA struct {
	// MinReplicas is the lower bound (default 1).
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	// MaxReplicas is the upper bound; it must not be below minReplicas.
	// +kubebuilder:validation:Minimum=1
	MaxReplicas int32 `json:"maxReplicas"`
	// Metrics to scale on (default: 80 % average CPU utilisation).
	// +optional
	Metrics []autoscalingv2.MetricSpec `json:"metrics,omitempty"`
	// Behavior tunes scale-up and scale-down.
	// +optional
	Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
}

// JointInferenceServicePhase summarises the service's state.
// +kubebuilder:validation:Enum=Pending;Running;Failed
type JointInferenceServicePhase string

// Phases of a JointInferenceService.
const (
	// JointInferenceServicePending: workers are being created or are not
	// yet available.
	JointInferenceServicePending JointInferenceServicePhase = "Pending"
	// JointInferenceServiceRunning: both workers are available.
	JointInferenceServiceRunning JointInferenceServicePhase = "Running"
	// JointInferenceServiceFailed: the spec cannot be carried out or a
	// worker's Deployment failed. It is not terminal: fixing the cause
	// brings the service back.
	JointInferenceServiceFailed JointInferenceServicePhase = "Failed"
)

// Condition types of a JointInferenceService. Exactly one of them is True
// at a time, matching the phase; reasons and messages say why.
const (
	JointInferenceServiceCondPending = "Pending"
	JointInferenceServiceCondRunning = "Running"
	JointInferenceServiceCondFailed  = "Failed"
)

// JointInferenceServiceStatus is the observed state of the service.
type JointInferenceServiceStatus struct {
	// Conditions are keyed by type; see the JointInferenceServiceCond*
	// constants.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// StartTime is when the controller first acted on the service.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// Active is the number of workers whose Deployment is available.
	// +optional
	Active int32 `json:"active"`
	// Failed is the number of workers whose Deployment failed.
	// +optional
	Failed int32 `json:"failed"`
	// Metrics reported by the workers (inferenceNumber, hardExampleNumber,
	// uploadCloudRatio).
	// +optional
	Metrics []Metric `json:"metrics,omitempty"`

	// Phase summarises the conditions.
	// +optional
	Phase JointInferenceServicePhase `json:"phase,omitempty"`
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// EdgeWorker is the state of the edge Deployment.
	// +optional
	EdgeWorker *WorkerStatus `json:"edgeWorker,omitempty"`
	// CloudWorker is the state of the cloud Deployment.
	// +optional
	CloudWorker *WorkerStatus `json:"cloudWorker,omitempty"`
}

// WorkerStatus copies the replica counts of a worker's Deployment.
type WorkerStatus struct {
	// Deployment is the name of the worker's Deployment.
	Deployment string `json:"deployment"`
	// +optional
	Replicas int32 `json:"replicas"`
	// +optional
	UpdatedReplicas int32 `json:"updatedReplicas"`
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`
	// +optional
	AvailableReplicas int32 `json:"availableReplicas"`
}

// JointInferenceServiceList is a list of JointInferenceServices.
//
// +kubebuilder:object:root=true
type JointInferenceServiceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []JointInferenceService `json:"items"`
}
