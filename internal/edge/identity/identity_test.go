package identity

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/cloud/bootstraptoken"
	"github.com/verge-edge/verge/internal/cloudtest"
	"github.com/verge-edge/verge/internal/jointoken"
	"github.com/verge-edge/verge/internal/nodecert"
	"github.com/verge-edge/verge/internal/pki"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func token(t *testing.T, c *cloudtest.Cloud, o bootstraptoken.Options, now time.Time) jointoken.Token {
	t.Helper()
	if o.TTL == 0 {
		o.TTL = time.Hour
	}
	tok, err := bootstraptoken.Create(context.Background(), c.Kube.CoreV1().Secrets(bootstraptoken.SecretNamespace), pki.Hash(c.CA.Cert), o, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestJoinAndRenew(t *testing.T) {
	c := cloudtest.Start(t, cloudtest.Options{})
	ctx := context.Background()
	node := c.UniqueNode("edge-j")
	creds, err := Join(ctx, c.Addr, token(t, c, bootstraptoken.Options{}, time.Now()), node)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := creds.Certificate()
	if name, err := nodecert.NodeName(leaf); err != nil || name != node {
		t.Fatalf("joined as %q (%v), want %s", name, err, node)
	}
	dir := filepath.Join(t.TempDir(), "pki")
	if err := creds.Save(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, NodeFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("node key file mode %v, want 0600", fi.Mode().Perm())
	}
	m, err := NewManager(dir, c.Addr, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	before := m.NotAfter()
	oldKey := string(creds.KeyPEM)
	time.Sleep(1100 * time.Millisecond) // certificates have second resolution
	if err := m.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if !m.NotAfter().After(before) || m.NodeName() != node {
		t.Fatalf("renewed certificate: expires %v (was %v), node %q", m.NotAfter(), before, m.NodeName())
	}
	reloaded, err := Load(dir)
	if err != nil || string(reloaded.KeyPEM) == oldKey {
		t.Fatalf("the renewed key was not saved: %v", err)
	}
}

func TestJoinRefusals(t *testing.T) {
	c := cloudtest.Start(t, cloudtest.Options{})
	ctx := context.Background()
	node := c.UniqueNode("edge-x")
	good := token(t, c, bootstraptoken.Options{}, time.Now())
	wrongSecret := good
	wrongSecret.Secret = "aaaaaaaaaaaaaaaa"
	expired := token(t, c, bootstraptoken.Options{TTL: time.Minute}, time.Now().Add(-2*time.Minute))
	wrongCA := good
	other, _ := pki.NewCA("other", time.Hour)
	wrongCA.CAHash = pki.Hash(other.Cert)
	if _, err := Join(ctx, c.Addr, good, node); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tok  jointoken.Token
		node string
		want string
	}{
		{"wrong secret", wrongSecret, node, "wrong secret"},
		{"expired", expired, node, "expired"},
		{"already used", good, node, "already used"},
		{"CA hash mismatch", wrongCA, node, "does not match the hash in the join token"},
		{"bad node name", good, "Not_A_Name", "not valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Join(ctx, c.Addr, tc.tok, tc.node)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestRenewAtIsSpreadOver70To90Percent(t *testing.T) {
	from := time.Unix(0, 0)
	to := from.Add(100 * time.Hour)
	r := rand.New(rand.NewPCG(1, 2))
	lo, hi := to, from
	for range 1000 {
		at := RenewAt(from, to, r)
		if at.Before(from.Add(70*time.Hour)) || at.After(from.Add(90*time.Hour)) {
			t.Fatalf("renewal at %v is outside 70–90 %% of the lifetime", at.Sub(from))
		}
		lo, hi = minTime(lo, at), maxTime(hi, at)
	}
	if hi.Sub(lo) < 15*time.Hour {
		t.Errorf("renewal times not spread: %v to %v", lo.Sub(from), hi.Sub(from))
	}
}

// The rotation loop renews before expiry and reports it.
func TestRotationLoop(t *testing.T) {
	c := cloudtest.Start(t, cloudtest.Options{NodeCertValidity: 4 * time.Second})
	node := c.UniqueNode("edge-rot")
	creds, err := Join(context.Background(), c.Addr, token(t, c, bootstraptoken.Options{}, time.Now()), node)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := creds.Save(dir); err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(dir, c.Addr, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	first := m.NotAfter()
	renewed := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Start(ctx, func() { renewed <- struct{}{} }) }()
	select {
	case <-renewed:
	case <-time.After(10 * time.Second):
		t.Fatal("no renewal within the certificate's lifetime")
	}
	if !m.NotAfter().After(first) {
		t.Fatal("renewal did not extend the certificate")
	}
	if time.Now().After(first) {
		t.Fatal("renewed only after expiry")
	}
}

func TestExpiredCertificateNeedsRejoin(t *testing.T) {
	c := cloudtest.Start(t, cloudtest.Options{NodeCertValidity: time.Second})
	creds, err := Join(context.Background(), c.Addr, token(t, c, bootstraptoken.Options{}, time.Now()), c.UniqueNode("edge-old"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := creds.Save(dir); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	_, err = NewManager(dir, c.Addr, slog.New(slog.DiscardHandler))
	if !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "verge join") || !strings.Contains(err.Error(), "store is kept") {
		t.Fatalf("want ErrExpired with re-join advice, got %v", err)
	}
}

func TestLoadMissingIsExplained(t *testing.T) {
	_, err := Load(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "run verge join") {
		t.Fatalf("got %v", err)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
