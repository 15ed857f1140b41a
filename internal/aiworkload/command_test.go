package aiworkload

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestCommand(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	ran := false
	ok := func(context.Context, func(string) (string, bool), *slog.Logger) error { ran = true; return nil }
	failing := func(context.Context, func(string) (string, bool), *slog.Logger) error {
		return errors.New("environment variable MODEL_URL is not set")
	}
	for _, tc := range []struct {
		name     string
		args     []string
		run      Worker
		code     int
		out, err string
		ran      bool
	}{
		{"runs the worker", nil, ok, 0, "", "", true},
		{"version", []string{"--version"}, ok, 0, "v", "", false},
		{"worker error", nil, failing, 1, "", "verge-test: environment variable MODEL_URL is not set", false},
		{"stray argument", []string{"serve"}, ok, 1, "", "workers are configured by their environment", false},
		{"bad log level", []string{"--log-level", "loud"}, ok, 1, "", "loud", false},
	} {
		ran = false
		var stdout, stderr bytes.Buffer
		code := Command("verge-test", tc.args, noEnv, &stdout, &stderr, tc.run)
		if code != tc.code || !strings.HasPrefix(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) || ran != tc.ran {
			t.Errorf("%s: code %d stdout %q stderr %q ran %v", tc.name, code, stdout.String(), stderr.String(), ran)
		}
	}
}
