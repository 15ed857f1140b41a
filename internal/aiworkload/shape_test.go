package aiworkload

import (
	"os/exec"
	"strings"
	"testing"
)

// The workers are images of one static binary that run on edge nodes: no
// cgo, and none of the cloud side, API-server or Kubernetes-client code.
func TestWorkerBinariesStayLean(t *testing.T) {
	forbidden := []string{
		"github.com/verge-edge/verge/internal/cloud",
		"github.com/verge-edge/verge/internal/edge",
		"k8s.io/client-go",
		"k8s.io/apiserver",
		"sigs.k8s.io/controller-runtime",
	}
	for _, bin := range []string{"verge-ji-edge", "verge-ji-cloud", "verge-fl-aggregator", "verge-fl-trainer"} {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{if .CgoFiles}}cgo{{end}}", "../../cmd/"+bin)
		cmd.Env = append(cmd.Environ(), "CGO_ENABLED=1") // what would use cgo if it could
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %s: %v", bin, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			pkg, cgo, _ := strings.Cut(line, " ")
			if cgo != "" && pkg != "runtime/cgo" && pkg != "net" && pkg != "os/user" && pkg != "plugin" {
				t.Errorf("%s links cgo package %s", bin, pkg)
			}
			for _, f := range forbidden {
				if pkg == f || strings.HasPrefix(pkg, f+"/") {
					t.Errorf("%s links %s", bin, pkg)
				}
			}
		}
	}
}
