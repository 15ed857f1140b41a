package worker

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	sednav1 "github.com/verge-edge/verge/api/sedna/v1alpha1"
)

func template(containers ...string) *sednav1.PodTemplate {
	t := &sednav1.PodTemplate{}
	for _, c := range containers {
		t.Spec.Containers = append(t.Spec.Containers, corev1.Container{Name: c, Image: "img"})
	}
	return t
}

func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			m[e.Name] = "secret:" + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			m[e.Name] = "field:" + e.ValueFrom.FieldRef.FieldPath
		default:
			m[e.Name] = e.Value
		}
	}
	return m
}

func TestPodTemplateStorage(t *testing.T) {
	cred := &Credential{SecretName: "s3cred", EndpointURL: "https://minio.example:9000"}
	tests := []struct {
		name       string
		sources    []Source
		wantEnv    map[string]string // subset of the worker's env
		wantNoEnv  []string
		wantMounts map[string]string // mount path -> host path ("" for the download volume)
		wantInit   []string          // init container args; nil: no init container
		wantInitEn map[string]string
		wantReason string
	}{
		{
			name:       "host file mounts its directory under /home/data",
			sources:    []Source{{What: "model m", URL: "/models/little/yolo.pb", EnvName: "MODEL_URL", Download: true}},
			wantEnv:    map[string]string{"MODEL_URL": "/home/data/models/little/yolo.pb", "DATA_PATH_PREFIX": "/home/data"},
			wantMounts: map[string]string{"/home/data/models/little": "/models/little"},
		},
		{
			name:       "host directory (trailing slash) mounts itself",
			sources:    []Source{{What: "model m", URL: "/models/saved/", EnvName: "MODEL_URL"}},
			wantEnv:    map[string]string{"MODEL_URL": "/home/data/models/saved"},
			wantMounts: map[string]string{"/home/data/models/saved": "/models/saved"},
		},
		{
			name: "two files in one directory share one volume",
			sources: []Source{
				{What: "model a", URL: "/data/a.pb", EnvName: "MODEL_URL"},
				{What: "dataset d", URL: "/data/train.txt", EnvName: "TRAIN_DATASET_URL"},
			},
			wantEnv:    map[string]string{"MODEL_URL": "/home/data/data/a.pb", "TRAIN_DATASET_URL": "/home/data/data/train.txt"},
			wantMounts: map[string]string{"/home/data/data": "/data"},
		},
		{
			name:       "s3 download goes through the init container with secret references",
			sources:    []Source{{What: "model m", URL: "s3://bucket/models/big.pb", EnvName: "MODEL_URL", Download: true, Credential: cred}},
			wantEnv:    map[string]string{"MODEL_URL": "/downloads/bucket/models/big.pb"},
			wantNoEnv:  []string{"ACCESS_KEY_ID", "DATA_PATH_PREFIX"},
			wantMounts: map[string]string{"/downloads": ""},
			wantInit:   []string{"s3://bucket/models/big.pb", "/downloads/bucket/models/"},
			wantInitEn: map[string]string{"ACCESS_KEY_ID": "secret:s3cred/ACCESS_KEY_ID", "SECRET_ACCESS_KEY": "secret:s3cred/SECRET_ACCESS_KEY", "S3_ENDPOINT_URL": "https://minio.example:9000", "INDIRECT_URL_MARK": "@"},
		},
		{
			name:      "s3 without download passes the URL and the credential to the worker",
			sources:   []Source{{What: "transmitter", URL: "s3://bucket/agg", EnvName: "AGG_DATA_PATH", Credential: cred}},
			wantEnv:   map[string]string{"AGG_DATA_PATH": "s3://bucket/agg", "ACCESS_KEY_ID": "secret:s3cred/ACCESS_KEY_ID", "S3_ENDPOINT_URL": "https://minio.example:9000"},
			wantNoEnv: []string{"DATA_PATH_PREFIX"},
		},
		{
			name:       "http download needs no credential",
			sources:    []Source{{What: "model m", URL: "https://models.example/m.onnx", EnvName: "MODEL_URL", Download: true}},
			wantEnv:    map[string]string{"MODEL_URL": "/downloads/models.example/m.onnx"},
			wantMounts: map[string]string{"/downloads": ""},
			wantInit:   []string{"https://models.example/m.onnx", "/downloads/models.example/"},
			wantInitEn: map[string]string{"INDIRECT_URL_MARK": "@"},
		},
		{
			name:       "relative path is rejected",
			sources:    []Source{{What: `model "m"`, URL: "models/m.pb", EnvName: "MODEL_URL"}},
			wantReason: ReasonInvalidURL,
		},
		{
			name:       "unknown scheme is rejected",
			sources:    []Source{{What: `model "m"`, URL: "ftp://host/m.pb", EnvName: "MODEL_URL"}},
			wantReason: ReasonInvalidURL,
		},
		{
			name:       "top-level path mounts itself, never the node's root",
			sources:    []Source{{What: "model m", URL: "/model", EnvName: "MODEL_URL"}},
			wantEnv:    map[string]string{"MODEL_URL": "/home/data/model"},
			wantMounts: map[string]string{"/home/data/model": "/model"},
		},
		{
			name:       "the root directory is rejected",
			sources:    []Source{{What: `model "m"`, URL: "/", EnvName: "MODEL_URL"}},
			wantReason: ReasonInvalidURL,
		},
		{
			name:       "s3 credential without endpoint is rejected",
			sources:    []Source{{What: `model "m"`, URL: "s3://b/m.pb", EnvName: "MODEL_URL", Download: true, Credential: &Credential{SecretName: "bare"}}},
			wantReason: ReasonInvalidCredential,
		},
		{
			name: "two different credentials in one init container are rejected",
			sources: []Source{
				{What: `model "a"`, URL: "s3://b/a.pb", EnvName: "MODEL_URL", Download: true, Credential: cred},
				{What: `dataset "d"`, URL: "s3://b/d.txt", EnvName: "TRAIN_DATASET_URL", Download: true, Credential: &Credential{SecretName: "other", EndpointURL: "https://x"}},
			},
			wantReason: ReasonCredentialConflict,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := PodTemplate(template("main", "sidecar"), Params{Sources: tc.sources, StorageInitializerImage: "init:v1"})
			if tc.wantReason != "" {
				var p *Problem
				if !errors.As(err, &p) || p.Reason != tc.wantReason {
					t.Fatalf("want problem %s, got %v", tc.wantReason, err)
				}
				if !strings.Contains(p.Message, tc.sources[len(tc.sources)-1].What) && !strings.Contains(p.Message, tc.sources[0].What) {
					t.Errorf("message %q does not name the source", p.Message)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Every container gets the same environment and mounts.
			for _, c := range out.Spec.Containers {
				env := envOf(c)
				for k, v := range tc.wantEnv {
					if env[k] != v {
						t.Errorf("container %s: %s=%q, want %q", c.Name, k, env[k], v)
					}
				}
				for _, k := range tc.wantNoEnv {
					if _, ok := env[k]; ok {
						t.Errorf("container %s: unexpected %s", c.Name, k)
					}
				}
				got := map[string]string{}
				for _, m := range c.VolumeMounts {
					got[m.MountPath] = hostPathOf(out.Spec, m.Name)
				}
				if !reflect.DeepEqual(got, nonNil(tc.wantMounts)) {
					t.Errorf("container %s mounts %v, want %v", c.Name, got, tc.wantMounts)
				}
			}
			if tc.wantInit == nil {
				if len(out.Spec.InitContainers) != 0 {
					t.Fatalf("unexpected init containers %v", out.Spec.InitContainers)
				}
				return
			}
			if len(out.Spec.InitContainers) != 1 {
				t.Fatalf("want one init container, got %d", len(out.Spec.InitContainers))
			}
			ic := out.Spec.InitContainers[0]
			if ic.Image != "init:v1" || !reflect.DeepEqual(ic.Args, tc.wantInit) {
				t.Errorf("init container %s %v, want init:v1 %v", ic.Image, ic.Args, tc.wantInit)
			}
			if !reflect.DeepEqual(envOf(ic), tc.wantInitEn) {
				t.Errorf("init env %v, want %v", envOf(ic), tc.wantInitEn)
			}
		})
	}
}

func hostPathOf(spec corev1.PodSpec, volume string) string {
	for _, v := range spec.Volumes {
		if v.Name == volume && v.HostPath != nil {
			return v.HostPath.Path
		}
	}
	return ""
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func TestPodTemplateEnvAndMetadata(t *testing.T) {
	tpl := template("main")
	tpl.ObjectMeta.Labels = map[string]string{"app": "mine", "jointinferenceservice.sedna.io/name": "spoofed"}
	tpl.ObjectMeta.Annotations = map[string]string{"note": "kept"}
	tpl.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "input_shape", Value: "416,736"}, {Name: "LC_SERVER", Value: "http://user-choice"}}
	tpl.Spec.HostNetwork = true

	out, err := PodTemplate(tpl, Params{
		Labels:        Labels("JointInferenceService", "ji", "u1", "Edge"),
		Env:           append(EnvFromMap(map[string]string{"LC_SERVER": "http://localhost:9100", "HEM_NAME": "IBT"}), PodNameEnv("WORKER_NAME")),
		RestartPolicy: corev1.RestartPolicyOnFailure,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := out.Spec.Containers[0]
	names := []string{}
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	// User variables first in their order (minus the overridden one),
	// then ours sorted.
	if want := []string{"input_shape", "HEM_NAME", "LC_SERVER", "WORKER_NAME"}; !reflect.DeepEqual(names, want) {
		t.Errorf("env order %v, want %v", names, want)
	}
	env := envOf(c)
	if env["LC_SERVER"] != "http://localhost:9100" || env["WORKER_NAME"] != "field:metadata.name" {
		t.Errorf("env %v", env)
	}
	wantLabels := map[string]string{
		"app":                                        "mine",
		"jointinferenceservice.sedna.io/name":        "ji",
		"jointinferenceservice.sedna.io/uid":         "u1",
		"jointinferenceservice.sedna.io/worker-type": "edge",
	}
	if !reflect.DeepEqual(out.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", out.Labels, wantLabels)
	}
	if out.Annotations["note"] != "kept" {
		t.Errorf("annotations %v", out.Annotations)
	}
	if out.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("restart policy %q", out.Spec.RestartPolicy)
	}
	if out.Spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("host-network worker has DNS policy %q; it could not resolve Service names", out.Spec.DNSPolicy)
	}
	// The user's template is untouched.
	if len(tpl.Spec.Containers[0].Env) != 2 || tpl.ObjectMeta.Labels["jointinferenceservice.sedna.io/name"] != "spoofed" {
		t.Error("PodTemplate modified its input")
	}
}

func TestPodTemplateDeterministic(t *testing.T) {
	params := Params{
		Labels:                  Labels("FederatedLearningJob", "fl", "u", "train"),
		Env:                     EnvFromMap(map[string]string{"B": "2", "A": "1", "C": "3", "D": "4"}),
		Sources:                 []Source{{What: "m", URL: "/m/x.pb", EnvName: "MODEL_URL"}, {What: "d", URL: "s3://b/d", EnvName: "TRAIN_DATASET_URL", Download: true}},
		StorageInitializerImage: "i",
	}
	first, err := PodTemplate(template("a", "b"), params)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := Hash(first)
	for range 20 {
		again, _ := PodTemplate(template("a", "b"), params)
		if h, _ := Hash(again); h != h1 {
			t.Fatalf("same inputs gave a different template: %s vs %s", h, h1)
		}
	}
}

func TestPodTemplateRejects(t *testing.T) {
	noContainers := &sednav1.PodTemplate{}
	clash := template("main")
	clash.Spec.Volumes = []corev1.Volume{{Name: hostVolumeName("/models")}}
	initClash := template("main")
	initClash.Spec.InitContainers = []corev1.Container{{Name: "storage-initializer"}}
	for name, tc := range map[string]struct {
		tpl     *sednav1.PodTemplate
		sources []Source
	}{
		"no containers":         {noContainers, nil},
		"reserved volume name":  {clash, []Source{{What: "m", URL: "/models/m.pb", EnvName: "MODEL_URL"}}},
		"reserved init name":    {initClash, []Source{{What: "m", URL: "s3://b/m", EnvName: "MODEL_URL", Download: true}}},
		"reserved volume (dir)": {clash, []Source{{What: "m", URL: "/models/", EnvName: "MODEL_URL"}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := PodTemplate(tc.tpl, Params{Sources: tc.sources, StorageInitializerImage: "i"})
			var p *Problem
			if !errors.As(err, &p) || p.Reason != ReasonInvalidTemplate {
				t.Fatalf("want InvalidTemplate, got %v", err)
			}
		})
	}
}

func TestCredentialFromSecret(t *testing.T) {
	for name, tc := range map[string]struct {
		ann  map[string]string
		want string
	}{
		"https by default": {map[string]string{"s3-endpoint": "s3.example"}, "https://s3.example"},
		"plain http":       {map[string]string{"s3-endpoint": "minio:9000", "s3-usehttps": "0"}, "http://minio:9000"},
		"no endpoint":      {nil, ""},
	} {
		t.Run(name, func(t *testing.T) {
			s := &corev1.Secret{}
			s.Name = "c"
			s.Annotations = tc.ann
			if got := CredentialFromSecret(s); got.EndpointURL != tc.want || got.SecretName != "c" {
				t.Errorf("got %+v, want endpoint %q", got, tc.want)
			}
		})
	}
}

func TestParametersJSON(t *testing.T) {
	if got := ParametersJSON(nil); got != "[]" {
		t.Errorf("empty: %s", got)
	}
	got := ParametersJSON([]sednav1.ParaSpec{{Key: "threshold_img", Value: "0.9"}, {Key: "threshold_box", Value: "0.5"}})
	if want := `[{"key":"threshold_img","value":"0.9"},{"key":"threshold_box","value":"0.5"}]`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	bad := DefaultOptions()
	bad.LCServer = "localhost:9100"
	bad.Workers = 0
	bad.HardExampleMining = nil
	err := bad.Validate()
	for _, want := range []string{"lcServer", "workers", "hardExampleMining"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}
