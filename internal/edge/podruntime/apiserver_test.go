package podruntime_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/verge-edge/verge/internal/protocol/kube"
	"github.com/verge-edge/verge/internal/protocol/kube/kubeconv"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// apiSink plays the cloud: it writes every status to the real API server
// (whose validation must accept it), feeds the stored pod back into the
// Source as the edge store would, and deletes terminated pods.
type apiSink struct {
	*recSink
	client kubernetes.Interface
	src    *memSource
	rt     func() // Trigger
	mu     sync.Mutex
	errs   []error
}

func (s *apiSink) PodStatus(name types.NamespacedName, uid types.UID, st kube.PodStatus) {
	s.recSink.PodStatus(name, uid, st)
	ctx := context.Background()
	pod, err := s.client.CoreV1().Pods(name.Namespace).Get(ctx, name.Name, metav1.GetOptions{})
	if err != nil {
		if !apierrors.IsNotFound(err) {
			s.fail(fmt.Errorf("get %s: %w", name, err))
		}
		return
	}
	pod.Status = statusToAPI(st)
	updated, err := s.client.CoreV1().Pods(name.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		s.fail(fmt.Errorf("the API server rejected the status of %s: %w", name, err))
		return
	}
	s.src.putPod(toEdge(updated))
}

func (s *apiSink) PodTerminated(name types.NamespacedName, uid types.UID) {
	s.recSink.PodTerminated(name, uid)
	zero := int64(0)
	err := s.client.CoreV1().Pods(name.Namespace).Delete(context.Background(), name.Name,
		metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		s.fail(fmt.Errorf("delete %s: %w", name, err))
		return
	}
	s.src.deletePod(uid)
	s.rt()
}

func (s *apiSink) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, err)
}

// Pods created through the API server (with its defaults: service-account
// token volume, pull policies, termination message paths) run at the edge,
// and every status the runtime reports passes the API server's validation.
func TestStatusesAcceptedByTheAPIServer(t *testing.T) {
	t.Parallel()
	testenv.Start(t)
	client := testenv.Client(t)
	ns := testenv.Namespace(t)
	ctx := context.Background()
	e := newEnv(t, "api")
	src := newSource()
	// The service-account volume the API server adds reads this ConfigMap.
	var rootCA *corev1.ConfigMap
	waitFor(t, 30*time.Second, "kube-root-ca.crt in the namespace", func() (bool, string) {
		var err error
		rootCA, err = client.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	var edgeCA kube.ConfigMap
	kubeconv.Must(rootCA, &edgeCA)
	src.putConfigMap(&edgeCA)

	sink := &apiSink{recSink: newSink(), client: client, src: src}
	cfg := runtimeConfig(t, e, "edge-api")
	n := startRuntime(t, cfg, src, sink)
	sink.rt = n.rt.Trigger

	create := func(p *kube.Pod) *kube.Pod {
		t.Helper()
		p.Namespace, p.UID = ns, ""
		created, err := client.CoreV1().Pods(ns).Create(ctx, toAPI(p), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.add(toEdge(created))
		return toEdge(created)
	}
	web := create(n.pod("web", kube.Container{Name: "web", Image: e.images.App, Args: []string{"serve", "-addr", ":8080"},
		ReadinessProbe: &kube.Probe{ProbeHandler: kube.ProbeHandler{HTTPGet: &kube.HTTPGetAction{Path: "/healthz", Port: kube.FromInt32(8080)}}, PeriodSeconds: 1}}))
	crasher := create(n.pod("crasher", kube.Container{Name: "crash", Image: e.images.App, Args: []string{"crash", "-code", "2"}}))
	jobPod := n.pod("job", kube.Container{Name: "main", Image: e.images.App, Args: []string{"exit", "0"}})
	jobPod.Spec.InitContainers = []kube.Container{{Name: "init", Image: e.images.App, Args: []string{"exit", "0"}}}
	jobPod.Spec.RestartPolicy = kube.RestartPolicyNever
	job := create(jobPod)

	apiStatus := func(p *kube.Pod) kube.PodStatus {
		got, err := client.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return kube.PodStatus{}
		}
		return toEdge(got).Status
	}
	waitFor(t, 90*time.Second, "web Ready in the API", func() (bool, string) {
		st := apiStatus(web)
		return ready(st), describe(st)
	})
	waitFor(t, 60*time.Second, "crasher restarting in the API", func() (bool, string) {
		st := apiStatus(crasher)
		return len(st.ContainerStatuses) == 1 && st.ContainerStatuses[0].RestartCount >= 1, describe(st)
	})
	waitFor(t, 60*time.Second, "job Succeeded in the API", func() (bool, string) {
		st := apiStatus(job)
		return st.Phase == kube.PodSucceeded, describe(st)
	})

	// Graceful deletion in the cloud reaches the edge; once the pod has
	// stopped, the "cloud" deletes it for good.
	grace := int64(2)
	if err := client.CoreV1().Pods(ns).Delete(ctx, web.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	deleting, err := client.CoreV1().Pods(ns).Get(ctx, web.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.add(toEdge(deleting))
	waitFor(t, 30*time.Second, "web gone from the API", func() (bool, string) {
		_, err := client.CoreV1().Pods(ns).Get(ctx, web.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})

	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, err := range sink.errs {
		t.Error(err)
	}
}

// toAPI and toEdge cross between the API server's objects and the edge's.
func toAPI(p *kube.Pod) *corev1.Pod {
	var out corev1.Pod
	kubeconv.Must(p, &out)
	return &out
}

func toEdge(p *corev1.Pod) *kube.Pod {
	var out kube.Pod
	kubeconv.Must(p, &out)
	return &out
}

func statusToAPI(st kube.PodStatus) corev1.PodStatus {
	return toAPI(&kube.Pod{Status: st}).Status
}
