package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"

	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
)

// SpecHashAnnotation records, on every object a Sedna controller writes,
// a hash of what the controller wanted it to be. An object whose hash
// matches needs no update; one whose hash differs is rewritten. Comparing
// hashes of our own desired objects (rather than the live objects, which
// the API server fills with defaults) keeps reconciles free of spurious
// writes and rollouts.
const SpecHashAnnotation = "verge.dev/spec-hash"

// Params is what a controller adds to a user's pod template.
type Params struct {
	// Labels are merged over the template's labels.
	Labels map[string]string
	// Env is set in every container, replacing user variables of the same
	// name: the contract the worker library relies on wins.
	Env []corev1.EnvVar
	// Sources are the models and datasets the worker reads.
	Sources []Source
	// StorageInitializerImage downloads remote sources.
	StorageInitializerImage string
	// RestartPolicy applies when the template sets none; empty leaves the
	// template alone (Deployments require Always, their default).
	RestartPolicy corev1.RestartPolicy
}

// PodTemplate builds a worker's pod template from the user's template. The
// result is deterministic: the same inputs give byte-identical output, so
// its hash changes only when something the user or a referenced object
// changed.
func PodTemplate(tpl *sednav1.PodTemplate, p Params) (corev1.PodTemplateSpec, error) {
	out := tpl.PodTemplateSpec()
	spec := &out.Spec
	if len(spec.Containers) == 0 {
		return corev1.PodTemplateSpec{}, Problemf(ReasonInvalidTemplate, "the template has no containers")
	}
	plan, err := planStorage(p.Sources, p.StorageInitializerImage)
	if err != nil {
		return corev1.PodTemplateSpec{}, err
	}
	for _, v := range plan.volumes {
		for _, uv := range spec.Volumes {
			if uv.Name == v.Name {
				return corev1.PodTemplateSpec{}, Problemf(ReasonInvalidTemplate, "the template's volume %q uses a name reserved for model and dataset volumes; rename it", v.Name)
			}
		}
	}
	spec.Volumes = append(spec.Volumes, plan.volumes...)
	if plan.initContainer != nil {
		for _, c := range spec.InitContainers {
			if c.Name == plan.initContainer.Name {
				return corev1.PodTemplateSpec{}, Problemf(ReasonInvalidTemplate, "the template's init container %q uses a name reserved for the storage initializer; rename it", c.Name)
			}
		}
		// First, so that the user's own init containers find the files.
		spec.InitContainers = append([]corev1.Container{*plan.initContainer}, spec.InitContainers...)
	}

	env := append(append([]corev1.EnvVar(nil), p.Env...), plan.workerEnv...)
	sortEnv(env)
	for i := 1; i < len(env); i++ {
		if env[i].Name == env[i-1].Name {
			// Two of our own sources writing one variable is a bug in
			// the caller, not the user's spec.
			return corev1.PodTemplateSpec{}, fmt.Errorf("worker environment variable %s is set twice", env[i].Name)
		}
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		c.Env = mergeEnv(c.Env, env)
		c.VolumeMounts = append(c.VolumeMounts, plan.mounts...)
	}

	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	maps.Copy(out.Labels, p.Labels)
	if spec.RestartPolicy == "" && p.RestartPolicy != "" {
		spec.RestartPolicy = p.RestartPolicy
	}
	// Workers resolve the cloud worker and the aggregator by Service name;
	// on the host network that only works with this policy.
	if spec.HostNetwork && spec.DNSPolicy == "" {
		spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
	}
	return out, nil
}

// mergeEnv keeps the user's variables in their order, drops those we set,
// and appends ours.
func mergeEnv(user, ours []corev1.EnvVar) []corev1.EnvVar {
	set := make(map[string]bool, len(ours))
	for _, e := range ours {
		set[e.Name] = true
	}
	out := make([]corev1.EnvVar, 0, len(user)+len(ours))
	for _, e := range user {
		if !set[e.Name] {
			out = append(out, e)
		}
	}
	return append(out, ours...)
}

// EnvFromMap turns name/value pairs into variables (sorted by name).
func EnvFromMap(m map[string]string) []corev1.EnvVar {
	env := make([]corev1.EnvVar, 0, len(m))
	for k, v := range m {
		env = append(env, corev1.EnvVar{Name: k, Value: v})
	}
	sortEnv(env)
	return env
}

// PodNameEnv sets a variable to the pod's own name, which is what the
// upstream WORKER_NAME identifies: one worker instance.
func PodNameEnv(name string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"},
	}}
}

// ParametersJSON encodes algorithm parameters the way the worker library
// parses them: a JSON list of {"key","value"} objects ("[]" when empty).
func ParametersJSON(ps []sednav1.ParaSpec) string {
	if len(ps) == 0 {
		return "[]"
	}
	b, err := json.Marshal(ps)
	if err != nil {
		// A list of string pairs always encodes.
		return "[]"
	}
	return string(b)
}

// Hash returns a short digest of v's JSON encoding.
func Hash(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("hashing desired object: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:10]), nil
}

// Labels are the upstream selector labels of a worker:
// <kind>.sedna.io/{name,uid,worker-type}.
func Labels(kind, name, uid, workerType string) map[string]string {
	prefix := strings.ToLower(kind) + "." + sednav1.GroupName + "/"
	l := map[string]string{
		prefix + "name": name,
		prefix + "uid":  uid,
	}
	if workerType != "" {
		l[prefix+"worker-type"] = strings.ToLower(workerType)
	}
	return l
}
