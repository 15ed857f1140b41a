// Package objkey names the objects that cross the cloud–edge link. Both
// sides key objects as "<resource>/<namespace>/<name>"
// ("<resource>//<name>" for cluster-scoped ones) and must compute the same
// key for the same object — in particular for the service-account tokens
// the cloud mints for a pod's projected volumes, which the edge looks up by
// the pod and the request alone.
package objkey

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Resources that appear in keys.
const (
	Pods                 = "pods"
	ConfigMaps           = "configmaps"
	Secrets              = "secrets"
	ServiceAccountTokens = "serviceaccounttokens"
	// Devices and DeviceModels are devices.kubeedge.io/v1beta1 objects;
	// a node holds the Devices bound to it and the models they name.
	// Device reports (edge → cloud) use the Device's key too.
	Devices      = "devices"
	DeviceModels = "devicemodels"
)

// Key builds an object key.
func Key(resource, namespace, name string) string {
	return resource + "/" + namespace + "/" + name
}

// Split parses a key built by Key.
func Split(key string) (resource, namespace, name string, err error) {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("malformed object key %q", key)
	}
	return parts[0], parts[1], parts[2], nil
}

// TokenName names the token object for a pod and token request: stable for
// the same pod and request, different across pods and requests.
func TokenName(pod string, audiences []string, expirationSeconds int64) string {
	a := append([]string(nil), audiences...)
	sort.Strings(a)
	sum := sha256.Sum256([]byte(strings.Join(a, ",") + "|" + strconv.FormatInt(expirationSeconds, 10)))
	return pod + "." + hex.EncodeToString(sum[:6])
}
