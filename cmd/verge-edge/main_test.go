package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A missing configuration means the node has not joined; a broken one is
// named with its problem, without sending the operator to re-join.
func TestConfigErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(broken, []byte("nodeName: a\nnodeName: b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		want       []string
		not        string
	}{
		{"missing", filepath.Join(dir, "absent.yaml"), []string{"absent.yaml", "verge join"}, ""},
		{"broken", broken, []string{broken, `"nodeName" already set`}, "verge join"},
	} {
		err := run([]string{"--config", tc.path})
		if err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.name, err, w)
			}
		}
		if tc.not != "" && strings.Contains(err.Error(), tc.not) {
			t.Errorf("%s: %q should not suggest %q", tc.name, err, tc.not)
		}
	}
}
