package dirsync

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies a domain error. Adapters translate SDK and HTTP failures into
// these codes at their boundary; the transport maps each code to one HTTP status
// (internal/api), and the engine decides retry, reschedule or fail from it.
type Code string

// Error codes. The string values appear in API responses and run logs, so they
// are part of the product's contract: never rename one.
const (
	EINTERNAL     Code = "internal"            // a bug or an unexpected failure
	EINVALID      Code = "invalid"             // bad input: the caller must fix it
	ENOTFOUND     Code = "not_found"           // the thing does not exist
	ECONFLICT     Code = "conflict"            // already exists, or a run is already going
	EPRECONDITION Code = "precondition_failed" // ETag mismatch: someone else changed it first
	EUNAUTHORIZED Code = "unauthorized"        // credentials missing, wrong or expired
	EFORBIDDEN    Code = "forbidden"           // authenticated but not allowed (role, Graph permission)
	ETHROTTLED    Code = "throttled"           // slow down; RetryAfter says how long
	EUNAVAILABLE  Code = "unavailable"         // transient: timeouts, 5xx, dropped connections
	ETOKENEXPIRED Code = "delta_token_expired" // the stored delta/next link is no longer valid
	EBLOCKED      Code = "blocked"             // waiting for an admin decision
)

// Error is the domain error. Message says what went wrong in plain words; Hint
// says what to do about it. Neither may ever contain a secret.
type Error struct {
	Code    Code
	Message string
	Hint    string
	// RetryAfter is how long the server asked us to wait (ETHROTTLED, sometimes
	// EUNAVAILABLE). Zero means no advice.
	RetryAfter time.Duration
	// Err is the underlying cause, kept for logs and errors.Is/As.
	Err error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if msg == "" {
		msg = string(e.Code)
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithHint returns e with its Hint set; it is meant for chaining after Errorf.
func (e *Error) WithHint(format string, args ...any) *Error {
	e.Hint = fmt.Sprintf(format, args...)
	return e
}

// ErrorCode returns the code of the first *Error in err's chain, "" for nil and
// EINTERNAL for any other error: an unclassified failure is never treated as
// something the caller did wrong, nor as "nothing there".
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the human message of err. Unclassified errors get a
// generic message, because their text may carry internals (URLs, keys).
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Error()
	}
	return "An internal error occurred."
}

// ErrorHint returns the hint of the first *Error in err's chain, if any.
func ErrorHint(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Hint
	}
	return ""
}

// RetryAfter returns the server's requested wait carried by err, or zero.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// BatchOpError is the failure of a batch whose store says which of its
// operations failed: Index is that operation's position in the batch and
// Err its error, a *Error with the operation's code (ErrorCode, IsCode and
// the other accessors see through it). A caller can then leave that one
// operation out and send the rest again (preclaimEmails).
type BatchOpError struct {
	Index int
	Err   error
}

func (e *BatchOpError) Error() string { return e.Err.Error() }
func (e *BatchOpError) Unwrap() error { return e.Err }

// FailedOp returns the position of the operation that failed a batch, and
// false when err does not say (not a batch error, or the store did not
// name the operation).
func FailedOp(err error) (int, bool) {
	var b *BatchOpError
	if errors.As(err, &b) {
		return b.Index, true
	}
	return 0, false
}

// IsCode reports whether err carries the given code.
func IsCode(err error, code Code) bool { return ErrorCode(err) == code }
