package nodestatus

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// LinuxHost reads the host from /proc, /sys, /etc and statfs.
type LinuxHost struct {
	// DataDir is the filesystem whose space counts as ephemeral storage.
	DataDir string
	// InternalIP is the node's address as configured or detected.
	InternalIP string
	// Root prefixes the paths read (tests point it at a fake tree).
	Root string
}

// Read reads the host now.
func (l LinuxHost) Read(context.Context) (Host, error) {
	h := Host{CPUs: runtime.NumCPU(), InternalIP: l.InternalIP}
	var err error
	if h.Hostname, err = os.Hostname(); err != nil {
		return h, err
	}
	mem, err := os.ReadFile(l.Root + "/proc/meminfo")
	if err != nil {
		return h, fmt.Errorf("reading memory size: %w", err)
	}
	h.MemoryBytes, h.MemoryAvail = parseMeminfo(mem)
	var st unix.Statfs_t
	if err := unix.Statfs(l.DataDir, &st); err == nil {
		// The field types differ by architecture (32-bit on arm).
		h.DiskBytes = int64(st.Blocks) * int64(st.Bsize) //nolint:unconvert
		h.DiskAvail = int64(st.Bavail) * int64(st.Bsize) //nolint:unconvert
	}
	h.PIDMax = readInt(l.Root + "/proc/sys/kernel/pid_max")
	if la, err := os.ReadFile(l.Root + "/proc/loadavg"); err == nil {
		// The fourth field is "runnable/total" scheduling entities.
		if f := strings.Fields(string(la)); len(f) >= 4 {
			if _, total, ok := strings.Cut(f[3], "/"); ok {
				h.PIDsInUse, _ = strconv.ParseInt(total, 10, 64)
			}
		}
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		h.KernelVersion = string(bytes.TrimRight(u.Release[:], "\x00"))
	}
	h.OSImage = osImage(l.Root + "/etc/os-release")
	h.MachineID = readString(l.Root + "/etc/machine-id")
	h.SystemUUID = readString(l.Root + "/sys/class/dmi/id/product_uuid")
	h.BootID = readString(l.Root + "/proc/sys/kernel/random/boot_id")
	return h, nil
}

// parseMeminfo returns MemTotal and MemAvailable in bytes.
func parseMeminfo(b []byte) (total, avail int64) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "MemTotal:":
			total = v * 1024
		case "MemAvailable:":
			avail = v * 1024
		}
	}
	return total, avail
}

func osImage(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "Linux"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return "Linux"
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func readInt(path string) int64 {
	v, _ := strconv.ParseInt(readString(path), 10, 64)
	return v
}
