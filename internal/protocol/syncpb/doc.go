// Package syncpb is the generated Go code for the cloud–edge protocol:
// sync.proto (the Hub service: the Sync stream of objects, acks, reports
// and heartbeats) and bootstrap.proto (joining and certificate renewal).
// Edit the .proto files and regenerate; see the files for the contract.
package syncpb
