package table

import (
	"fmt"
	"net/http"

	"github.com/entrasync/entrasync/internal/azure"
	"github.com/entrasync/entrasync/internal/dirsync"
)

// tableStorage names the service in translated errors.
var tableStorage = &azure.Service{
	Name:     "Table Storage",
	Package:  "table",
	Account:  "the storage account",
	Server:   "the storage service",
	Endpoint: "the table endpoint",
	CredentialHint: "check the account key in the storage connection string, or, with a managed identity, " +
		"its role assignment on the storage account (Storage Table Data Contributor) and the account's network rules",
}

// translateRow is translate for an operation on one row, whose messages name
// the table and keys.
func translateRow(op, table, pk, rk string, err error) error {
	return translate(fmt.Sprintf("%s %s row (%s, %s)", op, table, quoteKey(pk), quoteKey(rk)), err)
}

// translate turns an SDK, network or credential error into a *dirsync.Error
// whose message says what failed in plain words (see azure.Service.Translate).
func translate(op string, err error) error {
	return tableStorage.Translate(op, err, azure.ByResponse(fromResponse))
}

// fromResponse classifies a service answer by status and error code. what
// starts the message: "Table Storage: <op>".
func fromResponse(what string, r azure.Response, err error) *dirsync.Error {
	status, code := r.Status, r.Code
	e := &dirsync.Error{}
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
	case code == "AuthorizationPermissionMismatch" || code == "AuthorizationFailure" ||
		status == http.StatusUnauthorized || status == http.StatusForbidden:
		e = tableStorage.Refused(what, code, err)
	case status == http.StatusRequestEntityTooLarge || code == "EntityTooLarge" || code == "PropertyValueTooLarge" || code == "RequestBodyTooLarge":
		e.Code, e.Message, e.Hint = dirsync.EINVALID, what+": the row is too large (1 MiB per row, 64 KiB per string property)", "store less in one row"
	case status == http.StatusBadRequest || status == http.StatusConflict:
		e.Code, e.Message, e.Hint = dirsync.EINVALID, fmt.Sprintf("%s: the service rejected the request (%s)", what, code), "check the keys and property values"
	default:
		e.Code, e.Message = dirsync.EINTERNAL, fmt.Sprintf("%s: unexpected answer %d %s", what, status, code)
	}
	e.Err, e.RetryAfter = err, r.RetryAfter
	return e
}
