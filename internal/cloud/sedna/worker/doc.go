// Package worker builds the pods of Sedna-style AI workers from the
// templates users write in JointInferenceService and FederatedLearningJob:
// the labels that select them, the environment the worker libraries read
// (the upstream Sedna contract), and the volumes and init container that put
// models and datasets where the workers expect them.
//
// Everything here is pure: inputs in, Kubernetes objects out, no API calls
// (package owned does the writing).
package worker
