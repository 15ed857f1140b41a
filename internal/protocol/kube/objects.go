package kube

// The objects that travel on their own implement the methods the wire
// package looks for (the same ones k8s.io/api's types have), so both
// sides encode them alike.

// Marshal encodes p in Kubernetes' protobuf encoding.
func (p *Pod) Marshal() ([]byte, error) { return marshal(p) }

// Unmarshal decodes p from Kubernetes' protobuf encoding.
func (p *Pod) Unmarshal(b []byte) error { return unmarshal(b, p) }

// Marshal encodes c in Kubernetes' protobuf encoding.
func (c *ConfigMap) Marshal() ([]byte, error) { return marshal(c) }

// Unmarshal decodes c from Kubernetes' protobuf encoding.
func (c *ConfigMap) Unmarshal(b []byte) error { return unmarshal(b, c) }

// Marshal encodes s in Kubernetes' protobuf encoding.
func (s *Secret) Marshal() ([]byte, error) { return marshal(s) }

// Unmarshal decodes s from Kubernetes' protobuf encoding.
func (s *Secret) Unmarshal(b []byte) error { return unmarshal(b, s) }

// Marshal encodes n in Kubernetes' protobuf encoding.
func (n *Node) Marshal() ([]byte, error) { return marshal(n) }

// Unmarshal decodes n from Kubernetes' protobuf encoding.
func (n *Node) Unmarshal(b []byte) error { return unmarshal(b, n) }

// Marshal encodes e in Kubernetes' protobuf encoding.
func (e *Event) Marshal() ([]byte, error) { return marshal(e) }

// Unmarshal decodes e from Kubernetes' protobuf encoding.
func (e *Event) Unmarshal(b []byte) error { return unmarshal(b, e) }

// Cpu is the CPU amount in rl (zero when absent).
func (rl ResourceList) Cpu() *Quantity { return rl.Name(ResourceCPU) }

// Memory is the memory amount in rl (zero when absent).
func (rl ResourceList) Memory() *Quantity { return rl.Name(ResourceMemory) }

// Name is the amount of resource name in rl (zero when absent).
func (rl ResourceList) Name(name ResourceName) *Quantity {
	q := rl[name]
	return &q
}
