package objkey

import "testing"

func TestKeyRoundTrip(t *testing.T) {
	for _, tc := range []struct{ resource, ns, name string }{
		{Pods, "default", "web-1"},
		{"nodes", "", "edge-1"},
		{Secrets, "kube-system", "a/b"}, // names never hold '/', but Split must not lose it
	} {
		r, ns, n, err := Split(Key(tc.resource, tc.ns, tc.name))
		if err != nil || r != tc.resource || ns != tc.ns || n != tc.name {
			t.Errorf("Split(Key(%q,%q,%q)) = %q,%q,%q,%v", tc.resource, tc.ns, tc.name, r, ns, n, err)
		}
	}
	for _, bad := range []string{"", "pods", "pods/ns", "/ns/name", "pods/ns/"} {
		if _, _, _, err := Split(bad); err == nil {
			t.Errorf("Split(%q) accepted a malformed key", bad)
		}
	}
}

func TestTokenName(t *testing.T) {
	a := TokenName("web-1", []string{"b", "a"}, 3600)
	if b := TokenName("web-1", []string{"a", "b"}, 3600); a != b {
		t.Errorf("audience order changed the name: %s vs %s", a, b)
	}
	for _, other := range []string{
		TokenName("web-2", []string{"a", "b"}, 3600),
		TokenName("web-1", []string{"a"}, 3600),
		TokenName("web-1", []string{"a", "b"}, 7200),
	} {
		if other == a {
			t.Errorf("different pod or request gave the same name %s", a)
		}
	}
	// The name is part of the wire contract between cloud and edge
	// releases: it must not change.
	if got, want := TokenName("web-1", nil, 3600), "web-1.d1b3f4d84153"; got != want {
		t.Errorf("TokenName(web-1, nil, 3600) = %s, want %s", got, want)
	}
}
