// Package sedna runs Verge's Sedna-compatible AI controllers in
// verge-cloud: joint inference (package jointinference) and federated
// learning (package federated), over the sedna.io/v1alpha1 API. The
// sub-packages share the worker-pod builders (worker) and the rules for
// writing owned objects (owned).
package sedna

import (
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/verge-edge/verge/internal/cloud/sedna/federated"
	"github.com/verge-edge/verge/internal/cloud/sedna/jointinference"
	"github.com/verge-edge/verge/internal/cloud/sedna/worker"
)

// Setup registers the Sedna API types and every Sedna controller with mgr.
// The zero Options mean worker.DefaultOptions().
func Setup(mgr ctrl.Manager, opts worker.Options) error {
	if err := (&jointinference.Reconciler{Options: opts}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&federated.Reconciler{Options: opts}).SetupWithManager(mgr)
}
