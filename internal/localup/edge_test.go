package localup

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
)

// A busy edge port is named, with the flag that moves it, before anything
// starts.
func TestEdgePortsFreeNamesTheBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freePort := free.Addr().(*net.TCPAddr).Port
	_ = free.Close()

	err = edgePortsFree(Options{EdgeNodes: 1, EdgeOpsBasePort: freePort - 1, MQTTBasePort: port - 1})
	var ue *UserError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), strconv.Itoa(port)) || !strings.Contains(err.Error(), "edge-1's MQTT bus") || !strings.Contains(err.Error(), "--mqtt-base-port") {
		t.Fatalf("busy MQTT port: %v", err)
	}
	if err := edgePortsFree(Options{EdgeNodes: 1, EdgeOpsBasePort: freePort - 1, MQTTBasePort: freePort - 1}); err != nil {
		t.Fatalf("free ports: %v", err)
	}
	if err := edgePortsFree(Options{EdgeNodes: 0, MQTTBasePort: port - 1}); err != nil {
		t.Fatalf("no edge nodes, nothing to check: %v", err)
	}
}
