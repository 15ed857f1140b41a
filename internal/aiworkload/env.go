package aiworkload

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/verge-edge/verge/pkg/ai/workerenv"
)

// envReader reads Verge's own worker variables, collecting every problem
// as a *workerenv.Error.
type envReader struct {
	get  workerenv.Lookup
	errs []error
}

// str returns the first of names that is set, and its name.
func (r *envReader) str(names ...string) (string, string) {
	for _, n := range names {
		if v, ok := r.get(n); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), n
		}
	}
	return "", names[0]
}

func (r *envReader) fail(name, value, want string) {
	r.errs = append(r.errs, &workerenv.Error{Variable: name, Value: value, Want: want})
}

func (r *envReader) required(name, want string) string {
	v, _ := r.str(name)
	if v == "" {
		r.errs = append(r.errs, &workerenv.Error{Variable: name, Want: want})
	}
	return v
}

func (r *envReader) intIn(def, lo, hi int, names ...string) int {
	s, name := r.str(names...)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		r.fail(name, s, fmt.Sprintf("an integer from %d to %d", lo, hi))
		return def
	}
	return n
}

// float reads a number in [lo, hi] (or (lo, hi] when openLo).
func (r *envReader) float(def, lo, hi float64, openLo bool, names ...string) float64 {
	s, name := r.str(names...)
	if s == "" {
		return def
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < lo || f > hi || openLo && f == lo {
		bracket := "["
		if openLo {
			bracket = "("
		}
		r.fail(name, s, fmt.Sprintf("a number in %s%g, %g]", bracket, lo, hi))
		return def
	}
	return f
}

func (r *envReader) duration(def time.Duration, name string) time.Duration {
	s, _ := r.str(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		r.fail(name, s, "a positive Go duration such as 200ms or 1s")
		return def
	}
	return d
}

func (r *envReader) host(def, name string) string {
	h, _ := r.str(name)
	if h == "" {
		return def
	}
	if strings.ContainsAny(h, "/:?# ") && net.ParseIP(h) == nil {
		r.fail(name, h, "an IP address or host name without scheme, port or path")
	}
	return h
}

func (r *envReader) oneOf(def string, allowed []string, name string) string {
	s, _ := r.str(name)
	if s == "" {
		return def
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	r.fail(name, s, "one of "+strings.Join(allowed, ", "))
	return def
}

// join merges the SDK's error (from workerenv) with ours.
func (r *envReader) join(sdk error) error {
	return errors.Join(append([]error{sdk}, r.errs...)...)
}

// lcServerSet: the controllers always set LC_SERVER; a worker run by hand
// without it does not report (workerenv fills a default address).
func lcServerSet(get workerenv.Lookup) bool {
	v, ok := get("LC_SERVER")
	return ok && strings.TrimSpace(v) != ""
}
