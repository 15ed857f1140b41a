// Package nodeca keeps the Verge CA, which signs node and hub certificates,
// in a Secret. It is created once, atomically: replicas starting together
// race to create the Secret and every loser reads the winner's, so all
// replicas sign with the same CA (KubeEdge's #5922, where two replicas each
// kept their own CA, cannot happen). An existing Secret that cannot be read
// as a CA is an error, never silently replaced.
package nodeca

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/verge-edge/verge/internal/pki"
)

// Errors callers stop on (retrying cannot help).
var (
	ErrDamaged     = errors.New("the Verge CA Secret is damaged")
	ErrNoNamespace = errors.New("verge-cloud's namespace does not exist")
)

// SecretName is the Secret holding the CA in verge-cloud's namespace.
const SecretName = "verge-ca"

// Validity of a new CA.
const Validity = 20 * 365 * 24 * time.Hour

// LoadOrCreate returns the CA from namespace/SecretName, creating it if
// absent.
func LoadOrCreate(ctx context.Context, cs kubernetes.Interface, namespace string) (*pki.CA, error) {
	secrets := cs.CoreV1().Secrets(namespace)
	s, err := secrets.Get(ctx, SecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		ca, genErr := pki.NewCA("verge-ca", Validity)
		if genErr != nil {
			return nil, genErr
		}
		keyPEM, genErr := pki.EncodeKey(ca.Key)
		if genErr != nil {
			return nil, genErr
		}
		s, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: SecretName, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/part-of": "verge"}},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: ca.CertPEM, corev1.TLSPrivateKeyKey: keyPEM},
		}, metav1.CreateOptions{})
		switch {
		case err == nil:
			return ca, nil
		case apierrors.IsAlreadyExists(err):
			s, err = secrets.Get(ctx, SecretName, metav1.GetOptions{}) // another replica won the race
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("%w: creating the Verge CA: namespace %s does not exist: apply deploy/verge-cloud/serviceaccount.yaml or pass the right namespace", ErrNoNamespace, namespace)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the Verge CA Secret %s/%s: %w", namespace, SecretName, err)
	}
	ca, err := pki.ParseCA(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, fmt.Errorf("%w: %s/%s: %w (it is never replaced automatically; restore it from backup, or delete it to start a new CA and re-join every node)", ErrDamaged, namespace, SecretName, err)
	}
	return ca, nil
}

// ErrNotCreated means verge-cloud has not created the CA yet.
var ErrNotCreated = errors.New("the Verge CA does not exist yet: start verge-cloud first")

// Hash reads the CA's certificate (not its key) and returns the hash
// joining nodes pin (pki.Hash).
func Hash(ctx context.Context, cs kubernetes.Interface, namespace string) (string, error) {
	s, err := cs.CoreV1().Secrets(namespace).Get(ctx, SecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("%w (%s/%s is missing)", ErrNotCreated, namespace, SecretName)
	}
	if err != nil {
		return "", fmt.Errorf("reading the Verge CA: %w", err)
	}
	cert, err := pki.ParseCert(s.Data[corev1.TLSCertKey])
	if err != nil {
		return "", fmt.Errorf("%w: %s/%s: %w", ErrDamaged, namespace, SecretName, err)
	}
	return pki.Hash(cert), nil
}
