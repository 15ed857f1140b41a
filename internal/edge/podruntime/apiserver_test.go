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
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

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

func (s *apiSink) PodStatus(name types.NamespacedName, uid types.UID, st corev1.PodStatus) {
	s.recSink.PodStatus(name, uid, st)
	ctx := context.Background()
	pod, err := s.client.CoreV1().Pods(name.Namespace).Get(ctx, name.Name, metav1.GetOptions{})
	if err != nil {
		if !apierrors.IsNotFound(err) {
			s.fail(fmt.Errorf("get %s: %w", name, err))
		}
		return
	}
	pod.Status = st
	updated, err := s.client.CoreV1().Pods(name.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		s.fail(fmt.Errorf("the API server rejected the status of %s: %w", name, err))
		return
	}
	s.src.putPod(updated)
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
	src.putConfigMap(rootCA)

	sink := &apiSink{recSink: newSink(), client: client, src: src}
	cfg := runtimeConfig(t, e, "edge-api")
	n := startRuntime(t, cfg, src, sink)
	sink.rt = n.rt.Trigger

	create := func(p *corev1.Pod) *corev1.Pod {
		t.Helper()
		p.Namespace, p.UID = ns, ""
		created, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.add(created)
		return created
	}
	web := create(n.pod("web", corev1.Container{Name: "web", Image: e.images.App, Args: []string{"serve", "-addr", ":8080"},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1}}))
	crasher := create(n.pod("crasher", corev1.Container{Name: "crash", Image: e.images.App, Args: []string{"crash", "-code", "2"}}))
	jobPod := n.pod("job", corev1.Container{Name: "main", Image: e.images.App, Args: []string{"exit", "0"}})
	jobPod.Spec.InitContainers = []corev1.Container{{Name: "init", Image: e.images.App, Args: []string{"exit", "0"}}}
	jobPod.Spec.RestartPolicy = corev1.RestartPolicyNever
	job := create(jobPod)

	apiStatus := func(p *corev1.Pod) corev1.PodStatus {
		got, err := client.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return corev1.PodStatus{}
		}
		return got.Status
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
		return st.Phase == corev1.PodSucceeded, describe(st)
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
	n.add(deleting)
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
