package blob

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

// translate turns an SDK, network or credential error into a *dirsync.Error
// with a plain message. The SDK's text (which includes request URLs, and for
// SAS requests would include the signature) stays in Err, for logs only.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	var de *dirsync.Error
	if errors.As(err, &de) {
		return err
	}
	what := "Blob Storage: " + op
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return fromResponse(what, re.StatusCode, re.ErrorCode, retryAfter(re.RawResponse), err)
	}
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) {
		return &dirsync.Error{Code: dirsync.EUNAUTHORIZED, Err: err,
			Message: what + ": could not get a token for the storage account",
			Hint:    "check the app's managed identity (and ClientID, if set) and that it may use the storage account"}
	}
	// azidentity exports no type for "credential unavailable"; all its
	// messages start "<Name>Credential: ".
	if strings.Contains(err.Error(), "Credential: ") {
		return &dirsync.Error{Code: dirsync.EUNAUTHORIZED, Err: err,
			Message: what + ": no Azure credential is available in this environment",
			Hint:    "enable a managed identity for the app, or use a connection string"}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &dirsync.Error{Code: dirsync.EUNAVAILABLE, Err: err, Message: what + ": timed out",
			Hint: "try again; if it persists, check the storage account's health"}
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("blob: %s: %w", op, err)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &dirsync.Error{Code: dirsync.EUNAVAILABLE, Err: err,
			Message: what + ": could not reach the storage service",
			Hint:    "check the network and the blob endpoint; the operation can be retried"}
	}
	return &dirsync.Error{Code: dirsync.EINTERNAL, Err: err, Message: what + " failed unexpectedly"}
}

func fromResponse(what string, status int, code string, after time.Duration, err error) error {
	e := &dirsync.Error{Err: err, RetryAfter: after}
	switch {
	case code == "BlobNotFound" || code == "ContainerNotFound" || status == http.StatusNotFound:
		e.Code, e.Message = dirsync.ENOTFOUND, what+": the log does not exist"
	case code == "BlockCountExceedsLimit":
		e.Code, e.Message, e.Hint = dirsync.EINVALID, what+": the log is full (an append blob holds at most 50,000 blocks)", "start a new log"
	case code == "InvalidBlobType":
		e.Code, e.Message, e.Hint = dirsync.EINVALID, what+": a blob of another type already has this name", "use another log name"
	case status == http.StatusRequestEntityTooLarge || code == "RequestBodyTooLarge" || code == "MaxBlobSizeConditionNotMet":
		e.Code, e.Message, e.Hint = dirsync.EINVALID, what+": too much data for one append or one log", "append less at a time, or start a new log"
	case status == http.StatusPreconditionFailed || code == "ConditionNotMet":
		e.Code, e.Message, e.Hint = dirsync.EPRECONDITION, what+": the log changed meanwhile", "retry"
	case status == http.StatusTooManyRequests || code == "ServerBusy" || status == http.StatusServiceUnavailable:
		e.Code, e.Message, e.Hint = dirsync.ETHROTTLED, what+": the storage service is busy", "slow down and retry later"
	case status == http.StatusRequestTimeout || code == "OperationTimedOut" || status >= 500:
		e.Code, e.Message, e.Hint = dirsync.EUNAVAILABLE, fmt.Sprintf("%s: the storage service failed (%d %s)", what, status, code), "retry later"
	case code == "AuthorizationPermissionMismatch" || code == "AuthorizationFailure":
		e.Code, e.Message, e.Hint = dirsync.EFORBIDDEN, what+": the storage account does not allow this caller", "grant the app's identity the Storage Blob Data Contributor role on the account, and check the account's network rules"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Code, e.Message, e.Hint = dirsync.EUNAUTHORIZED, fmt.Sprintf("%s: the storage account refused the credentials (%s)", what, code), "check the account key in the connection string, or the identity's role assignments"
	case status == http.StatusBadRequest || status == http.StatusConflict:
		e.Code, e.Message, e.Hint = dirsync.EINVALID, fmt.Sprintf("%s: the service rejected the request (%s)", what, code), "check the log name"
	default:
		e.Code, e.Message = dirsync.EINTERNAL, fmt.Sprintf("%s: unexpected answer %d %s", what, status, code)
	}
	return e
}

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
