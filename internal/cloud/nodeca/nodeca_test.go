package nodeca

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/verge-edge/verge/internal/pki"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Replicas starting at once all end up with the same CA.
func TestConcurrentCreateYieldsOneCA(t *testing.T) {
	cs := testenv.Client(t)
	ns := testenv.Namespace(t)
	var wg sync.WaitGroup
	hashes := make([]string, 8)
	errs := make([]error, 8)
	for i := range hashes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ca, err := LoadOrCreate(context.Background(), cs, ns)
			errs[i] = err
			if err == nil {
				hashes[i] = pki.Hash(ca.Cert)
			}
		}()
	}
	wg.Wait()
	for i := range hashes {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		if hashes[i] != hashes[0] {
			t.Fatalf("replica %d got CA %s, replica 0 got %s", i, hashes[i], hashes[0])
		}
	}
	again, err := LoadOrCreate(context.Background(), cs, ns)
	if err != nil || pki.Hash(again.Cert) != hashes[0] {
		t.Fatalf("reload: %v", err)
	}
}

func TestDamagedSecretIsNotReplaced(t *testing.T) {
	cs := testenv.Client(t)
	ns := testenv.Namespace(t)
	ctx := context.Background()
	_, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: SecretName},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: []byte("garbage"), corev1.TLSPrivateKeyKey: []byte("garbage")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = LoadOrCreate(ctx, cs, ns)
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "never replaced automatically") {
		t.Fatalf("want a refusal explaining recovery, got %v", err)
	}
	s, _ := cs.CoreV1().Secrets(ns).Get(ctx, SecretName, metav1.GetOptions{})
	if string(s.Data[corev1.TLSCertKey]) != "garbage" {
		t.Fatal("the damaged Secret was overwritten")
	}
}

func TestMissingNamespaceIsExplained(t *testing.T) {
	_, err := LoadOrCreate(context.Background(), testenv.Client(t), "no-such-namespace")
	if !errors.Is(err, ErrNoNamespace) || !strings.Contains(err.Error(), "namespace no-such-namespace does not exist") {
		t.Fatalf("got %v", err)
	}
}
