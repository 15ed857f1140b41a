// Package crdinstall installs and upgrades Verge's CustomResourceDefinitions
// with server-side apply, then waits until the API server serves them.
//
// Applying is idempotent: re-applying the same definitions changes nothing
// (no new resourceVersion), so every verge-cloud replica can apply at start.
// Each definition is stamped with the Verge version that applied it; a
// replica older than the stamp leaves the definition alone, so during a
// rolling upgrade an old replica never downgrades a schema a newer one
// installed.
package crdinstall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// VersionAnnotation records which Verge version last applied a CRD.
const VersionAnnotation = "verge.dev/applied-by-version"

// Installer applies CRDs.
type Installer struct {
	Client apiextclient.Interface
	// FieldManager names the applier in managedFields.
	FieldManager string
	// Version is the running Verge version; a semantic version enables the
	// no-downgrade rule, anything else (a development build) always applies.
	Version string
	Logger  *slog.Logger
	// EstablishTimeout bounds the wait for each CRD; default 1 minute.
	EstablishTimeout time.Duration
}

// Install applies every CRD and waits until each is established. It tries
// them all and reports every failure.
func (i *Installer) Install(ctx context.Context, crds []*apiextv1.CustomResourceDefinition) error {
	var errs []error
	for _, crd := range crds {
		if err := i.installOne(ctx, crd); err != nil {
			errs = append(errs, fmt.Errorf("CRD %s: %w", crd.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (i *Installer) installOne(ctx context.Context, crd *apiextv1.CustomResourceDefinition) error {
	api := i.Client.ApiextensionsV1().CustomResourceDefinitions()
	existing, err := api.Get(ctx, crd.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	case newerThanUs(existing.Annotations[VersionAnnotation], i.Version):
		i.Logger.Info("CRD installed by a newer Verge; leaving it unchanged", "crd", crd.Name,
			"installedBy", existing.Annotations[VersionAnnotation], "version", i.Version)
		return i.waitEstablished(ctx, crd.Name)
	}
	desired := crd.DeepCopy()
	desired.TypeMeta = metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"}
	desired.Status = apiextv1.CustomResourceDefinitionStatus{}
	if desired.Annotations == nil {
		desired.Annotations = map[string]string{}
	}
	desired.Annotations[VersionAnnotation] = i.Version
	body, err := json.Marshal(desired)
	if err != nil {
		return err
	}
	applied, err := api.Patch(ctx, crd.Name, types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: i.FieldManager, Force: ptr.To(true)})
	if err != nil {
		return fmt.Errorf("applying: %w", err)
	}
	if existing == nil || existing.ResourceVersion != applied.ResourceVersion {
		i.Logger.Info("CRD applied", "crd", crd.Name, "resourceVersion", applied.ResourceVersion)
	}
	return i.waitEstablished(ctx, crd.Name)
}

func (i *Installer) waitEstablished(ctx context.Context, name string) error {
	timeout := i.EstablishTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	var last *apiextv1.CustomResourceDefinition
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		crd, err := i.Client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil //nolint:nilerr // transient: keep polling until the deadline
		}
		last = crd
		return Established(crd) == nil, nil
	})
	if err != nil && last != nil {
		return Established(last)
	}
	return err
}

// Established returns nil when the API server serves the CRD, and otherwise
// the reason it does not (e.g. a names conflict).
func Established(crd *apiextv1.CustomResourceDefinition) error {
	var established, namesAccepted *apiextv1.CustomResourceDefinitionCondition
	for k := range crd.Status.Conditions {
		c := &crd.Status.Conditions[k]
		switch c.Type {
		case apiextv1.Established:
			established = c
		case apiextv1.NamesAccepted:
			namesAccepted = c
		}
	}
	if namesAccepted != nil && namesAccepted.Status == apiextv1.ConditionFalse {
		return fmt.Errorf("names not accepted: %s", namesAccepted.Message)
	}
	if established == nil || established.Status != apiextv1.ConditionTrue {
		return errors.New("not established yet")
	}
	return nil
}

// newerThanUs reports whether installedBy is a semantic version greater than
// ours (both must parse; otherwise we apply).
func newerThanUs(installedBy, ours string) bool {
	theirs, err := version.ParseSemantic(installedBy)
	if err != nil {
		return false
	}
	mine, err := version.ParseSemantic(ours)
	if err != nil {
		return false
	}
	return theirs.GreaterThan(mine)
}
