package testenv

import (
	"bytes"
	"sync"
)

// SyncBuffer collects what a process, a server or a logger under test writes
// from its own goroutines while the test reads it: a bytes.Buffer behind a
// mutex. The zero value is ready to use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
