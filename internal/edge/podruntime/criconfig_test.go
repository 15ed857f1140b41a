package podruntime

import (
	"reflect"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

func TestLinuxResources(t *testing.T) {
	q := kube.MustParse
	pod := func(c kube.Container) *kube.Pod {
		return &kube.Pod{Spec: kube.PodSpec{Containers: []kube.Container{c}}}
	}
	cases := []struct {
		name string
		c    kube.Container
		want *runtimeapi.LinuxContainerResources
	}{
		{"best effort", kube.Container{}, &runtimeapi.LinuxContainerResources{CpuShares: 2, OomScoreAdj: 1000}},
		{"guaranteed", kube.Container{Resources: kube.ResourceRequirements{
			Requests: kube.ResourceList{kube.ResourceCPU: q("500m"), kube.ResourceMemory: q("128Mi")},
			Limits:   kube.ResourceList{kube.ResourceCPU: q("500m"), kube.ResourceMemory: q("128Mi")}}},
			&runtimeapi.LinuxContainerResources{CpuShares: 512, CpuPeriod: 100000, CpuQuota: 50000, MemoryLimitInBytes: 128 << 20, OomScoreAdj: -997}},
		{"burstable: a quarter of memory requested", kube.Container{Resources: kube.ResourceRequirements{
			Requests: kube.ResourceList{kube.ResourceCPU: q("100m"), kube.ResourceMemory: q("1Gi")}}},
			&runtimeapi.LinuxContainerResources{CpuShares: 102, OomScoreAdj: 750}},
		{"tiny limit keeps the minimum quota", kube.Container{Resources: kube.ResourceRequirements{
			Limits: kube.ResourceList{kube.ResourceCPU: q("1m")}}},
			&runtimeapi.LinuxContainerResources{CpuShares: 2, CpuPeriod: 100000, CpuQuota: 1000, OomScoreAdj: 999}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := linuxResources(pod(tc.c), &tc.c, 4<<30)
			if got.CpuShares != tc.want.CpuShares || got.CpuPeriod != tc.want.CpuPeriod || got.CpuQuota != tc.want.CpuQuota ||
				got.MemoryLimitInBytes != tc.want.MemoryLimitInBytes || got.OomScoreAdj != tc.want.OomScoreAdj {
				t.Fatalf("got shares=%d period=%d quota=%d mem=%d oom=%d, want %+v", got.CpuShares, got.CpuPeriod, got.CpuQuota, got.MemoryLimitInBytes, got.OomScoreAdj, tc.want)
			}
		})
	}
}

func TestDNSConfig(t *testing.T) {
	pod := &kube.Pod{ObjectMeta: kube.ObjectMeta{Namespace: "shop"}}
	cfg, warn := dnsConfig(pod, []string{"10.96.0.10"}, "cluster.local")
	want := &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5"}}
	if warn != "" || !reflect.DeepEqual(cfg.Servers, want.Servers) || !reflect.DeepEqual(cfg.Searches, want.Searches) || !reflect.DeepEqual(cfg.Options, want.Options) {
		t.Fatalf("ClusterFirst: %v %q", cfg, warn)
	}
	if cfg, warn := dnsConfig(pod, nil, "cluster.local"); cfg != nil || warn == "" {
		t.Fatalf("ClusterFirst without cluster DNS falls back to the host with a warning: %v %q", cfg, warn)
	}
	hostNet := kube.DeepCopy(pod)
	hostNet.Spec.HostNetwork = true
	if cfg, _ := dnsConfig(hostNet, []string{"10.96.0.10"}, "cluster.local"); cfg != nil {
		t.Fatalf("hostNetwork with ClusterFirst uses the host's resolver: %v", cfg)
	}
	none := kube.DeepCopy(pod)
	five := "2"
	none.Spec.DNSPolicy = kube.DNSNone
	none.Spec.DNSConfig = &kube.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: []string{"example"}, Options: []kube.PodDNSConfigOption{{Name: "ndots", Value: &five}}}
	cfg, _ = dnsConfig(none, []string{"10.96.0.10"}, "cluster.local")
	if !reflect.DeepEqual(cfg.Servers, []string{"1.1.1.1"}) || !reflect.DeepEqual(cfg.Options, []string{"ndots:2"}) {
		t.Fatalf("None: %v", cfg)
	}
	merged := kube.DeepCopy(pod)
	merged.Spec.DNSConfig = &kube.PodDNSConfig{Options: []kube.PodDNSConfigOption{{Name: "ndots", Value: &five}, {Name: "edns0"}}}
	cfg, _ = dnsConfig(merged, []string{"10.96.0.10"}, "cluster.local")
	if !reflect.DeepEqual(cfg.Options, []string{"ndots:2", "edns0"}) {
		t.Fatalf("pod options replace same-named ones: %v", cfg.Options)
	}
}

func TestSandboxConfig(t *testing.T) {
	grace := int64(7)
	pod := &kube.Pod{
		ObjectMeta: kube.ObjectMeta{Name: "web-" + string(make([]byte, 0)) + "x", Namespace: "ns", UID: "u1", Labels: map[string]string{"app": "web"}},
		Spec: kube.PodSpec{TerminationGracePeriodSeconds: &grace, Containers: []kube.Container{{Name: "c",
			Ports: []kube.ContainerPort{{ContainerPort: 80, HostPort: 8080}, {ContainerPort: 53, Protocol: kube.ProtocolUDP, HostPort: 5353}, {ContainerPort: 9090}}}}},
	}
	cfg, _ := buildSandboxConfig(pod, 2, sandboxOpts{NodeName: "edge-1", CgroupParent: "/verge/edge-1", PodLogDir: "/var/log/pods"})
	if cfg.Metadata.Attempt != 2 || cfg.Metadata.Uid != "u1" || cfg.Hostname != "web-x" || cfg.LogDirectory != "/var/log/pods/ns_web-x_u1" {
		t.Fatalf("metadata/hostname/logdir: %+v %q %q", cfg.Metadata, cfg.Hostname, cfg.LogDirectory)
	}
	if cfg.Linux.CgroupParent != "/verge/edge-1/podu1" {
		t.Fatalf("cgroup parent %q", cfg.Linux.CgroupParent)
	}
	if len(cfg.PortMappings) != 2 || cfg.PortMappings[1].Protocol != runtimeapi.Protocol_UDP {
		t.Fatalf("port mappings %v", cfg.PortMappings)
	}
	if cfg.Labels["app"] != "web" || cfg.Labels[labelManagedBy] != managedByValue || cfg.Labels[labelNode] != "edge-1" || cfg.Annotations[annotationGracePeriod] != "7" {
		t.Fatalf("labels %v annotations %v", cfg.Labels, cfg.Annotations)
	}
	own, ok := ownerOf(cfg.Labels, "edge-1")
	if !ok || own.UID != "u1" || own.Name != "web-x" {
		t.Fatalf("owner %+v %v", own, ok)
	}
	if _, ok := ownerOf(cfg.Labels, "edge-2"); ok {
		t.Fatal("a sandbox of another node must not count as owned")
	}
}

func TestContainerConfig(t *testing.T) {
	pod := &kube.Pod{ObjectMeta: kube.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}
	c := &kube.Container{Name: "app", Image: "img", Command: []string{"/bin/$(CMD)"}, Args: []string{"--name=$(NAME)", "$$(NAME)"},
		SecurityContext: &kube.SecurityContext{RunAsUser: ptr(int64(1000)), ReadOnlyRootFilesystem: ptr(true), AllowPrivilegeEscalation: ptr(false),
			Capabilities: &kube.Capabilities{Add: []kube.Capability{"NET_ADMIN"}, Drop: []kube.Capability{"ALL"}}}}
	cfg := buildContainerConfig(containerBuild{Pod: pod, C: c, Attempt: 3, Step: 2, Image: "sha256:abc",
		Env: []envVar{{"CMD", "server"}, {"NAME", "x"}}, NodeName: "edge-1"})
	if !reflect.DeepEqual(cfg.Command, []string{"/bin/server"}) || !reflect.DeepEqual(cfg.Args, []string{"--name=x", "$(NAME)"}) {
		t.Fatalf("expansion: %v %v", cfg.Command, cfg.Args)
	}
	if cfg.LogPath != "app/3.log" || cfg.Metadata.Attempt != 3 || cfg.Annotations[annotationBackoffStep] != "2" || cfg.Annotations[annotationRestartCount] != "3" {
		t.Fatalf("log path %q attempt %d annotations %v", cfg.LogPath, cfg.Metadata.Attempt, cfg.Annotations)
	}
	sc := cfg.Linux.SecurityContext
	if sc.RunAsUser.GetValue() != 1000 || !sc.ReadonlyRootfs || !sc.NoNewPrivs || sc.Capabilities.AddCapabilities[0] != "NET_ADMIN" || len(sc.MaskedPaths) == 0 {
		t.Fatalf("security context %+v", sc)
	}
	priv := kube.DeepCopy(c)
	priv.SecurityContext = &kube.SecurityContext{Privileged: ptr(true)}
	if sc := buildContainerConfig(containerBuild{Pod: pod, C: priv}).Linux.SecurityContext; !sc.Privileged || len(sc.MaskedPaths) != 0 {
		t.Fatalf("privileged: %+v", sc)
	}
}
