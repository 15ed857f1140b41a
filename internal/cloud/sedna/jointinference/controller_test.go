package jointinference_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
	"github.com/verge-edge/verge/internal/cloud/sedna/jointinference"
	"github.com/verge-edge/verge/internal/cloud/sedna/sednatest"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) {
	// Controllers log through the manager's logger; this silences
	// controller-runtime's warning about its unset global one.
	logf.SetLogger(logr.Discard())
	testenv.Main(m)
}

const (
	upstreamJI    = "examples/sedna/upstream/joint-inference-helmet.yaml"
	upstreamJIHPA = "examples/sedna/upstream/joint-inference-helmet-hpa.yaml"
	vergeJI       = "examples/sedna/joint-inference-gate.yaml"
	helmet        = "helmet-detection-inference-example"
	waitFor       = 30 * time.Second
)

func start(t *testing.T) *sednatest.Env {
	return sednatest.Start(t, func(mgr ctrl.Manager) error {
		return (&jointinference.Reconciler{}).SetupWithManager(mgr)
	})
}

func deploymentName(w string) string { return helmet + "-deployment-" + w }

// edit applies fn to the service and writes it, retrying on conflicts.
func edit(t *testing.T, e *sednatest.Env, name string, fn func(*sednav1.JointInferenceService)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var ji sednav1.JointInferenceService
		if err := e.Get(name, &ji); err != nil {
			return err
		}
		fn(&ji)
		return e.Client.Update(context.Background(), &ji)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func owned(o metav1.Object, ji *sednav1.JointInferenceService) error {
	ref := metav1.GetControllerOf(o)
	if ref == nil || ref.UID != ji.UID || ref.Kind != "JointInferenceService" || ref.APIVersion != "sedna.io/v1alpha1" {
		return fmt.Errorf("%s is not controlled by the service: %+v", o.GetName(), ref)
	}
	return nil
}

func containerEnv(d *appsv1.Deployment) map[string]string {
	m := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		m[e.Name] = e.Value
	}
	return m
}

// A service written in upstream Sedna format gets its workers; edits roll
// them; a deleted Deployment comes back; deleting the service removes
// everything and nothing comes back.
func TestUpstreamServiceLifecycle(t *testing.T) {
	t.Parallel()
	e := start(t)
	ctx := context.Background()
	e.CreateManifest(t, sednatest.RepoFile(t, upstreamJI))

	var ji sednav1.JointInferenceService
	var edge, cloud appsv1.Deployment
	var svc corev1.Service
	sednatest.Eventually(t, waitFor, "workers and Service created", func() error {
		if err := e.Get(helmet, &ji); err != nil {
			return err
		}
		for _, x := range []struct {
			name string
			obj  client.Object
		}{{deploymentName("edge"), &edge}, {deploymentName("cloud"), &cloud}, {helmet + "-cloud", &svc}} {
			if err := e.Get(x.name, x.obj); err != nil {
				return err
			}
			if err := owned(x.obj, &ji); err != nil {
				return err
			}
		}
		return nil
	})
	env := containerEnv(&edge)
	for k, v := range map[string]string{
		"BIG_MODEL_IP":   helmet + "-cloud." + e.NS,
		"BIG_MODEL_PORT": "5000",
		"HEM_NAME":       "IBT",
		"HEM_PARAMETERS": `[{"key":"threshold_img","value":"0.9"},{"key":"threshold_box","value":"0.9"}]`,
		"MODEL_URL":      "/home/data/data/little-model/yolov3_resnet18.pb",
		"SERVICE_NAME":   helmet,
		"LC_SERVER":      "http://localhost:9100",
		"video_url":      "rtsp://localhost/video",
	} {
		if env[k] != v {
			t.Errorf("edge worker %s=%q, want %q", k, env[k], v)
		}
	}
	if containerEnv(&cloud)["BIG_MODEL_BIND_PORT"] != "5000" || svc.Spec.Ports[0].Port != 5000 {
		t.Errorf("cloud worker is not served on 5000: env %v, ports %v", containerEnv(&cloud), svc.Spec.Ports)
	}
	if edge.Spec.Template.Spec.NodeName != "edge-node" {
		t.Errorf("edge worker placed on %q", edge.Spec.Template.Spec.NodeName)
	}
	if len(edge.Spec.Template.Spec.Volumes) != 2 {
		t.Errorf("edge volumes %v: want the user's plus the model's", edge.Spec.Template.Spec.Volumes)
	}
	sednatest.Eventually(t, waitFor, "status reflects the Deployments", func() error {
		if err := e.Get(helmet, &ji); err != nil {
			return err
		}
		c := meta.FindStatusCondition(ji.Status.Conditions, sednav1.JointInferenceServiceCondPending)
		// No kubelet runs here, so the workers never become available.
		if ji.Status.Phase != sednav1.JointInferenceServicePending || c == nil || c.Status != metav1.ConditionTrue ||
			ji.Status.EdgeWorker == nil || ji.Status.CloudWorker == nil || ji.Status.StartTime == nil {
			return fmt.Errorf("status %+v", ji.Status)
		}
		if c.ObservedGeneration != ji.Generation || ji.Status.ObservedGeneration != ji.Generation {
			return fmt.Errorf("observed generation %d/%d, want %d", c.ObservedGeneration, ji.Status.ObservedGeneration, ji.Generation)
		}
		return nil
	})

	// Editing the edge template rolls the edge Deployment only.
	cloudGen := cloud.Generation
	edit(t, e, helmet, func(ji *sednav1.JointInferenceService) {
		ji.Spec.EdgeWorker.Template.Spec.Containers[0].Image = "little:v2"
		ji.Spec.EdgeWorker.HardExampleMining.Parameters[0].Value = "0.7"
	})
	sednatest.Eventually(t, waitFor, "edge Deployment rolled", func() error {
		if err := e.Get(deploymentName("edge"), &edge); err != nil {
			return err
		}
		if img := edge.Spec.Template.Spec.Containers[0].Image; img != "little:v2" {
			return fmt.Errorf("image %s", img)
		}
		if p := containerEnv(&edge)["HEM_PARAMETERS"]; !strings.Contains(p, `"0.7"`) {
			return fmt.Errorf("HEM_PARAMETERS %s", p)
		}
		return nil
	})
	sednatest.Eventually(t, waitFor, "a new ReplicaSet for the new template", func() error {
		var rs appsv1.ReplicaSetList
		if err := e.Client.List(ctx, &rs, client.InNamespace(e.NS), client.MatchingLabels{"jointinferenceservice.sedna.io/worker-type": "edge"}); err != nil {
			return err
		}
		if len(rs.Items) < 2 {
			return fmt.Errorf("%d edge ReplicaSets", len(rs.Items))
		}
		return nil
	})
	if err := e.Get(deploymentName("cloud"), &cloud); err != nil {
		t.Fatal(err)
	}
	if cloud.Generation != cloudGen {
		t.Errorf("cloud Deployment changed (generation %d -> %d) by an edge-only edit", cloudGen, cloud.Generation)
	}

	// A Deployment deleted by accident comes back, and the operator is told.
	oldUID := edge.UID
	if err := e.Client.Delete(ctx, &edge); err != nil {
		t.Fatal(err)
	}
	sednatest.Eventually(t, waitFor, "edge Deployment recreated", func() error {
		if err := e.Get(deploymentName("edge"), &edge); err != nil {
			return err
		}
		if edge.UID == oldUID {
			return errors.New("still the old Deployment")
		}
		if edge.Spec.Template.Spec.Containers[0].Image != "little:v2" {
			return fmt.Errorf("recreated from a stale spec: %s", edge.Spec.Template.Spec.Containers[0].Image)
		}
		return nil
	})
	sednatest.Eventually(t, waitFor, "Recreated event", func() error { return hasEvent(e, "Recreated", deploymentName("edge")) })

	// Deleting the service removes everything; nothing comes back.
	if err := e.Client.Delete(ctx, &ji); err != nil {
		t.Fatal(err)
	}
	sednatest.Eventually(t, waitFor, "children garbage-collected", func() error { return leftovers(e, helmet) })
	staysGone(t, e, helmet, time.Minute)
}

// leftovers returns an error naming what of the service still exists.
func leftovers(e *sednatest.Env, name string) error {
	ctx := context.Background()
	sel := client.MatchingLabels{"jointinferenceservice.sedna.io/name": name}
	var found []string
	var deps appsv1.DeploymentList
	var rss appsv1.ReplicaSetList
	var svcs corev1.ServiceList
	var hpas autoscalingv2.HorizontalPodAutoscalerList
	var pods corev1.PodList
	for _, l := range []client.ObjectList{&deps, &rss, &svcs, &hpas, &pods} {
		if err := e.Client.List(ctx, l, client.InNamespace(e.NS), sel); err != nil {
			return err
		}
	}
	for _, d := range deps.Items {
		found = append(found, "Deployment "+d.Name)
	}
	for _, r := range rss.Items {
		found = append(found, "ReplicaSet "+r.Name)
	}
	for _, s := range svcs.Items {
		found = append(found, "Service "+s.Name)
	}
	for _, h := range hpas.Items {
		found = append(found, "HPA "+h.Name)
	}
	for _, p := range pods.Items {
		// Pods bound to a node wait for a kubelet to confirm their
		// deletion; here none runs. Being deleted is what counts.
		if p.DeletionTimestamp == nil {
			found = append(found, "Pod "+p.Name)
		}
	}
	if len(found) > 0 {
		return fmt.Errorf("still present: %s", strings.Join(found, ", "))
	}
	return nil
}

// staysGone fails if anything of the deleted service appears during d.
func staysGone(t *testing.T, e *sednatest.Env, name string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := leftovers(e, name); err != nil {
			t.Fatalf("after deletion: %v", err)
		}
		time.Sleep(time.Second)
	}
}

func hasEvent(e *sednatest.Env, reason, mentions string) error {
	var evs eventsv1.EventList
	if err := e.Client.List(context.Background(), &evs, client.InNamespace(e.NS)); err != nil {
		return err
	}
	var seen []string
	for _, ev := range evs.Items {
		if ev.Reason == reason && strings.Contains(ev.Note, mentions) {
			return nil
		}
		seen = append(seen, ev.Reason+": "+ev.Note)
	}
	return fmt.Errorf("no %s event mentioning %s; have %v", reason, mentions, seen)
}

// The upstream HPA example gets two autoscalers; they follow the spec and
// go when hpa is removed.
func TestHPAFollowsSpec(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.CreateManifest(t, sednatest.RepoFile(t, upstreamJIHPA))

	var edgeHPA, cloudHPA autoscalingv2.HorizontalPodAutoscaler
	var ji sednav1.JointInferenceService
	sednatest.Eventually(t, waitFor, "two HPAs", func() error {
		if err := e.Get(helmet, &ji); err != nil {
			return err
		}
		if err := e.Get("hpa-"+deploymentName("edge"), &edgeHPA); err != nil {
			return err
		}
		if err := e.Get("hpa-"+deploymentName("cloud"), &cloudHPA); err != nil {
			return err
		}
		return errors.Join(owned(&edgeHPA, &ji), owned(&cloudHPA, &ji))
	})
	for _, tc := range []struct {
		h        *autoscalingv2.HorizontalPodAutoscaler
		target   string
		max, cpu int32
	}{{&edgeHPA, deploymentName("edge"), 2, 50}, {&cloudHPA, deploymentName("cloud"), 5, 20}} {
		s := tc.h.Spec
		if s.ScaleTargetRef.Kind != "Deployment" || s.ScaleTargetRef.Name != tc.target || s.MaxReplicas != tc.max ||
			ptr.Deref(s.MinReplicas, 0) != 1 || len(s.Metrics) != 1 || ptr.Deref(s.Metrics[0].Resource.Target.AverageUtilization, 0) != tc.cpu {
			t.Errorf("%s: %+v", tc.h.Name, s)
		}
	}
	var edge appsv1.Deployment
	if err := e.Get(deploymentName("edge"), &edge); err != nil {
		t.Fatal(err)
	}
	if !edge.Spec.Template.Spec.HostNetwork || edge.Spec.Template.Spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("edge pod network: hostNetwork %v dnsPolicy %s", edge.Spec.Template.Spec.HostNetwork, edge.Spec.Template.Spec.DNSPolicy)
	}

	edit(t, e, helmet, func(ji *sednav1.JointInferenceService) { ji.Spec.CloudWorker.HPA.MaxReplicas = 8 })
	sednatest.Eventually(t, waitFor, "cloud HPA updated", func() error {
		if err := e.Get("hpa-"+deploymentName("cloud"), &cloudHPA); err != nil {
			return err
		}
		if cloudHPA.Spec.MaxReplicas != 8 {
			return fmt.Errorf("maxReplicas %d", cloudHPA.Spec.MaxReplicas)
		}
		return nil
	})

	edit(t, e, helmet, func(ji *sednav1.JointInferenceService) { ji.Spec.EdgeWorker.HPA = nil })
	sednatest.Eventually(t, waitFor, "edge HPA deleted", func() error {
		return e.Gone("hpa-"+deploymentName("edge"), &autoscalingv2.HorizontalPodAutoscaler{})
	})
	if err := e.Get("hpa-"+deploymentName("cloud"), &cloudHPA); err != nil {
		t.Errorf("cloud HPA went with the edge one: %v", err)
	}
	if err := e.Get(deploymentName("edge"), &edge); err != nil {
		t.Errorf("edge Deployment went with its HPA: %v", err)
	}
}

func newService(ns, name string) *sednav1.JointInferenceService {
	return &sednav1.JointInferenceService{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: sednav1.JointInferenceServiceSpec{
			EdgeWorker: sednav1.EdgeWorker{
				Model:             sednav1.SmallModel{Name: "little"},
				HardExampleMining: sednav1.HardExampleMining{Name: "CrossEntropy", Parameters: []sednav1.ParaSpec{{Key: "threshold_cross_entropy", Value: "0.5"}}},
				Template: sednav1.PodTemplate{
					ObjectMeta: sednav1.TemplateMeta{Labels: map[string]string{"team": "vision"}},
					Spec: corev1.PodSpec{
						NodeSelector: map[string]string{"verge.dev/pool": "gate-cameras"},
						Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
							NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/arch", Operator: corev1.NodeSelectorOpIn, Values: []string{"arm64"}}}}},
						}}},
						Containers: []corev1.Container{{Name: "little", Image: "little:v1"}},
					},
				},
			},
			CloudWorker: sednav1.CloudWorker{
				Model:    sednav1.BigModel{Name: "big"},
				Template: sednav1.PodTemplate{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "big", Image: "big:v1"}}}},
			},
		},
	}
}

func newModel(ns, name string) *sednav1.Model {
	return &sednav1.Model{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       sednav1.ModelSpec{URL: "/models/" + name + "/model.onnx", Format: "onnx"},
	}
}

func phase(e *sednav1.JointInferenceService) string {
	c := meta.FindStatusCondition(e.Status.Conditions, string(e.Status.Phase))
	if c == nil {
		return string(e.Status.Phase)
	}
	return fmt.Sprintf("%s (%s: %s)", e.Status.Phase, c.Reason, c.Message)
}

// A missing Model or an unknown algorithm is a condition that names it,
// with no workers; fixing it brings the workers.
func TestProblemsAreConditionsThatRecover(t *testing.T) {
	t.Parallel()
	e := start(t)
	ctx := context.Background()
	ji := newService(e.NS, "gate")
	ji.Spec.EdgeWorker.HardExampleMining.Name = "Magic"
	if err := e.Client.Create(ctx, newModel(e.NS, "little")); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Create(ctx, ji); err != nil {
		t.Fatal(err)
	}

	expectProblem := func(reason, mentions string) {
		t.Helper()
		sednatest.Eventually(t, waitFor, reason+" condition", func() error {
			if err := e.Get("gate", ji); err != nil {
				return err
			}
			c := meta.FindStatusCondition(ji.Status.Conditions, sednav1.JointInferenceServiceCondFailed)
			if ji.Status.Phase != sednav1.JointInferenceServiceFailed || c == nil || c.Status != metav1.ConditionTrue || c.Reason != reason || !strings.Contains(c.Message, mentions) {
				return fmt.Errorf("phase %s", phase(ji))
			}
			return nil
		})
		var deps appsv1.DeploymentList
		if err := e.Client.List(ctx, &deps, client.InNamespace(e.NS)); err != nil {
			t.Fatal(err)
		}
		if len(deps.Items) != 0 {
			t.Fatalf("workers created despite %s: %d Deployments", reason, len(deps.Items))
		}
	}
	// The cloud model is missing too, but the algorithm is checked after
	// the models are resolved: the first problem named is the model.
	expectProblem("ModelNotFound", `"big"`)
	sednatest.Eventually(t, waitFor, "Warning event", func() error { return hasEvent(e, "ModelNotFound", `"big"`) })

	if err := e.Client.Create(ctx, newModel(e.NS, "big")); err != nil {
		t.Fatal(err)
	}
	expectProblem("UnknownHardExampleMining", `"Magic"`)

	edit(t, e, "gate", func(ji *sednav1.JointInferenceService) { ji.Spec.EdgeWorker.HardExampleMining.Name = "CrossEntropy" })
	var edge appsv1.Deployment
	sednatest.Eventually(t, waitFor, "workers after the fix", func() error {
		if err := e.Get("gate", ji); err != nil {
			return err
		}
		if ji.Status.Phase != sednav1.JointInferenceServicePending {
			return fmt.Errorf("phase %s", phase(ji))
		}
		return e.Get("gate-deployment-edge", &edge)
	})
	// Placement by selector and affinity, not only by nodeName; template
	// labels survive the API server.
	pod := edge.Spec.Template
	if pod.Spec.NodeSelector["verge.dev/pool"] != "gate-cameras" || pod.Spec.Affinity == nil || pod.Spec.NodeName != "" {
		t.Errorf("edge placement: selector %v affinity %v nodeName %q", pod.Spec.NodeSelector, pod.Spec.Affinity, pod.Spec.NodeName)
	}
	if pod.Labels["team"] != "vision" {
		t.Errorf("template labels %v lost", pod.Labels)
	}
	if c := meta.FindStatusCondition(ji.Status.Conditions, sednav1.JointInferenceServiceCondFailed); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Failed condition still set: %+v", c)
	}

	// Breaking the spec again leaves the running workers alone.
	edit(t, e, "gate", func(ji *sednav1.JointInferenceService) { ji.Spec.EdgeWorker.HardExampleMining.Name = "Magic2" })
	expectProblemKeepsWorkers := func() error {
		if err := e.Get("gate", ji); err != nil {
			return err
		}
		if ji.Status.Phase != sednav1.JointInferenceServiceFailed {
			return fmt.Errorf("phase %s", phase(ji))
		}
		return e.Get("gate-deployment-edge", &edge)
	}
	sednatest.Eventually(t, waitFor, "failed, workers kept", expectProblemKeepsWorkers)
	if env := containerEnv(&edge); env["HEM_NAME"] != "CrossEntropy" {
		t.Errorf("edge worker got the rejected algorithm: %s", env["HEM_NAME"])
	}
}

// The API server rejects what can never work, with a message that says
// what to change.
func TestAPIValidation(t *testing.T) {
	t.Parallel()
	e := start(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		edit func(*sednav1.JointInferenceService)
		says string
	}{
		{"maxReplicas below minReplicas", func(ji *sednav1.JointInferenceService) {
			ji.Spec.CloudWorker.HPA = &sednav1.HPA{MinReplicas: ptr.To[int32](3), MaxReplicas: 2}
		}, "hpa.maxReplicas must be greater than or equal to hpa.minReplicas"},
		{"zero maxReplicas", func(ji *sednav1.JointInferenceService) {
			ji.Spec.EdgeWorker.HPA = &sednav1.HPA{MaxReplicas: 0}
		}, "maxReplicas"},
		{"name too long for its Service", func(ji *sednav1.JointInferenceService) {
			ji.Name = strings.Repeat("a", 58)
		}, "at most 57 characters"},
		{"empty model name", func(ji *sednav1.JointInferenceService) {
			ji.Spec.EdgeWorker.Model.Name = ""
		}, "edgeWorker.model.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ji := newService(e.NS, "valid")
			tc.edit(ji)
			err := e.Client.Create(ctx, ji)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("want Invalid mentioning %q, got %v", tc.says, err)
			}
		})
	}
	// At the boundary the service is accepted.
	ji := newService(e.NS, strings.Repeat("a", 57))
	ji.Spec.CloudWorker.HPA = &sednav1.HPA{MinReplicas: ptr.To[int32](2), MaxReplicas: 2}
	if err := e.Client.Create(ctx, ji); err != nil {
		t.Fatalf("valid service rejected: %v", err)
	}
}

// Verge's own example: placement without nodeName, one autoscaled worker.
func TestVergeExample(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.CreateManifest(t, sednatest.RepoFile(t, vergeJI))
	var edge appsv1.Deployment
	var hpa autoscalingv2.HorizontalPodAutoscaler
	sednatest.Eventually(t, waitFor, "workers and the cloud HPA", func() error {
		return errors.Join(
			e.Get("fmnist-gate-deployment-edge", &edge),
			e.Get("fmnist-gate-deployment-cloud", &appsv1.Deployment{}),
			e.Get("fmnist-gate-cloud", &corev1.Service{}),
			e.Get("hpa-fmnist-gate-deployment-cloud", &hpa),
		)
	})
	if err := e.Get("hpa-fmnist-gate-deployment-edge", &autoscalingv2.HorizontalPodAutoscaler{}); !apierrors.IsNotFound(err) {
		t.Errorf("edge HPA without edge hpa: %v", err)
	}
	pod := edge.Spec.Template
	if pod.Spec.NodeName != "" || pod.Spec.NodeSelector["verge.dev/pool"] != "gate-cameras" || pod.Labels["app.kubernetes.io/part-of"] != "fmnist-gate" {
		t.Errorf("edge template: nodeName %q selector %v labels %v", pod.Spec.NodeName, pod.Spec.NodeSelector, pod.Labels)
	}
	if env := containerEnv(&edge); env["HEM_NAME"] != "CrossEntropy" || env["MODEL_URL"] != "/home/data/var/lib/verge/models/fmnist-softmax.json" {
		t.Errorf("edge env %v", env)
	}
}
