// Package secret reads the credentials a sink needs from where Kubernetes
// puts them for a mapper: environment variables filled from a Secret, or
// files of a mounted Secret. The Device CRD never carries credentials, so
// nothing here reads them from a sink's config.
//
// A Credential is resolved every time it is used (per request or per new
// connection), so a rotated Secret file takes effect without a restart.
package secret

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// LookupEnv looks up an environment variable; os.LookupEnv by default.
type LookupEnv func(name string) (string, bool)

// Credential names where one secret value comes from. File wins over Env
// when both are set.
type Credential struct {
	// Env is the environment variable holding the value.
	Env string `json:"env,omitempty"`
	// File is the path of a file holding the value, usually a key of a
	// Secret mounted as a volume. One trailing newline is removed.
	File string `json:"file,omitempty"`
}

// IsZero reports whether the credential names no source.
func (c Credential) IsZero() bool { return c.Env == "" && c.File == "" }

// String names the source, never the value.
func (c Credential) String() string {
	switch {
	case c.File != "":
		return "file " + c.File
	case c.Env != "":
		return "environment variable " + c.Env
	}
	return "no source"
}

// ErrNotSet is returned by Require when the source holds no value.
var ErrNotSet = errors.New("credential not set")

// Resolve returns the value and whether the source had one. A named file
// that cannot be read is an error; an unset variable is not.
func (c Credential) Resolve(lookup LookupEnv) (string, bool, error) {
	if c.File != "" {
		b, err := os.ReadFile(c.File)
		if err != nil {
			return "", false, fmt.Errorf("reading credential %s: %w", c, err)
		}
		v := strings.TrimSuffix(string(b), "\n")
		v = strings.TrimSuffix(v, "\r")
		return v, true, nil
	}
	if c.Env == "" {
		return "", false, nil
	}
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v, ok := lookup(c.Env)
	return v, ok, nil
}

// Require is Resolve for a value the sink cannot work without; what is
// names it in the error ("the InfluxDB token").
func (c Credential) Require(lookup LookupEnv, what string) (string, error) {
	v, ok, err := c.Resolve(lookup)
	if err != nil {
		return "", err
	}
	if !ok || v == "" {
		return "", fmt.Errorf("%w: %s is read from %s, which is empty or unset; set it from a Secret in the mapper's Deployment", ErrNotSet, what, c)
	}
	return v, nil
}

// Or returns c, or def when c names no source.
func (c Credential) Or(def Credential) Credential {
	if c.IsZero() {
		return def
	}
	return c
}
