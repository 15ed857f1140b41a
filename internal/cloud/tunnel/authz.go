package tunnel

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Decisions are cached as long as the kubelet caches its webhook answers
// by default.
const (
	allowedTTL = 5 * time.Minute
	deniedTTL  = 30 * time.Second
	maxCached  = 4096
)

// authorizer decides, as a kubelet in Webhook mode does, whether the caller
// may use a node's kubelet API: a SubjectAccessReview for the caller's
// certificate identity on nodes/proxy of that node. Being signed by the
// cluster's client CA proves who the caller is, not that it may exec into
// pods; the API server's own client passes (it is a cluster admin).
type authorizer struct {
	kube kubernetes.Interface
	now  func() time.Time

	mu    sync.Mutex
	cache map[string]decision
}

type decision struct {
	allowed bool
	reason  string
	expires time.Time
}

func newAuthorizer(kube kubernetes.Interface) *authorizer {
	return &authorizer{kube: kube, now: time.Now, cache: map[string]decision{}}
}

// verbFor maps an HTTP method to the verb the kubelet authorizes.
func verbFor(method string) string {
	switch method {
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return "get"
}

// authorize reports whether the certificate's identity may call verb on
// node's kubelet API, and if not, why.
func (a *authorizer) authorize(ctx context.Context, cert *x509.Certificate, verb, node string) (bool, string, error) {
	user, groups := cert.Subject.CommonName, slices.Clone(cert.Subject.Organization)
	slices.Sort(groups)
	key := strings.Join([]string{user, strings.Join(groups, ","), verb, node}, "\x00")
	now := a.now()
	a.mu.Lock()
	d, ok := a.cache[key]
	a.mu.Unlock()
	if ok && now.Before(d.expires) {
		return d.allowed, d.reason, nil
	}
	review, err := a.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   user,
			Groups: groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: verb, Resource: "nodes", Subresource: "proxy", Name: node,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("asking the API server whether %s may use node %s: %w", user, node, err)
	}
	d = decision{allowed: review.Status.Allowed, reason: review.Status.Reason, expires: now.Add(deniedTTL)}
	if d.allowed {
		d.expires = now.Add(allowedTTL)
	}
	a.mu.Lock()
	if len(a.cache) >= maxCached {
		for k, v := range a.cache {
			if !now.Before(v.expires) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= maxCached {
			a.cache = map[string]decision{}
		}
	}
	a.cache[key] = d
	a.mu.Unlock()
	return d.allowed, d.reason, nil
}
