package agent

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/verge-edge/verge/internal/edge/podruntime"
	"github.com/verge-edge/verge/internal/edge/store"
	"github.com/verge-edge/verge/internal/protocol/objkey"
	"github.com/verge-edge/verge/internal/protocol/wire"
)

// desiredState is the pod runtime's Source: what the cloud last sent, as
// committed in the store.
type desiredState struct {
	store *store.Store
	now   func() time.Time
}

var _ podruntime.Source = desiredState{}

// Pods decodes every stored pod. One that cannot be decoded fails the whole
// call: the runtime then leaves every pod as it is, where a shorter list
// would make it stop the missing pod.
func (d desiredState) Pods(ctx context.Context) ([]*corev1.Pod, error) {
	objs, err := d.store.List(ctx, objkey.Pods+"/")
	if err != nil {
		return nil, err
	}
	pods := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		p := &corev1.Pod{}
		if err := decode(o, p); err != nil {
			return nil, err
		}
		pods = append(pods, p)
	}
	return pods, nil
}

func (d desiredState) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	return cm, d.get(ctx, objkey.ConfigMaps, namespace, name, cm)
}

func (d desiredState) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	return s, d.get(ctx, objkey.Secrets, namespace, name, s)
}

// ServiceAccountToken returns the token the cloud minted for the pod's
// request (see nodeview.Minter), as long as it has not expired.
func (d desiredState) ServiceAccountToken(ctx context.Context, namespace, podName, _ string, audiences []string, expirationSeconds int64) (string, error) {
	var tok wire.ServiceAccountToken
	if err := d.get(ctx, objkey.ServiceAccountTokens, namespace, objkey.TokenName(podName, audiences, expirationSeconds), &tok); err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("no service-account token for pod %s/%s yet: the cloud mints it once the pod is sent (is the node connected?)", namespace, podName)
		}
		return "", err
	}
	if !tok.ExpirationTimestamp.After(d.now()) {
		return "", fmt.Errorf("the service-account token of pod %s/%s expired at %s while the node could not reach the cloud", namespace, podName, tok.ExpirationTimestamp.Format(time.RFC3339))
	}
	return tok.Token, nil
}

// get reads and decodes one stored object; a missing one is a NotFound
// API error, as the pod runtime expects.
func (d desiredState) get(ctx context.Context, resource, namespace, name string, into any) error {
	o, ok, err := d.store.Get(ctx, objkey.Key(resource, namespace, name))
	if err != nil {
		return err
	}
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: resource}, name)
	}
	return decode(o, into)
}

func decode(o store.Object, into any) error {
	if err := wire.Decode(wire.EncodingFor(o.Key), o.Data, false, into); err != nil {
		return fmt.Errorf("stored object %s cannot be decoded: %w", o.Key, err)
	}
	return nil
}
