// Package syncpb is the generated Go code for the cloud–edge protocol:
// sync.proto (the Hub service: the Sync stream of objects, acks, reports
// and heartbeats), bootstrap.proto (joining and certificate renewal) and
// tunnel.proto (connections from the cloud to the node's kubelet-compatible
// endpoints for logs, exec, attach and port-forward).
// Edit the .proto files and regenerate; see the files for the contract.
package syncpb
