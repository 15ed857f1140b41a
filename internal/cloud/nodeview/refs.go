package nodeview

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/verge-edge/verge/internal/protocol/objkey"
)

// Resource names used in keys (see objkey).
const (
	Pods                  = objkey.Pods
	ConfigMaps            = objkey.ConfigMaps
	Secrets               = objkey.Secrets
	ServiceAccountTokens  = objkey.ServiceAccountTokens
	defaultTokenAudiences = ""
)

// Rank orders keys so that what a pod needs arrives before the pod and is
// deleted after it, and a DeviceModel before the Devices naming it.
func Rank(key string, deleting bool) int {
	switch strings.SplitN(key, "/", 2)[0] {
	case Secrets, ConfigMaps, ServiceAccountTokens, DeviceModels:
		if deleting {
			return 2
		}
		return 0
	case Pods, Devices:
		return 1
	}
	return 3
}

// Class is the informer a key's object comes from (for the horizon rule);
// tokens are minted by the cloud, not watched, so they have none.
func Class(key string) string {
	r := strings.SplitN(key, "/", 2)[0]
	if r == ServiceAccountTokens {
		return ""
	}
	return r
}

// TokenRequest is one service-account token a pod's volumes ask for.
type TokenRequest struct {
	Namespace, Pod, ServiceAccount string
	Audiences                      []string
	ExpirationSeconds              int64
}

// References lists the keys of the ConfigMaps and Secrets a pod uses
// (volumes, projected sources, env, envFrom, image pull secrets) and the
// service-account tokens its projected volumes request. Sorted, no
// duplicates.
func References(pod *corev1.Pod) (objects []string, tokens []TokenRequest) {
	ns := pod.Namespace
	seen := map[string]bool{}
	add := func(resource, name string) {
		if name == "" {
			return
		}
		k := objkey.Key(resource, ns, name)
		if !seen[k] {
			seen[k] = true
			objects = append(objects, k)
		}
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	seenTok := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			add(ConfigMaps, v.ConfigMap.Name)
		case v.Secret != nil:
			add(Secrets, v.Secret.SecretName)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				switch {
				case src.ConfigMap != nil:
					add(ConfigMaps, src.ConfigMap.Name)
				case src.Secret != nil:
					add(Secrets, src.Secret.Name)
				case src.ServiceAccountToken != nil:
					exp := int64(3600)
					if src.ServiceAccountToken.ExpirationSeconds != nil {
						exp = *src.ServiceAccountToken.ExpirationSeconds
					}
					var aud []string
					if src.ServiceAccountToken.Audience != "" {
						aud = []string{src.ServiceAccountToken.Audience}
					}
					name := objkey.TokenName(pod.Name, aud, exp)
					if !seenTok[name] {
						seenTok[name] = true
						tokens = append(tokens, TokenRequest{Namespace: ns, Pod: pod.Name, ServiceAccount: sa, Audiences: aud, ExpirationSeconds: exp})
					}
				}
			}
		}
	}
	containers := append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range containers {
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				add(ConfigMaps, r.Name)
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				add(Secrets, r.Name)
			}
		}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil {
				add(ConfigMaps, ef.ConfigMapRef.Name)
			}
			if ef.SecretRef != nil {
				add(Secrets, ef.SecretRef.Name)
			}
		}
	}
	for _, s := range pod.Spec.ImagePullSecrets {
		add(Secrets, s.Name)
	}
	sort.Strings(objects)
	sort.Slice(tokens, func(i, j int) bool {
		return objkey.TokenName(tokens[i].Pod, tokens[i].Audiences, tokens[i].ExpirationSeconds) < objkey.TokenName(tokens[j].Pod, tokens[j].Audiences, tokens[j].ExpirationSeconds)
	})
	return objects, tokens
}
