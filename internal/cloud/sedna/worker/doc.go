// Package worker builds the pods of Sedna-style AI workers from the
// templates users write in JointInferenceService and FederatedLearningJob:
// the labels that select them, the environment the worker libraries read
// (the upstream Sedna contract), and the volumes and init container that put
// models and datasets where the workers expect them.
//
// Everything here is pure: inputs in, Kubernetes objects out, no API calls.
// The one exception, ParentAlive, is the check every controller in this
// tree makes before it creates a child object: the parent must exist, with
// the same UID, and not be marked for deletion, as seen by a live read. A
// stale cache must never resurrect children of a deleted parent.
package worker
