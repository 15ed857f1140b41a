package containerd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Registry is a registry containerd may pull from with per-host settings.
type Registry struct {
	// Host is host[:port] as it appears in image references,
	// e.g. "127.0.0.1:5000".
	Host string
	// PlainHTTP makes containerd talk HTTP instead of HTTPS (loopback
	// registries).
	PlainHTTP bool
	// CAFile, if set, is a PEM bundle trusted for this host's TLS.
	CAFile string
}

// Config describes one containerd instance.
type Config struct {
	// Name identifies the instance on the host (e.g. "edge-1"); the bridge,
	// CNI network and default cgroup parent are derived from it. Lower-case
	// letters, digits and '-', at most 32 characters.
	Name string
	// Dir holds everything the instance writes. Its socket is
	// Dir/containerd.sock, so Dir must be short (unix socket paths are
	// limited to 107 bytes).
	Dir string
	// PodCIDR is the IPv4 range pod IPs come from, e.g. "10.88.1.0/24". The
	// first address is the bridge's (the pods' gateway). Instances on one host
	// need disjoint ranges.
	PodCIDR string
	// BridgeName is the Linux bridge the pods attach to; default derived
	// from Name (at most 15 characters).
	BridgeName string
	// SandboxImage is the pause image every pod sandbox runs.
	SandboxImage string
	// Registries configures per-host pull settings (plain HTTP, CA).
	Registries []Registry
	// CgroupParent is where the pods of this instance's node go; default
	// "/verge/<Name>". containerd itself does not use it: the pod runtime
	// passes it on every sandbox. It is here so that one place names
	// everything an instance owns, and CleanupHost removes what is left.
	CgroupParent string
	// ContainerdPath and RuncPath default to the binaries on PATH;
	// CNIBinDir defaults to /usr/lib/cni (Debian's
	// containernetworking-plugins) or /opt/cni/bin.
	ContainerdPath, RuncPath, CNIBinDir string
	// LogLevel is containerd's log level; default "info".
	LogLevel string
	// RestrictOOMScoreAdj keeps container OOM scores at or above
	// containerd's own. The default is on exactly when this process lacks
	// CAP_SYS_RESOURCE (in some sandboxes and unprivileged containers),
	// where lowering a score fails and with it every container start.
	RestrictOOMScoreAdj bool
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// maxSocketPath leaves room for the ".ttrpc" suffix containerd adds for its
// second socket within sun_path's 108 bytes.
const maxSocketPath = 100

// ConfigError is a configuration mistake; its message says what to change.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

func configErrorf(format string, args ...any) error {
	return &ConfigError{Msg: fmt.Sprintf(format, args...)}
}

// withDefaults fills unset fields. Binaries are looked up on PATH.
func (c Config) withDefaults() (Config, error) {
	if c.BridgeName == "" {
		c.BridgeName = bridgeName(c.Name)
	}
	if c.CgroupParent == "" {
		c.CgroupParent = "/verge/" + c.Name
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if !c.RestrictOOMScoreAdj && !hasCapability(capSysResource) {
		c.RestrictOOMScoreAdj = true
	}
	var err error
	if c.ContainerdPath == "" {
		if c.ContainerdPath, err = lookBinary("containerd", "containerd"); err != nil {
			return c, err
		}
	}
	if c.RuncPath == "" {
		if c.RuncPath, err = lookBinary("runc", "runc"); err != nil {
			return c, err
		}
	}
	if c.CNIBinDir == "" {
		c.CNIBinDir = defaultCNIBinDir()
	}
	return c, nil
}

func lookBinary(name, pkg string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", configErrorf("%s is not installed (not on PATH): install the Debian package %q (apt-get install -y %s)", name, pkg, pkg)
	}
	return p, nil
}

func defaultCNIBinDir() string {
	for _, d := range []string{"/usr/lib/cni", "/opt/cni/bin"} {
		if fileExists(filepath.Join(d, "bridge")) {
			return d
		}
	}
	return "/usr/lib/cni"
}

// bridgeName derives a bridge name that fits IFNAMSIZ (15 characters).
func bridgeName(name string) string {
	if n := "verge-" + name; len(n) <= 15 {
		return n
	}
	sum := sha256.Sum256([]byte(name))
	return "vg-" + hex.EncodeToString(sum[:])[:12]
}

// Validate reports the first problem with c (after defaults).
func (c Config) Validate() error {
	if !nameRE.MatchString(c.Name) {
		return configErrorf("containerd instance name %q is invalid: use 1-32 lower-case letters, digits and '-', starting and ending with a letter or digit", c.Name)
	}
	if c.Dir == "" || !filepath.IsAbs(c.Dir) {
		return configErrorf("containerd instance %s: Dir %q must be an absolute path", c.Name, c.Dir)
	}
	for _, p := range []string{c.Dir, c.CgroupParent, c.SandboxImage} {
		if strings.ContainsAny(p, "\"\\\n\r\t\x00") {
			return configErrorf("containerd instance %s: %q contains quotes, backslashes or control characters", c.Name, p)
		}
	}
	if n := len(c.socketPath()); n > maxSocketPath {
		return configErrorf("containerd instance %s: socket path %s is %d bytes, more than the %d a unix socket allows; choose a shorter Dir", c.Name, c.socketPath(), n, maxSocketPath)
	}
	if _, err := parsePodCIDR(c.PodCIDR); err != nil {
		return configErrorf("containerd instance %s: %v", c.Name, err)
	}
	if len(c.BridgeName) > 15 || !regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`).MatchString(c.BridgeName) {
		return configErrorf("containerd instance %s: bridge name %q must be 1-15 characters of letters, digits, '_', '.', '-'", c.Name, c.BridgeName)
	}
	if c.SandboxImage == "" {
		return configErrorf("containerd instance %s: SandboxImage is required (the pause image, e.g. 127.0.0.1:5000/verge/pause:1)", c.Name)
	}
	if !strings.HasPrefix(c.CgroupParent, "/") || strings.Contains(c.CgroupParent, "..") || strings.HasSuffix(c.CgroupParent, "/") {
		return configErrorf("containerd instance %s: cgroup parent %q must be an absolute cgroup path like /verge/%s", c.Name, c.CgroupParent, c.Name)
	}
	for _, r := range c.Registries {
		if r.Host == "" || strings.ContainsAny(r.Host, "/\"\\ ") {
			return configErrorf("containerd instance %s: registry host %q must be host[:port]", c.Name, r.Host)
		}
	}
	if !fileExists(filepath.Join(c.CNIBinDir, "bridge")) || !fileExists(filepath.Join(c.CNIBinDir, "host-local")) {
		return configErrorf("CNI plugins are missing from %s: install the Debian package containernetworking-plugins (apt-get install -y containernetworking-plugins)", c.CNIBinDir)
	}
	return nil
}

// parsePodCIDR accepts an IPv4 prefix with room for a gateway and pods.
func parsePodCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("pod CIDR %q is not a CIDR like 10.88.1.0/24: %w", s, err)
	}
	if !p.Addr().Is4() || p.Bits() > 29 || p.Bits() < 8 {
		return netip.Prefix{}, fmt.Errorf("pod CIDR %q must be IPv4 with a prefix length between /8 and /29", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("pod CIDR %q has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// Paths an instance uses, all under Dir.
func (c Config) socketPath() string  { return filepath.Join(c.Dir, "containerd.sock") }
func (c Config) configPath() string  { return filepath.Join(c.Dir, "config.toml") }
func (c Config) rootDir() string     { return filepath.Join(c.Dir, "root") }
func (c Config) stateDir() string    { return filepath.Join(c.Dir, "state") }
func (c Config) runcRoot() string    { return filepath.Join(c.Dir, "state", "runc") }
func (c Config) cniConfDir() string  { return filepath.Join(c.Dir, "cni", "net.d") }
func (c Config) ipamDir() string     { return filepath.Join(c.Dir, "cni", "ipam") }
func (c Config) hostsDir() string    { return filepath.Join(c.Dir, "certs.d") }
func (c Config) networkName() string { return "verge-" + c.Name }
func (c Config) cniConfPath() string {
	return filepath.Join(c.cniConfDir(), "10-"+c.networkName()+".conflist")
}
func (c Config) optDir() string  { return filepath.Join(c.Dir, "opt") }
func (c Config) tempDir() string { return filepath.Join(c.Dir, "tmp") }
func (c Config) hostsTOMLPath(host string) string {
	return filepath.Join(c.hostsDir(), host, "hosts.toml")
}

// q quotes s as a TOML basic string; Validate rejects the characters that
// would need escapes beyond these.
func q(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// renderConfig returns containerd's config.toml (version 2 schema, which
// containerd 1.6 and 1.7 read).
func (c Config) renderConfig() []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Written by verge for containerd instance %s; regenerated on every start.", c.Name)
	w("version = 2")
	w("root = %s", q(c.rootDir()))
	w("state = %s", q(c.stateDir()))
	w("temp = %s", q(c.tempDir()))
	// Snapshotters that need kernel features or block devices this host may
	// not have only slow start-up and fill the log with warnings.
	w(`disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]`)
	w("")
	w("[grpc]")
	w("  address = %s", q(c.socketPath()))
	w("")
	w("[debug]")
	w("  level = %s", q(c.LogLevel))
	w("")
	w("[plugins]")
	w(`  [plugins."io.containerd.grpc.v1.cri"]`)
	w("    sandbox_image = %s", q(c.SandboxImage))
	w(`    stream_server_address = "127.0.0.1"`)
	w(`    stream_server_port = "0"`)
	// Network namespaces under the instance's state dir, not the shared
	// /var/run/netns, so a crash leaves nothing behind outside Dir.
	w("    netns_mounts_under_state_dir = true")
	w("    max_container_log_line_size = 16384")
	if c.RestrictOOMScoreAdj {
		// Without CAP_SYS_RESOURCE no process may lower an OOM score below
		// its own; containerd then clamps instead of failing every start.
		w("    restrict_oom_score_adj = true")
	}
	w(`    [plugins."io.containerd.grpc.v1.cri".containerd]`)
	w(`      snapshotter = "overlayfs"`)
	w(`      default_runtime_name = "runc"`)
	w(`      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]`)
	w(`        runtime_type = "io.containerd.runc.v2"`)
	w(`        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]`)
	w("          BinaryName = %s", q(c.RuncPath))
	// runc's state would otherwise be shared under /run/containerd/runc.
	w("          Root = %s", q(c.runcRoot()))
	w("          SystemdCgroup = false")
	w(`    [plugins."io.containerd.grpc.v1.cri".cni]`)
	w("      bin_dir = %s", q(c.CNIBinDir))
	w("      conf_dir = %s", q(c.cniConfDir()))
	w("      max_conf_num = 1")
	w(`    [plugins."io.containerd.grpc.v1.cri".registry]`)
	w("      config_path = %s", q(c.hostsDir()))
	w(`  [plugins."io.containerd.internal.v1.opt"]`)
	w("    path = %s", q(c.optDir()))
	return []byte(b.String())
}

// renderHostsTOML returns certs.d/<host>/hosts.toml for r.
func (r Registry) renderHostsTOML() []byte {
	scheme := "https"
	if r.PlainHTTP {
		scheme = "http"
	}
	url := scheme + "://" + r.Host
	var b strings.Builder
	fmt.Fprintf(&b, "server = %s\n\n", q(url))
	fmt.Fprintf(&b, "[host.%s]\n", q(url))
	b.WriteString("  capabilities = [\"pull\", \"resolve\"]\n")
	if r.CAFile != "" {
		fmt.Fprintf(&b, "  ca = %s\n", q(r.CAFile))
	}
	return []byte(b.String())
}

// renderCNI returns the CNI network configuration list: a bridge with
// host-local IPAM (its store under Dir), masquerade for traffic leaving the
// pod range, and portmap for hostPort.
func (c Config) renderCNI() ([]byte, error) {
	p, err := parsePodCIDR(c.PodCIDR)
	if err != nil {
		return nil, err
	}
	gw := p.Addr().Next()
	type obj = map[string]any
	conf := obj{
		"cniVersion": "1.0.0",
		"name":       c.networkName(),
		"plugins": []obj{
			{
				"type":        "bridge",
				"bridge":      c.BridgeName,
				"isGateway":   true,
				"ipMasq":      true,
				"hairpinMode": true,
				"ipam": obj{
					"type":    "host-local",
					"dataDir": c.ipamDir(),
					"ranges":  [][]obj{{{"subnet": p.String(), "gateway": gw.String()}}},
					"routes":  []obj{{"dst": "0.0.0.0/0"}},
				},
			},
			{"type": "portmap", "capabilities": obj{"portMappings": true}},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// registryHosts returns the registry hosts sorted, for stable output.
func (c Config) registryHosts() []Registry {
	rs := append([]Registry(nil), c.Registries...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Host < rs[j].Host })
	return rs
}

// capSysResource is CAP_SYS_RESOURCE's bit number.
const capSysResource = 24

// hasCapability reads this process's effective capability set.
func hasCapability(bit uint) bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return true
			}
			return n&(1<<bit) != 0
		}
	}
	return true
}
