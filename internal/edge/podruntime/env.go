package podruntime

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// objectGetter reads the ConfigMaps and Secrets pods reference.
type objectGetter interface {
	ConfigMap(ctx context.Context, namespace, name string) (*kube.ConfigMap, error)
	Secret(ctx context.Context, namespace, name string) (*kube.Secret, error)
}

// podFacts are the values the downward API exposes besides the pod object.
type podFacts struct {
	PodIPs      []string
	NodeIP      string
	Allocatable kube.ResourceList
}

// configError is a pod configuration problem (a missing ConfigMap key, an
// unsupported field): the container waits with CreateContainerConfigError
// and the message says what is wrong.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// envVar is one resolved variable.
type envVar struct{ Name, Value string }

// makeEnv resolves a container's environment as the kubelet does: envFrom
// sources first, then env entries in order (a later definition replaces an
// earlier one), with $(VAR) references in values expanded from the
// variables defined before them. Order is first definition.
// Warnings name skipped keys (not valid variable names).
func makeEnv(ctx context.Context, get objectGetter, pod *kube.Pod, c *kube.Container, facts podFacts) (vars []envVar, warnings []string, err error) {
	index := map[string]int{}
	set := func(name, value string) {
		if i, ok := index[name]; ok {
			vars[i].Value = value
			return
		}
		index[name] = len(vars)
		vars = append(vars, envVar{name, value})
	}
	lookup := func(name string) (string, bool) {
		if i, ok := index[name]; ok {
			return vars[i].Value, true
		}
		return "", false
	}

	for _, from := range c.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			optional := from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
			cm, err := get.ConfigMap(ctx, pod.Namespace, from.ConfigMapRef.Name)
			if err != nil {
				if errors.Is(err, ErrNotFound) && optional {
					continue
				}
				return nil, nil, refError("configmap", from.ConfigMapRef.Name, err)
			}
			data = cm.Data
		case from.SecretRef != nil:
			optional := from.SecretRef.Optional != nil && *from.SecretRef.Optional
			s, err := get.Secret(ctx, pod.Namespace, from.SecretRef.Name)
			if err != nil {
				if errors.Is(err, ErrNotFound) && optional {
					continue
				}
				return nil, nil, refError("secret", from.SecretRef.Name, err)
			}
			data = make(map[string]string, len(s.Data))
			for k, v := range s.Data {
				data[k] = string(v)
			}
		default:
			continue
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var invalid []string
		for _, k := range keys {
			name := from.Prefix + k
			if !validEnvName(name) {
				invalid = append(invalid, name)
				continue
			}
			set(name, data[k])
		}
		if len(invalid) > 0 {
			warnings = append(warnings, fmt.Sprintf("keys [%s] from envFrom were skipped since they are not valid environment variable names", strings.Join(invalid, ", ")))
		}
	}

	for i := range c.Env {
		e := &c.Env[i]
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, lookup))
			continue
		}
		v, ok, err := envValueFrom(ctx, get, pod, c, e, facts)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			set(e.Name, v)
		}
	}
	return vars, warnings, nil
}

func refError(kind, name string, err error) error {
	if errors.Is(err, ErrNotFound) {
		return configErrorf("%s %q not found", kind, name)
	}
	return fmt.Errorf("reading %s %q: %w", kind, name, err)
}

// validEnvName accepts what the API server accepts: printable ASCII
// without '='.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < 32 || r > 126 || r == '=' {
			return false
		}
	}
	return true
}

// envValueFrom resolves one valueFrom; ok is false for an optional
// reference that does not resolve (the variable is then not set).
func envValueFrom(ctx context.Context, get objectGetter, pod *kube.Pod, c *kube.Container, e *kube.EnvVar, facts podFacts) (string, bool, error) {
	src := e.ValueFrom
	switch {
	case src.FieldRef != nil:
		v, err := fieldValue(pod, src.FieldRef.FieldPath, facts, false)
		if err != nil {
			return "", false, configErrorf("env %s: %v", e.Name, err)
		}
		return v, true, nil
	case src.ResourceFieldRef != nil:
		target := c
		if n := src.ResourceFieldRef.ContainerName; n != "" && n != c.Name {
			if target = findContainer(pod, n); target == nil {
				return "", false, configErrorf("env %s: resourceFieldRef names container %q, which the pod does not have", e.Name, n)
			}
		}
		v, err := resourceValue(src.ResourceFieldRef, target, facts.Allocatable)
		if err != nil {
			return "", false, configErrorf("env %s: %v", e.Name, err)
		}
		return v, true, nil
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		cm, err := get.ConfigMap(ctx, pod.Namespace, ref.Name)
		if err != nil {
			if errors.Is(err, ErrNotFound) && optional {
				return "", false, nil
			}
			return "", false, refError("configmap", ref.Name, err)
		}
		if v, ok := cm.Data[ref.Key]; ok {
			return v, true, nil
		}
		if v, ok := cm.BinaryData[ref.Key]; ok {
			return string(v), true, nil
		}
		if optional {
			return "", false, nil
		}
		return "", false, configErrorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		s, err := get.Secret(ctx, pod.Namespace, ref.Name)
		if err != nil {
			if errors.Is(err, ErrNotFound) && optional {
				return "", false, nil
			}
			return "", false, refError("secret", ref.Name, err)
		}
		if v, ok := s.Data[ref.Key]; ok {
			return string(v), true, nil
		}
		if optional {
			return "", false, nil
		}
		return "", false, configErrorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
	}
	return "", false, configErrorf("env %s: valueFrom source is not supported at the edge (supported: fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef)", e.Name)
}

func findContainer(pod *kube.Pod, name string) *kube.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

// fieldValue resolves a downward-API field path. Whole label and
// annotation maps are allowed only in volumes.
func fieldValue(pod *kube.Pod, path string, facts podFacts, volume bool) (string, error) {
	if k, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[k], nil
	}
	if k, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[k], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return facts.NodeIP, nil
	case "status.hostIPs":
		return facts.NodeIP, nil
	case "status.podIP":
		if len(facts.PodIPs) > 0 {
			return facts.PodIPs[0], nil
		}
		return "", nil
	case "status.podIPs":
		return strings.Join(facts.PodIPs, ","), nil
	case "metadata.labels":
		if volume {
			return formatMap(pod.Labels), nil
		}
	case "metadata.annotations":
		if volume {
			return formatMap(pod.Annotations), nil
		}
	}
	return "", fmt.Errorf("field path %q is not supported", path)
}

// subscript parses prefix['key'].
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	key, ok := strings.CutSuffix(rest, "']")
	return key, ok
}

// formatMap renders labels or annotations one key="value" per line, sorted,
// values quoted as Go strings (what the downward API does).
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k + "=" + strconv.Quote(m[k]))
	}
	return b.String()
}

// resourceValue resolves a resourceFieldRef for container c: a limit the
// container does not set is the node's allocatable amount; values are
// divided by the divisor and rounded up.
func resourceValue(ref *kube.ResourceFieldSelector, c *kube.Container, allocatable kube.ResourceList) (string, error) {
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = kube.MustParse("1")
	}
	var q kube.Quantity
	var found bool
	switch ref.Resource {
	case "limits.cpu", "limits.memory", "limits.ephemeral-storage":
		name := kube.ResourceName(strings.TrimPrefix(ref.Resource, "limits."))
		q, found = c.Resources.Limits[name]
		if !found {
			q, found = allocatable[name]
		}
	case "requests.cpu", "requests.memory", "requests.ephemeral-storage":
		name := kube.ResourceName(strings.TrimPrefix(ref.Resource, "requests."))
		q, found = c.Resources.Requests[name]
	default:
		return "", fmt.Errorf("resource %q is not supported (use limits.* or requests.* of cpu, memory or ephemeral-storage)", ref.Resource)
	}
	if !found {
		return "0", nil
	}
	if strings.HasSuffix(ref.Resource, ".cpu") {
		m := math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue()))
		return strconv.FormatInt(int64(m), 10), nil
	}
	v := math.Ceil(float64(q.Value()) / float64(divisor.Value()))
	return strconv.FormatInt(int64(v), 10), nil
}

// expand replaces $(NAME) with NAME's value where lookup knows it; "$$"
// is a literal "$" (so "$$(NAME)" stays "$(NAME)"); anything else,
// including unknown names, is left as written.
func expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok && name != "" {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
