package v1beta1

import (
	"os/exec"
	"strings"
	"testing"
)

// Clients of the devices API import this package: it may import the
// standard library, apimachinery and this module's api/ packages, nothing
// else (no k8s.io/api, no client or controller libraries). verge-edge does
// not link it at all (see devicespec).
func TestImportsOnlyApimachinery(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(imp, "/")
		switch {
		case !strings.Contains(first, "."): // standard library
		case strings.HasPrefix(imp, "k8s.io/apimachinery/"):
		case strings.HasPrefix(imp, "github.com/verge-edge/verge/api/"):
		default:
			t.Errorf("imports %s", imp)
		}
	}
}
