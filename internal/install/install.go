// Package install puts Verge's cloud side into a cluster: verge-cloud's
// ServiceAccount and roles (deploy/verge-cloud), and credentials for running
// verge-cloud outside the cluster under that same identity, as `verge up`
// does.
package install

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/verge-edge/verge/deploy"
	"github.com/verge-edge/verge/internal/kubeapply"
)

// Namespace and ServiceAccount verge-cloud runs as.
const (
	Namespace      = "verge-system"
	ServiceAccount = "verge-cloud"
	tokenSecret    = "verge-cloud-token"
)

// CloudIdentity applies verge-cloud's ServiceAccount and roles.
func CloudIdentity(ctx context.Context, admin *rest.Config) error {
	a, err := kubeapply.New(admin, "verge")
	if err != nil {
		return err
	}
	manifests, err := deploy.CloudIdentity()
	if err != nil {
		return err
	}
	if err := a.Apply(ctx, manifests...); err != nil {
		return fmt.Errorf("installing verge-cloud's identity: %w", err)
	}
	return nil
}

// CloudKubeconfig returns a kubeconfig that authenticates as verge-cloud's
// ServiceAccount (through a token Secret the token controller fills),
// pointing at server and trusting caPEM.
func CloudKubeconfig(ctx context.Context, admin *rest.Config, server string, caPEM []byte) ([]byte, error) {
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return nil, err
	}
	secrets := cs.CoreV1().Secrets(Namespace)
	_, err = secrets.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: tokenSecret, Annotations: map[string]string{corev1.ServiceAccountNameKey: ServiceAccount}},
		Type:       corev1.SecretTypeServiceAccountToken,
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating verge-cloud's token: %w", err)
	}
	var token []byte
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		s, err := secrets.Get(ctx, tokenSecret, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		token = s.Data[corev1.ServiceAccountTokenKey]
		return len(token) > 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for verge-cloud's token: %w", err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["verge"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[ServiceAccount] = &clientcmdapi.AuthInfo{Token: string(token)}
	cfg.Contexts["verge"] = &clientcmdapi.Context{Cluster: "verge", AuthInfo: ServiceAccount, Namespace: Namespace}
	cfg.CurrentContext = "verge"
	return clientcmd.Write(*cfg)
}
