// Package loopback finds TCP ports on 127.0.0.1 for local clusters and tests.
package loopback

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// PortFree reports whether 127.0.0.1:port can be listened on now.
func PortFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// lowestPort is the bottom of the range FreePort draws from: above the
// fixed ports `verge up` uses by default (10xxx).
const lowestPort = 20000

// given holds the ports this process has handed out, so that two callers
// never get the same one while neither has bound it yet.
var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a port that was free a moment ago. Another process may
// take it before the caller binds it; callers that can, bind port 0 instead.
//
// It draws from below the kernel's ephemeral range: the source ports of
// outgoing connections come from that range, so a port found free there
// (as binding port 0 finds) can be taken by any connection a busy machine
// opens before the caller binds it, and a local cluster then fails to
// start a component on it.
func FreePort() (int, error) {
	hi := ephemeralLow()
	given.Lock()
	defer given.Unlock()
	for range 200 {
		p := lowestPort + rand.IntN(hi-lowestPort)
		if !given.ports[p] && PortFree(p) {
			given.ports[p] = true
			return p, nil
		}
	}
	return 0, errors.New("no free loopback port found below the ephemeral range")
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read, or when it leaves no room below).
func ephemeralLow() int {
	const linuxDefault = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return linuxDefault
	}
	lo, err := strconv.Atoi(strings.Fields(string(b) + " x")[0])
	if err != nil || lo <= lowestPort+1000 {
		return linuxDefault
	}
	return lo
}
