package podruntime

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestLinuxResources(t *testing.T) {
	q := resource.MustParse
	pod := func(c corev1.Container) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
	}
	cases := []struct {
		name string
		c    corev1.Container
		want *runtimeapi.LinuxContainerResources
	}{
		{"best effort", corev1.Container{}, &runtimeapi.LinuxContainerResources{CpuShares: 2, OomScoreAdj: 1000}},
		{"guaranteed", corev1.Container{Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: q("500m"), corev1.ResourceMemory: q("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: q("500m"), corev1.ResourceMemory: q("128Mi")}}},
			&runtimeapi.LinuxContainerResources{CpuShares: 512, CpuPeriod: 100000, CpuQuota: 50000, MemoryLimitInBytes: 128 << 20, OomScoreAdj: -997}},
		{"burstable: a quarter of memory requested", corev1.Container{Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: q("100m"), corev1.ResourceMemory: q("1Gi")}}},
			&runtimeapi.LinuxContainerResources{CpuShares: 102, OomScoreAdj: 750}},
		{"tiny limit keeps the minimum quota", corev1.Container{Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceCPU: q("1m")}}},
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
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop"}}
	cfg, warn := dnsConfig(pod, []string{"10.96.0.10"}, "cluster.local")
	want := &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5"}}
	if warn != "" || !reflect.DeepEqual(cfg.Servers, want.Servers) || !reflect.DeepEqual(cfg.Searches, want.Searches) || !reflect.DeepEqual(cfg.Options, want.Options) {
		t.Fatalf("ClusterFirst: %v %q", cfg, warn)
	}
	if cfg, warn := dnsConfig(pod, nil, "cluster.local"); cfg != nil || warn == "" {
		t.Fatalf("ClusterFirst without cluster DNS falls back to the host with a warning: %v %q", cfg, warn)
	}
	hostNet := pod.DeepCopy()
	hostNet.Spec.HostNetwork = true
	if cfg, _ := dnsConfig(hostNet, []string{"10.96.0.10"}, "cluster.local"); cfg != nil {
		t.Fatalf("hostNetwork with ClusterFirst uses the host's resolver: %v", cfg)
	}
	none := pod.DeepCopy()
	five := "2"
	none.Spec.DNSPolicy = corev1.DNSNone
	none.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: []string{"example"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &five}}}
	cfg, _ = dnsConfig(none, []string{"10.96.0.10"}, "cluster.local")
	if !reflect.DeepEqual(cfg.Servers, []string{"1.1.1.1"}) || !reflect.DeepEqual(cfg.Options, []string{"ndots:2"}) {
		t.Fatalf("None: %v", cfg)
	}
	merged := pod.DeepCopy()
	merged.Spec.DNSConfig = &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &five}, {Name: "edns0"}}}
	cfg, _ = dnsConfig(merged, []string{"10.96.0.10"}, "cluster.local")
	if !reflect.DeepEqual(cfg.Options, []string{"ndots:2", "edns0"}) {
		t.Fatalf("pod options replace same-named ones: %v", cfg.Options)
	}
}

func TestSandboxConfig(t *testing.T) {
	grace := int64(7)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-" + string(make([]byte, 0)) + "x", Namespace: "ns", UID: "u1", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{TerminationGracePeriodSeconds: &grace, Containers: []corev1.Container{{Name: "c",
			Ports: []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}, {ContainerPort: 53, Protocol: corev1.ProtocolUDP, HostPort: 5353}, {ContainerPort: 9090}}}}},
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
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}
	c := &corev1.Container{Name: "app", Image: "img", Command: []string{"/bin/$(CMD)"}, Args: []string{"--name=$(NAME)", "$$(NAME)"},
		SecurityContext: &corev1.SecurityContext{RunAsUser: ptr(int64(1000)), ReadOnlyRootFilesystem: ptr(true), AllowPrivilegeEscalation: ptr(false),
			Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}}}}
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
	priv := c.DeepCopy()
	priv.SecurityContext = &corev1.SecurityContext{Privileged: ptr(true)}
	if sc := buildContainerConfig(containerBuild{Pod: pod, C: priv}).Linux.SecurityContext; !sc.Privileged || len(sc.MaskedPaths) != 0 {
		t.Fatalf("privileged: %+v", sc)
	}
}
