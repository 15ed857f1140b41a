package nodeview

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/workqueue"

	"github.com/verge-edge/verge/internal/protocol/downsync"
	"github.com/verge-edge/verge/internal/protocol/objkey"
	"github.com/verge-edge/verge/internal/protocol/wire"
)

// Minter mints service-account tokens bound to pods with the TokenRequest
// API and mints a fresh one at 80 % of each token's lifetime, like the
// kubelet does, so edge pods always hold a valid token while connected and
// keep the last one while offline.
type Minter struct {
	client kubernetes.Interface
	logger *slog.Logger
	now    func() time.Time
	queue  workqueue.TypedRateLimitingInterface[string]

	mu      sync.Mutex
	entries map[string]*tokenEntry // node + " " + key
}

type tokenEntry struct {
	node, key, podUID string
	req               TokenRequest
	deliver           func(downsync.Object)
}

// NewMinter returns a Minter; call Start to run its workers.
func NewMinter(client kubernetes.Interface, logger *slog.Logger) *Minter {
	return &Minter{
		client:  client,
		logger:  logger,
		now:     time.Now,
		queue:   workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](), workqueue.TypedRateLimitingQueueConfig[string]{Name: "verge_serviceaccount_tokens"}),
		entries: map[string]*tokenEntry{},
	}
}

// Want asks for a token for a pod's volume on node, first minted at
// notBefore; deliver receives each minted version.
func (m *Minter) Want(node, podUID string, req TokenRequest, notBefore time.Time, deliver func(downsync.Object)) {
	key := objkey.Key(ServiceAccountTokens, req.Namespace, objkey.TokenName(req.Pod, req.Audiences, req.ExpirationSeconds))
	id := node + " " + key
	m.mu.Lock()
	m.entries[id] = &tokenEntry{node: node, key: key, podUID: podUID, req: req, deliver: deliver}
	m.mu.Unlock()
	if wait := notBefore.Sub(m.now()); wait > 0 {
		m.queue.AddAfter(id, wait)
		return
	}
	m.queue.Add(id)
}

// Drop stops minting a token.
func (m *Minter) Drop(node, key string) {
	m.mu.Lock()
	delete(m.entries, node+" "+key)
	m.mu.Unlock()
}

// Start runs workers until ctx ends.
func (m *Minter) Start(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		m.queue.ShutDown()
	}()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m.processNext(ctx) {
			}
		}()
	}
	wg.Wait()
	return nil
}

func (m *Minter) processNext(ctx context.Context) bool {
	id, quit := m.queue.Get()
	if quit {
		return false
	}
	defer m.queue.Done(id)
	m.mu.Lock()
	e := m.entries[id]
	m.mu.Unlock()
	if e == nil {
		m.queue.Forget(id)
		return true
	}
	exp := e.req.ExpirationSeconds
	if exp < 600 {
		exp = 600 // the API server's minimum
	}
	tr, err := m.client.CoreV1().ServiceAccounts(e.req.Namespace).CreateToken(ctx, e.req.ServiceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         e.req.Audiences,
			ExpirationSeconds: &exp,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: e.req.Pod, UID: types.UID(e.podUID)},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			// The pod or its service account is gone; the view drops the
			// entry when the pod leaves, so just stop here.
			m.queue.Forget(id)
			return true
		}
		m.logger.Warn("minting service-account token failed; retrying", "node", e.node, "token", e.key, "error", err)
		m.queue.AddRateLimited(id)
		return true
	}
	m.queue.Forget(id)
	expiry := tr.Status.ExpirationTimestamp.Time
	m.mu.Lock()
	current := m.entries[id] == e
	m.mu.Unlock()
	if current {
		e.deliver(downsync.Object{
			Key: e.key,
			// A later mint expires later: the version orders tokens across
			// replicas, so the edge keeps whichever lasts longest.
			Version: downsync.Version{UID: e.podUID, ResourceVersion: strconv.FormatInt(expiry.Unix(), 10)},
			Body:    &wire.ServiceAccountToken{Token: tr.Status.Token, ExpirationTimestamp: expiry},
		})
	}
	refresh := time.Duration(float64(expiry.Sub(m.now())) * 0.8)
	m.queue.AddAfter(id, max(refresh, time.Minute))
	return true
}
