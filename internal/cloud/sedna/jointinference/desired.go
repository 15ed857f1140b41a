package jointinference

import (
	"errors"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
	"github.com/verge-edge/verge/internal/cloud/sedna/worker"
)

// Kind is the kind this package reconciles.
const Kind = "JointInferenceService"

// The two workers and the port the cloud worker serves on (the upstream
// worker library's default).
const (
	Edge         = "edge"
	Cloud        = "cloud"
	BigModelPort = 5000
)

var gvk = sednav1.SchemeGroupVersion.WithKind(Kind)

// DeploymentName is "<service>-deployment-<edge|cloud>", as upstream.
func DeploymentName(ji *sednav1.JointInferenceService, w string) string {
	return ji.Name + "-deployment-" + w
}

// ServiceName is the cloud worker's Service, "<service>-cloud".
func ServiceName(ji *sednav1.JointInferenceService) string { return ji.Name + "-" + Cloud }

// HPAName is "hpa-<deployment>", as upstream.
func HPAName(ji *sednav1.JointInferenceService, w string) string {
	return "hpa-" + DeploymentName(ji, w)
}

// Resolved is what the spec refers to, read by the reconciler.
type Resolved struct {
	EdgeModel, CloudModel *sednav1.Model
	// Credentials of the models' credentialName Secrets (nil when unset).
	EdgeCredential, CloudCredential *worker.Credential
}

// Desired is every object a JointInferenceService owns. EdgeHPA and
// CloudHPA are nil when the worker has no hpa.
type Desired struct {
	Cloud, Edge       *appsv1.Deployment
	Service           *corev1.Service
	EdgeHPA, CloudHPA *autoscalingv2.HorizontalPodAutoscaler
}

// Build computes the desired objects. It fails with a *worker.Problem when
// the spec cannot be carried out.
func Build(ji *sednav1.JointInferenceService, in Resolved, opts worker.Options) (*Desired, error) {
	if err := CheckHardExampleMining(ji.Spec.EdgeWorker.HardExampleMining, opts); err != nil {
		return nil, err
	}
	common := func() map[string]string {
		return map[string]string{
			"NAMESPACE":    ji.Namespace,
			"SERVICE_NAME": ji.Name,
			"LC_SERVER":    opts.LCServer,
		}
	}

	cloudEnv := common()
	cloudEnv["BIG_MODEL_BIND_PORT"] = strconv.Itoa(BigModelPort)
	cloud, err := deployment(ji, Cloud, &ji.Spec.CloudWorker.Template, cloudEnv,
		modelSource("cloudWorker", in.CloudModel, in.CloudCredential), opts)
	if err != nil {
		return nil, err
	}

	edgeEnv := common()
	edgeEnv["BIG_MODEL_IP"] = ServiceName(ji) + "." + ji.Namespace
	edgeEnv["BIG_MODEL_PORT"] = strconv.Itoa(BigModelPort)
	edgeEnv["HEM_NAME"] = ji.Spec.EdgeWorker.HardExampleMining.Name
	edgeEnv["HEM_PARAMETERS"] = worker.ParametersJSON(ji.Spec.EdgeWorker.HardExampleMining.Parameters)
	edge, err := deployment(ji, Edge, &ji.Spec.EdgeWorker.Template, edgeEnv,
		modelSource("edgeWorker", in.EdgeModel, in.EdgeCredential), opts)
	if err != nil {
		return nil, err
	}

	d := &Desired{Cloud: cloud, Edge: edge, Service: service(ji)}
	if h := ji.Spec.EdgeWorker.HPA; h != nil {
		d.EdgeHPA = hpa(ji, Edge, h)
	}
	if h := ji.Spec.CloudWorker.HPA; h != nil {
		d.CloudHPA = hpa(ji, Cloud, h)
	}
	for _, o := range []metav1.Object{d.Cloud, d.Edge, d.Service} {
		if err := stamp(o, o); err != nil {
			return nil, err
		}
	}
	for _, h := range []*autoscalingv2.HorizontalPodAutoscaler{d.EdgeHPA, d.CloudHPA} {
		if h != nil {
			if err := stamp(h, h); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

func modelSource(field string, m *sednav1.Model, cred *worker.Credential) worker.Source {
	return worker.Source{
		What:       fmt.Sprintf("%s.model %q", field, m.Name),
		URL:        m.Spec.URL,
		EnvName:    "MODEL_URL",
		Download:   true,
		Credential: cred,
	}
}

func objectMeta(ji *sednav1.JointInferenceService, name, w string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       ji.Namespace,
		Labels:          worker.Labels(Kind, ji.Name, string(ji.UID), w),
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ji, gvk)},
	}
}

// appLabel is the upstream EdgeMesh service-mapping label; its value keeps
// the upstream capitalised worker type.
func appLabel(ji *sednav1.JointInferenceService, w string) (string, string) {
	title := map[string]string{Edge: "Edge", Cloud: "Cloud"}[w]
	return "app.sedna.io", ji.Name + "-" + title + "-svc"
}

func deployment(ji *sednav1.JointInferenceService, w string, tpl *sednav1.PodTemplate, env map[string]string, model worker.Source, opts worker.Options) (*appsv1.Deployment, error) {
	selector := worker.Labels(Kind, ji.Name, string(ji.UID), w)
	k, v := appLabel(ji, w)
	selector[k] = v
	pod, err := worker.PodTemplate(tpl, worker.Params{
		Labels:                  selector,
		Env:                     append(worker.EnvFromMap(env), worker.PodNameEnv("WORKER_NAME")),
		Sources:                 []worker.Source{model},
		StorageInitializerImage: opts.StorageInitializerImage,
	})
	if err != nil {
		var p *worker.Problem
		if errors.As(err, &p) {
			p.Message = w + "Worker.template: " + p.Message
		}
		return nil, err
	}
	m := objectMeta(ji, DeploymentName(ji, w), w)
	m.Labels[k] = v
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: m,
		Spec: appsv1.DeploymentSpec{
			// Replicas stay unset: the HPA, or whoever scaled the
			// Deployment, owns the count.
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: pod,
		},
	}, nil
}

func service(ji *sednav1.JointInferenceService) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: objectMeta(ji, ServiceName(ji), Cloud),
		Spec: corev1.ServiceSpec{
			Selector: worker.Labels(Kind, ji.Name, string(ji.UID), Cloud),
			Ports: []corev1.ServicePort{{
				// The mesh expects "<protocol>-<suffix>" port names.
				Name:       "tcp-0",
				Protocol:   corev1.ProtocolTCP,
				Port:       BigModelPort,
				TargetPort: intstr.FromInt32(BigModelPort),
			}},
		},
	}
}

func hpa(ji *sednav1.JointInferenceService, w string, h *sednav1.HPA) *autoscalingv2.HorizontalPodAutoscaler {
	h = h.DeepCopy()
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: objectMeta(ji, HPAName(ji, w), w),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{
				APIVersion: "apps/v1",
				Kind:       "Deployment",
				Name:       DeploymentName(ji, w),
			},
			MinReplicas: h.MinReplicas,
			MaxReplicas: h.MaxReplicas,
			Metrics:     h.Metrics,
			Behavior:    h.Behavior,
		},
	}
}

// stamp records the hash of what the object should be, so the reconciler
// can tell whether the live object is current.
func stamp(o metav1.Object, v any) error {
	h, err := worker.Hash(v)
	if err != nil {
		return err
	}
	ann := o.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[worker.SpecHashAnnotation] = h
	o.SetAnnotations(ann)
	return nil
}
