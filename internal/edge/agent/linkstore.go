package agent

import (
	"context"

	"github.com/verge-edge/verge/internal/edge/hubclient"
	"github.com/verge-edge/verge/internal/edge/store"
	"github.com/verge-edge/verge/internal/protocol/downsync"
	"github.com/verge-edge/verge/internal/protocol/objkey"
)

// linkStore is the edge store as the hub client sees it.
type linkStore struct{ s *store.Store }

// LinkStore adapts the edge store to what the hub client needs, as
// verge-edge does (for tests that run a hub client on a real store).
func LinkStore(s *store.Store) hubclient.Store { return linkStore{s} }

func (l linkStore) Inventory(ctx context.Context) ([]downsync.Meta, error) {
	inv, err := l.s.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]downsync.Meta, len(inv))
	for i, m := range inv {
		out[i] = downsync.Meta{Key: m.Key, Version: downsync.Version{UID: m.UID, ResourceVersion: m.ResourceVersion}}
	}
	return out, nil
}

func (l linkStore) Version(ctx context.Context, key string) (downsync.Version, bool, error) {
	m, ok, err := l.s.GetMeta(ctx, key)
	return downsync.Version{UID: m.UID, ResourceVersion: m.ResourceVersion}, ok, err
}

func (l linkStore) Apply(ctx context.Context, ops []hubclient.Op) error {
	out := make([]store.Op, len(ops))
	for i, op := range ops {
		o := op.Object
		out[i] = store.Op{Delete: op.Delete, Object: store.Object{
			Meta: store.Meta{Key: o.Key, UID: o.UID, ResourceVersion: o.ResourceVersion},
			Kind: kindOf(o.Key),
			Data: o.Data,
		}}
	}
	_, err := l.s.Apply(ctx, out)
	return err
}

func (l linkStore) Pending(ctx context.Context, n int, skip func(id int64) bool) ([]hubclient.Report, error) {
	rs, err := l.s.Pending(ctx, n, skip)
	if err != nil {
		return nil, err
	}
	out := make([]hubclient.Report, len(rs))
	for i, r := range rs {
		out[i] = hubclient.Report{ID: r.ID, Gen: r.Gen, Key: r.Key, Kind: r.Kind, Data: r.Payload}
	}
	return out, nil
}

func (l linkStore) Ack(ctx context.Context, id, gen int64) error { return l.s.Ack(ctx, id, gen) }

// kindOf names the kind of the object under key, for the store's records.
func kindOf(key string) string {
	resource, _, _, err := objkey.Split(key)
	if err != nil {
		return ""
	}
	switch resource {
	case objkey.Pods:
		return "Pod"
	case objkey.ConfigMaps:
		return "ConfigMap"
	case objkey.Secrets:
		return "Secret"
	case objkey.ServiceAccountTokens:
		return "ServiceAccountToken"
	}
	return resource
}
