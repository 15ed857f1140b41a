package jointinference

import (
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
	"github.com/verge-edge/verge/internal/cloud/sedna/worker"
)

func testService() *sednav1.JointInferenceService {
	return &sednav1.JointInferenceService{
		ObjectMeta: metav1.ObjectMeta{Name: "helmet", Namespace: "ns", UID: "uid-1", Generation: 3},
		Spec: sednav1.JointInferenceServiceSpec{
			EdgeWorker: sednav1.EdgeWorker{
				Model:             sednav1.SmallModel{Name: "little"},
				HardExampleMining: sednav1.HardExampleMining{Name: "IBT", Parameters: []sednav1.ParaSpec{{Key: "threshold_img", Value: "0.9"}}},
				Template: sednav1.PodTemplate{Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"verge.dev/pool": "site-a"},
					Containers:   []corev1.Container{{Name: "little", Image: "little:v1", Env: []corev1.EnvVar{{Name: "input_shape", Value: "416,736"}}}},
				}},
			},
			CloudWorker: sednav1.CloudWorker{
				Model:    sednav1.BigModel{Name: "big"},
				Template: sednav1.PodTemplate{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "big", Image: "big:v1"}}}},
			},
		},
	}
}

func testResolved() Resolved {
	return Resolved{
		EdgeModel:  &sednav1.Model{ObjectMeta: metav1.ObjectMeta{Name: "little"}, Spec: sednav1.ModelSpec{URL: "/data/little/m.pb", Format: "pb"}},
		CloudModel: &sednav1.Model{ObjectMeta: metav1.ObjectMeta{Name: "big"}, Spec: sednav1.ModelSpec{URL: "s3://models/big.pb", Format: "pb"}},
	}
}

func env(d *appsv1.Deployment) map[string]string {
	m := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			m[e.Name] = "field:" + e.ValueFrom.FieldRef.FieldPath
			continue
		}
		m[e.Name] = e.Value
	}
	return m
}

func TestBuildUpstreamContract(t *testing.T) {
	ji := testService()
	d, err := Build(ji, testResolved(), worker.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if d.Cloud.Name != "helmet-deployment-cloud" || d.Edge.Name != "helmet-deployment-edge" || d.Service.Name != "helmet-cloud" {
		t.Errorf("names %s %s %s", d.Cloud.Name, d.Edge.Name, d.Service.Name)
	}
	if d.EdgeHPA != nil || d.CloudHPA != nil {
		t.Error("HPAs without hpa in the spec")
	}
	wantEdge := map[string]string{
		"BIG_MODEL_IP":     "helmet-cloud.ns",
		"BIG_MODEL_PORT":   "5000",
		"HEM_NAME":         "IBT",
		"HEM_PARAMETERS":   `[{"key":"threshold_img","value":"0.9"}]`,
		"MODEL_URL":        "/home/data/data/little/m.pb",
		"DATA_PATH_PREFIX": "/home/data",
		"SERVICE_NAME":     "helmet",
		"NAMESPACE":        "ns",
		"LC_SERVER":        "http://localhost:9100",
		"WORKER_NAME":      "field:metadata.name",
		"input_shape":      "416,736",
	}
	gotEdge := env(d.Edge)
	for k, v := range wantEdge {
		if gotEdge[k] != v {
			t.Errorf("edge %s=%q, want %q", k, gotEdge[k], v)
		}
	}
	wantCloud := map[string]string{
		"BIG_MODEL_BIND_PORT": "5000",
		"MODEL_URL":           "/downloads/models/big.pb",
		"SERVICE_NAME":        "helmet",
		"NAMESPACE":           "ns",
	}
	gotCloud := env(d.Cloud)
	for k, v := range wantCloud {
		if gotCloud[k] != v {
			t.Errorf("cloud %s=%q, want %q", k, gotCloud[k], v)
		}
	}
	for _, k := range []string{"BIG_MODEL_IP", "HEM_NAME"} {
		if _, ok := gotCloud[k]; ok {
			t.Errorf("cloud worker has edge variable %s", k)
		}
	}
	// The cloud model is remote: the storage initializer fetches it.
	if ic := d.Cloud.Spec.Template.Spec.InitContainers; len(ic) != 1 || ic[0].Args[0] != "s3://models/big.pb" {
		t.Errorf("cloud init containers %v", ic)
	}

	// Placement is the user's: nodeSelector passes through, no nodeName.
	if d.Edge.Spec.Template.Spec.NodeSelector["verge.dev/pool"] != "site-a" || d.Edge.Spec.Template.Spec.NodeName != "" {
		t.Errorf("edge placement %v / %q", d.Edge.Spec.Template.Spec.NodeSelector, d.Edge.Spec.Template.Spec.NodeName)
	}
	// Replicas are left to the HPA or the operator.
	if d.Edge.Spec.Replicas != nil || d.Cloud.Spec.Replicas != nil {
		t.Error("desired Deployments set replicas")
	}

	// Selectors, labels and owner references.
	sel := d.Edge.Spec.Selector.MatchLabels
	for k, v := range map[string]string{
		"jointinferenceservice.sedna.io/name":        "helmet",
		"jointinferenceservice.sedna.io/uid":         "uid-1",
		"jointinferenceservice.sedna.io/worker-type": "edge",
		"app.sedna.io": "helmet-Edge-svc",
	} {
		if sel[k] != v || d.Edge.Spec.Template.Labels[k] != v {
			t.Errorf("edge selector/template label %s: %q/%q, want %q", k, sel[k], d.Edge.Spec.Template.Labels[k], v)
		}
	}
	if d.Service.Spec.Selector["jointinferenceservice.sedna.io/worker-type"] != "cloud" {
		t.Errorf("service selector %v", d.Service.Spec.Selector)
	}
	if p := d.Service.Spec.Ports; len(p) != 1 || p[0].Port != 5000 || p[0].Name != "tcp-0" || p[0].TargetPort.IntValue() != 5000 {
		t.Errorf("service ports %v", p)
	}
	for _, o := range []metav1.Object{d.Cloud, d.Edge, d.Service} {
		ref := metav1.GetControllerOf(o)
		if ref == nil || ref.Kind != "JointInferenceService" || ref.APIVersion != "sedna.io/v1alpha1" || ref.UID != "uid-1" || !ptr.Deref(ref.BlockOwnerDeletion, false) {
			t.Errorf("%s owner %+v", o.GetName(), ref)
		}
		if o.GetAnnotations()[worker.SpecHashAnnotation] == "" {
			t.Errorf("%s has no spec hash", o.GetName())
		}
	}
}

func TestBuildHPA(t *testing.T) {
	ji := testService()
	ji.Spec.EdgeWorker.HPA = &sednav1.HPA{MinReplicas: ptr.To[int32](1), MaxReplicas: 2, Metrics: []autoscalingv2.MetricSpec{{
		Type:     autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](50)}},
	}}}
	ji.Spec.CloudWorker.HPA = &sednav1.HPA{MaxReplicas: 5}
	d, err := Build(ji, testResolved(), worker.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		h          *autoscalingv2.HorizontalPodAutoscaler
		name, dep  string
		min, max   int32
		hasMetrics bool
	}{
		{d.EdgeHPA, "hpa-helmet-deployment-edge", "helmet-deployment-edge", 1, 2, true},
		{d.CloudHPA, "hpa-helmet-deployment-cloud", "helmet-deployment-cloud", 0, 5, false},
	} {
		if tc.h == nil {
			t.Fatalf("%s missing", tc.name)
		}
		ref := tc.h.Spec.ScaleTargetRef
		if tc.h.Name != tc.name || ref.Name != tc.dep || ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" {
			t.Errorf("%s targets %+v", tc.h.Name, ref)
		}
		if ptr.Deref(tc.h.Spec.MinReplicas, 0) != tc.min || tc.h.Spec.MaxReplicas != tc.max || (len(tc.h.Spec.Metrics) > 0) != tc.hasMetrics {
			t.Errorf("%s spec %+v", tc.h.Name, tc.h.Spec)
		}
		if metav1.GetControllerOf(tc.h) == nil {
			t.Errorf("%s has no owner", tc.h.Name)
		}
	}
}

// Only what changed is rolled: the hash of the other worker stays put.
func TestBuildHashesFollowTheSpec(t *testing.T) {
	base, _ := Build(testService(), testResolved(), worker.DefaultOptions())
	hash := func(o metav1.Object) string { return o.GetAnnotations()[worker.SpecHashAnnotation] }

	again, _ := Build(testService(), testResolved(), worker.DefaultOptions())
	if hash(again.Edge) != hash(base.Edge) || hash(again.Cloud) != hash(base.Cloud) {
		t.Fatal("same spec, different hashes")
	}

	for name, edit := range map[string]func(*sednav1.JointInferenceService, *Resolved){
		"edge image": func(ji *sednav1.JointInferenceService, _ *Resolved) {
			ji.Spec.EdgeWorker.Template.Spec.Containers[0].Image = "little:v2"
		},
		"HEM parameter": func(ji *sednav1.JointInferenceService, _ *Resolved) {
			ji.Spec.EdgeWorker.HardExampleMining.Parameters[0].Value = "0.5"
		},
		"edge model URL": func(_ *sednav1.JointInferenceService, r *Resolved) { r.EdgeModel.Spec.URL = "/data/little/m2.pb" },
		"edge HPA is new": func(ji *sednav1.JointInferenceService, _ *Resolved) {
			ji.Spec.EdgeWorker.HPA = &sednav1.HPA{MaxReplicas: 3}
		},
	} {
		t.Run(name, func(t *testing.T) {
			ji, r := testService(), testResolved()
			edit(ji, &r)
			d, err := Build(ji, r, worker.DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			if hash(d.Cloud) != hash(base.Cloud) || hash(d.Service) != hash(base.Service) {
				t.Error("an edge-side edit changed the cloud worker")
			}
			edgeChanged := hash(d.Edge) != hash(base.Edge)
			if wantChange := name != "edge HPA is new"; edgeChanged != wantChange {
				t.Errorf("edge Deployment changed=%v, want %v", edgeChanged, wantChange)
			}
		})
	}
}

func TestBuildProblems(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(*sednav1.JointInferenceService, *Resolved)
		reason string
		says   string
	}{
		{"unknown HEM", func(ji *sednav1.JointInferenceService, _ *Resolved) {
			ji.Spec.EdgeWorker.HardExampleMining.Name = "Magic"
		}, ReasonUnknownHEM, `"Magic"`},
		{"HEM names are case-sensitive", func(ji *sednav1.JointInferenceService, _ *Resolved) {
			ji.Spec.EdgeWorker.HardExampleMining.Name = "ibt"
		}, ReasonUnknownHEM, `"ibt"`},
		{"threshold not a number", func(ji *sednav1.JointInferenceService, _ *Resolved) {
			ji.Spec.EdgeWorker.HardExampleMining.Parameters[0].Value = "high"
		}, ReasonInvalidHEM, "threshold_img"},
		{"threshold above 1", func(ji *sednav1.JointInferenceService, _ *Resolved) {
			ji.Spec.EdgeWorker.HardExampleMining.Parameters[0].Value = "1.5"
		}, ReasonInvalidHEM, "between 0 and 1"},
		{"duplicate parameter", func(ji *sednav1.JointInferenceService, _ *Resolved) {
			ji.Spec.EdgeWorker.HardExampleMining.Parameters = append(ji.Spec.EdgeWorker.HardExampleMining.Parameters, sednav1.ParaSpec{Key: "threshold_img", Value: "0.1"})
		}, ReasonInvalidHEM, "twice"},
		{"no containers", func(ji *sednav1.JointInferenceService, _ *Resolved) {
			ji.Spec.CloudWorker.Template.Spec.Containers = nil
		}, worker.ReasonInvalidTemplate, "cloudWorker.template"},
		{"bad model URL", func(_ *sednav1.JointInferenceService, r *Resolved) { r.EdgeModel.Spec.URL = "models/m.pb" }, worker.ReasonInvalidURL, `edgeWorker.model "little"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ji, r := testService(), testResolved()
			tc.edit(ji, &r)
			_, err := Build(ji, r, worker.DefaultOptions())
			var p *worker.Problem
			if !errors.As(err, &p) || p.Reason != tc.reason || !strings.Contains(p.Message, tc.says) {
				t.Fatalf("want %s mentioning %s, got %v", tc.reason, tc.says, err)
			}
		})
	}
	// Unknown parameters pass through: workers may take more than we know.
	ji := testService()
	ji.Spec.EdgeWorker.HardExampleMining.Parameters = append(ji.Spec.EdgeWorker.HardExampleMining.Parameters, sednav1.ParaSpec{Key: "custom", Value: "anything"})
	if _, err := Build(ji, testResolved(), worker.DefaultOptions()); err != nil {
		t.Errorf("unknown parameter rejected: %v", err)
	}
	// A configured extra algorithm is accepted.
	opts := worker.DefaultOptions()
	opts.HardExampleMining = append(opts.HardExampleMining, "Magic")
	ji = testService()
	ji.Spec.EdgeWorker.HardExampleMining.Name = "Magic"
	if _, err := Build(ji, testResolved(), opts); err != nil {
		t.Errorf("configured algorithm rejected: %v", err)
	}
}

func fakeDeployment(name string, replicas, available int32, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas},
		Status:     appsv1.DeploymentStatus{Replicas: replicas, AvailableReplicas: available, ReadyReplicas: available, Conditions: conds},
	}
}

var (
	availableCond = appsv1.DeploymentCondition{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}
	deadlineCond  = appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: "ReplicaSet x has timed out progressing."}
	quotaCond     = appsv1.DeploymentCondition{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Message: "pods forbidden: exceeded quota"}
)

func TestComputeStatus(t *testing.T) {
	now := metav1.Now()
	for _, tc := range []struct {
		name         string
		problem      *worker.Problem
		edge, cloud  *appsv1.Deployment
		phase        sednav1.JointInferenceServicePhase
		reason       string
		active, fail int32
		says         string
	}{
		{"nothing yet", nil, nil, nil, sednav1.JointInferenceServicePending, ReasonWorkersNotAvailable, 0, 0, "not created yet"},
		{"pods pending", nil, fakeDeployment("e", 1, 0), fakeDeployment("c", 1, 0), sednav1.JointInferenceServicePending, ReasonWorkersNotAvailable, 0, 0, "0 of 1"},
		{"one available", nil, fakeDeployment("e", 1, 1, availableCond), fakeDeployment("c", 1, 0), sednav1.JointInferenceServicePending, ReasonWorkersNotAvailable, 1, 0, "cloud worker"},
		{"both available", nil, fakeDeployment("e", 2, 2, availableCond), fakeDeployment("c", 1, 1, availableCond), sednav1.JointInferenceServiceRunning, ReasonWorkersAvailable, 2, 0, "available"},
		{"deadline exceeded", nil, fakeDeployment("e", 1, 0, deadlineCond), fakeDeployment("c", 1, 1, availableCond), sednav1.JointInferenceServiceFailed, ReasonWorkerFailed, 1, 1, "timed out"},
		{"quota", nil, fakeDeployment("e", 1, 1, availableCond), fakeDeployment("c", 1, 0, quotaCond), sednav1.JointInferenceServiceFailed, ReasonWorkerFailed, 1, 1, "quota"},
		{"spec problem wins", &worker.Problem{Reason: worker.ReasonModelNotFound, Message: `Model "big" not found`}, fakeDeployment("e", 1, 1, availableCond), fakeDeployment("c", 1, 1, availableCond), sednav1.JointInferenceServiceFailed, worker.ReasonModelNotFound, 2, 0, `"big"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ji := testService()
			ji.Status.Metrics = []sednav1.Metric{{Key: "inferenceNumber", Value: "10"}}
			st := ComputeStatus(ji, tc.problem, tc.edge, tc.cloud, now)
			if st.Phase != tc.phase || st.Active != tc.active || st.Failed != tc.fail {
				t.Errorf("phase %s active %d failed %d; want %s %d %d", st.Phase, st.Active, st.Failed, tc.phase, tc.active, tc.fail)
			}
			trueConds := 0
			for _, c := range st.Conditions {
				if c.ObservedGeneration != 3 || c.Reason != tc.reason {
					t.Errorf("condition %+v", c)
				}
				if c.Status == metav1.ConditionTrue {
					trueConds++
					if c.Type != string(tc.phase) || !strings.Contains(c.Message, tc.says) {
						t.Errorf("true condition %s %q, want %s saying %q", c.Type, c.Message, tc.phase, tc.says)
					}
				}
			}
			if len(st.Conditions) != 3 || trueConds != 1 {
				t.Errorf("conditions %+v", st.Conditions)
			}
			if len(st.Metrics) != 1 || st.StartTime == nil || st.ObservedGeneration != 3 {
				t.Errorf("status lost metrics or times: %+v", st)
			}
		})
	}
}

// A failed service recovers when its Deployments do: failure is a
// condition, not a terminal state.
func TestComputeStatusRecovers(t *testing.T) {
	ji := testService()
	now := metav1.Now()
	ji.Status = ComputeStatus(ji, nil, fakeDeployment("e", 1, 0, deadlineCond), fakeDeployment("c", 1, 1, availableCond), now)
	if ji.Status.Phase != sednav1.JointInferenceServiceFailed {
		t.Fatalf("phase %s", ji.Status.Phase)
	}
	ji.Status = ComputeStatus(ji, nil, fakeDeployment("e", 1, 1, availableCond), fakeDeployment("c", 1, 1, availableCond), now)
	if ji.Status.Phase != sednav1.JointInferenceServiceRunning {
		t.Fatalf("did not recover: %s", ji.Status.Phase)
	}
	if len(ji.Status.Conditions) > sednav1.MaxConditions {
		t.Errorf("%d conditions", len(ji.Status.Conditions))
	}
}

// BenchmarkBuild measures the pure part of a reconcile: building and
// hashing the five desired objects of a service with two HPAs.
func BenchmarkBuild(b *testing.B) {
	ji := testService()
	ji.Spec.EdgeWorker.HPA = &sednav1.HPA{MinReplicas: ptr.To[int32](1), MaxReplicas: 2}
	ji.Spec.CloudWorker.HPA = &sednav1.HPA{MinReplicas: ptr.To[int32](1), MaxReplicas: 5}
	in, opts := testResolved(), worker.DefaultOptions()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(ji, in, opts); err != nil {
			b.Fatal(err)
		}
	}
}
