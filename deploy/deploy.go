// Package deploy embeds the manifests that install Verge into a cluster, so
// the CLI applies exactly what is documented here.
package deploy

import "embed"

// CloudRBAC holds verge-cloud's ClusterRole (rbac.yaml) and its in-cluster
// identity (serviceaccount.yaml).
//
//go:embed verge-cloud/*.yaml
var CloudRBAC embed.FS
