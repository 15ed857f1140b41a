package containerd

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// CleanupHost removes what the instance may have left on the host after
// containerd stopped — normally nothing, after a crash possibly: containers
// still running under its runc root and their shims, mounts under Dir, CNI
// iptables rules and chains of its network, its bridge and its empty
// cgroups. It does not delete Dir (the image store survives a restart).
// containerd must not be running.
func (i *Instance) CleanupHost() error {
	c := i.cfg
	var errs []error
	// Containers first (their shims would otherwise restart nothing, but the
	// processes would keep running reparented to init).
	nsDirs, _ := os.ReadDir(c.runcRoot())
	for _, ns := range nsDirs {
		root := filepath.Join(c.runcRoot(), ns.Name())
		out, err := exec.Command(c.RuncPath, "--root", root, "list", "-q").Output()
		if err != nil {
			continue
		}
		for _, id := range strings.Fields(string(out)) {
			if msg, err := exec.Command(c.RuncPath, "--root", root, "delete", "--force", id).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("runc delete %s: %w: %s", id, err, bytes.TrimSpace(msg)))
			}
		}
	}
	killShims(c.socketPath())
	if err := unmountUnder(c.Dir); err != nil {
		errs = append(errs, err)
	}
	if err := removeIptablesRules(c.networkName()); err != nil {
		errs = append(errs, err)
	}
	if _, err := os.Stat("/sys/class/net/" + c.BridgeName); err == nil {
		if msg, err := exec.Command("ip", "link", "del", c.BridgeName).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip link del %s: %w: %s", c.BridgeName, err, bytes.TrimSpace(msg)))
		}
	}
	removeCgroups(c.CgroupParent)
	return errors.Join(errs...)
}

// killShims sends SIGKILL to containerd shims started for socket (their
// command line names it after -address) and removes their sockets, which a
// killed shim leaves in /run/containerd/s.
func killShims(socket string) {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		flags := map[string]string{}
		for j := 0; j+1 < len(args); j++ {
			if strings.HasPrefix(args[j], "-") {
				flags[args[j]] = args[j+1]
			}
		}
		if flags["-address"] != socket {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if flags["-namespace"] != "" && flags["-id"] != "" {
			os.Remove(shimSocket(socket, flags["-namespace"], flags["-id"]))
		}
	}
}

// shimSocket is where containerd (1.6, 1.7) puts the socket of the shim
// for a task: /run/containerd/s/ and the SHA-256 of address/namespace/id.
func shimSocket(address, namespace, id string) string {
	sum := sha256.Sum256([]byte(filepath.Join(address, namespace, id)))
	return filepath.Join("/run/containerd/s", hex.EncodeToString(sum[:]))
}

// unmountUnder detaches every mount point below dir, deepest first.
func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	prefix := filepath.Clean(dir) + "/"
	var points []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if strings.HasPrefix(mp, prefix) {
			points = append(points, mp)
		}
	}
	sort.Slice(points, func(a, b int) bool { return len(points[a]) > len(points[b]) })
	var errs []error
	for _, mp := range points {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

var cniChainRE = regexp.MustCompile(`\b(CNI-[A-Za-z0-9-]+)\b`)

// removeIptablesRules deletes nat-table rules whose CNI comment names the
// network (the bridge plugin's masquerade jumps, portmap's per-pod DNAT
// jumps) and flushes and deletes the per-pod chains they jumped to. Shared
// chains (CNI-HOSTPORT-*) stay: other networks use them.
func removeIptablesRules(network string) error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil //nolint:nilerr // no iptables, so no rules to remove
	}
	marker := `name: "` + network + `"`
	var errs []error
	chains := map[string]bool{}
	for _, builtin := range []string{"POSTROUTING", "CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SNAT", "CNI-HOSTPORT-MASQ"} {
		out, err := exec.Command("iptables", "-w", "-t", "nat", "-L", builtin, "-n", "--line-numbers").Output()
		if err != nil {
			continue // chain absent
		}
		var nums []int
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.Contains(line, marker) {
				continue
			}
			fields := strings.Fields(line)
			if len(fields) < 2 {
				continue
			}
			n, err := strconv.Atoi(fields[0])
			if err != nil {
				continue
			}
			nums = append(nums, n)
			if strings.HasPrefix(fields[1], "CNI-") && !strings.HasPrefix(fields[1], "CNI-HOSTPORT-") {
				chains[fields[1]] = true
			}
		}
		sort.Sort(sort.Reverse(sort.IntSlice(nums)))
		for _, n := range nums {
			if msg, err := exec.Command("iptables", "-w", "-t", "nat", "-D", builtin, strconv.Itoa(n)).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("iptables -t nat -D %s %d: %w: %s", builtin, n, err, bytes.TrimSpace(msg)))
			}
		}
	}
	for ch := range chains {
		if !cniChainRE.MatchString(ch) {
			continue
		}
		_ = exec.Command("iptables", "-w", "-t", "nat", "-F", ch).Run()
		_ = exec.Command("iptables", "-w", "-t", "nat", "-X", ch).Run()
	}
	return errors.Join(errs...)
}

// removeCgroups removes the (empty) cgroups under parent in every mounted
// hierarchy, children first. Non-empty ones stay; rmdir refuses them.
func removeCgroups(parent string) {
	if parent == "" || parent == "/" {
		return
	}
	mounts, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots := append([]string{"/sys/fs/cgroup"}, mounts...)
	for _, root := range roots {
		dir := filepath.Join(root, parent)
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(a, b int) bool { return len(dirs[a]) > len(dirs[b]) })
		for _, d := range dirs {
			_ = os.Remove(d)
		}
		// Parents of the instance's cgroup that only Verge created
		// (e.g. /verge) are left: another instance may use them.
	}
}
