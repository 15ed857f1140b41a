package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/verge-edge/verge/internal/edge/podruntime"
	"github.com/verge-edge/verge/internal/edge/store"
	"github.com/verge-edge/verge/internal/protocol/kube"
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
func (d desiredState) Pods(ctx context.Context) ([]*kube.Pod, error) {
	objs, err := d.store.List(ctx, objkey.Pods+"/")
	if err != nil {
		return nil, err
	}
	pods := make([]*kube.Pod, 0, len(objs))
	for _, o := range objs {
		p := &kube.Pod{}
		if err := decode(o, p); err != nil {
			return nil, err
		}
		pods = append(pods, p)
	}
	return pods, nil
}

func (d desiredState) ConfigMap(ctx context.Context, namespace, name string) (*kube.ConfigMap, error) {
	cm := &kube.ConfigMap{}
	return cm, d.get(ctx, objkey.ConfigMaps, namespace, name, cm)
}

func (d desiredState) Secret(ctx context.Context, namespace, name string) (*kube.Secret, error) {
	s := &kube.Secret{}
	return s, d.get(ctx, objkey.Secrets, namespace, name, s)
}

// ServiceAccountToken returns the token the cloud minted for the pod's
// request (see nodeview.Minter), as long as it has not expired.
func (d desiredState) ServiceAccountToken(ctx context.Context, namespace, podName, _ string, audiences []string, expirationSeconds int64) (string, error) {
	var tok wire.ServiceAccountToken
	if err := d.get(ctx, objkey.ServiceAccountTokens, namespace, objkey.TokenName(podName, audiences, expirationSeconds), &tok); err != nil {
		if errors.Is(err, podruntime.ErrNotFound) {
			return "", fmt.Errorf("no service-account token for pod %s/%s yet: the cloud mints it once the pod is sent (is the node connected?)", namespace, podName)
		}
		return "", err
	}
	if !tok.ExpirationTimestamp.After(d.now()) {
		return "", fmt.Errorf("the service-account token of pod %s/%s expired at %s while the node could not reach the cloud", namespace, podName, tok.ExpirationTimestamp.Format(time.RFC3339))
	}
	return tok.Token, nil
}

// get reads and decodes one stored object; a missing one is an error
// wrapping podruntime.ErrNotFound, as the pod runtime expects.
func (d desiredState) get(ctx context.Context, resource, namespace, name string, into any) error {
	o, ok, err := d.store.Get(ctx, objkey.Key(resource, namespace, name))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s %q: %w", resource, name, podruntime.ErrNotFound)
	}
	return decode(o, into)
}

func decode(o store.Object, into any) error {
	if err := wire.Decode(wire.EncodingFor(o.Key), o.Data, false, into); err != nil {
		return fmt.Errorf("stored object %s cannot be decoded: %w", o.Key, err)
	}
	return nil
}
