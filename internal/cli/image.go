package cli

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/verge-edge/verge/internal/imagebuild"
	"github.com/verge-edge/verge/internal/localregistry"
)

func newImage() *cobra.Command {
	img := &cobra.Command{Use: "image", Short: "Package programs as container images for edge nodes"}
	var binary, imageName, dataDir, registry string
	build := &cobra.Command{
		Use:   "build --binary FILE --name NAME:TAG [-- ARG...]",
		Short: "Package a static Linux binary as an image and push it to the local registry",
		Long: `Builds a one-layer image holding FILE at /<file name>, running it with the
given arguments, and pushes it to the registry of the local cluster (the
address in DATA_DIR/registry, written by verge up) or to --registry. Prints
the image reference to use in pod specs.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if binary == "" || imageName == "" {
				return fmt.Errorf("%w: --binary and --name are required", errUsage)
			}
			ref, err := imageRef(imageName, registry, dataDir)
			if err != nil {
				return err
			}
			i, err := imagebuild.BuildFile(binary, args)
			if err != nil {
				return err
			}
			byDigest, err := imagebuild.Push(cmd.Context(), i, ref)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ref)
			fmt.Fprintf(cmd.ErrOrStderr(), "pushed %s\n", byDigest)
			return nil
		},
	}
	f := build.Flags()
	f.StringVar(&binary, "binary", "", "static Linux executable to package (CGO_ENABLED=0)")
	f.StringVar(&imageName, "name", "", "image name and tag, e.g. demo/web:v1 (a name with a registry host is used as given)")
	f.StringVar(&dataDir, "data-dir", ".verge", "the verge up data directory whose registry to push to")
	f.StringVar(&registry, "registry", "", "registry host:port (default: the local cluster's, from DATA_DIR/registry)")
	img.AddCommand(build)
	return img
}

// imageRef puts name into the chosen registry unless it names one already.
func imageRef(name, registry, dataDir string) (string, error) {
	first, _, hasSlash := strings.Cut(name, "/")
	if hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return name, nil
	}
	if registry == "" {
		b, err := os.ReadFile(filepath.Join(dataDir, "registry"))
		if err != nil {
			return "", fmt.Errorf("%w: no local registry known (%w): start the cluster with `verge up` (with edge nodes), or pass --registry HOST:PORT", errUsage, err)
		}
		registry = strings.TrimSpace(string(b))
	}
	return registry + "/" + name, nil
}

// newRegistry is the image registry process `verge up` supervises.
func newRegistry() *cobra.Command {
	reg := &cobra.Command{Use: "registry", Short: "The local image registry (run by verge up)", Hidden: true}
	var o localregistry.Options
	serve := &cobra.Command{
		Use:  "serve",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Log = cmd.ErrOrStderr()
			return localregistry.Serve(ctx, o)
		},
	}
	serve.Flags().StringVar(&o.Dir, "dir", "", "where the images are stored")
	serve.Flags().StringVar(&o.Listen, "listen", "127.0.0.1:10500", "address to serve on")
	reg.AddCommand(serve)
	return reg
}
