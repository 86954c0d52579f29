// Package dirsync is the domain of entrasync: the organization directory that
// is kept in step with Microsoft Entra ID, the settings an admin edits, the
// runs that sync it, and the sync engine itself.
//
// It imports only the standard library. The outside world is reached through
// the small interfaces in ports.go and source.go, implemented by one adapter
// package per external system (internal/table, internal/blob,
// internal/servicebus, internal/graph). Every error that crosses those
// interfaces is an *Error with a Code (errors.go).
package dirsync
