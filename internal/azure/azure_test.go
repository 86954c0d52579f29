package azure_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/azure"
	"github.com/entrasync/entrasync/internal/dirsync"
)

func TestCredential(t *testing.T) {
	tests := []struct {
		name                string
		managedIdentityOnly bool
		clientID            string
		want                string // the credential's type
	}{
		{"default chain", false, "", "*azidentity.DefaultAzureCredential"},
		{"system-assigned identity", true, "", "*azidentity.ManagedIdentityCredential"},
		{"user-assigned identity", false, "00000000-0000-0000-0000-000000000001", "*azidentity.ManagedIdentityCredential"},
		{"both", true, "00000000-0000-0000-0000-000000000001", "*azidentity.ManagedIdentityCredential"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred, err := azure.Credential(tt.managedIdentityOnly, tt.clientID)
			if err != nil {
				t.Fatalf("Credential: %v", err)
			}
			if got := fmt.Sprintf("%T", cred); got != tt.want {
				t.Errorf("Credential(%v, %q) is a %s, want %s", tt.managedIdentityOnly, tt.clientID, got, tt.want)
			}
		})
	}
}

func TestMaxRetries(t *testing.T) {
	tests := []struct {
		n    int
		want int32
	}{
		{0, 0}, // the SDK's default
		{1, 1},
		{5, 5},
		{-1, -1}, // none
		{-7, -1},
		{math.MaxInt32, math.MaxInt32},
		{math.MaxInt32 + 1, math.MaxInt32}, // int32(n) would wrap to "none"
		{1 << 40, math.MaxInt32},
	}
	for _, tt := range tests {
		if got := azure.MaxRetries(tt.n); got != tt.want {
			t.Errorf("MaxRetries(%d) = %d, want %d", tt.n, got, tt.want)
		}
		// Only the retry count differs from the SDK's defaults.
		want := policy.RetryOptions{MaxRetries: tt.want}
		if diff := cmp.Diff(want, azure.ClientOptions(tt.n).Retry); diff != "" {
			t.Errorf("ClientOptions(%d).Retry (-want +got):\n%s", tt.n, diff)
		}
	}
}

func TestCheckAccountURL(t *testing.T) {
	tests := []struct {
		url  string
		want string // the error; "" for none
	}{
		{"https://a.table.core.windows.net/", ""},
		{"http://127.0.0.1:10002/devstoreaccount1", ""},
		{"table.core.windows.net", `AccountURL "table.core.windows.net" is not a URL like https://<account>.table.core.windows.net/`},
		{"ftp://a.table.core.windows.net/", `AccountURL "ftp://a.table.core.windows.net/" is not a URL like https://<account>.table.core.windows.net/`},
		{"https://", `AccountURL "https://" is not a URL like https://<account>.table.core.windows.net/`},
		{"https://a.table.core.windows.net/?sv=2024&sig=s3cret", "AccountURL must not carry a query (a SAS token); use managed identity or a connection string"},
		// Not a URL and a SAS: the message must not quote the signature.
		{"a.table.core.windows.net?sig=s3cret", "AccountURL must not carry a query (a SAS token); use managed identity or a connection string"},
		{"%zz?sig=s3cret", "AccountURL must not carry a query (a SAS token); use managed identity or a connection string"},
	}
	for _, tt := range tests {
		got := ""
		if err := azure.CheckAccountURL(tt.url, "table"); err != nil {
			got = err.Error()
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("CheckAccountURL(%q) (-want +got):\n%s", tt.url, diff)
		}
	}
}

func TestParseConnectionString(t *testing.T) {
	const cs = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=s3cret==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
	tests := []struct {
		name  string
		cs    string
		keys  []string          // looked up with Value and ValueFold
		want  map[string]string // key -> Value
		wantF map[string]string // key -> ValueFold
	}{
		{"storage", cs, []string{"AccountName", "AccountKey", "BlobEndpoint", "TableEndpoint"},
			map[string]string{"AccountName": "devstoreaccount1", "AccountKey": "s3cret==", "BlobEndpoint": "http://127.0.0.1:10000/devstoreaccount1", "TableEndpoint": ""},
			map[string]string{"AccountName": "devstoreaccount1", "AccountKey": "s3cret==", "BlobEndpoint": "http://127.0.0.1:10000/devstoreaccount1", "TableEndpoint": ""}},
		{"service bus, any case, empty parts", ";endpoint=sb://a.servicebus.windows.net/;;SharedAccessKeyName=send; SHAREDACCESSKEY = k=;",
			[]string{"Endpoint", "SharedAccessKeyName", "SharedAccessKey"},
			map[string]string{"Endpoint": "", "SharedAccessKeyName": "send", "SharedAccessKey": ""},
			map[string]string{"Endpoint": "sb://a.servicebus.windows.net/", "SharedAccessKeyName": "send", "SharedAccessKey": "k="}},
		{"repeated key: the last wins", "A=1;a=2;A=3", []string{"A", "a"},
			map[string]string{"A": "3", "a": "2"},
			map[string]string{"A": "3", "a": "3"}},
		{"empty", "", []string{"A"}, map[string]string{"A": ""}, map[string]string{"A": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := azure.ParseConnectionString(tt.cs)
			if err != nil {
				t.Fatalf("ParseConnectionString: %v", err)
			}
			got, gotF := map[string]string{}, map[string]string{}
			for _, k := range tt.keys {
				got[k], gotF[k] = c.Value(k), c.ValueFold(k)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Value (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantF, gotF); diff != "" {
				t.Errorf("ValueFold (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"AccountKey=s3cretKEY;garbage", "=s3cretKEY", "  =s3cretKEY;A=b", "s3cretKEY"} {
		_, err := azure.ParseConnectionString(bad)
		if !errors.Is(err, azure.ErrMalformedConnectionString) {
			t.Errorf("ParseConnectionString(%q): error %v, want ErrMalformedConnectionString", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseConnectionString(%q): error %q quotes the string", bad, err)
		}
	}
}

// responseError builds the error the SDK returns for a service's error
// answer.
func responseError(status int, code, retryAfter string) error {
	h := http.Header{}
	if code != "" {
		h.Set("x-ms-error-code", code)
	}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://a.table.core.windows.net/t?sig=s3cret", nil)
	return runtime.NewResponseError(&http.Response{StatusCode: status, Status: http.StatusText(status), Header: h,
		Body: io.NopCloser(strings.NewReader("")), Request: req})
}

func TestResponseOf(t *testing.T) {
	later := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name string
		err  error
		want azure.Response
		ok   bool
	}{
		{"seconds", responseError(503, "ServerBusy", "7"), azure.Response{Status: 503, Code: "ServerBusy", RetryAfter: 7 * time.Second}, true},
		{"spaces", responseError(429, "", " 3 "), azure.Response{Status: 429, RetryAfter: 3 * time.Second}, true},
		{"wrapped", fmt.Errorf("get: %w", responseError(404, "ResourceNotFound", "")), azure.Response{Status: 404, Code: "ResourceNotFound"}, true},
		{"zero", responseError(503, "", "0"), azure.Response{Status: 503}, true},
		{"garbage", responseError(503, "", "soon"), azure.Response{Status: 503}, true},
		{"date in the past", responseError(503, "", "Mon, 02 Jan 2006 15:04:05 GMT"), azure.Response{Status: 503}, true},
		{"no raw response", &azcore.ResponseError{StatusCode: 500, ErrorCode: "InternalError"}, azure.Response{Status: 500, Code: "InternalError"}, true},
		{"no answer", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, azure.Response{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := azure.ResponseOf(tt.err)
			if ok != tt.ok {
				t.Errorf("ResponseOf ok = %v, want %v", ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ResponseOf (-want +got):\n%s", diff)
			}
		})
	}
	// An HTTP date: the wait until then, which shrinks as the test runs.
	got, _ := azure.ResponseOf(responseError(503, "", later))
	if got.RetryAfter <= 58*time.Minute || got.RetryAfter > time.Hour {
		t.Errorf("Retry-After %s: RetryAfter = %s, want about an hour", later, got.RetryAfter)
	}
}

var testService = &azure.Service{
	Name:           "Test Storage",
	Package:        "test",
	Account:        "the test account",
	Server:         "the test service",
	Endpoint:       "the test endpoint",
	CredentialHint: "check TEST_CONNECTION_STRING, or the managed identity's role assignment",
}

// classified is what a test compares of a *dirsync.Error.
type classified struct {
	Code       dirsync.Code
	Message    string
	Hint       string
	RetryAfter time.Duration
}

func classify(err error) classified {
	var e *dirsync.Error
	if !errors.As(err, &e) {
		return classified{Message: "not a *dirsync.Error: " + err.Error()}
	}
	return classified{e.Code, e.Message, e.Hint, e.RetryAfter}
}

// realCredentialUnavailable returns the error azidentity gives when a
// credential cannot work here: the Azure CLI is not installed on these
// machines. It checks the real text, since Translate recognises that error
// by its text.
func realCredentialUnavailable(t *testing.T) error {
	t.Helper()
	t.Setenv("PATH", t.TempDir()) // no az, whatever the machine has
	cred, err := azidentity.NewAzureCLICredential(nil)
	if err != nil {
		t.Fatalf("NewAzureCLICredential: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	if err == nil {
		t.Fatal("AzureCLICredential got a token without the Azure CLI")
	}
	return err
}

func TestTranslate(t *testing.T) {
	refusedAnswer := func(what string, err error) *dirsync.Error {
		if r, ok := azure.ResponseOf(err); ok && r.Status == http.StatusForbidden {
			return testService.Refused(what, r.Code, err)
		}
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, dialErr := net.Dial("tcp", addr) // a real refused connection

	tests := []struct {
		name   string
		err    error
		answer azure.Answer
		want   classified
	}{
		{"the adapter's answer first", responseError(403, "AuthenticationFailed", ""), refusedAnswer,
			classified{Code: dirsync.EUNAVAILABLE, Message: "Test Storage: get x: the test account refused the app's credentials (AuthenticationFailed)",
				Hint: "check TEST_CONNECTION_STRING, or the managed identity's role assignment"}},
		{"an answer the adapter does not know", responseError(418, "Teapot", ""), refusedAnswer,
			classified{Code: dirsync.EINTERNAL, Message: "Test Storage: get x failed unexpectedly"}},
		{"no adapter answer", responseError(403, "AuthenticationFailed", ""), nil,
			classified{Code: dirsync.EINTERNAL, Message: "Test Storage: get x failed unexpectedly"}},
		{"token request failed", fmt.Errorf("get token: %w", &azidentity.AuthenticationFailedError{}), nil,
			classified{Code: dirsync.EUNAVAILABLE, Message: "Test Storage: get x: could not get a token for the test account",
				Hint: "check the app's managed identity (and ClientID, if set) and that it may use the test account"}},
		{"no credential here", realCredentialUnavailable(t), nil,
			classified{Code: dirsync.EUNAVAILABLE, Message: "Test Storage: get x: no Azure credential is available in this environment",
				Hint: "enable a managed identity for the app, or use a connection string"}},
		{"deadline", fmt.Errorf("send: %w", context.DeadlineExceeded), nil,
			classified{Code: dirsync.EUNAVAILABLE, Message: "Test Storage: get x: timed out",
				Hint: "try again; if it persists, check the test account's health"}},
		{"connection refused", dialErr, nil,
			classified{Code: dirsync.EUNAVAILABLE, Message: "Test Storage: get x: could not reach the test service",
				Hint: "check the network and the test endpoint; the operation can be retried"}},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), nil,
			classified{Code: dirsync.EUNAVAILABLE, Message: "Test Storage: get x: could not reach the test service",
				Hint: "check the network and the test endpoint; the operation can be retried"}},
		{"dropped mid-answer", io.ErrUnexpectedEOF, nil,
			classified{Code: dirsync.EUNAVAILABLE, Message: "Test Storage: get x: could not reach the test service",
				Hint: "check the network and the test endpoint; the operation can be retried"}},
		{"anything else", errors.New("boom"), nil,
			classified{Code: dirsync.EINTERNAL, Message: "Test Storage: get x failed unexpectedly"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := testService.Translate("get x", tt.err, tt.answer)
			if diff := cmp.Diff(tt.want, classify(got)); diff != "" {
				t.Errorf("Translate(%v) (-want +got):\n%s", tt.err, diff)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("the translated error does not wrap the cause")
			}
			if strings.Contains(dirsync.ErrorMessage(got)+dirsync.ErrorHint(got), "s3cret") {
				t.Errorf("the translated error quotes the request's signature: %v", got)
			}
		})
	}
}

func TestByResponse(t *testing.T) {
	var seen []azure.Response
	answer := azure.ByResponse(func(what string, r azure.Response, err error) *dirsync.Error {
		seen = append(seen, r)
		return &dirsync.Error{Code: dirsync.ENOTFOUND, Message: what + ": not found", Err: err}
	})
	got := testService.Translate("get x", fmt.Errorf("get: %w", responseError(404, "ResourceNotFound", "2")), answer)
	if diff := cmp.Diff(classified{Code: dirsync.ENOTFOUND, Message: "Test Storage: get x: not found"}, classify(got)); diff != "" {
		t.Errorf("Translate of an answer (-want +got):\n%s", diff)
	}
	// Errors without an answer are not the classifier's business.
	got = testService.Translate("get x", io.ErrUnexpectedEOF, answer)
	if c := dirsync.ErrorCode(got); c != dirsync.EUNAVAILABLE {
		t.Errorf("Translate of a dropped connection: code %q, want %q", c, dirsync.EUNAVAILABLE)
	}
	if diff := cmp.Diff([]azure.Response{{Status: 404, Code: "ResourceNotFound", RetryAfter: 2 * time.Second}}, seen); diff != "" {
		t.Errorf("responses classified (-want +got):\n%s", diff)
	}
}

func TestTranslatePassesThrough(t *testing.T) {
	answered := false
	answer := func(string, error) *dirsync.Error { answered = true; return nil }

	if err := testService.Translate("op", nil, answer); err != nil {
		t.Errorf("Translate(nil) = %v, want nil", err)
	}
	// An error already classified (by a nested call) keeps its meaning.
	de := dirsync.Errorf(dirsync.ENOTFOUND, "no such row")
	wrapped := fmt.Errorf("outer: %w", de)
	if got := testService.Translate("op", wrapped, answer); got != wrapped {
		t.Errorf("Translate(wrapped *dirsync.Error) = %v, want it unchanged", got)
	}
	if answered {
		t.Errorf("answer was asked about a *dirsync.Error")
	}
	// A cancellation is the caller giving up: a plain error, not a failure.
	got := testService.Translate("op", fmt.Errorf("send: %w", context.Canceled), answer)
	if !errors.Is(got, context.Canceled) || dirsync.ErrorCode(got) != dirsync.EINTERNAL || !strings.HasPrefix(got.Error(), "test: op: ") {
		t.Errorf("Translate(canceled) = %v (code %q), want a plain error starting %q and wrapping context.Canceled", got, dirsync.ErrorCode(got), "test: op: ")
	}
	var e *dirsync.Error
	if errors.As(got, &e) {
		t.Errorf("Translate(canceled) is a *dirsync.Error: %v", e)
	}
}

func TestRefused(t *testing.T) {
	cause := errors.New("403")
	tests := []struct {
		code string
		want classified
	}{
		{"AuthorizationFailure", classified{Code: dirsync.EUNAVAILABLE,
			Message: "Test Storage: ping: the test account refused the app's credentials (AuthorizationFailure)",
			Hint:    "check TEST_CONNECTION_STRING, or the managed identity's role assignment"}},
		{"", classified{Code: dirsync.EUNAVAILABLE,
			Message: "Test Storage: ping: the test account refused the app's credentials",
			Hint:    "check TEST_CONNECTION_STRING, or the managed identity's role assignment"}},
	}
	for _, tt := range tests {
		got := testService.Refused("Test Storage: ping", tt.code, cause)
		if diff := cmp.Diff(tt.want, classify(got)); diff != "" {
			t.Errorf("Refused(%q) (-want +got):\n%s", tt.code, diff)
		}
		if !errors.Is(got, cause) {
			t.Errorf("Refused(%q) does not wrap the cause", tt.code)
		}
	}
}
