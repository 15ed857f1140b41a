package bootstraptoken

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/verge-edge/verge/internal/jointoken"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const hash = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestRandomStringAlphabet(t *testing.T) {
	for range 100 {
		tok := jointoken.Token{ID: randomString(6), Secret: randomString(16), CAHash: hash}
		if _, err := jointoken.Parse(tok.String()); err != nil {
			t.Fatalf("a random token does not parse: %v", err)
		}
	}
}

func TestRedeem(t *testing.T) {
	cs := testenv.Client(t)
	ctx := context.Background()
	now := time.Now()
	tok, err := Create(ctx, cs.CoreV1().Secrets(SecretNamespace), hash, Options{TTL: time.Hour, Description: "test"}, now)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cs.CoreV1().Secrets(SecretNamespace).Get(ctx, "bootstrap-token-"+tok.ID, metav1.GetOptions{})
	if err != nil || s.Type != SecretType || string(s.Data["usage-bootstrap-authentication"]) != "false" {
		t.Fatalf("token Secret not as expected: %+v %v", s, err)
	}
	reason := func(err error) string {
		var re *RedeemError
		if !errors.As(err, &re) {
			t.Fatalf("want a RedeemError, got %v", err)
		}
		return re.Reason
	}
	if r := reason(Redeem(ctx, cs.CoreV1().Secrets(SecretNamespace), tok.ID, "wrongwrongwrong0", now)); !strings.Contains(r, "wrong secret") {
		t.Errorf("wrong secret: %s", r)
	}
	if r := reason(Redeem(ctx, cs.CoreV1().Secrets(SecretNamespace), tok.ID, tok.Secret, now.Add(2*time.Hour))); !strings.Contains(r, "expired") {
		t.Errorf("expired: %s", r)
	}
	if err := Redeem(ctx, cs.CoreV1().Secrets(SecretNamespace), tok.ID, tok.Secret, now); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if r := reason(Redeem(ctx, cs.CoreV1().Secrets(SecretNamespace), tok.ID, tok.Secret, now)); !strings.Contains(r, "already used") {
		t.Errorf("second use: %s", r)
	}
	if r := reason(Redeem(ctx, cs.CoreV1().Secrets(SecretNamespace), "zzz999", "0123456789abcdef", now)); !strings.Contains(r, "does not exist") {
		t.Errorf("missing: %s", r)
	}
}

// Several nodes racing for a token's last use: exactly one wins.
func TestRedeemRace(t *testing.T) {
	cs := testenv.Client(t)
	ctx := context.Background()
	tok, err := Create(ctx, cs.CoreV1().Secrets(SecretNamespace), hash, Options{TTL: time.Hour, MaxUses: 2}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if Redeem(ctx, cs.CoreV1().Secrets(SecretNamespace), tok.ID, tok.Secret, time.Now()) == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 2 {
		t.Fatalf("%d redemptions of a 2-use token succeeded", wins)
	}
}
