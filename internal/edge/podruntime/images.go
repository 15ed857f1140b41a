package podruntime

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// pullPolicy returns the container's pull policy, defaulted as the API
// server would: Always for ":latest" or untagged images, else IfNotPresent.
func pullPolicy(c *kube.Container) kube.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	ref := c.Image
	if strings.Contains(ref, "@") {
		return kube.PullIfNotPresent
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	if i := strings.LastIndex(last, ":"); i < 0 || last[i+1:] == "latest" {
		return kube.PullAlways
	}
	return kube.PullIfNotPresent
}

// imageRegistry returns the registry host and repository path of an image
// reference, with Docker Hub's defaults.
func imageRegistry(image string) (host, repo string) {
	ref := image
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	first, rest, found := strings.Cut(ref, "/")
	if !found || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		host, repo = "docker.io", ref
		if !strings.Contains(repo, "/") {
			repo = "library/" + repo
		}
	} else {
		host, repo = first, rest
	}
	if i := strings.LastIndex(repo, ":"); i >= 0 && !strings.Contains(repo[i:], "/") {
		repo = repo[:i]
	}
	return host, repo
}

// dockerAuth is one entry of a docker config file.
type dockerAuth struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// credential is a registry credential with the key it was stored under.
type credential struct {
	key  string // normalised host[:port][/path]
	auth *runtimeapi.AuthConfig
}

// parsePullSecret reads a kubernetes.io/dockerconfigjson or
// kubernetes.io/dockercfg Secret.
func parsePullSecret(s *kube.Secret) ([]credential, error) {
	var entries map[string]dockerAuth
	switch {
	case len(s.Data[kube.DockerConfigJsonKey]) > 0:
		var cfg struct {
			Auths map[string]dockerAuth `json:"auths"`
		}
		if err := json.Unmarshal(s.Data[kube.DockerConfigJsonKey], &cfg); err != nil {
			return nil, fmt.Errorf("image pull secret %s: %s is not valid JSON: %w", s.Name, kube.DockerConfigJsonKey, err)
		}
		entries = cfg.Auths
	case len(s.Data[kube.DockerConfigKey]) > 0:
		if err := json.Unmarshal(s.Data[kube.DockerConfigKey], &entries); err != nil {
			return nil, fmt.Errorf("image pull secret %s: %s is not valid JSON: %w", s.Name, kube.DockerConfigKey, err)
		}
	default:
		return nil, fmt.Errorf("image pull secret %s has neither %s nor %s", s.Name, kube.DockerConfigJsonKey, kube.DockerConfigKey)
	}
	var out []credential
	for key, e := range entries {
		a := &runtimeapi.AuthConfig{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
		if e.Auth != "" && a.Username == "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, fmt.Errorf("image pull secret %s: auth for %s is not base64: %w", s.Name, key, err)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("image pull secret %s: auth for %s is not user:password", s.Name, key)
			}
			a.Username, a.Password = user, pass
		}
		// ServerAddress stays empty (as the kubelet leaves it): the entry
		// was matched to the image's registry here, and containerd would
		// otherwise insist on a URL form.
		out = append(out, credential{key: normalizeRegistryKey(key), auth: a})
	}
	return out, nil
}

// normalizeRegistryKey strips scheme, API suffixes and trailing slashes,
// and maps Docker Hub's aliases to docker.io.
func normalizeRegistryKey(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	k = strings.TrimSuffix(k, "/")
	k = strings.TrimSuffix(strings.TrimSuffix(k, "/v1"), "/v2")
	k = strings.TrimSuffix(k, "/")
	host, path, _ := strings.Cut(k, "/")
	switch host {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		host = "docker.io"
	}
	if path != "" {
		return host + "/" + path
	}
	return host
}

// matchCredentials returns the credentials that apply to image, most
// specific first: the host must match (a "*." label matches one label; the
// port must be equal) and a key's path must prefix the repository.
func matchCredentials(creds []credential, image string) []*runtimeapi.AuthConfig {
	host, repo := imageRegistry(image)
	type scored struct {
		n    int
		auth *runtimeapi.AuthConfig
	}
	var hits []scored
	for _, c := range creds {
		kh, kp, _ := strings.Cut(c.key, "/")
		if !hostMatches(kh, host) {
			continue
		}
		if kp != "" && repo != kp && !strings.HasPrefix(repo, kp+"/") {
			continue
		}
		hits = append(hits, scored{len(c.key), c.auth})
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].n > hits[j].n })
	out := make([]*runtimeapi.AuthConfig, len(hits))
	for i, h := range hits {
		out[i] = h.auth
	}
	return out
}

func hostMatches(pattern, host string) bool {
	pn, pp, _ := strings.Cut(pattern, ":")
	hn, hp, _ := strings.Cut(host, ":")
	if pp != hp {
		return false
	}
	pl := strings.Split(pn, ".")
	hl := strings.Split(hn, ".")
	if len(pl) != len(hl) {
		return false
	}
	for i := range pl {
		if !labelMatches(pl[i], hl[i]) {
			return false
		}
	}
	return true
}

// labelMatches matches one DNS label against a pattern label: "*" is any
// label, "*suffix" any label ending in suffix.
func labelMatches(pattern, label string) bool {
	if pattern == "*" || pattern == label {
		return true
	}
	return strings.HasPrefix(pattern, "*") && strings.HasSuffix(label, pattern[1:])
}

// pullCredentials collects the credentials of the pod's imagePullSecrets
// for image. Missing secrets are reported but do not stop the pull (the
// image may be public), as with the kubelet.
func pullCredentials(ctx context.Context, get objectGetter, pod *kube.Pod, image string) ([]*runtimeapi.AuthConfig, []string) {
	var creds []credential
	var problems []string
	for _, ref := range pod.Spec.ImagePullSecrets {
		s, err := get.Secret(ctx, pod.Namespace, ref.Name)
		if err != nil {
			problems = append(problems, fmt.Sprintf("image pull secret %q: %v", ref.Name, err))
			continue
		}
		c, err := parsePullSecret(s)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		creds = append(creds, c...)
	}
	return matchCredentials(creds, image), problems
}
