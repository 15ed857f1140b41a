// Command verge-edge is Verge's edge agent. It is built static and pure Go
// for linux/amd64, arm64 and arm/v7. This release only reports its version;
// the agent (hub client, store, pod runtime, device twin) arrives with the
// cloud–edge core.
package main

import (
	"fmt"
	"os"

	"github.com/verge-edge/verge/internal/version"
)

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "version") {
		fmt.Println(version.Version)
		return
	}
	fmt.Fprintf(os.Stderr, "verge-edge %s: the edge agent is not part of this release yet; only --version is supported\n", version.Version)
	os.Exit(2)
}
