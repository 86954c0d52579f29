package azure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Service says how an adapter's messages name its service and what belongs
// to it. Translate and Refused build their messages from it, so the three
// adapters word the failures they share the same way.
type Service struct {
	// Name starts every message: "Table Storage".
	Name string
	// Package starts a cancellation, which stays a plain error: "table".
	Package string
	// Account is what holds the data and checks the app's credentials:
	// "the storage account", "the namespace".
	Account string
	// Server is what a failed connection did not reach: "the storage
	// service".
	Server string
	// Endpoint is what the hint for a failed connection says to check:
	// "the table endpoint".
	Endpoint string
	// CredentialHint says which settings to check when Account refuses the
	// app's credentials: the key in a connection string, or the managed
	// identity's role assignment.
	CredentialHint string
}

// Answer classifies the failures only the adapter knows: the service's own
// error answers (see ResponseOf), or SDK errors particular to it. what is
// the message prefix, "<Name>: <op>". It returns nil for an error that is
// none of them, which Translate then classifies as a transport, credential
// or context failure.
type Answer func(what string, err error) *dirsync.Error

// ByResponse is the Answer of an adapter that classifies only the service's
// error answers (see ResponseOf), as the storage adapters do.
func ByResponse(classify func(what string, r Response, err error) *dirsync.Error) Answer {
	return func(what string, err error) *dirsync.Error {
		r, ok := ResponseOf(err)
		if !ok {
			return nil
		}
		return classify(what, r, err)
	}
}

// Translate turns an error from an SDK call into a *dirsync.Error whose
// message says in plain words what failed. The SDK's text (URLs, request
// ids, for SAS requests a signature) stays in Err, for logs only.
//
// A *dirsync.Error anywhere in the chain is returned unchanged. Otherwise
// answer (nil for none) gets the first say; then, in this order: a failed
// token request or a missing credential is EUNAVAILABLE (see Refused for
// why), a deadline is EUNAVAILABLE, a cancellation stays a plain error
// wrapping context.Canceled (the caller gave up: nothing failed), a failed
// or dropped connection is EUNAVAILABLE, and anything else is EINTERNAL.
func (s *Service) Translate(op string, err error, answer Answer) error {
	if err == nil {
		return nil
	}
	var de *dirsync.Error
	if errors.As(err, &de) {
		return err
	}
	what := s.Name + ": " + op
	if answer != nil {
		if e := answer(what, err); e != nil {
			return e
		}
	}
	var authErr *azidentity.AuthenticationFailedError
	switch {
	case errors.As(err, &authErr):
		return &dirsync.Error{Code: dirsync.EUNAVAILABLE, Err: err,
			Message: what + ": could not get a token for " + s.Account,
			Hint:    "check the app's managed identity (and ClientID, if set) and that it may use " + s.Account}
	case isCredentialUnavailable(err):
		return &dirsync.Error{Code: dirsync.EUNAVAILABLE, Err: err,
			Message: what + ": no Azure credential is available in this environment",
			Hint:    "enable a managed identity for the app, or use a connection string"}
	case errors.Is(err, context.DeadlineExceeded):
		return &dirsync.Error{Code: dirsync.EUNAVAILABLE, Err: err,
			Message: what + ": timed out",
			Hint:    "try again; if it persists, check " + s.Account + "'s health"}
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %s: %w", s.Package, op, err)
	case isNetworkError(err):
		return &dirsync.Error{Code: dirsync.EUNAVAILABLE, Err: err,
			Message: what + ": could not reach " + s.Server,
			Hint:    "check the network and " + s.Endpoint + "; the operation can be retried"}
	}
	return &dirsync.Error{Code: dirsync.EINTERNAL, Err: err, Message: what + " failed unexpectedly"}
}

// Refused is the error for the service refusing the app's own credentials:
// a rotated account key, a missing role assignment. code is the service's
// error code, "" when it gave none.
//
// It is EUNAVAILABLE, not EUNAUTHORIZED or EFORBIDDEN: the API answers
// those with 401 and 403, which would tell the API's caller that their own
// function key was wrong when it is the app's storage or Service Bus
// credential. What to fix is in the Hint, for the operator.
func (s *Service) Refused(what, code string, err error) *dirsync.Error {
	msg := what + ": " + s.Account + " refused the app's credentials"
	if code != "" {
		msg += " (" + code + ")"
	}
	return &dirsync.Error{Code: dirsync.EUNAVAILABLE, Err: err, Message: msg, Hint: s.CredentialHint}
}

// Response is what an adapter classifies a service's error answer by.
type Response struct {
	Status int    // the HTTP status
	Code   string // the service's error code (x-ms-error-code), if any
	// RetryAfter is the server's Retry-After advice; zero for none.
	RetryAfter time.Duration
}

// ResponseOf reports the service's error answer (an *azcore.ResponseError)
// in err's chain; false when err holds none (the request never got an
// answer).
func ResponseOf(err error) (Response, bool) {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return Response{}, false
	}
	return Response{Status: re.StatusCode, Code: re.ErrorCode, RetryAfter: retryAfter(re.RawResponse)}, true
}

// retryAfter reads the server's advice in seconds or as an HTTP date.
func retryAfter(resp *http.Response) time.Duration {
	if resp == nil {
		return 0
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// isCredentialUnavailable recognises azidentity's "no credential here"
// errors. azidentity exports no type for them (its marker interface is
// unexported), so this looks for the "<Name>Credential: " prefix all its
// messages carry.
func isCredentialUnavailable(err error) bool {
	return strings.Contains(err.Error(), "Credential: ")
}

// isNetworkError reports a connection that failed or dropped: nothing the
// service said, so worth retrying.
func isNetworkError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
