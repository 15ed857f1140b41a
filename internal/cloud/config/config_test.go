package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cloud.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFromArgs(t *testing.T) {
	file := writeFile(t, "apiVersion: verge.dev/v1alpha1\nkind: CloudConfig\nopsAddress: 127.0.0.1:9999\nlog:\n  level: debug\n")
	for _, tc := range []struct {
		name    string
		args    []string
		check   func(Cloud) bool
		wantErr string
	}{
		{"defaults", nil, func(c Cloud) bool { return c.OpsAddress == "127.0.0.1:10260" && c.InstallCRDs && c.Log.Level == "info" }, ""},
		{"file over defaults", []string{"--config", file}, func(c Cloud) bool {
			return c.OpsAddress == "127.0.0.1:9999" && c.Log.Level == "debug" && c.KubeAPIQPS == 500
		}, ""},
		{"flags over file", []string{"--config", file, "--ops-address", ":1234", "--shutdown-timeout", "3s"}, func(c Cloud) bool {
			return c.OpsAddress == ":1234" && c.Log.Level == "debug" && c.ShutdownTimeout.Duration == 3*time.Second
		}, ""},
		{"flag order does not matter", []string{"--log-level", "warn", "--config", file}, func(c Cloud) bool { return c.Log.Level == "warn" }, ""},
		{"unknown field in file", []string{"--config", writeFile(t, "apiVersion: verge.dev/v1alpha1\nkind: CloudConfig\nopsAdress: x\n")}, nil, `unknown field "opsAdress"`},
		{"wrong kind", []string{"--config", writeFile(t, "apiVersion: verge.dev/v1alpha1\nkind: EdgeConfig\n")}, nil, "want verge.dev/v1alpha1/CloudConfig"},
		{"missing file", []string{"--config", "/nonexistent/cloud.yaml"}, nil, "reading config"},
		{"bad address", []string{"--ops-address", "nocolon"}, nil, `opsAddress "nocolon" is not host:port`},
		{"bad log level", []string{"--log-level", "loud"}, nil, `log level "loud" is not supported`},
		{"every problem at once", []string{"--kube-api-qps", "0", "--log-format", "xml"}, nil, "kubeAPIQPS"},
		{"unknown flag", []string{"--no-such-flag"}, nil, "unknown flag"},
		{"stray argument", []string{"serve"}, nil, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromArgs("verge-cloud", tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("unexpected config: %+v", c)
			}
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	c := Default()
	c.KubeAPIQPS = 0
	c.Log.Format = "xml"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "kubeAPIQPS") || !strings.Contains(err.Error(), `log format "xml"`) {
		t.Fatalf("want both problems reported, got %v", err)
	}
}
