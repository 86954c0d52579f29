package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Codes only the HTTP layer produces. They appear in error bodies next to the
// dirsync codes, so like those they are part of the contract.
const (
	codeTooLarge             dirsync.Code = "payload_too_large"
	codePreconditionRequired dirsync.Code = "precondition_required"
	codeMethodNotAllowed     dirsync.Code = "method_not_allowed"
)

// statusByCode is the one place where an error code becomes an HTTP status.
// A code missing here (a new one, or delta_token_expired, which never
// should reach a caller) is treated as internal.
var statusByCode = map[dirsync.Code]int{
	dirsync.EINVALID:         http.StatusBadRequest,
	dirsync.ENOTFOUND:        http.StatusNotFound,
	dirsync.ECONFLICT:        http.StatusConflict,
	dirsync.EPRECONDITION:    http.StatusPreconditionFailed,
	dirsync.EUNAUTHORIZED:    http.StatusUnauthorized,
	dirsync.EFORBIDDEN:       http.StatusForbidden,
	dirsync.ETHROTTLED:       http.StatusTooManyRequests,
	dirsync.EUNAVAILABLE:     http.StatusServiceUnavailable,
	dirsync.EBLOCKED:         http.StatusConflict,
	dirsync.EINTERNAL:        http.StatusInternalServerError,
	codeTooLarge:             http.StatusRequestEntityTooLarge,
	codePreconditionRequired: http.StatusPreconditionRequired,
	codeMethodNotAllowed:     http.StatusMethodNotAllowed,
}

// fallbackHint is the hint for an error that came without one, so every
// error response says what to do.
var fallbackHint = map[dirsync.Code]string{
	dirsync.EINVALID:         "Correct the request; GET /api/openapi.json describes every route and field.",
	dirsync.ENOTFOUND:        "Check the id; GET /api/runs and GET /api/users list what exists.",
	dirsync.ECONFLICT:        "Look at the current state (GET /api/status) and try again when it allows this.",
	dirsync.EPRECONDITION:    "Read the current version again and re-apply your change.",
	dirsync.EUNAUTHORIZED:    "Check the credentials: the API key or sign-in, or the function app's storage and Graph settings.",
	dirsync.EFORBIDDEN:       "Ask an admin for the permission or role the message names.",
	dirsync.ETHROTTLED:       "Wait for the time in Retry-After, then try again.",
	dirsync.EUNAVAILABLE:     "Try again in a minute; GET /api/health shows what is unreachable.",
	dirsync.EBLOCKED:         "An admin decision is pending: see the actions in GET /api/status.",
	codeTooLarge:             "Send a smaller body.",
	codePreconditionRequired: "Send If-Match with the ETag from the last GET.",
	codeMethodNotAllowed:     "Use one of the methods in the Allow header.",
}

// errorBody is the JSON of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    dirsync.Code `json:"code"`
	Message string       `json:"message"`
	Hint    string       `json:"hint,omitempty"`
	// RunID names the run in the way when a sync cannot start (409).
	RunID string `json:"runId,omitempty"`
}

// httpError is an error with extras for its response (headers, a run id).
type httpError struct {
	err    error
	header http.Header
	runID  string
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

// invalid returns an EINVALID error with a hint.
func invalid(hint, format string, args ...any) error {
	return &dirsync.Error{Code: dirsync.EINVALID, Message: fmt.Sprintf(format, args...), Hint: hint}
}

// errorResponse turns err into the status and body to send, and says
// whether err is internal (its details then belong only in the log).
func errorResponse(err error, requestID string) (int, errorBody, http.Header, bool) {
	code := dirsync.ErrorCode(err)
	status, ok := statusByCode[code]
	if !ok || status == http.StatusInternalServerError {
		return http.StatusInternalServerError, errorBody{Error: errorDetail{
			Code:    dirsync.EINTERNAL,
			Message: "An internal error occurred.",
			Hint:    "Try again; if it persists, look for request id " + requestID + " in the function logs.",
		}}, nil, true
	}
	body := errorBody{Error: errorDetail{Code: code, Message: dirsync.ErrorMessage(err), Hint: dirsync.ErrorHint(err)}}
	if body.Error.Hint == "" {
		body.Error.Hint = fallbackHint[code]
	}
	header := http.Header{}
	var he *httpError
	if errors.As(err, &he) {
		body.Error.RunID = he.runID
		for k, v := range he.header {
			header[k] = v
		}
	}
	if code == dirsync.ETHROTTLED || (code == dirsync.EUNAVAILABLE && dirsync.RetryAfter(err) > 0) {
		secs := math.Ceil(dirsync.RetryAfter(err).Seconds())
		if secs < 1 {
			secs = 30 // no advice from upstream: a polite default
		}
		header.Set("Retry-After", strconv.Itoa(int(secs)))
	}
	return status, body, header, false
}
