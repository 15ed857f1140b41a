// Package logging builds the structured logger every Verge daemon uses.
// (verge-cloud also routes the Kubernetes client libraries' klog output
// into it; that stays out of here so that verge-edge does not link klog.)
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Options selects the log level and format.
type Options struct {
	// Level is debug, info, warn or error.
	Level string `json:"level,omitempty"`
	// Format is text or json.
	Format string `json:"format,omitempty"`
}

// Defaults are info-level text logs.
func Defaults() Options { return Options{Level: "info", Format: "text"} }

// Validate reports an unknown level or format.
func (o Options) Validate() error {
	if _, err := parseLevel(o.Level); err != nil {
		return err
	}
	switch o.Format {
	case "text", "json":
		return nil
	}
	return fmt.Errorf("log format %q is not supported: use text or json", o.Format)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("log level %q is not supported: use debug, info, warn or error", s)
	}
	return l, nil
}

// New returns a logger writing to w.
func New(o Options, w io.Writer) (*slog.Logger, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	level, _ := parseLevel(o.Level)
	ho := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, ho)
	if o.Format == "json" {
		h = slog.NewJSONHandler(w, ho)
	}
	return slog.New(h), nil
}
