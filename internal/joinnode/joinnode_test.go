package joinnode

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verge-edge/verge/internal/cloud/bootstraptoken"
	"github.com/verge-edge/verge/internal/cloudtest"
	"github.com/verge-edge/verge/internal/edge/config"
	"github.com/verge-edge/verge/internal/edge/identity"
	"github.com/verge-edge/verge/internal/jointoken"
	"github.com/verge-edge/verge/internal/pki"
	"github.com/verge-edge/verge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newToken(t *testing.T, c *cloudtest.Cloud) string {
	t.Helper()
	tok, err := bootstraptoken.Create(context.Background(), c.Kube.CoreV1().Secrets(bootstraptoken.SecretNamespace), pki.Hash(c.CA.Cert), bootstraptoken.Options{TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok.String()
}

func TestJoinWritesCredentialsAndConfig(t *testing.T) {
	c := cloudtest.Start(t, cloudtest.Options{})
	dir := filepath.Join(t.TempDir(), "node")
	node := c.UniqueNode("edge-jn")
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Cloud: c.Addr, Token: newToken(t, c), NodeName: node, DataDir: dir,
		Labels: map[string]string{"site": "shop-3"}, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(res.ConfigPath)
	if err != nil || cfg.NodeName != node || cfg.Cloud.Address != c.Addr || cfg.Labels["site"] != "shop-3" {
		t.Fatalf("config: %+v %v", cfg, err)
	}
	if _, err := identity.Load(cfg.PKIDir()); err != nil {
		t.Fatalf("credentials: %v", err)
	}
	// The store survives a re-join.
	store := filepath.Join(dir, "store.db")
	if err := os.WriteFile(store, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), Options{Cloud: c.Addr, Token: newToken(t, c), NodeName: node, DataDir: dir, Out: &out}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(store); string(b) != "keep me" {
		t.Fatal("re-joining touched the store")
	}
	// Joining the same directory as another node is refused.
	if _, err := Run(context.Background(), Options{Cloud: c.Addr, Token: newToken(t, c), NodeName: node + "-x", DataDir: dir, Out: &out}); err == nil || !strings.Contains(err.Error(), "already belongs to node") {
		t.Fatalf("got %v", err)
	}
}

func TestFailedJoinWritesNothing(t *testing.T) {
	c := cloudtest.Start(t, cloudtest.Options{})
	tok, _ := jointoken.Parse(newToken(t, c))
	tok.Secret = "0000000000000000"
	dir := filepath.Join(t.TempDir(), "node")
	_, err := Run(context.Background(), Options{Cloud: c.Addr, Token: tok.String(), NodeName: "edge-nope", DataDir: dir, Out: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "wrong secret") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a failed join created %s", dir)
	}
	if _, err := Run(context.Background(), Options{Cloud: c.Addr, Token: "garbage", DataDir: dir, Out: &bytes.Buffer{}}); err == nil || !strings.Contains(err.Error(), "malformed join token") {
		t.Fatalf("got %v", err)
	}
}

func TestUnit(t *testing.T) {
	u, err := Unit("/usr/local/bin/verge-edge", "/var/lib/verge/edge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=/usr/local/bin/verge-edge --config /var/lib/verge/edge.yaml", "KillMode=process", "Restart=always"} {
		if !strings.Contains(u, want) {
			t.Errorf("unit lacks %q:\n%s", want, u)
		}
	}
}
