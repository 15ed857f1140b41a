package loopback

import "testing"

func TestFreePortsAreDistinctBindableAndBelowTheEphemeralRange(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p < lowestPort || p >= ephemeralLow() {
			t.Fatalf("port %d outside [%d, %d)", p, lowestPort, ephemeralLow())
		}
		if !PortFree(p) {
			t.Fatalf("port %d is not free", p)
		}
	}
}
