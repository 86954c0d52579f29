package table

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

// translateRow is translate for an operation on one row, whose messages name
// the table and keys.
func translateRow(op, table, pk, rk string, err error) error {
	return translateWith(fmt.Sprintf("%s %s row (%s, %s)", op, table, quoteKey(pk), quoteKey(rk)), err)
}

// translate turns an SDK, network or credential error into a *dirsync.Error
// whose message says what failed in plain words. The SDK's own text (URLs,
// request ids) stays in Err, for logs.
func translate(op string, err error) error { return translateWith(op, err) }

func translateWith(op string, err error) error {
	if err == nil {
		return nil
	}
	var de *dirsync.Error
	if errors.As(err, &de) {
		return err
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return fromResponse(op, re.StatusCode, re.ErrorCode, retryAfter(re.RawResponse), err)
	}
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) {
		return &dirsync.Error{Code: dirsync.EUNAUTHORIZED, Err: err,
			Message: "Table Storage: " + op + ": could not get a token for the storage account",
			Hint:    "check the app's managed identity (and ClientID, if set) and that it may use the storage account"}
	}
	if isCredentialUnavailable(err) {
		return &dirsync.Error{Code: dirsync.EUNAUTHORIZED, Err: err,
			Message: "Table Storage: " + op + ": no Azure credential is available in this environment",
			Hint:    "enable a managed identity for the app, or use a connection string"}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &dirsync.Error{Code: dirsync.EUNAVAILABLE, Err: err,
			Message: "Table Storage: " + op + ": timed out",
			Hint:    "try again; if it persists, check the storage account's health"}
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("table: %s: %w", op, err)
	}
	if isNetworkError(err) {
		return &dirsync.Error{Code: dirsync.EUNAVAILABLE, Err: err,
			Message: "Table Storage: " + op + ": could not reach the storage service",
			Hint:    "check the network and the table endpoint; the operation can be retried"}
	}
	return &dirsync.Error{Code: dirsync.EINTERNAL, Err: err, Message: "Table Storage: " + op + " failed unexpectedly"}
}

// fromResponse classifies a service answer by status and error code.
func fromResponse(op string, status int, code string, after time.Duration, err error) error {
	e := &dirsync.Error{Err: err, RetryAfter: after}
	what := "Table Storage: " + op
	switch {
	case code == "EntityAlreadyExists":
		e.Code, e.Message, e.Hint = dirsync.ECONFLICT, what+": the row already exists", "read the row and update it instead"
	case code == "UpdateConditionNotSatisfied" || status == http.StatusPreconditionFailed:
		e.Code, e.Message, e.Hint = dirsync.EPRECONDITION, what+": the row was changed by someone else (ETag mismatch)", "read the row again and retry"
	case status == http.StatusNotFound:
		e.Code, e.Message, e.Hint = dirsync.ENOTFOUND, what+": not found", ""
	case status == http.StatusTooManyRequests || code == "ServerBusy" || status == http.StatusServiceUnavailable:
		e.Code, e.Message, e.Hint = dirsync.ETHROTTLED, what+": the storage service is busy", "slow down and retry later"
	case status == http.StatusRequestTimeout || code == "OperationTimedOut" || status >= 500:
		e.Code, e.Message, e.Hint = dirsync.EUNAVAILABLE, fmt.Sprintf("%s: the storage service failed (%d %s)", what, status, code), "retry later"
	case code == "AuthorizationPermissionMismatch" || code == "AuthorizationFailure":
		e.Code, e.Message, e.Hint = dirsync.EFORBIDDEN, what+": the storage account does not allow this caller", "grant the app's identity the Storage Table Data Contributor role on the account, and check the account's network rules"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Code, e.Message, e.Hint = dirsync.EUNAUTHORIZED, fmt.Sprintf("%s: the storage account refused the credentials (%s)", what, code), "check the account key in the connection string, or the identity's role assignments"
	case status == http.StatusRequestEntityTooLarge || code == "EntityTooLarge" || code == "PropertyValueTooLarge" || code == "RequestBodyTooLarge":
		e.Code, e.Message, e.Hint = dirsync.EINVALID, what+": the row is too large (1 MiB per row, 64 KiB per string property)", "store less in one row"
	case status == http.StatusBadRequest || status == http.StatusConflict:
		e.Code, e.Message, e.Hint = dirsync.EINVALID, fmt.Sprintf("%s: the service rejected the request (%s)", what, code), "check the keys and property values"
	default:
		e.Code, e.Message = dirsync.EINTERNAL, fmt.Sprintf("%s: unexpected answer %d %s", what, status, code)
	}
	return e
}

// retryAfter reads the server's advice in seconds (or an HTTP date).
func retryAfter(resp *http.Response) time.Duration {
	if resp == nil {
		return 0
	}
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// isCredentialUnavailable recognises azidentity's "no credential here" errors.
// azidentity exports no type for them (its marker interface is unexported), so
// this looks for the "<Name>Credential: " prefix all its messages carry.
func isCredentialUnavailable(err error) bool {
	return strings.Contains(err.Error(), "Credential: ")
}

func isNetworkError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
