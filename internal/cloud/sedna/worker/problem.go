package worker

import "fmt"

// Reasons of the problems a user must fix. They become condition reasons.
const (
	ReasonModelNotFound      = "ModelNotFound"
	ReasonDatasetNotFound    = "DatasetNotFound"
	ReasonCredentialNotFound = "CredentialNotFound"
	ReasonInvalidCredential  = "InvalidCredential"
	ReasonCredentialConflict = "CredentialConflict"
	ReasonInvalidURL         = "InvalidURL"
	ReasonInvalidTemplate    = "InvalidTemplate"
	ReasonNameConflict       = "NameConflict"
)

// Problem is something wrong with an object's spec or with the objects it
// refers to. Retrying cannot fix it; the controller reports it as a
// condition and acts again when the spec or the referenced objects change.
type Problem struct {
	Reason  string
	Message string
}

func (p *Problem) Error() string { return p.Message }

// Problemf returns a Problem with a formatted message.
func Problemf(reason, format string, args ...any) *Problem {
	return &Problem{Reason: reason, Message: fmt.Sprintf(format, args...)}
}
