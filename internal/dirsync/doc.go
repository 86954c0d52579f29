// Package dirsync is the domain of entrasync: the organization directory that
// is kept in step with Microsoft Entra ID, the settings an admin edits, the
// runs that sync it, and the sync engine itself.
//
// It imports only the standard library. The outside world is reached through
// the small interfaces in ports.go and source.go, implemented by one adapter
// package per external system (internal/table, internal/blob,
// internal/servicebus, internal/graph). Every error that crosses those
// interfaces is an *Error with a Code (errors.go).
//
// A run is a chain of work items, one file per step: start.go, page.go
// (with apply.go and emails.go), collect.go, sweep.go, decide.go,
// delete.go, count.go, finish.go; work.go holds the work items and their
// dispatch table, lock.go the single-run lock, rows.go the one
// read-modify-write helper and the small state rows, settings_store.go the
// settings and audit trail. Every item carries its generation (run and
// epoch) and every write it makes is fenced by it (docs/architecture.md,
// "Generations and fencing"); dirsynctest/sim.go explores the engine under
// every delivery order, crash and clock jump a seed can reach.
package dirsync
