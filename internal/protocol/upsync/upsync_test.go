package upsync

import (
	"testing"
	"time"
)

func TestSenderLifecycle(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := NewSender(2)
	if s.Room() != 2 {
		t.Fatalf("room %d", s.Room())
	}
	s.Sent(1, 1)
	s.Sent(2, 5)
	if s.Room() != 0 || !s.Skip(t0)(1) || !s.Skip(t0)(2) || s.Skip(t0)(3) {
		t.Fatal("in-flight reports must be skipped and fill the window")
	}
	// Accepted at the generation sent: delete.
	if !s.Answer(1, 1, Accepted, 0, t0) {
		t.Error("accepted report should be removed")
	}
	// An answer for a generation not in flight (stale) changes nothing.
	if s.Answer(2, 4, Accepted, 0, t0) || s.InFlight() != 1 {
		t.Error("answer for another generation must be ignored")
	}
	// Retry: kept, not resent before the delay.
	if s.Answer(2, 5, Retry, 3*time.Second, t0) {
		t.Error("retry must keep the report")
	}
	if !s.Skip(t0.Add(2*time.Second))(2) || s.Skip(t0.Add(3*time.Second))(2) {
		t.Error("retry delay not honoured")
	}
	if at, ok := s.NextRetry(); !ok || !at.Equal(t0.Add(3*time.Second)) {
		t.Errorf("NextRetry = %v %v", at, ok)
	}
	// Rejected: delete, it can never succeed.
	s.Sent(2, 5)
	if !s.Answer(2, 5, Rejected, 0, t0) {
		t.Error("rejected report should be removed")
	}
	// Reconnect forgets everything in flight.
	s.Sent(7, 1)
	s.Connect()
	if s.InFlight() != 0 || s.Skip(t0)(7) {
		t.Error("reconnect must resend what was in flight")
	}
	if s.Answer(7, 1, Accepted, 0, t0) {
		t.Error("an answer from the previous session must be ignored")
	}
}
