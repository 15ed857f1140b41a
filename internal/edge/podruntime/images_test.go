package podruntime

import (
	"encoding/base64"
	"testing"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

func TestPullPolicyDefault(t *testing.T) {
	cases := map[string]kube.PullPolicy{
		"nginx":                          kube.PullAlways,
		"nginx:latest":                   kube.PullAlways,
		"nginx:1.27":                     kube.PullIfNotPresent,
		"127.0.0.1:5000/app":             kube.PullAlways,
		"127.0.0.1:5000/app:v1":          kube.PullIfNotPresent,
		"reg.example/a/b@sha256:0123abc": kube.PullIfNotPresent,
	}
	for image, want := range cases {
		if got := pullPolicy(&kube.Container{Image: image}); got != want {
			t.Errorf("%s: %s, want %s", image, got, want)
		}
	}
	if got := pullPolicy(&kube.Container{Image: "nginx", ImagePullPolicy: kube.PullNever}); got != kube.PullNever {
		t.Errorf("an explicit policy wins, got %s", got)
	}
}

func TestImageRegistry(t *testing.T) {
	cases := map[string][2]string{
		"nginx":                       {"docker.io", "library/nginx"},
		"user/app:1":                  {"docker.io", "user/app"},
		"127.0.0.1:5000/team/app:v1":  {"127.0.0.1:5000", "team/app"},
		"localhost/app":               {"localhost", "app"},
		"reg.example/app@sha256:abcd": {"reg.example", "app"},
	}
	for image, want := range cases {
		if h, r := imageRegistry(image); h != want[0] || r != want[1] {
			t.Errorf("%s: %s %s, want %v", image, h, r, want)
		}
	}
}

func TestPullSecretMatching(t *testing.T) {
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	sec := &kube.Secret{ObjectMeta: kube.ObjectMeta{Name: "regcred"}, Data: map[string][]byte{kube.DockerConfigJsonKey: []byte(`{"auths":{
		"https://index.docker.io/v1/": {"auth": "` + enc("hub:pw") + `"},
		"reg.example": {"username": "u1", "password": "p1"},
		"reg.example/team": {"username": "u2", "password": "p2"},
		"*.corp.example": {"auth": "` + enc("wild:card") + `"},
		"http://127.0.0.1:5000": {"auth": "` + enc("local:pw") + `"}
	}}`)}}
	creds, err := parsePullSecret(sec)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		image string
		users []string
	}{
		{"nginx", []string{"hub"}},
		{"reg.example/team/app:v1", []string{"u2", "u1"}},
		{"reg.example/other/app", []string{"u1"}},
		{"registry.corp.example/app", []string{"wild"}},
		{"a.b.corp.example/app", nil},
		{"127.0.0.1:5000/app", []string{"local"}},
		{"127.0.0.1:5001/app", nil},
	}
	for _, tc := range cases {
		var users []string
		for _, a := range matchCredentials(creds, tc.image) {
			users = append(users, a.Username)
		}
		if len(users) != len(tc.users) {
			t.Errorf("%s: users %v, want %v", tc.image, users, tc.users)
			continue
		}
		for i := range users {
			if users[i] != tc.users[i] {
				t.Errorf("%s: users %v, want %v", tc.image, users, tc.users)
			}
		}
	}
	bad := &kube.Secret{ObjectMeta: kube.ObjectMeta{Name: "bad"}, Data: map[string][]byte{kube.DockerConfigJsonKey: []byte(`{`)}}
	if _, err := parsePullSecret(bad); err == nil {
		t.Fatal("invalid JSON accepted")
	}
	legacy := &kube.Secret{ObjectMeta: kube.ObjectMeta{Name: "old"}, Data: map[string][]byte{kube.DockerConfigKey: []byte(`{"reg.example":{"auth":"` + enc("old:pw") + `"}}`)}}
	if c, err := parsePullSecret(legacy); err != nil || len(c) != 1 || c[0].auth.Username != "old" || c[0].auth.Password != "pw" {
		t.Fatalf("dockercfg: %v %v", c, err)
	}
}
