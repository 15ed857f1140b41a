package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/verge-edge/verge/internal/cloud/bootstraptoken"
	"github.com/verge-edge/verge/internal/cloud/nodeca"
	"github.com/verge-edge/verge/internal/install"
)

func newToken() *cobra.Command {
	tok := &cobra.Command{Use: "token", Short: "Manage join tokens for edge nodes"}
	var (
		kubeconfig, dataDir, namespace, description string
		ttl                                         time.Duration
		uses                                        int
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a join token and print the command that joins a node with it",
		Long: `Creates a Kubernetes bootstrap token (a Secret in kube-system that the
controller-manager deletes when it expires) for joining edge nodes, and
prints it with the hash of the Verge CA, which joining nodes pin.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kubeconfig == "" {
				kubeconfig = os.Getenv("KUBECONFIG")
			}
			if kubeconfig == "" {
				kubeconfig = filepath.Join(dataDir, "kubeconfig")
			}
			rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return fmt.Errorf("loading kubeconfig %s: %w (pass --kubeconfig or set KUBECONFIG)", kubeconfig, err)
			}
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			caHash, err := nodeca.Hash(ctx, cs, namespace)
			if err != nil {
				return err
			}
			t, err := bootstraptoken.Create(ctx, cs.CoreV1().Secrets(bootstraptoken.SecretNamespace), caHash, bootstraptoken.Options{TTL: ttl, MaxUses: uses, Description: description}, time.Now())
			if err != nil {
				return err
			}
			hub := "<verge-cloud-address>:10000"
			if b, err := os.ReadFile(filepath.Join(dataDir, "hub")); err == nil {
				hub = strings.TrimSpace(string(b))
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, t.String())
			fmt.Fprintf(cmd.ErrOrStderr(), "valid for %s, %d use(s). On the edge node, as root:\n  verge join --cloud %s --token %s\n", ttl, uses, hub, t.String())
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of a cluster admin (default: $KUBECONFIG, then DATA_DIR/kubeconfig)")
	f.StringVar(&dataDir, "data-dir", ".verge", "a `verge up` data directory, for its kubeconfig and hub address")
	f.StringVar(&namespace, "namespace", install.Namespace, "verge-cloud's namespace (where the Verge CA is)")
	f.DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token stays valid")
	f.IntVar(&uses, "uses", 1, "how many nodes may join with it")
	f.StringVar(&description, "description", "", "a note kept with the token")
	tok.AddCommand(create)
	return tok
}
