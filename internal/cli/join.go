package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/verge-edge/verge/internal/joinnode"
)

func newJoin() *cobra.Command {
	o := joinnode.Options{}
	cmd := &cobra.Command{
		Use:   "join --cloud HOST:PORT --token TOKEN",
		Short: "Make this machine an edge node and start verge-edge",
		Long: `Checks that HOST:PORT is the cloud the token was made for (by the CA hash in
the token), redeems the token for a node certificate, writes the edge
configuration into --data-dir, and then runs verge-edge in the foreground,
or with --systemd installs and starts it as a service. A failed join writes
nothing. Joining again into the same data directory keeps the node's store.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Cloud == "" || o.Token == "" {
				return fmt.Errorf("%w: --cloud and --token are required (create a token with `verge token create`)", errUsage)
			}
			if o.EdgeBinary == "" {
				var err error
				if o.EdgeBinary, err = findEdgeBinary(); err != nil {
					return err
				}
			}
			o.Out = cmd.OutOrStdout()
			res, err := joinnode.Run(cmd.Context(), o)
			if err != nil || o.Systemd {
				return err
			}
			fmt.Fprintf(o.Out, "starting %s\n", o.EdgeBinary)
			argv := []string{o.EdgeBinary, "--config", res.ConfigPath}
			return syscall.Exec(o.EdgeBinary, argv, os.Environ())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Cloud, "cloud", "", "address of verge-cloud's hub, host:port")
	f.StringVar(&o.Token, "token", "", "join token from `verge token create`")
	f.StringVar(&o.NodeName, "node-name", "", "name of this node (default: the hostname)")
	f.StringToStringVar(&o.Labels, "labels", nil, "labels for the Node object, k=v,k2=v2")
	f.StringVar(&o.DataDir, "data-dir", "/var/lib/verge", "where the node keeps its store, credentials and configuration")
	f.StringVar(&o.CRIEndpoint, "cri-endpoint", "", "containerd's CRI socket (default unix:///run/containerd/containerd.sock)")
	f.StringVar(&o.EdgeBinary, "edge-binary", "", "verge-edge executable (default: next to verge, then on PATH)")
	f.BoolVar(&o.Systemd, "systemd", false, "install and start verge-edge as a systemd service instead of running it here")
	return cmd
}

// findEdgeBinary prefers the verge-edge next to this verge, then PATH.
func findEdgeBinary() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "verge-edge")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("verge-edge"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: verge-edge is neither next to verge nor on PATH: install it or pass --edge-binary", errUsage)
}
