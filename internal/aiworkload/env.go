package aiworkload

import (
	"strings"

	"github.com/verge-edge/verge/pkg/ai/workerenv"
)

// lcServerSet: the controllers always set LC_SERVER; a worker run by hand
// without it does not report (workerenv fills a default address).
func lcServerSet(get workerenv.Lookup) bool {
	v, ok := get("LC_SERVER")
	return ok && strings.TrimSpace(v) != ""
}
