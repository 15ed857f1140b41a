// Package owned creates, updates and deletes the objects a Sedna resource
// owns, with the two rules every Sedna controller follows:
//
//   - Nothing is created for a parent that is gone. Before the first
//     creation of a reconcile, the parent is read afresh from the API
//     server; if it no longer exists, has another UID, or is being
//     deleted, the reconcile creates nothing (upstream Sedna issue #466:
//     children recreated while the garbage collector deleted them).
//   - Nothing is rewritten without a reason. Desired objects carry the
//     hash of what the controller wants (worker.SpecHashAnnotation); a
//     live object with the same hash is left alone, so reconciles do not
//     cause writes or rollouts of their own.
//
// Objects that hold one of our names without being controlled by the
// parent are reported, never adopted.
package owned

import (
	"context"
	"errors"
	"maps"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/verge-edge/verge/internal/cloud/sedna/worker"
)

// ErrParentGone stops a reconcile whose parent vanished under it.
var ErrParentGone = errors.New("parent deleted")

// Set manages the children of one parent during one reconcile.
type Set struct {
	// Client writes (and the caller's cache reads go through it too).
	Client client.Client
	// Live reads the API server directly, bypassing caches.
	Live client.Reader
	// Parent owns the children through a controller reference.
	Parent client.Object
	// Event records an Event on the parent.
	Event func(eventType, reason, format string, args ...any)

	checked, gone bool
}

// MayCreate confirms, once per Set, that the parent still exists with the
// same UID and is not being deleted. It returns ErrParentGone otherwise.
func (s *Set) MayCreate(ctx context.Context) error {
	if !s.checked {
		alive, err := ParentAlive(ctx, s.Live, s.Parent)
		if err != nil {
			return err
		}
		s.checked, s.gone = true, !alive
	}
	if s.gone {
		return ErrParentGone
	}
	return nil
}

// Gone reports whether MayCreate found the parent gone.
func (s *Set) Gone() bool { return s.gone }

// Create creates obj after MayCreate. When the name is taken, it tells a
// lagging cache (the object is ours: retry later) from a foreign object
// (a NameConflict problem).
func (s *Set) Create(ctx context.Context, obj client.Object) error {
	if err := s.MayCreate(ctx); err != nil {
		return err
	}
	err := s.Client.Create(ctx, obj)
	if apierrors.IsAlreadyExists(err) {
		cur, ok := obj.DeepCopyObject().(client.Object)
		if ok && s.Live.Get(ctx, client.ObjectKeyFromObject(obj), cur) == nil && !IsControlledBy(cur, s.Parent) {
			return nameConflict(cur)
		}
		return err
	}
	return classify(err, obj)
}

// Ensure makes have match want: it creates want when have is nil and
// rewrites have (through update) when its recorded hash differs. existed
// says the object had been seen before, so that creating it again is
// reported as a repair. It returns the object as it now is.
func Ensure[T client.Object](ctx context.Context, s *Set, have, want T, update func(live, want T), existed bool) (T, error) {
	kind := want.GetObjectKind().GroupVersionKind().Kind
	if isNil(have) {
		if err := s.Create(ctx, want); err != nil {
			return have, err
		}
		if existed {
			s.Event("Warning", "Recreated", "%s %s was missing and has been recreated", kind, want.GetName())
		} else {
			s.Event("Normal", "Created", "created %s %s", kind, want.GetName())
		}
		return want, nil
	}
	if !IsControlledBy(have, s.Parent) {
		return have, nameConflict(have)
	}
	if have.GetAnnotations()[worker.SpecHashAnnotation] == want.GetAnnotations()[worker.SpecHashAnnotation] {
		return have, nil
	}
	live, ok := have.DeepCopyObject().(T)
	if !ok {
		return have, errors.New("owned: DeepCopyObject changed the type")
	}
	MergeMeta(live, want)
	update(live, want)
	if err := s.Client.Update(ctx, live); err != nil {
		return have, classify(err, live)
	}
	s.Event("Normal", "Updated", "updated %s %s to the current spec", kind, want.GetName())
	return live, nil
}

// Delete deletes obj if the parent controls it, guarded by its UID so a
// newer object of the same name is never hit. It reports whether this call
// deleted it (false when it was already gone or not ours).
func (s *Set) Delete(ctx context.Context, obj client.Object) (bool, error) {
	if !IsControlledBy(obj, s.Parent) {
		return false, nil
	}
	uid := obj.GetUID()
	err := s.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return false, nil
	}
	return err == nil, err
}

// MergeMeta puts want's labels and annotations on live, keeping others'.
func MergeMeta(live, want client.Object) {
	labels := live.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, want.GetLabels())
	live.SetLabels(labels)
	ann := live.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	maps.Copy(ann, want.GetAnnotations())
	live.SetAnnotations(ann)
}

// ParentAlive reads obj afresh through live and reports whether it still
// exists with the same UID and is not being deleted.
func ParentAlive(ctx context.Context, live client.Reader, obj client.Object) (bool, error) {
	cur, ok := obj.DeepCopyObject().(client.Object)
	if !ok {
		return false, nil
	}
	err := live.Get(ctx, client.ObjectKeyFromObject(obj), cur)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return cur.GetUID() == obj.GetUID() && cur.GetDeletionTimestamp() == nil, nil
}

// IsControlledBy reports whether obj's controller reference names owner.
func IsControlledBy(obj, owner metav1.Object) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == owner.GetUID()
}

func nameConflict(o client.Object) error {
	kind := o.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		kind = reflect.TypeOf(o).Elem().Name()
	}
	return worker.Problemf(worker.ReasonNameConflict, "%s %s exists and is not owned by this object; delete or rename it (an object of a deleted predecessor goes away by itself)", kind, o.GetName())
}

// classify turns the API server's refusal of an object into a Problem for
// the user; other errors stay errors and are retried.
func classify(err error, o client.Object) error {
	if apierrors.IsInvalid(err) {
		kind := o.GetObjectKind().GroupVersionKind().Kind
		return worker.Problemf(worker.ReasonInvalidTemplate, "the API server rejected %s %s: %v", kind, o.GetName(), err)
	}
	return err
}

func isNil[T client.Object](o T) bool {
	v := reflect.ValueOf(o)
	return !v.IsValid() || v.Kind() == reflect.Pointer && v.IsNil()
}
