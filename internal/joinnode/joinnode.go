// Package joinnode makes this machine an edge node: it redeems a join
// token for a node certificate, writes verge-edge's configuration, and
// either returns so the caller can run verge-edge in the foreground or
// installs and starts it as a systemd service.
//
// Nothing is written unless the join succeeds. Joining again into an
// existing data directory (e.g. after the certificate expired while the
// node was offline) replaces only the credentials and the configuration;
// the node's store is kept.
package joinnode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/verge-edge/verge/deploy"
	"github.com/verge-edge/verge/internal/atomicfile"
	"github.com/verge-edge/verge/internal/edge/config"
	"github.com/verge-edge/verge/internal/edge/identity"
	"github.com/verge-edge/verge/internal/jointoken"
	"github.com/verge-edge/verge/internal/nodecert"
)

// Options of `verge join`.
type Options struct {
	Cloud, Token, NodeName string
	Labels                 map[string]string
	DataDir                string
	CRIEndpoint            string
	// EdgeBinary is the verge-edge executable to run or install.
	EdgeBinary string
	// Systemd installs and starts a systemd unit instead of returning.
	Systemd bool
	// UnitDir is where the unit goes (default /etc/systemd/system).
	UnitDir string
	Out     io.Writer
}

// Result says what was written.
type Result struct {
	Config     config.Edge
	ConfigPath string
}

// Run joins the node.
func Run(ctx context.Context, o Options) (*Result, error) {
	tok, err := jointoken.Parse(o.Token)
	if err != nil {
		return nil, err
	}
	if o.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("no --node-name given and no hostname: %w", err)
		}
		o.NodeName = strings.ToLower(h)
	}
	if err := nodecert.ValidateNodeName(o.NodeName); err != nil {
		return nil, fmt.Errorf("%w: choose one with --node-name", err)
	}
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.NodeName = o.NodeName
	cfg.Labels = o.Labels
	cfg.Cloud.Address = o.Cloud
	cfg.DataDir = dataDir
	if o.CRIEndpoint != "" {
		cfg.Runtime.CRIEndpoint = o.CRIEndpoint
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if prev, err := config.Load(cfg.ConfigPath()); err == nil && prev.NodeName != cfg.NodeName {
		return nil, fmt.Errorf("%s already belongs to node %q: join as that node, or use another --data-dir", dataDir, prev.NodeName)
	}

	fmt.Fprintf(o.Out, "joining %s as %s\n", o.Cloud, o.NodeName)
	creds, err := identity.Join(ctx, o.Cloud, tok, o.NodeName)
	if err != nil {
		return nil, err
	}
	if err := creds.Save(cfg.PKIDir()); err != nil {
		return nil, fmt.Errorf("saving the node certificate: %w", err)
	}
	if err := cfg.Save(cfg.ConfigPath()); err != nil {
		return nil, fmt.Errorf("writing %s: %w", cfg.ConfigPath(), err)
	}
	leaf, _ := creds.Certificate()
	fmt.Fprintf(o.Out, "joined: certificate valid until %s; configuration in %s\n", leaf.NotAfter.Format("2006-01-02"), cfg.ConfigPath())
	res := &Result{Config: cfg, ConfigPath: cfg.ConfigPath()}
	if o.Systemd {
		if err := installUnit(ctx, o, res.ConfigPath); err != nil {
			return res, err
		}
	}
	return res, nil
}

// Unit renders verge-edge's systemd unit.
func Unit(binary, configPath string) (string, error) {
	t, err := template.New("unit").Parse(deploy.EdgeSystemdUnit())
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	err = t.Execute(&b, struct{ Binary, Config string }{binary, configPath})
	return b.String(), err
}

func installUnit(ctx context.Context, o Options, configPath string) error {
	bin, err := filepath.Abs(o.EdgeBinary)
	if err != nil {
		return err
	}
	unit, err := Unit(bin, configPath)
	if err != nil {
		return err
	}
	dir := o.UnitDir
	if dir == "" {
		dir = "/etc/systemd/system"
	}
	path := filepath.Join(dir, "verge-edge.service")
	if err := atomicfile.Write(path, []byte(unit), 0o644); err != nil {
		return fmt.Errorf("installing %s: %w", path, err)
	}
	for _, args := range [][]string{{"daemon-reload"}, {"enable", "--now", "verge-edge.service"}} {
		out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("systemctl %s: %w: %s (the unit is in %s; start it by hand or run verge join without --systemd)", strings.Join(args, " "), err, bytes.TrimSpace(out), path)
		}
	}
	fmt.Fprintf(o.Out, "verge-edge installed as %s and started; follow it with: journalctl -u verge-edge -f\n", path)
	return nil
}
