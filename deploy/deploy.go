// Package deploy embeds the manifests that install Verge into a cluster, so
// the CLI and the tests apply exactly what is documented here.
package deploy

import (
	"embed"
	"fmt"
)

//go:embed verge-cloud/*.yaml systemd/verge-edge.service
var files embed.FS

// EdgeSystemdUnit is the template of verge-edge's systemd unit
// ({{.Binary}}, {{.Config}}).
func EdgeSystemdUnit() string {
	b, err := files.ReadFile("systemd/verge-edge.service")
	if err != nil {
		panic(err) // embedded at build time
	}
	return string(b)
}

// CloudIdentity returns verge-cloud's ServiceAccount (with its namespace and
// bindings), its roles, and the FlowSchema that classifies its API traffic,
// in the order to apply them.
func CloudIdentity() ([][]byte, error) {
	var out [][]byte
	for _, name := range []string{"verge-cloud/serviceaccount.yaml", "verge-cloud/rbac.yaml", "verge-cloud/flowschema.yaml"} {
		b, err := files.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("embedded manifest %s: %w", name, err)
		}
		out = append(out, b)
	}
	return out, nil
}
