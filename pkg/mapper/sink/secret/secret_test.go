package secret

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "password")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	crlf := filepath.Join(dir, "crlf")
	if err := os.WriteFile(crlf, []byte("win\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"PASSWORD": "from-env", "EMPTY": ""}[k]
		return v, ok
	}
	tests := []struct {
		name    string
		c       Credential
		want    string
		wantOK  bool
		wantErr string
	}{
		{name: "env", c: Credential{Env: "PASSWORD"}, want: "from-env", wantOK: true},
		{name: "file wins", c: Credential{Env: "PASSWORD", File: file}, want: "from-file", wantOK: true},
		{name: "crlf trimmed", c: Credential{File: crlf}, want: "win", wantOK: true},
		{name: "unset env", c: Credential{Env: "NOPE"}},
		{name: "empty env is set", c: Credential{Env: "EMPTY"}, wantOK: true},
		{name: "no source", c: Credential{}},
		{name: "missing file", c: Credential{File: filepath.Join(dir, "nope")}, wantErr: "reading credential file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := tc.c.Resolve(env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want || ok != tc.wantOK {
				t.Errorf("Resolve = %q, %v, %v; want %q, %v", got, ok, err, tc.want, tc.wantOK)
			}
		})
	}
}

func TestRequireNamesTheSource(t *testing.T) {
	env := func(k string) (string, bool) { return "", k == "EMPTY" }
	for _, c := range []Credential{{Env: "TOKEN"}, {Env: "EMPTY"}} {
		_, err := c.Require(env, "the InfluxDB token")
		if !errors.Is(err, ErrNotSet) || !strings.Contains(err.Error(), "the InfluxDB token is read from environment variable "+c.Env) {
			t.Errorf("Require(%v) = %v", c, err)
		}
	}
	if got := (Credential{}).Or(Credential{Env: "PASSWORD"}); got.Env != "PASSWORD" {
		t.Errorf("Or on an empty credential = %v", got)
	}
	if got := (Credential{File: "/f"}).Or(Credential{Env: "PASSWORD"}); got.File != "/f" || got.Env != "" {
		t.Errorf("Or on a set credential = %v", got)
	}
}
