// Package cli implements the `verge` command: local clusters (up, down),
// the pinned control plane (controlplane build) and version. Each command
// parses flags into an options struct and calls the package that does the
// work.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/verge-edge/verge/internal/k8sbin"
	"github.com/verge-edge/verge/internal/localup"
	"github.com/verge-edge/verge/internal/version"
)

// errUsage marks flag problems found after parsing.
var errUsage = errors.New("usage")

// New returns the root command writing to out and errOut.
func New(out, errOut io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "verge",
		Short:         "Verge extends Kubernetes to the edge",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.AddCommand(newVersion(), newUp(), newDown(), newControlPlane(), newToken(), newJoin(), newImage(), newRegistry())
	return root
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the Verge version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), version.Version)
			return nil
		},
	}
}

func newUp() *cobra.Command {
	o := localup.Options{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a local Verge cluster in the foreground until Ctrl-C",
		Long: `Starts a real Kubernetes control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler) on loopback and verge-cloud, writes
DIR/kubeconfig and prints "ready". With --edge-nodes N (default 1, needs
root) it also runs a local image registry and N edge nodes on this host,
each with its own containerd, and waits until they are Ready. Missing
binaries are built first (the first run takes several minutes). Running it
again on the same data directory resumes the same cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Out = cmd.OutOrStdout()
			o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			return localup.Up(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data-dir", ".verge", "directory holding the cluster's state, kubeconfig and logs")
	f.IntVar(&o.APIServerPort, "apiserver-port", localup.DefaultAPIServerPort, "loopback port of the Kubernetes API")
	f.IntVar(&o.CloudOpsPort, "cloud-ops-port", localup.DefaultCloudOpsPort, "loopback port of verge-cloud's health and metrics endpoint")
	f.IntVar(&o.HubPort, "hub-port", localup.DefaultHubPort, "port edge nodes connect to")
	f.IntVar(&o.TunnelPort, "tunnel-port", localup.DefaultTunnelPort, "port the API server reaches edge nodes' logs/exec through (all interfaces)")
	f.StringVar(&o.ControlPlaneSource, "controlplane-source", "", "the tools/controlplane module to build Kubernetes from (default: found from the current directory)")
	f.StringVar(&o.CloudBinary, "cloud-binary", "", "verge-cloud executable (default: next to verge, else built from source)")
	f.IntVar(&o.EdgeNodes, "edge-nodes", 1, "edge nodes to run on this host, edge-1 … edge-N (needs root; 0 for the cloud side only)")
	f.IntVar(&o.RegistryPort, "registry-port", localup.DefaultRegistryPort, "loopback port of the local image registry")
	f.IntVar(&o.EdgeOpsBasePort, "edge-ops-base-port", localup.DefaultEdgeOpsBase, "edge-i serves /healthz and /metrics on this port + i")
	f.StringVar(&o.EdgeBinary, "edge-binary", "", "verge-edge executable (default: next to verge, else built from source)")
	f.StringVar(&o.PauseBinary, "pause-binary", "", "verge-pause executable for the pod sandbox image (default: next to verge, else built from source)")
	f.IntVar(&o.MQTTBasePort, "mqtt-base-port", localup.DefaultMQTTBasePort, "edge-i's MQTT bus listens on 127.0.0.1 at this port + i")
	f.StringVar(&o.Demo, "demo", "", `also deploy a demo: "devices" runs a simulated Modbus thermostat (verge-devsim) and verge-mapper-modbus on edge-1 with a DeviceModel and Device from examples/devices/modbus`)
	f.IntVar(&o.DemoModbusPort, "demo-modbus-port", localup.DefaultDemoModbusPort, "loopback port of the devices demo's simulated Modbus device")
	f.StringVar(&o.DevsimBinary, "devsim-binary", "", "verge-devsim executable for --demo devices (default: next to verge, else built from source)")
	f.StringVar(&o.MapperBinary, "mapper-binary", "", "verge-mapper-modbus executable for --demo devices (default: next to verge, else built from source)")
	return cmd
}

func newDown() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the local cluster that `verge up` runs from a data directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return localup.Down(cmd.Context(), dataDir, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", ".verge", "the data directory given to verge up")
	return cmd
}

func newControlPlane() *cobra.Command {
	cp := &cobra.Command{Use: "controlplane", Short: "Manage the pinned upstream Kubernetes binaries"}
	var source string
	build := &cobra.Command{
		Use:   "build",
		Short: "Build the pinned Kubernetes binaries (once per pin) and print where they are",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if source == "" {
				wd, err := os.Getwd()
				if err != nil {
					return err
				}
				if source, err = k8sbin.FindSource(wd); err != nil {
					return err
				}
			}
			cache, err := k8sbin.DefaultCacheDir()
			if err != nil {
				return err
			}
			bins, err := k8sbin.Ensure(cmd.Context(), k8sbin.Options{SourceDir: source, CacheDir: cache, Progress: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), bins.Dir)
			return nil
		},
	}
	build.Flags().StringVar(&source, "source", "", "the tools/controlplane module (default: found from the current directory)")
	cp.AddCommand(build)
	return cp
}

// Main runs the CLI with args and returns the process exit code.
func Main(ctx context.Context, args []string, out, errOut io.Writer) int {
	root := New(out, errOut)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(errOut, "verge:", err)
		return 1
	}
	return 0
}
