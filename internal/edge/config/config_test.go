package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func valid() Edge {
	c := Default()
	c.NodeName = "edge-1"
	c.Cloud.Address = "hub.example.com:10000"
	return c
}

func TestSaveLoadRoundTrip(t *testing.T) {
	c := valid()
	c.Labels = map[string]string{"site": "toll-7"}
	p := filepath.Join(t.TempDir(), "edge.yaml")
	if err := c.Save(p); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeName != "edge-1" || got.Labels["site"] != "toll-7" || got.Runtime.ReconcilePeriod != c.Runtime.ReconcilePeriod {
		t.Fatalf("round trip: %+v", got)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Edge)
		want   string
	}{
		{"node name", func(c *Edge) { c.NodeName = "Bad_Name" }, "not valid"},
		{"cloud address", func(c *Edge) { c.Cloud.Address = "nohost" }, "cloud.address"},
		{"relative data dir", func(c *Edge) { c.DataDir = "var/lib" }, "absolute"},
		{"reconcile period", func(c *Edge) { c.Runtime.ReconcilePeriod.Duration = 0 }, "reconcilePeriod"},
		{"node ip", func(c *Edge) { c.Runtime.NodeIP = "1.2.3" }, "nodeIP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error about %s, got %v", tc.want, err)
			}
		})
	}
	if err := valid().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownFieldRejected(t *testing.T) {
	p := filepath.Join(t.TempDir(), "edge.yaml")
	if err := os.WriteFile(p, []byte("apiVersion: verge.dev/v1alpha1\nkind: EdgeConfig\nnodeName: a\ncloud: {address: 'h:1'}\nnodname: typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), `unknown field "nodname"`) {
		t.Fatalf("got %v", err)
	}
}
