package jointoken

import (
	"strings"
	"testing"
)

const hash = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParse(t *testing.T) {
	good := Token{ID: "abc123", Secret: "0123456789abcdef", CAHash: hash}
	got, err := Parse(" " + good.String() + "\n")
	if err != nil || got != good {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{
		"",
		"abc123.0123456789abcdef",
		"verge2:abc123.0123456789abcdef:" + hash,
		"verge1:ABC123.0123456789abcdef:" + hash,
		"verge1:abc123.short:" + hash,
		"verge1:abc123.0123456789abcdef:sha256:xyz",
		"verge1:abc1230123456789abcdef:" + hash,
	} {
		if _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), "verge token create") {
			t.Errorf("Parse(%q) = %v, want a malformed-token error with advice", bad, err)
		}
	}
}
