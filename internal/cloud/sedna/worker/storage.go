package worker

import (
	"fmt"
	"hash/fnv"
	"net/url"
	"path"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Paths and names of the storage contract shared with the upstream worker
// library: downloaded files live under DownloadDir, node-local files under
// HostPathPrefix, and DATA_PATH_PREFIX tells the worker the latter.
const (
	DownloadDir    = "/downloads"
	HostPathPrefix = "/home/data"

	downloadVolume       = "sedna-storage-initializer"
	initContainerName    = "storage-initializer"
	hostVolumePrefix     = "sedna-host-"
	dataPathPrefixEnv    = "DATA_PATH_PREFIX"
	indirectURLMarkEnv   = "INDIRECT_URL_MARK"
	indirectURLMark      = "@"
	s3EndpointURLEnv     = "S3_ENDPOINT_URL"
	accessKeyIDKey       = "ACCESS_KEY_ID"
	secretAccessKeyKey   = "SECRET_ACCESS_KEY"
	s3EndpointAnnotation = "s3-endpoint"
	s3HTTPSAnnotation    = "s3-usehttps"
)

// Source is a model, dataset or data path a worker needs.
type Source struct {
	// What names the source in messages, e.g. `model "yolo"`.
	What string
	// URL is an absolute path on the node, or an s3://, http:// or
	// https:// URL. A path ending in "/" is a directory.
	URL string
	// EnvName receives the location inside the container.
	EnvName string
	// Download fetches remote URLs into the pod before the worker starts;
	// otherwise the worker gets the URL itself (and the credentials).
	Download bool
	// Credential is used for s3:// URLs.
	Credential *Credential
}

// Credential is an object-storage credential held in a Secret with the
// upstream layout: annotations s3-endpoint and s3-usehttps ("0" for plain
// HTTP), data keys ACCESS_KEY_ID and SECRET_ACCESS_KEY. Workers receive
// the keys as secretKeyRef environment variables, never as copied values.
type Credential struct {
	SecretName  string
	EndpointURL string
}

// CredentialFromSecret reads the endpoint of an upstream-style credential
// Secret. EndpointURL is empty when the Secret has no s3-endpoint
// annotation; using it for an s3:// URL is then an error.
func CredentialFromSecret(s *corev1.Secret) Credential {
	c := Credential{SecretName: s.Name}
	if ep := s.Annotations[s3EndpointAnnotation]; ep != "" {
		scheme := "https://"
		if s.Annotations[s3HTTPSAnnotation] == "0" {
			scheme = "http://"
		}
		c.EndpointURL = scheme + ep
	}
	return c
}

// storagePlan is what a list of sources adds to a pod.
type storagePlan struct {
	workerEnv     []corev1.EnvVar
	volumes       []corev1.Volume
	mounts        []corev1.VolumeMount
	initContainer *corev1.Container
}

// planStorage decides, for each source, whether it is mounted from the
// node, downloaded by the init container, or passed through as a URL.
func planStorage(sources []Source, initImage string) (storagePlan, error) {
	var (
		plan          storagePlan
		downloadArgs  []string
		initCred      *Credential
		workerCred    *Credential
		hostDirs      = map[string]bool{}
		usesHostPaths bool
	)
	for _, s := range sources {
		u, err := url.Parse(s.URL)
		if err != nil || s.URL == "" {
			return storagePlan{}, Problemf(ReasonInvalidURL, "%s: url %q is not a valid URL: use an absolute path on the node, or an s3://, http:// or https:// URL", s.What, s.URL)
		}
		switch u.Scheme {
		case "s3", "http", "https":
			if u.Host == "" {
				return storagePlan{}, Problemf(ReasonInvalidURL, "%s: url %q has no host (bucket)", s.What, s.URL)
			}
			var cred *Credential
			if u.Scheme == "s3" && s.Credential != nil {
				if s.Credential.EndpointURL == "" {
					return storagePlan{}, Problemf(ReasonInvalidCredential, "%s: secret %q has no %q annotation naming the S3 endpoint", s.What, s.Credential.SecretName, s3EndpointAnnotation)
				}
				cred = s.Credential
			}
			if !s.Download {
				if err := sameCredential(&workerCred, cred, s.What); err != nil {
					return storagePlan{}, err
				}
				plan.workerEnv = append(plan.workerEnv, corev1.EnvVar{Name: s.EnvName, Value: s.URL})
				continue
			}
			if err := sameCredential(&initCred, cred, s.What); err != nil {
				return storagePlan{}, err
			}
			// Host and path together keep two buckets' "model.pb" apart.
			inPod := path.Join(DownloadDir, u.Host, u.Path)
			downloadArgs = append(downloadArgs, s.URL, path.Dir(inPod)+"/")
			plan.workerEnv = append(plan.workerEnv, corev1.EnvVar{Name: s.EnvName, Value: inPod})
		case "":
			if !path.IsAbs(u.Path) {
				return storagePlan{}, Problemf(ReasonInvalidURL, "%s: url %q is neither an absolute path on the node nor an s3://, http:// or https:// URL", s.What, s.URL)
			}
			clean := path.Clean(u.Path)
			if clean == "/" {
				return storagePlan{}, Problemf(ReasonInvalidURL, "%s: url %q names the node's root directory; use a directory below it", s.What, s.URL)
			}
			// A file is reached through its directory. A path ending in
			// "/" is a directory, and so is a top-level path such as
			// "/model" (where upstream examples put output models):
			// mounting its parent would expose the node's whole root
			// filesystem. The worker sees the same path either way.
			dir, hpType := path.Dir(clean), corev1.HostPathDirectory
			if strings.HasSuffix(u.Path, "/") || dir == "/" {
				dir, hpType = clean, corev1.HostPathDirectoryOrCreate
			}
			usesHostPaths = true
			if !hostDirs[dir] {
				hostDirs[dir] = true
				name := hostVolumeName(dir)
				plan.volumes = append(plan.volumes, corev1.Volume{
					Name:         name,
					VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &hpType}},
				})
				plan.mounts = append(plan.mounts, corev1.VolumeMount{Name: name, MountPath: path.Join(HostPathPrefix, dir)})
			}
			plan.workerEnv = append(plan.workerEnv, corev1.EnvVar{Name: s.EnvName, Value: path.Join(HostPathPrefix, clean)})
		default:
			return storagePlan{}, Problemf(ReasonInvalidURL, "%s: url scheme %q is not supported: use an absolute path on the node, or an s3://, http:// or https:// URL", s.What, u.Scheme)
		}
	}
	if usesHostPaths {
		plan.workerEnv = append(plan.workerEnv, corev1.EnvVar{Name: dataPathPrefixEnv, Value: HostPathPrefix})
	}
	plan.workerEnv = append(plan.workerEnv, credentialEnv(workerCred)...)
	if len(downloadArgs) > 0 {
		plan.volumes = append(plan.volumes, corev1.Volume{
			Name:         downloadVolume,
			VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}},
		})
		plan.mounts = append(plan.mounts, corev1.VolumeMount{Name: downloadVolume, MountPath: DownloadDir, ReadOnly: true})
		env := append(credentialEnv(initCred), corev1.EnvVar{Name: indirectURLMarkEnv, Value: indirectURLMark})
		sortEnv(env)
		plan.initContainer = &corev1.Container{
			Name:                     initContainerName,
			Image:                    initImage,
			ImagePullPolicy:          corev1.PullIfNotPresent,
			Args:                     downloadArgs,
			Env:                      env,
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			VolumeMounts:             []corev1.VolumeMount{{Name: downloadVolume, MountPath: DownloadDir}},
			Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("1"),
					corev1.ResourceMemory: resource.MustParse("1Gi"),
				},
			},
		}
	}
	return plan, nil
}

// sameCredential records the credential a container needs and fails when
// two sources need different ones: the upstream variables hold one.
func sameCredential(held **Credential, want *Credential, what string) error {
	if want == nil {
		return nil
	}
	if *held == nil {
		*held = want
		return nil
	}
	if **held != *want {
		return Problemf(ReasonCredentialConflict, "%s uses secret %q but another source of the same worker uses secret %q; a worker can hold one S3 credential", what, want.SecretName, (*held).SecretName)
	}
	return nil
}

func credentialEnv(c *Credential) []corev1.EnvVar {
	if c == nil {
		return nil
	}
	ref := func(key string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: c.SecretName},
			Key:                  key,
		}}
	}
	return []corev1.EnvVar{
		{Name: s3EndpointURLEnv, Value: c.EndpointURL},
		{Name: accessKeyIDKey, ValueFrom: ref(accessKeyIDKey)},
		{Name: secretAccessKeyKey, ValueFrom: ref(secretAccessKeyKey)},
	}
}

// hostVolumeName is a stable DNS-label name for a host directory.
func hostVolumeName(dir string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(dir))
	return fmt.Sprintf("%s%016x", hostVolumePrefix, h.Sum64())
}

func sortEnv(env []corev1.EnvVar) {
	sort.SliceStable(env, func(i, j int) bool { return env[i].Name < env[j].Name })
}
