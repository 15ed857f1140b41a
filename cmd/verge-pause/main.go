// Command verge-pause is the process every pod sandbox runs on Verge's
// local edge nodes (the "pause" container): it holds the pod's namespaces,
// reaps orphaned children, and exits on SIGTERM or SIGINT. `verge up`
// packages it as the sandbox image of its edge nodes.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			return
		}
		// As PID 1 of the pod, adopt and reap whatever exits.
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
