package devcluster

import (
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/verge-edge/verge/internal/atomicfile"
	"github.com/verge-edge/verge/internal/pki"
)

// Kubeconfig renders a self-contained kubeconfig (certificates embedded) for
// the client identity kp, named user, pointing at this cluster.
func (c *Cluster) Kubeconfig(user string, kp *pki.KeyPair) ([]byte, error) {
	return renderKubeconfig(c.APIServerURL(), c.pki.ca.CertPEM, user, kp)
}

func renderKubeconfig(server string, caPEM []byte, user string, kp *pki.KeyPair) ([]byte, error) {
	const name = "verge"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.CertPEM, ClientKeyData: kp.KeyPEM}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user}
	cfg.CurrentContext = name
	return clientcmd.Write(*cfg)
}

// writeKubeconfigs writes the admin, controller-manager and scheduler
// kubeconfigs from this run's certificates.
func (c *Cluster) writeKubeconfigs() error {
	for _, k := range []struct{ file, cert, user string }{
		{"admin", "admin", adminUser},
		{"controller-manager", "controller-manager-client", controllerManagerUser},
		{"scheduler", "scheduler-client", schedulerUser},
	} {
		certPEM, err := os.ReadFile(c.pki.path(k.cert + ".crt"))
		if err != nil {
			return err
		}
		keyPEM, err := os.ReadFile(c.pki.path(k.cert + ".key"))
		if err != nil {
			return err
		}
		data, err := c.Kubeconfig(k.user, &pki.KeyPair{CertPEM: certPEM, KeyPEM: keyPEM})
		if err != nil {
			return err
		}
		if err := atomicfile.Write(filepath.Join(c.cfg.Dir, "kubeconfigs", k.file+".kubeconfig"), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
