package tunnel

import (
	"context"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// PeerAnnotation on a Node is the hub address (host:port) of the
// verge-cloud replica the node's tunnel is connected to.
const PeerAnnotation = "verge.dev/tunnel-peer"

// NodeDirectory is the Directory kept in PeerAnnotation: written by the
// replica a node connects to, read from the shared Node informer.
type NodeDirectory struct {
	Kube  kubernetes.Interface
	Nodes corelisters.NodeLister
	// Address is this replica's hub as the other replicas reach it.
	Address string
}

// Announce sets the annotation to this replica's address, unless the
// informer already shows it.
func (d *NodeDirectory) Announce(ctx context.Context, node string) error {
	if n, err := d.Nodes.Get(node); err == nil && n.Annotations[PeerAnnotation] == d.Address {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{PeerAnnotation: d.Address}}})
	if err != nil {
		return err
	}
	if _, err := d.Kube.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "verge-cloud"}); err != nil {
		return fmt.Errorf("annotating node %s with %s: %w", node, PeerAnnotation, err)
	}
	return nil
}

// Lookup reads the annotation from the informer.
func (d *NodeDirectory) Lookup(node string) (string, bool) {
	n, err := d.Nodes.Get(node)
	if err != nil {
		return "", false
	}
	addr, ok := n.Annotations[PeerAnnotation]
	return addr, ok && addr != ""
}
