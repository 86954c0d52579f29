package graph

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// defaultThrottleWait is used when Graph answers 429 without Retry-After.
// Graph's budgets are per 10 s window, so a few windows is a fair first wait.
const defaultThrottleWait = 30 * time.Second

// Graph error codes that mean a stored delta or next link can no longer be
// used. Graph documents both; comparisons ignore case.
var tokenExpiredCodes = []string{"syncStateNotFound", "resyncRequired", "syncStateInvalid"}

// permission names the application permission an operation needs, for the
// hint on a 403.
type permission string

const (
	permUsers   permission = "User.Read.All"
	permGroups  permission = "GroupMember.Read.All (or Group.Read.All)"
	permMembers permission = "GroupMember.Read.All"
	permPhotos  permission = "ProfilePhoto.Read.All (or User.Read.All)"
)

// op describes one adapter operation for error messages.
type op struct {
	name     string     // "read users delta page"
	perm     permission // needed for a 403 hint
	notFound string     // message for a 404, e.g. "user 1234 was not found"
}

// graphError is the cause kept in dirsync.Error.Err for an HTTP error answer.
// It replaces the SDK error, whose Error method panics when the body had no
// message, and carries only what is safe to log.
type graphError struct {
	Op        string
	Status    int
	Code      string
	Message   string
	RequestID string
	Location  string
}

func (e *graphError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph: %s: HTTP %d", e.Op, e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request-id " + e.RequestID + ")")
	}
	return b.String()
}

// errUnreadable is the cause of EINVALID for an answer that is not the JSON
// Graph documents.
var errUnreadable = errors.New("graph: unreadable response")

func unreadable(o op, cause error) *dirsync.Error {
	return &dirsync.Error{
		Code:    dirsync.EINVALID,
		Message: "Graph returned a response that could not be read (" + o.name + ")",
		Hint:    "This is usually a passing fault of Graph or of a proxy in between; the next run retries. If it persists, report it with the time of the run.",
		Err:     fmt.Errorf("%w: %s: %w", errUnreadable, o.name, cause),
	}
}

// mapError translates any failure of one SDK call into a *dirsync.Error, or
// the caller's own context error. ex is the wire record of the call (may be
// nil in unit tests).
func mapError(ctx context.Context, o op, err error, ex *exchange) error {
	if err == nil {
		return nil
	}
	var de *dirsync.Error
	if errors.As(err, &de) {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("graph: %s: %w", o.name, ctx.Err())
	}
	now := time.Now()

	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) {
		return tokenError(o, afe, now)
	}

	var oe *odataerrors.ODataError
	if errors.As(err, &oe) {
		ge := &graphError{Op: o.name, Status: oe.ResponseStatusCode}
		if me := oe.GetErrorEscaped(); me != nil {
			ge.Code = deref(me.GetCode())
			ge.Message = clip(deref(me.GetMessage()), 300)
		}
		return statusError(o, ge, headersOf(oe.GetResponseHeaders(), ex), ex, now)
	}
	var ae *abs.ApiError
	if errors.As(err, &ae) {
		ge := &graphError{Op: o.name, Status: ae.ResponseStatusCode}
		return statusError(o, ge, headersOf(ae.ResponseHeaders, ex), ex, now)
	}

	var te *transportError
	if errors.As(err, &te) {
		return unavailable(o, te, ex, 0)
	}
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return &dirsync.Error{
			Code:    dirsync.EINTERNAL,
			Message: "the TLS certificate of the Graph endpoint is not trusted (" + o.name + ")",
			Hint:    "Check the Graph base URL and authority host settings. For the local Graph simulator, trust its certificate (make run does).",
			Err:     err,
		}
	}
	if ex != nil && ex.status >= 400 {
		// The SDK failed to read an error answer (for example a malformed
		// JSON error body) and lost the status; the wire record has it.
		ge := &graphError{Op: o.name, Status: ex.status}
		return statusError(o, ge, ex.header, ex, now)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) {
		return unreadable(o, err)
	}
	return fmt.Errorf("graph: %s: %w", o.name, err)
}

// statusError maps an HTTP error answer.
func statusError(o op, ge *graphError, h http.Header, ex *exchange, now time.Time) *dirsync.Error {
	if h != nil {
		ge.RequestID = h.Get("request-id")
		ge.Location = h.Get("Location")
	}
	if h == nil {
		h = http.Header{}
	}
	e := &dirsync.Error{Err: ge}
	status := ge.Status
	switch {
	case status == http.StatusGone || (status >= 400 && status < 500 && isTokenExpiredCode(ge.Code)):
		e.Code = dirsync.ETOKENEXPIRED
		e.Message = "the delta token has expired (Graph keeps them 7 days); a full sync will start"
		e.Hint = "Nothing to do: the next round enumerates every object again and reconciles. Runs at least weekly keep tokens alive."
	case status == http.StatusTooManyRequests:
		wait, ok := parseRetryAfter(h.Get("Retry-After"), now)
		if !ok {
			wait = defaultThrottleWait
		}
		e.Code = dirsync.ETHROTTLED
		e.RetryAfter = wait
		e.Message = fmt.Sprintf("Microsoft Graph is throttling requests and asked to wait %s (%s)", wait.Round(time.Second), o.name)
		e.Hint = "The sync resumes by itself after the wait. If it happens often, sync less often or select fewer attributes: Graph allows a fixed budget per 10 seconds per tenant."
	case status == http.StatusUnauthorized:
		e.Code = dirsync.EUNAUTHORIZED
		e.Message = "Microsoft Graph rejected the application's access token (" + o.name + ")"
		e.Hint = credentialHint
	case status == http.StatusForbidden:
		e.Code = dirsync.EFORBIDDEN
		e.Message = "the application is not allowed to " + o.name + " (403 Forbidden" + codeSuffix(ge.Code) + ")"
		e.Hint = permissionHint(o.perm)
	case status == http.StatusNotFound:
		e.Code = dirsync.ENOTFOUND
		e.Message = o.notFound
		if e.Message == "" {
			e.Message = "Microsoft Graph found nothing at the requested address (" + o.name + ")"
		}
	case status >= 500 || status == http.StatusRequestTimeout:
		wait, _ := parseRetryAfter(h.Get("Retry-After"), now)
		return unavailable(o, ge, ex, wait)
	default:
		e.Code = dirsync.EINVALID
		e.Message = fmt.Sprintf("Microsoft Graph refused the request to %s (HTTP %d%s)", o.name, status, codeSuffix(ge.Code))
		if ge.Message != "" {
			e.Message += ": " + ge.Message
		}
		e.Hint = "Check the attribute names selected for sync: each must be a Microsoft Graph user property."
	}
	return e
}

// unavailable maps a transient failure that outlived the in-call retries;
// retryAfter is the server's advice, if any.
func unavailable(o op, cause error, ex *exchange, retryAfter time.Duration) *dirsync.Error {
	e := &dirsync.Error{Code: dirsync.EUNAVAILABLE, Err: cause, RetryAfter: retryAfter}
	tries := ""
	if ex != nil && ex.attempts > 1 {
		tries = fmt.Sprintf(" after %d attempts", ex.attempts)
	}
	var te *transportError
	var ge *graphError
	switch {
	case errors.As(cause, &te) && te.timeout:
		e.Message = "Microsoft Graph did not answer in time" + tries + " (" + o.name + ")"
	case errors.As(cause, &te):
		e.Message = "the connection to Microsoft Graph failed" + tries + " (" + o.name + ")"
	case errors.As(cause, &ge):
		e.Message = fmt.Sprintf("Microsoft Graph is unavailable: HTTP %d%s (%s)", ge.Status, tries, o.name)
	default:
		e.Message = "Microsoft Graph is unavailable" + tries + " (" + o.name + ")"
	}
	e.Hint = "This is usually passing; the work is retried automatically. If it persists, check https://status.cloud.microsoft and the network path to Graph."
	return e
}

// Runtime hints reach the status page as they are, so they say which
// setting in words (the handler owns the setting names); configuration
// errors from New name Config fields, which the handler translates.
const credentialHint = "Check the tenant id, the client id and the credential settings: in the Entra admin center > App registrations > your app > Certificates & secrets, check the client secret or certificate has not expired; if it has, create a new one and update the client secret or certificate setting."

func permissionHint(p permission) string {
	if p == "" {
		p = permUsers
	}
	return "Grant the application permission " + string(p) + " to the app: Entra admin center > App registrations > your app > API permissions > Add a permission > Microsoft Graph > Application permissions > " + string(p) + ", then Grant admin consent."
}

// tokenError maps a failure to get an access token from Entra ID.
func tokenError(o op, afe *azidentity.AuthenticationFailedError, now time.Time) *dirsync.Error {
	resp := afe.RawResponse
	if resp == nil {
		// No answer from the token endpoint at all (connection failed, or
		// MSAL could not use what it got).
		return &dirsync.Error{
			Code:    dirsync.EUNAVAILABLE,
			Message: "could not get an access token from Entra ID (" + o.name + "): the token endpoint gave no usable answer",
			Hint:    "Check the authority host setting and the network path to it; the work is retried automatically.",
			Err:     afe,
		}
	}
	aadCode := aadErrorCode(resp)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		wait, ok := parseRetryAfter(resp.Header.Get("Retry-After"), now)
		if !ok {
			wait = defaultThrottleWait
		}
		return &dirsync.Error{Code: dirsync.ETHROTTLED, RetryAfter: wait, Err: afe,
			Message: fmt.Sprintf("Entra ID is throttling token requests and asked to wait %s", wait.Round(time.Second)),
			Hint:    "The sync resumes by itself after the wait."}
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout:
		e := &dirsync.Error{Code: dirsync.EUNAVAILABLE, Err: afe,
			Message: fmt.Sprintf("Entra ID could not issue an access token (HTTP %d)", resp.StatusCode),
			Hint:    "This is usually passing; the work is retried automatically."}
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
			e.RetryAfter = d
		}
		return e
	}
	msg := "Entra ID rejected the application's credentials"
	if aadCode != "" {
		msg += " (" + aadCode + ")"
	}
	hint := credentialHint
	switch aadCode {
	case "AADSTS7000215":
		msg += ": the client secret is wrong"
		hint = "Copy the secret's Value (not its Secret ID) from Entra admin center > App registrations > your app > Certificates & secrets into the client secret setting."
	case "AADSTS7000222":
		msg += ": the client secret has expired"
		hint = "Create a new client secret in Entra admin center > App registrations > your app > Certificates & secrets, and update the client secret setting."
	case "AADSTS700016":
		msg += ": no application with this client id exists in the tenant"
		hint = "Check the client id setting (the application (client) id) and the tenant id setting."
	case "AADSTS90002", "AADSTS900023":
		msg += ": the tenant was not found"
		hint = "Check the tenant id setting: use the directory (tenant) id from the app registration's overview page."
	}
	return &dirsync.Error{Code: dirsync.EUNAUTHORIZED, Message: msg, Hint: hint, Err: afe}
}

var aadCodeRE = regexp.MustCompile(`AADSTS\d+`)

// aadErrorCode finds the AADSTS code in a token endpoint's error answer.
func aadErrorCode(resp *http.Response) string {
	body, err := runtime.Payload(resp)
	if err != nil {
		return ""
	}
	var b struct {
		ErrorCodes  []int  `json:"error_codes"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &b) == nil {
		if len(b.ErrorCodes) > 0 {
			return fmt.Sprintf("AADSTS%d", b.ErrorCodes[0])
		}
		return aadCodeRE.FindString(b.Description)
	}
	return ""
}

// headersOf converts the SDK's response headers, falling back to the wire
// record when the SDK error carries none.
func headersOf(rh *abs.ResponseHeaders, ex *exchange) http.Header {
	if rh != nil {
		if keys := rh.ListKeys(); len(keys) > 0 {
			h := make(http.Header, len(keys))
			for _, k := range keys {
				for _, v := range rh.Get(k) {
					h.Add(k, v)
				}
			}
			return h
		}
	}
	if ex != nil && ex.header != nil {
		return ex.header
	}
	return http.Header{}
}

func isTokenExpiredCode(code string) bool {
	for _, c := range tokenExpiredCodes {
		if strings.EqualFold(code, c) {
			return true
		}
	}
	return false
}

func codeSuffix(code string) string {
	if code == "" {
		return ""
	}
	return ", " + code
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
