// Package jointoken parses and prints the tokens edge nodes join with
// (internal/cloud/bootstraptoken creates and redeems them).
//
// A join token is a Kubernetes bootstrap token (a Secret of type
// bootstrap.kubernetes.io/token in kube-system, which the controller-manager's
// token cleaner deletes when it expires) plus the hash of the Verge CA, so the
// joining node can check it talks to the right cloud before sending anything.
// Printed, it reads
//
//	verge1:<token-id>.<token-secret>:sha256:<hex of the CA's SubjectPublicKeyInfo hash>
//
// Each token may be redeemed a limited number of times (once by default);
// redemption is counted on the Secret with an optimistic-concurrency update,
// so two nodes racing for the last use cannot both win.
package jointoken

import (
	"fmt"
	"regexp"
	"strings"
)

const prefix = "verge1"

var (
	idPattern     = regexp.MustCompile(`^[a-z0-9]{6}$`)
	secretPattern = regexp.MustCompile(`^[a-z0-9]{16}$`)
	hashPattern   = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// Token is a parsed join token.
type Token struct {
	ID, Secret string
	// CAHash is "sha256:<hex>", see pki.Hash.
	CAHash string
}

// String renders the token for `verge join --token`.
func (t Token) String() string { return prefix + ":" + t.ID + "." + t.Secret + ":" + t.CAHash }

// Parse reads a token printed by String.
func Parse(s string) (Token, error) {
	parts := strings.SplitN(strings.TrimSpace(s), ":", 3)
	bad := func(why string) (Token, error) {
		return Token{}, fmt.Errorf("malformed join token (%s): it looks like verge1:<id>.<secret>:sha256:<hash>; print a new one with `verge token create`", why)
	}
	if len(parts) != 3 || parts[0] != prefix {
		return bad("wrong prefix or missing parts")
	}
	id, secret, ok := strings.Cut(parts[1], ".")
	if !ok || !idPattern.MatchString(id) || !secretPattern.MatchString(secret) {
		return bad("bad id or secret")
	}
	if !hashPattern.MatchString(parts[2]) {
		return bad("bad CA hash")
	}
	return Token{ID: id, Secret: secret, CAHash: parts[2]}, nil
}
