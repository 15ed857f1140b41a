package tdenginesink

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// maxNameLen is TDengine's limit on table names, in bytes.
const maxNameLen = 192

// identChar reports whether c may appear in a back-quoted TDengine name:
// visible ASCII except the back quote and '.', which TDengine rejects even
// when escaped.
func identChar(c byte) bool {
	return c > 0x20 && c < 0x7f && c != '`' && c != '.'
}

// superTableName is the per-device super table, "<namespace>/<device>".
// Kubernetes names hold only [a-z0-9.-], and never '_', so turning '.'
// into '_' keeps names distinct.
func superTableName(namespace, device string) string {
	return name(namespace+"/"+device, strings.ReplaceAll(namespace+"/"+device, ".", "_"))
}

// subTableName is the per-property table, "<namespace>/<device>/<property>".
// A property name with characters TDengine cannot hold gets a hash suffix,
// so two such names never share a table.
func subTableName(namespace, device, property string) string {
	raw := namespace + "/" + device + "/" + property
	prefix := strings.ReplaceAll(namespace+"/"+device, ".", "_") + "/"
	var b strings.Builder
	lossy := false
	for i := 0; i < len(property); i++ {
		if identChar(property[i]) {
			b.WriteByte(property[i])
		} else {
			b.WriteByte('_')
			lossy = true
		}
	}
	n := prefix + b.String()
	if lossy {
		return hashed(raw, n)
	}
	return name(raw, n)
}

func name(raw, n string) string {
	if len(n) <= maxNameLen {
		return n
	}
	return hashed(raw, n)
}

// hashed cuts n and appends "~" and 8 hex digits of raw's SHA-256.
func hashed(raw, n string) string {
	sum := sha256.Sum256([]byte(raw))
	suffix := "~" + hex.EncodeToString(sum[:4])
	if len(n) > maxNameLen-len(suffix) {
		n = n[:maxNameLen-len(suffix)]
	}
	return n + suffix
}

func ident(n string) string { return "`" + n + "`" }

// literalEscaper escapes a TDengine string literal: back-slash sequences
// for the quote, the back slash and control characters.
var literalEscaper = strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\r", `\r`, "\t", `\t`)

func literal(s string) string { return "'" + literalEscaper.Replace(s) + "'" }

// timeLiteral is RFC 3339 with an explicit offset, which TDengine reads
// independently of the server's time zone, at millisecond precision,
// which every database precision accepts.
func timeLiteral(t time.Time) string {
	return "'" + t.UTC().Format("2006-01-02T15:04:05.000") + "+00:00'"
}

// Column sizes of the super tables this sink creates.
const (
	deviceIDLen = 320 // namespace (63) + "/" + device name (253)
	propertyLen = 256
	dataLen     = 16384
	typeLen     = 32
)

func createSuperTable(st string) string {
	return "CREATE STABLE IF NOT EXISTS " + ident(st) +
		" (ts TIMESTAMP, deviceid VARCHAR(320), propertyname VARCHAR(256), data VARCHAR(16384), `type` VARCHAR(32))" +
		" TAGS (property VARCHAR(256))"
}
