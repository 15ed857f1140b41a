// Package bootstraptoken keeps join tokens (internal/jointoken) as
// Kubernetes bootstrap tokens: Secrets of type bootstrap.kubernetes.io/token
// in kube-system, which the controller-manager's token cleaner deletes when
// they expire. Create makes one; Redeem checks a presented token and counts
// a use, with an optimistic-concurrency update so that two nodes racing for
// the last use cannot both win.
package bootstraptoken

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/verge-edge/verge/internal/jointoken"
)

// Secret layout, as Kubernetes' bootstrap tokens define it.
const (
	SecretType      = corev1.SecretType("bootstrap.kubernetes.io/token")
	SecretNamespace = metav1.NamespaceSystem
	secretPrefix    = "bootstrap-token-"
	keyID           = "token-id"
	keySecret       = "token-secret"
	keyExpiration   = "expiration"
	keyDescription  = "description"
	keyAuthn        = "usage-bootstrap-authentication"
	keySigning      = "usage-bootstrap-signing"

	// Annotations Verge adds: what the token is for and how often it may
	// still be used.
	AnnotationPurpose = "verge.dev/purpose"
	AnnotationMaxUses = "verge.dev/max-uses"
	AnnotationUses    = "verge.dev/uses"
	purposeJoin       = "edge-join"
)

// Secrets is where token Secrets live: the kube-system Secrets of the
// cluster (client-go's CoreV1().Secrets(SecretNamespace) is one).
type Secrets interface {
	Create(ctx context.Context, s *corev1.Secret, o metav1.CreateOptions) (*corev1.Secret, error)
	Get(ctx context.Context, name string, o metav1.GetOptions) (*corev1.Secret, error)
	Update(ctx context.Context, s *corev1.Secret, o metav1.UpdateOptions) (*corev1.Secret, error)
}

// Options for a new token.
type Options struct {
	TTL         time.Duration
	MaxUses     int
	Description string
}

// Create makes a new token Secret and returns the token for caHash.
func Create(ctx context.Context, secrets Secrets, caHash string, o Options, now time.Time) (jointoken.Token, error) {
	if o.TTL <= 0 {
		return jointoken.Token{}, errors.New("token TTL must be positive")
	}
	if o.MaxUses <= 0 {
		o.MaxUses = 1
	}
	t := jointoken.Token{ID: randomString(6), Secret: randomString(16), CAHash: caHash}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      secretPrefix + t.ID,
			Namespace: SecretNamespace,
			Annotations: map[string]string{
				AnnotationPurpose: purposeJoin,
				AnnotationMaxUses: strconv.Itoa(o.MaxUses),
				AnnotationUses:    "0",
			},
		},
		Type: SecretType,
		StringData: map[string]string{
			keyID:          t.ID,
			keySecret:      t.Secret,
			keyExpiration:  now.Add(o.TTL).UTC().Format(time.RFC3339),
			keyDescription: o.Description,
			// Not a credential for the Kubernetes API: only Verge redeems it.
			keyAuthn:   "false",
			keySigning: "false",
		},
	}
	if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return jointoken.Token{}, fmt.Errorf("creating the token Secret: %w", err)
	}
	return t, nil
}

// RedeemError says why a token was refused, in words for the joining user.
type RedeemError struct{ Reason string }

func (e *RedeemError) Error() string { return e.Reason }

// Redeem checks a token's secret, expiry and remaining uses, and counts one
// use. The refusal reasons are meant for the person running `verge join`.
func Redeem(ctx context.Context, secrets Secrets, id, secret string, now time.Time) error {
	for attempt := 0; ; attempt++ {
		s, err := secrets.Get(ctx, secretPrefix+id, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return &RedeemError{fmt.Sprintf("join token %s does not exist (wrong token, or expired and cleaned up): create a new one with `verge token create`", id)}
		}
		if err != nil {
			return fmt.Errorf("reading join token %s: %w", id, err)
		}
		if err := check(s, secret, now); err != nil {
			return err
		}
		uses, _ := strconv.Atoi(s.Annotations[AnnotationUses])
		s.Annotations[AnnotationUses] = strconv.Itoa(uses + 1)
		_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) || attempt >= 10 {
			return fmt.Errorf("recording the use of join token %s: %w", id, err)
		}
	}
}

// check validates a token Secret against a presented secret (pure).
func check(s *corev1.Secret, secret string, now time.Time) error {
	id := string(s.Data[keyID])
	if s.Type != SecretType || s.Annotations[AnnotationPurpose] != purposeJoin {
		return &RedeemError{fmt.Sprintf("token %s is not a Verge join token: create one with `verge token create`", id)}
	}
	if subtle.ConstantTimeCompare(s.Data[keySecret], []byte(secret)) != 1 {
		return &RedeemError{fmt.Sprintf("join token %s: wrong secret", id)}
	}
	if exp, err := time.Parse(time.RFC3339, string(s.Data[keyExpiration])); err != nil || !now.Before(exp) {
		return &RedeemError{fmt.Sprintf("join token %s expired at %s: create a new one with `verge token create`", id, string(s.Data[keyExpiration]))}
	}
	maxUses, _ := strconv.Atoi(s.Annotations[AnnotationMaxUses])
	uses, _ := strconv.Atoi(s.Annotations[AnnotationUses])
	if maxUses <= 0 {
		maxUses = 1
	}
	if uses >= maxUses {
		return &RedeemError{fmt.Sprintf("join token %s was already used (%d of %d uses): create a new one with `verge token create`", id, uses, maxUses)}
	}
	return nil
}

// randomString returns n uniformly random characters from [a-z0-9].
func randomString(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	const limit = 256 - 256%len(alphabet) // reject bytes that would bias the draw
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			panic(err) // crypto/rand does not fail on Linux
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}
