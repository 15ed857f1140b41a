package nodeview

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	devicesv1beta1 "github.com/verge-edge/verge/api/devices/v1beta1"
	"github.com/verge-edge/verge/internal/protocol/downsync"
	"github.com/verge-edge/verge/internal/protocol/objkey"
)

type fakeCache struct {
	pods    []*corev1.Pod
	objects map[string]runtime.Object
}

func (c *fakeCache) PodsOnNode(node string) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range c.pods {
		if p.Spec.NodeName == node {
			out = append(out, p)
		}
	}
	return out
}

func (c *fakeCache) Object(key string) (runtime.Object, bool) {
	o, ok := c.objects[key]
	return o, ok
}

type fakeTokens struct {
	notBefore time.Time
	wanted    map[string]func(downsync.Object)
	dropped   []string
}

func (f *fakeTokens) Want(node, podUID string, req TokenRequest, notBefore time.Time, deliver func(downsync.Object)) {
	f.notBefore = notBefore
	key := objkey.Key(ServiceAccountTokens, req.Namespace, objkey.TokenName(req.Pod, req.Audiences, req.ExpirationSeconds))
	f.wanted[node+" "+key] = func(o downsync.Object) {
		o.Key, o.Version.UID = key, podUID
		deliver(o)
	}
}

func (f *fakeTokens) Drop(node, key string) { f.dropped = append(f.dropped, node+" "+key) }

// recorder is a Sink that logs calls.
type recorder struct{ log []string }

func (r *recorder) Set(o downsync.Object) {
	if o.Pending {
		r.log = append(r.log, fmt.Sprintf("pending %s", o.Key))
		return
	}
	r.log = append(r.log, fmt.Sprintf("set %s@%s", o.Key, o.Version.ResourceVersion))
}
func (r *recorder) Remove(key string) { r.log = append(r.log, "remove "+key) }
func (r *recorder) SetHorizon(class string, rv uint64) {
	r.log = append(r.log, fmt.Sprintf("horizon %s %d", class, rv))
}
func (r *recorder) take() string {
	out := strings.Join(r.log, "\n")
	r.log = nil
	return out
}

func cm(name, rv string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("u-" + name), ResourceVersion: rv}}
}

func pod(name, node, rv string, mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("u-" + name), ResourceVersion: rv},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c"}}},
	}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func usesConfigMap(name string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}})
	}
}

func TestViewLifecycle(t *testing.T) {
	cache := &fakeCache{objects: map[string]runtime.Object{
		"configmaps/ns/shared": cm("shared", "3"),
		"configmaps/ns/only-b": cm("only-b", "4"),
	}}
	a := pod("a", "edge-1", "10", usesConfigMap("shared"))
	b := pod("b", "edge-1", "11", func(p *corev1.Pod) {
		usesConfigMap("shared")(p)
		usesConfigMap("only-b")(p)
		usesConfigMap("missing")(p)
	})
	other := pod("c", "edge-2", "12", usesConfigMap("shared"))
	cache.pods = []*corev1.Pod{a, b, other}
	tokens := &fakeTokens{wanted: map[string]func(downsync.Object){}}
	v := New(cache, tokens)
	r := &recorder{}

	unsubscribe := v.Subscribe("edge-1", r, nil)
	if got, want := r.take(), strings.Join([]string{
		"set configmaps/ns/shared@3", "set pods/ns/a@10",
		"set configmaps/ns/only-b@4", "set pods/ns/b@11",
	}, "\n"); got != want {
		t.Fatalf("initial view:\n%s\nwant:\n%s", got, want)
	}

	// A ConfigMap change reaches the node that uses it; a missing one that
	// appears later is delivered.
	v.OnObject("configmaps/ns/shared", cm("shared", "20"))
	v.OnObject("configmaps/ns/missing", cm("missing", "21"))
	v.OnObject("configmaps/ns/unused", cm("unused", "22"))
	if got := r.take(); got != "set configmaps/ns/shared@20\nset configmaps/ns/missing@21" {
		t.Fatalf("object events:\n%s", got)
	}

	// b stops using only-b: it leaves the view; shared stays (a uses it).
	b2 := pod("b", "edge-1", "30", usesConfigMap("shared"))
	v.OnPod(b, b2)
	if got := r.take(); got != "set pods/ns/b@30\nremove configmaps/ns/missing\nremove configmaps/ns/only-b" {
		t.Fatalf("reference change:\n%s", got)
	}

	// Pods on other nodes do not reach this node.
	v.OnPod(nil, pod("d", "edge-2", "31", usesConfigMap("shared")))
	if got := r.take(); got != "" {
		t.Fatalf("other node's pod leaked:\n%s", got)
	}

	// Deleting a: shared is still used by b. Deleting b: shared goes.
	v.OnPod(a, nil)
	if got := r.take(); got != "remove pods/ns/a" {
		t.Fatalf("delete a:\n%s", got)
	}
	v.OnPod(b2, nil)
	if got := r.take(); got != "remove pods/ns/b\nremove configmaps/ns/shared" {
		t.Fatalf("delete b:\n%s", got)
	}

	v.SetHorizon("pods", 40)
	if got := r.take(); got != "horizon pods 40" {
		t.Fatalf("horizon: %s", got)
	}

	unsubscribe()
	v.OnPod(nil, pod("e", "edge-1", "41", nil))
	v.OnObject("configmaps/ns/shared", cm("shared", "42"))
	if got := r.take(); got != "" {
		t.Fatalf("events after unsubscribe:\n%s", got)
	}
	if v.Subscribed() != 0 || len(v.users) != 0 {
		t.Fatalf("state left after unsubscribe: %d subs, users %v", v.Subscribed(), v.users)
	}
}

func TestViewTokens(t *testing.T) {
	withToken := func(p *corev1.Pod) {
		p.Spec.ServiceAccountName = "runner"
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}}},
		}}})
	}
	p := pod("a", "edge-1", "10", withToken)
	cache := &fakeCache{pods: []*corev1.Pod{p}, objects: map[string]runtime.Object{}}
	tokens := &fakeTokens{wanted: map[string]func(downsync.Object){}}
	v := New(cache, tokens)
	r := &recorder{}
	v.Subscribe("edge-1", r, nil)
	tokenKey := objkey.Key(ServiceAccountTokens, "ns", objkey.TokenName("a", nil, 3607))
	deliver := tokens.wanted["edge-1 "+tokenKey]
	deliver(downsync.Object{Version: downsync.Version{ResourceVersion: "1"}})
	if got := r.take(); got != "pending "+tokenKey+"\nset pods/ns/a@10\nset "+tokenKey+"@1" {
		t.Fatalf("pod and minted token:\n%s", got)
	}
	if !tokens.notBefore.IsZero() {
		t.Errorf("a token the node does not hold must be minted at once, not at %v", tokens.notBefore)
	}
	// A status-only update does not ask for a new token.
	v.OnPod(p, pod("a", "edge-1", "11", withToken))
	if len(tokens.wanted) != 1 {
		t.Fatalf("token requested again on update: %v", tokens.wanted)
	}
	r.take()
	v.OnPod(p, nil)
	if got := r.take(); got != "remove pods/ns/a\nremove "+tokenKey {
		t.Fatalf("token not removed with its pod:\n%s", got)
	}
	if len(tokens.dropped) != 1 || tokens.dropped[0] != "edge-1 "+tokenKey {
		t.Fatalf("token minting not stopped: %v", tokens.dropped)
	}
	// A token minted after its pod left is not delivered.
	deliver(downsync.Object{Version: downsync.Version{ResourceVersion: "2"}})
	if got := r.take(); got != "" {
		t.Fatalf("late token delivered: %s", got)
	}
}

// A token the node still holds with time to spare is not minted again on
// reconnect, only when due.
func TestHeldTokenIsNotMintedAgain(t *testing.T) {
	withToken := func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "t", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3600)}}},
		}}}}
	}
	p := pod("a", "edge-1", "10", withToken)
	tokens := &fakeTokens{wanted: map[string]func(downsync.Object){}}
	v := New(&fakeCache{pods: []*corev1.Pod{p}}, tokens)
	key := objkey.Key(ServiceAccountTokens, "ns", objkey.TokenName("a", nil, 3600))
	expiry := time.Unix(1_900_000_000, 0)
	v.Subscribe("edge-1", &recorder{}, []downsync.Meta{{Key: key, Version: downsync.Version{UID: "u-a", ResourceVersion: fmt.Sprint(expiry.Unix())}}})
	if want := expiry.Add(-720 * time.Second); !tokens.notBefore.Equal(want) {
		t.Fatalf("first mint at %v, want %v (80%% of the held token's life)", tokens.notBefore, want)
	}
	// A token held for another incarnation of the pod does not count.
	v2 := New(&fakeCache{pods: []*corev1.Pod{p}}, tokens)
	v2.Subscribe("edge-1", &recorder{}, []downsync.Meta{{Key: key, Version: downsync.Version{UID: "u-old", ResourceVersion: fmt.Sprint(expiry.Unix())}}})
	if !tokens.notBefore.IsZero() {
		t.Fatalf("a token of an older pod delayed minting until %v", tokens.notBefore)
	}
}

func TestStatusOnlyUpdatesAreNotSent(t *testing.T) {
	p := pod("a", "edge-1", "10", nil)
	cache := &fakeCache{pods: []*corev1.Pod{p}}
	v := New(cache, &fakeTokens{wanted: map[string]func(downsync.Object){}})
	r := &recorder{}
	v.Subscribe("edge-1", r, nil)
	r.take()

	statusOnly := p.DeepCopy()
	statusOnly.ResourceVersion = "11"
	statusOnly.Status.Phase = corev1.PodRunning
	t0 := metav1.NewTime(time.Unix(1000, 0))
	statusOnly.ManagedFields = []metav1.ManagedFieldsEntry{
		{Manager: "kube-controller-manager", Subresource: "status", Time: &t0},
		{Manager: NodeFieldManager, Subresource: "status", Time: ptr.To(metav1.NewTime(t0.Add(time.Second)))},
		{Manager: "kubectl", Time: ptr.To(metav1.NewTime(t0.Add(time.Hour)))}, // a spec write, not status
	}
	v.OnPod(p, statusOnly)
	if got := r.take(); got != "" {
		t.Fatalf("the node's own status coming back was sent: %s", got)
	}
	// The node lifecycle controller marks the pod not ready while the link
	// is down: the node must hear of it to put its own status back.
	markedNotReady := statusOnly.DeepCopy()
	markedNotReady.ResourceVersion = "11"
	markedNotReady.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	markedNotReady.ManagedFields[0].Time = ptr.To(metav1.NewTime(t0.Add(time.Minute)))
	v.OnPod(statusOnly, markedNotReady)
	if got := r.take(); got != "set pods/ns/a@11" {
		t.Fatalf("a status written by another controller must be sent: %q", got)
	}
	sameSecond := markedNotReady.DeepCopy()
	sameSecond.ManagedFields[1].Time = sameSecond.ManagedFields[0].Time
	if StatusWrittenByNode(sameSecond) {
		t.Errorf("a status written by the node and another manager in the same second counts as the node's alone")
	}
	labelled := statusOnly.DeepCopy()
	labelled.ResourceVersion = "12"
	labelled.Labels = map[string]string{"tier": "web"}
	v.OnPod(statusOnly, labelled)
	if got := r.take(); got != "set pods/ns/a@12" {
		t.Fatalf("a metadata change must be sent: %q", got)
	}
	deleting := labelled.DeepCopy()
	deleting.ResourceVersion = "13"
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	v.OnPod(labelled, deleting)
	if got := r.take(); got != "set pods/ns/a@13" {
		t.Fatalf("a deletion must be sent: %q", got)
	}
	gated := pod("g", "edge-1", "20", func(p *corev1.Pod) {
		p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/ready"}}
	})
	v.OnPod(nil, gated)
	r.take()
	gated2 := gated.DeepCopy()
	gated2.ResourceVersion = "21"
	gated2.Status.Conditions = []corev1.PodCondition{{Type: "example.com/ready", Status: corev1.ConditionTrue}}
	v.OnPod(gated, gated2)
	if got := r.take(); got != "set pods/ns/g@21" {
		t.Fatalf("status of a pod with readiness gates must be sent: %q", got)
	}
}

func TestReferences(t *testing.T) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"},
		Spec: corev1.PodSpec{
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}},
			Volumes: []corev1.Volume{
				{Name: "v1", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "vol-secret"}}},
				{Name: "v2", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-secret"}}},
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "vault", Path: "t"}},
				}}}},
				{Name: "v3", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
			InitContainers: []corev1.Container{{Name: "i", EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "init-env"}}}}}},
			Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{
				{Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "env-cm"}, Key: "k"}}},
				{Name: "B", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "vol-secret"}, Key: "k"}}},
				{Name: "C", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			}, EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "env-secret"}}}}}},
		},
	}
	objects, tokens := References(p)
	want := []string{"configmaps/ns/env-cm", "configmaps/ns/init-env", "configmaps/ns/kube-root-ca.crt", "secrets/ns/env-secret", "secrets/ns/proj-secret", "secrets/ns/pull", "secrets/ns/vol-secret"}
	if !sort.StringsAreSorted(objects) || strings.Join(objects, ",") != strings.Join(want, ",") {
		t.Errorf("objects = %v\nwant %v", objects, want)
	}
	if len(tokens) != 1 || tokens[0].ServiceAccount != "default" || tokens[0].Audiences[0] != "vault" || tokens[0].ExpirationSeconds != 3600 {
		t.Errorf("tokens = %+v", tokens)
	}
}

func TestKeys(t *testing.T) {
	r, ns, n, err := objkey.Split(objkey.Key(Pods, "ns", "web-1"))
	if err != nil || r != Pods || ns != "ns" || n != "web-1" {
		t.Fatalf("SplitKey: %s %s %s %v", r, ns, n, err)
	}
	if _, _, _, err := objkey.Split("pods/only"); err == nil {
		t.Error("malformed key accepted")
	}
	for _, dep := range []string{"secrets/a/b", "configmaps/a/b", "serviceaccounttokens/a/b"} {
		if Rank(dep, false) >= Rank("pods/a/b", false) || Rank(dep, true) <= Rank("pods/a/b", true) {
			t.Errorf("%s must be sent before pods and deleted after them", dep)
		}
	}
	if Class("serviceaccounttokens/a/b") != "" || Class("pods/a/b") != "pods" {
		t.Error("class")
	}
	if objkey.TokenName("p", []string{"b", "a"}, 10) != objkey.TokenName("p", []string{"a", "b"}, 10) || objkey.TokenName("p", nil, 10) == objkey.TokenName("p", nil, 11) {
		t.Error("token names must be stable per request and differ across requests")
	}
}

func TestManagedFieldsAreLeftOut(t *testing.T) {
	managed := metav1.ObjectMeta{Name: "p", UID: "u", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}}
	for _, obj := range []runtime.Object{
		&corev1.Pod{ObjectMeta: managed},
		&corev1.Secret{ObjectMeta: managed},
		&devicesv1beta1.DeviceModel{ObjectMeta: managed},
	} {
		o := toObject("x/ns/p", obj)
		got, _ := meta.Accessor(o.Body)
		if got.GetName() != "p" || len(got.GetManagedFields()) != 0 || o.Version.UID != "u" {
			t.Errorf("%T: sent %+v (version %+v)", obj, got, o.Version)
		}
		if orig, _ := meta.Accessor(obj); len(orig.GetManagedFields()) != 1 {
			t.Errorf("%T: toObject changed the informer's object", obj)
		}
	}
}
