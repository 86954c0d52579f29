package blob

import (
	"fmt"
	"net/http"

	"github.com/entrasync/entrasync/internal/azure"
	"github.com/entrasync/entrasync/internal/dirsync"
)

// blobStorage names the service in translated errors.
var blobStorage = &azure.Service{
	Name:     "Blob Storage",
	Package:  "blob",
	Account:  "the storage account",
	Server:   "the storage service",
	Endpoint: "the blob endpoint",
	CredentialHint: "check the account key in the storage connection string, or, with a managed identity, " +
		"its role assignment on the storage account (Storage Blob Data Contributor) and the account's network rules",
}

// translate turns an SDK, network or credential error into a *dirsync.Error
// with a plain message (see azure.Service.Translate). The SDK's text, which
// includes request URLs and for SAS requests would include the signature,
// stays in Err, for logs only.
func translate(op string, err error) error {
	return blobStorage.Translate(op, err, azure.ByResponse(fromResponse))
}

// fromResponse classifies a service answer by status and error code. what
// starts the message: "Blob Storage: <op>".
func fromResponse(what string, r azure.Response, err error) *dirsync.Error {
	status, code := r.Status, r.Code
	e := &dirsync.Error{}
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
	case code == "AuthorizationPermissionMismatch" || code == "AuthorizationFailure" ||
		status == http.StatusUnauthorized || status == http.StatusForbidden:
		e = blobStorage.Refused(what, code, err)
	case status == http.StatusBadRequest || status == http.StatusConflict:
		e.Code, e.Message, e.Hint = dirsync.EINVALID, fmt.Sprintf("%s: the service rejected the request (%s)", what, code), "check the log name"
	default:
		e.Code, e.Message = dirsync.EINTERNAL, fmt.Sprintf("%s: unexpected answer %d %s", what, status, code)
	}
	e.Err, e.RetryAfter = err, r.RetryAfter
	return e
}
