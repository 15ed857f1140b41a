package podruntime

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/verge-edge/verge/internal/protocol/kube"
)

// sandboxOpts are the node-level inputs of a sandbox configuration.
type sandboxOpts struct {
	NodeName      string
	CgroupParent  string
	PodLogDir     string
	ClusterDNS    []string
	ClusterDomain string
}

// podLogDir is where the pod's container logs go: the kubelet's layout,
// <PodLogDir>/<namespace>_<name>_<uid>/<container>/<restartCount>.log.
func podLogDir(root string, pod *kube.Pod) string {
	return filepath.Join(root, pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))
}

func podCgroup(parent string, pod *kube.Pod) string {
	return strings.TrimSuffix(parent, "/") + "/pod" + string(pod.UID)
}

func gracePeriod(pod *kube.Pod) int64 {
	if pod.DeletionGracePeriodSeconds != nil {
		return *pod.DeletionGracePeriodSeconds
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return kube.DefaultTerminationGracePeriodSeconds
}

// buildSandboxConfig returns the CRI sandbox configuration of a pod and a
// warning for the operator (empty if none).
func buildSandboxConfig(pod *kube.Pod, attempt uint32, o sandboxOpts) (*runtimeapi.PodSandboxConfig, string) {
	annotations := make(map[string]string, len(pod.Annotations)+1)
	for k, v := range pod.Annotations {
		annotations[k] = v
	}
	annotations[annotationGracePeriod] = strconv.FormatInt(gracePeriod(pod), 10)
	dns, warning := dnsConfig(pod, o.ClusterDNS, o.ClusterDomain)
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt,
		},
		LogDirectory: podLogDir(o.PodLogDir, pod),
		DnsConfig:    dns,
		Labels:       sandboxLabels(pod, o.NodeName),
		Annotations:  annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    podCgroup(o.CgroupParent, pod),
			SecurityContext: sandboxSecurity(pod),
		},
	}
	if !pod.Spec.HostNetwork {
		cfg.Hostname = podHostname(pod)
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.HostPort == 0 {
					continue
				}
				cfg.PortMappings = append(cfg.PortMappings, &runtimeapi.PortMapping{
					Protocol:      protocolOf(p.Protocol),
					ContainerPort: p.ContainerPort,
					HostPort:      p.HostPort,
					HostIp:        p.HostIP,
				})
			}
		}
	}
	if sc := pod.Spec.SecurityContext; sc != nil && len(sc.Sysctls) > 0 {
		cfg.Linux.Sysctls = map[string]string{}
		for _, s := range sc.Sysctls {
			cfg.Linux.Sysctls[s.Name] = s.Value
		}
	}
	return cfg, warning
}

func protocolOf(p kube.Protocol) runtimeapi.Protocol {
	switch p {
	case kube.ProtocolUDP:
		return runtimeapi.Protocol_UDP
	case kube.ProtocolSCTP:
		return runtimeapi.Protocol_SCTP
	}
	return runtimeapi.Protocol_TCP
}

// podHostname is spec.hostname or the pod name, cut to a DNS label.
func podHostname(pod *kube.Pod) string {
	h := pod.Spec.Hostname
	if h == "" {
		h = pod.Name
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

// dnsConfig follows dnsPolicy. Without cluster DNS servers, ClusterFirst
// falls back to the host's resolver (nil: containerd copies the host's
// resolv.conf), with a warning.
func dnsConfig(pod *kube.Pod, clusterDNS []string, domain string) (*runtimeapi.DNSConfig, string) {
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = kube.DNSClusterFirst
	}
	var cfg *runtimeapi.DNSConfig
	warning := ""
	switch policy {
	case kube.DNSNone:
		cfg = &runtimeapi.DNSConfig{}
	case kube.DNSClusterFirst, kube.DNSClusterFirstWithHostNet:
		if pod.Spec.HostNetwork && policy == kube.DNSClusterFirst {
			break
		}
		if len(clusterDNS) == 0 {
			warning = "the node has no cluster DNS configured; the pod uses the host's resolver (dnsPolicy Default)"
			break
		}
		ns := pod.Namespace
		cfg = &runtimeapi.DNSConfig{
			Servers:  append([]string(nil), clusterDNS...),
			Searches: []string{ns + ".svc." + domain, "svc." + domain, domain},
			Options:  []string{"ndots:5"},
		}
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		if cfg == nil {
			if len(dc.Nameservers) == 0 && len(dc.Searches) == 0 && len(dc.Options) == 0 {
				return nil, warning
			}
			// Custom settings on top of the host's resolver would need its
			// resolv.conf merged in; the pod's own settings win here.
			cfg = &runtimeapi.DNSConfig{}
		}
		cfg.Servers = append(cfg.Servers, dc.Nameservers...)
		cfg.Searches = append(cfg.Searches, dc.Searches...)
		for _, o := range dc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			cfg.Options = mergeOption(cfg.Options, opt)
		}
	}
	return cfg, warning
}

// mergeOption adds opt, replacing an option of the same name.
func mergeOption(opts []string, opt string) []string {
	name := strings.SplitN(opt, ":", 2)[0]
	for i, o := range opts {
		if strings.SplitN(o, ":", 2)[0] == name {
			opts[i] = opt
			return opts
		}
	}
	return append(opts, opt)
}

func namespaceOptions(pod *kube.Pod) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
	if pod.Spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostPID {
		ns.Pid = runtimeapi.NamespaceMode_NODE
	} else if pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace {
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	if pod.Spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	return ns
}

func sandboxSecurity(pod *kube.Pod) *runtimeapi.LinuxSandboxSecurityContext {
	sc := &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: namespaceOptions(pod)}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: *psc.RunAsUser}
		}
		if psc.RunAsGroup != nil {
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: *psc.RunAsGroup}
		}
		sc.SupplementalGroups = supplementalGroups(psc)
	}
	for _, c := range append(append([]kube.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			sc.Privileged = true
		}
	}
	return sc
}

func supplementalGroups(psc *kube.PodSecurityContext) []int64 {
	groups := append([]int64(nil), psc.SupplementalGroups...)
	if psc.FSGroup != nil {
		groups = append(groups, *psc.FSGroup)
	}
	return groups
}

// defaultMaskedPaths and defaultReadonlyPaths are what the kubelet masks or
// makes read-only in /proc and /sys unless the container is privileged or
// asks for an unmasked /proc.
func defaultMaskedPaths() []string {
	return []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
}

func defaultReadonlyPaths() []string {
	return []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
}

func containerSecurity(pod *kube.Pod, c *kube.Container) *runtimeapi.LinuxContainerSecurityContext {
	sc := &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: namespaceOptions(pod)}
	psc := pod.Spec.SecurityContext
	csc := c.SecurityContext
	if psc != nil {
		if psc.RunAsUser != nil {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: *psc.RunAsUser}
		}
		if psc.RunAsGroup != nil {
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: *psc.RunAsGroup}
		}
		sc.SupplementalGroups = supplementalGroups(psc)
	}
	privileged := false
	unmasked := false
	if csc != nil {
		if csc.RunAsUser != nil {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: *csc.RunAsUser}
		}
		if csc.RunAsGroup != nil {
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: *csc.RunAsGroup}
		}
		if csc.Privileged != nil && *csc.Privileged {
			privileged = true
		}
		if csc.ReadOnlyRootFilesystem != nil {
			sc.ReadonlyRootfs = *csc.ReadOnlyRootFilesystem
		}
		if csc.AllowPrivilegeEscalation != nil {
			sc.NoNewPrivs = !*csc.AllowPrivilegeEscalation
		}
		if caps := csc.Capabilities; caps != nil {
			sc.Capabilities = &runtimeapi.Capability{}
			for _, a := range caps.Add {
				sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, string(a))
			}
			for _, d := range caps.Drop {
				sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, string(d))
			}
		}
		if csc.ProcMount != nil && *csc.ProcMount == kube.UnmaskedProcMount {
			unmasked = true
		}
	}
	sc.Privileged = privileged
	if !privileged && !unmasked {
		sc.MaskedPaths = defaultMaskedPaths()
		sc.ReadonlyPaths = defaultReadonlyPaths()
	}
	return sc
}

// Kubelet-compatible OOM score adjustments per QoS class.
const (
	guaranteedOOMScoreAdj = -997
	bestEffortOOMScoreAdj = 1000
)

// linuxResources maps requests and limits onto cgroup settings: CPU
// requests become shares, CPU limits a CFS quota over a 100 ms period, the
// memory limit a hard limit; the OOM score follows the QoS class.
func linuxResources(pod *kube.Pod, c *kube.Container, memCapacity int64) *runtimeapi.LinuxContainerResources {
	r := &runtimeapi.LinuxContainerResources{}
	cpuReq, hasReq := c.Resources.Requests[kube.ResourceCPU]
	cpuLim, hasLim := c.Resources.Limits[kube.ResourceCPU]
	if !hasReq && hasLim {
		cpuReq, hasReq = cpuLim, true
	}
	shares := int64(2)
	if hasReq {
		shares = max(2, min(cpuReq.MilliValue()*1024/1000, 262144))
	}
	r.CpuShares = shares
	if hasLim {
		const period = 100000
		r.CpuPeriod = period
		r.CpuQuota = max(cpuLim.MilliValue()*period/1000, 1000)
	}
	if m, ok := c.Resources.Limits[kube.ResourceMemory]; ok {
		r.MemoryLimitInBytes = m.Value()
	}
	switch qosClass(pod) {
	case kube.PodQOSGuaranteed:
		r.OomScoreAdj = guaranteedOOMScoreAdj
	case kube.PodQOSBestEffort:
		r.OomScoreAdj = bestEffortOOMScoreAdj
	default:
		adj := int64(bestEffortOOMScoreAdj)
		if memCapacity > 0 {
			req := c.Resources.Requests.Memory().Value()
			adj = 1000 - (1000*req)/memCapacity
		}
		r.OomScoreAdj = max(3, min(adj, 999))
	}
	return r
}

// containerBuild is the input of buildContainerConfig.
type containerBuild struct {
	Pod         *kube.Pod
	C           *kube.Container
	Init        bool
	Attempt     uint32
	Step        int
	Image       string
	Env         []envVar
	Mounts      []*runtimeapi.Mount
	TermMsgPath string // host path of the termination message file
	NodeName    string
	MemCapacity int64
}

func buildContainerConfig(b containerBuild) *runtimeapi.ContainerConfig {
	c := b.C
	lookup := func(name string) (string, bool) {
		for i := len(b.Env) - 1; i >= 0; i-- {
			if b.Env[i].Name == name {
				return b.Env[i].Value, true
			}
		}
		return "", false
	}
	expandAll := func(in []string) []string {
		if in == nil {
			return nil
		}
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = expand(s, lookup)
		}
		return out
	}
	envs := make([]*runtimeapi.KeyValue, len(b.Env))
	for i, e := range b.Env {
		envs[i] = &runtimeapi.KeyValue{Key: e.Name, Value: []byte(e.Value)}
	}
	annotations := map[string]string{
		annotationHash:         containerHash(c),
		annotationBackoffStep:  strconv.Itoa(b.Step),
		annotationRestartCount: strconv.FormatUint(uint64(b.Attempt), 10),
		annotationGracePeriod:  strconv.FormatInt(gracePeriod(b.Pod), 10),
	}
	if b.TermMsgPath != "" {
		annotations[annotationTermMsgPath] = b.TermMsgPath
	}
	if b.Init {
		annotations[annotationInitContainer] = "true"
	}
	return &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: b.Attempt},
		Image:       &runtimeapi.ImageSpec{Image: b.Image},
		Command:     expandAll(c.Command),
		Args:        expandAll(c.Args),
		WorkingDir:  c.WorkingDir,
		Envs:        envs,
		Mounts:      b.Mounts,
		Labels:      containerLabels(b.Pod, b.NodeName, c.Name),
		Annotations: annotations,
		LogPath:     filepath.Join(c.Name, fmt.Sprintf("%d.log", b.Attempt)),
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		Tty:         c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       linuxResources(b.Pod, c, b.MemCapacity),
			SecurityContext: containerSecurity(b.Pod, c),
		},
	}
}

func propagationOf(p *kube.MountPropagationMode) runtimeapi.MountPropagation {
	if p == nil {
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE
	}
	switch *p {
	case kube.MountPropagationHostToContainer:
		return runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
	case kube.MountPropagationBidirectional:
		return runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
	}
	return runtimeapi.MountPropagation_PROPAGATION_PRIVATE
}
