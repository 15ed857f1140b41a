// Package nodeview computes, for each edge node connected to this replica,
// the set of objects the node must hold: the pods bound to it, the
// ConfigMaps and Secrets those pods use, the service-account tokens
// their projected volumes request, and the Devices bound to it with the
// DeviceModels they name. It keeps that set current from informer
// events and tells each node's session (a Sink) what changed.
//
// Nothing is kept for nodes that are not connected here: a node's view is
// computed from the informer caches when it connects (Subscribe), and
// maintained incrementally until it disconnects. No per-object bookkeeping
// is written anywhere.
package nodeview

import (
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/verge-edge/verge/internal/protocol/downsync"
	"github.com/verge-edge/verge/internal/protocol/objkey"
)

// Sink receives a node's view changes (a session's downsync.Sender).
type Sink interface {
	Set(obj downsync.Object)
	Remove(key string)
	SetHorizon(class string, rv uint64)
}

// Cache reads the informer caches.
type Cache interface {
	// PodsOnNode returns the pods whose spec.nodeName is node.
	PodsOnNode(node string) []*corev1.Pod
	// Object returns the ConfigMap or Secret with key, if cached.
	Object(key string) (runtime.Object, bool)
}

// Tokens mints service-account tokens for pods' projected volumes and
// keeps them fresh, delivering each version to deliver. The first mint may
// wait until notBefore (the node still holds a good token). Want must not
// call deliver before returning.
type Tokens interface {
	Want(node string, podUID string, req TokenRequest, notBefore time.Time, deliver func(downsync.Object))
	Drop(node string, key string)
}

// View maintains the views of subscribed nodes.
type View struct {
	cache   Cache
	tokens  Tokens
	devices DeviceCache // nil: views hold no devices

	mu   sync.Mutex
	subs map[string]*subscription
	// refs index: object key → nodes (subscribed) whose pods reference it.
	users map[string]map[string]bool
}

type subscription struct {
	sink Sink
	// held is what the node said it holds when it connected (tokens only),
	// so tokens still fresh there are not minted again at once.
	held map[string]downsync.Version
	pods map[string]podRefs // pod key → what it references
	// devices: Device key → the key of the DeviceModel it names.
	devices map[string]string
	// refcount: object key → number of this node's pods referencing it.
	refcount map[string]int
	tokens   map[string]int // token key → pods wanting it (one pod each, kept for symmetry)
}

type podRefs struct {
	objects []string
	tokens  []string
}

// New returns a View reading cache and minting tokens with tokens.
func New(cache Cache, tokens Tokens) *View {
	return &View{cache: cache, tokens: tokens, subs: map[string]*subscription{}, users: map[string]map[string]bool{}}
}

// Subscribe starts maintaining node's view, delivering its current content
// to sink at once. held is the node's inventory (only its tokens are used).
// The returned function stops it.
func (v *View) Subscribe(node string, sink Sink, held []downsync.Meta) (unsubscribe func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if old := v.subs[node]; old != nil {
		v.dropLocked(node, old)
	}
	s := &subscription{sink: sink, held: map[string]downsync.Version{}, pods: map[string]podRefs{}, devices: map[string]string{}, refcount: map[string]int{}, tokens: map[string]int{}}
	for _, m := range held {
		if strings.HasPrefix(m.Key, ServiceAccountTokens+"/") {
			s.held[m.Key] = m.Version
		}
	}
	v.subs[node] = s
	for _, pod := range v.cache.PodsOnNode(node) {
		v.addPodLocked(node, s, pod)
	}
	if v.devices != nil {
		for _, d := range v.devices.DevicesOnNode(node) {
			v.addDeviceLocked(node, s, d)
		}
	}
	return func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.subs[node] == s {
			v.dropLocked(node, s)
			delete(v.subs, node)
		}
	}
}

// Subscribed reports how many nodes are subscribed.
func (v *View) Subscribed() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.subs)
}

// OnPod applies a pod informer event; old or new is nil for add/delete.
func (v *View) OnPod(old, new *corev1.Pod) {
	if old != nil && new != nil && StatusOnly(old, new) && StatusWrittenByNode(new) {
		// The node's own status report coming back: sending it would
		// double the traffic for nothing. The node keeps the pod at the
		// version it has; the next real change carries everything. A
		// status someone else wrote (the node lifecycle controller marking
		// the pod not ready while the link was down, say) is sent, so the
		// node can put its own view back.
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if old != nil && (new == nil || old.Spec.NodeName != new.Spec.NodeName) {
		if s := v.subs[old.Spec.NodeName]; s != nil {
			v.removePodLocked(old.Spec.NodeName, s, podKey(old))
		}
	}
	if new != nil && new.Spec.NodeName != "" {
		if s := v.subs[new.Spec.NodeName]; s != nil {
			v.addPodLocked(new.Spec.NodeName, s, new)
		}
	}
}

// OnObject applies a ConfigMap, Secret or DeviceModel informer event (obj
// nil when it was deleted).
func (v *View) OnObject(key string, obj runtime.Object) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for node := range v.users[key] {
		s := v.subs[node]
		if obj == nil {
			s.sink.Remove(key)
		} else {
			s.sink.Set(toObject(key, obj))
		}
	}
}

// SetHorizon passes an informer's progress to every subscribed node.
func (v *View) SetHorizon(class string, rv uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, s := range v.subs {
		s.sink.SetHorizon(class, rv)
	}
}

func podKey(p *corev1.Pod) string { return objkey.Key(Pods, p.Namespace, p.Name) }

func (v *View) addPodLocked(node string, s *subscription, pod *corev1.Pod) {
	key := podKey(pod)
	objects, tokens := References(pod)
	refs := podRefs{objects: objects}
	for _, t := range tokens {
		refs.tokens = append(refs.tokens, objkey.Key(ServiceAccountTokens, t.Namespace, objkey.TokenName(t.Pod, t.Audiences, t.ExpirationSeconds)))
	}
	old, had := s.pods[key]
	s.pods[key] = refs
	// Reference the new set before releasing the old one, so an object both
	// use is never removed and re-added.
	for _, k := range refs.objects {
		v.refLocked(node, s, k)
	}
	for i, k := range refs.tokens {
		s.tokens[k]++
		if s.tokens[k] == 1 {
			// The token belongs to the view from now on; until minted, the
			// node keeps whatever it holds under that key.
			s.sink.Set(downsync.Object{Key: k, Version: downsync.Version{UID: string(pod.UID)}, Pending: true})
			notBefore := refreshTime(s.held[k], string(pod.UID), tokens[i].ExpirationSeconds)
			v.tokens.Want(node, string(pod.UID), tokens[i], notBefore, func(o downsync.Object) { v.deliverToken(node, s, o) })
		}
	}
	s.sink.Set(toObject(key, pod))
	if had {
		v.unrefAllLocked(node, s, old)
	}
}

// StatusOnly reports whether a pod update changed nothing but its status
// (and the bookkeeping that comes with any write). Pods with readiness
// gates are never status-only: other controllers write the conditions
// their readiness depends on, and the node needs them.
func StatusOnly(old, new *corev1.Pod) bool {
	if len(new.Spec.ReadinessGates) > 0 || old.UID != new.UID {
		return false
	}
	if !apiequality.Semantic.DeepEqual(old.Spec, new.Spec) {
		return false
	}
	om, nm := old.ObjectMeta, new.ObjectMeta
	om.ResourceVersion, nm.ResourceVersion = "", ""
	om.ManagedFields, nm.ManagedFields = nil, nil
	return apiequality.Semantic.DeepEqual(om, nm)
}

// NodeFieldManager is the field manager of the status writes verge-cloud
// makes on a node's behalf (see package reports).
const NodeFieldManager = "verge-edge"

// StatusWrittenByNode reports whether the pod's status was last written by
// its node: the newest status entry in managedFields is the node's. When
// another manager wrote in the same second, it is not (sending a pod once
// too often is harmless; missing someone else's write is not).
func StatusWrittenByNode(p *corev1.Pod) bool {
	var latest *metav1.ManagedFieldsEntry
	tie := false
	for i := range p.ManagedFields {
		e := &p.ManagedFields[i]
		if e.Subresource != "status" || e.Time == nil {
			continue
		}
		switch {
		case latest == nil || e.Time.After(latest.Time.Time):
			latest, tie = e, false
		case e.Time.Equal(latest.Time) && e.Manager != latest.Manager:
			tie = true
		}
	}
	return latest != nil && !tie && latest.Manager == NodeFieldManager
}

// deliverToken passes a minted token to the node if it still wants it (the
// minter works asynchronously; the pod may have gone meanwhile).
func (v *View) deliverToken(node string, s *subscription, o downsync.Object) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.subs[node] == s && s.tokens[o.Key] > 0 {
		s.sink.Set(o)
	}
}

func (v *View) removePodLocked(node string, s *subscription, key string) {
	refs, ok := s.pods[key]
	if !ok {
		return
	}
	delete(s.pods, key)
	s.sink.Remove(key)
	v.unrefAllLocked(node, s, refs)
}

func (v *View) refLocked(node string, s *subscription, key string) {
	s.refcount[key]++
	if s.refcount[key] > 1 {
		return
	}
	if v.users[key] == nil {
		v.users[key] = map[string]bool{}
	}
	v.users[key][node] = true
	if obj, ok := v.object(key); ok {
		s.sink.Set(toObject(key, obj))
	}
}

func (v *View) unrefAllLocked(node string, s *subscription, refs podRefs) {
	for _, k := range refs.objects {
		s.refcount[k]--
		if s.refcount[k] > 0 {
			continue
		}
		delete(s.refcount, k)
		delete(v.users[k], node)
		if len(v.users[k]) == 0 {
			delete(v.users, k)
		}
		s.sink.Remove(k)
	}
	for _, k := range refs.tokens {
		s.tokens[k]--
		if s.tokens[k] > 0 {
			continue
		}
		delete(s.tokens, k)
		v.tokens.Drop(node, k)
		s.sink.Remove(k)
	}
}

// dropLocked forgets a subscription's references (its sink is abandoned).
func (v *View) dropLocked(node string, s *subscription) {
	for k := range s.refcount {
		delete(v.users[k], node)
		if len(v.users[k]) == 0 {
			delete(v.users, k)
		}
	}
	for k := range s.tokens {
		v.tokens.Drop(node, k)
	}
}

// object returns a referenced object from the caches.
func (v *View) object(key string) (runtime.Object, bool) {
	if resource, ns, name, err := objkey.Split(key); err == nil && resource == DeviceModels {
		if v.devices == nil {
			return nil, false
		}
		m, ok := v.devices.Model(ns, name)
		if !ok {
			return nil, false
		}
		return m, true
	}
	return v.cache.Object(key)
}

func toObject(key string, obj runtime.Object) downsync.Object {
	m, err := meta.Accessor(obj)
	if err != nil {
		return downsync.Object{Key: key, Body: obj}
	}
	if len(m.GetManagedFields()) > 0 {
		obj, m = withoutManagedFields(obj)
	}
	return downsync.Object{Key: key, Version: downsync.Version{UID: string(m.GetUID()), ResourceVersion: m.GetResourceVersion()}, Body: obj}
}

// withoutManagedFields returns a shallow copy of obj (the informer's
// object is shared and must not change) without metadata.managedFields:
// server-side-apply bookkeeping that nodes never use and that is often the
// larger part of an object.
func withoutManagedFields(obj runtime.Object) (runtime.Object, metav1.Object) {
	c := reflect.New(reflect.TypeOf(obj).Elem())
	c.Elem().Set(reflect.ValueOf(obj).Elem())
	obj = c.Interface().(runtime.Object)
	m, _ := meta.Accessor(obj) // obj's type has object metadata: the caller checked
	m.SetManagedFields(nil)
	return obj, m
}

// refreshTime is when a token the node holds (its version is the pod UID and
// the expiry in Unix seconds) is due for renewal: at 80 % of its lifetime.
// The zero time means "mint now".
func refreshTime(held downsync.Version, podUID string, lifetimeSeconds int64) time.Time {
	if held.UID != podUID {
		return time.Time{}
	}
	expiry, err := strconv.ParseInt(held.ResourceVersion, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(expiry, 0).Add(-time.Duration(max(lifetimeSeconds, 600)) * time.Second / 5)
}

// ParseRV reads a resourceVersion as a number (0 if it is not one).
func ParseRV(rv string) uint64 {
	n, _ := strconv.ParseUint(rv, 10, 64)
	return n
}
