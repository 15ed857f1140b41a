// Package logtail reads the end of log files, for error messages that show
// what a failed build or process printed last.
package logtail

import (
	"bytes"
	"os"
)

// Lines returns the last n lines of the file at path, newline-terminated, or
// "" if the file is unreadable or empty.
func Lines(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	data = bytes.TrimRight(data, "\n")
	if len(data) == 0 {
		return ""
	}
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n"))) + "\n"
}
