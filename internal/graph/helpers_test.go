package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/google/go-cmp/cmp"
	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Unit tests of the pure helpers: configuration, $filter building, composite
// links, attribute mapping and error translation from constructed SDK error
// values. The behaviour over the wire is tested against the Graph simulator
// in source_test.go.

func TestValidate(t *testing.T) {
	ok := Config{TenantID: "sim-tenant", ClientID: "sim-client", ClientSecret: "s3cr3t"}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr []string // substrings of the error; nil means valid
	}{
		{"secret", func(*Config) {}, nil},
		{"no credential", func(c *Config) { c.ClientSecret = "" },
			[]string{"Config.ClientSecret, Config.CertificatePath or Config.UseManagedIdentity"}},
		{"two credentials", func(c *Config) { c.CertificatePath = "/x.pem" }, []string{"more than one Graph credential"}},
		{"managed identity needs no ids", func(c *Config) {
			*c = Config{UseManagedIdentity: true, ManagedIdentityClientID: "00000000-0000-0000-0000-000000000001"}
		}, nil},
		{"missing tenant and client", func(c *Config) { c.TenantID, c.ClientID = "", "" },
			[]string{"Config.TenantID is required", "Config.ClientID is required"}},
		{"tenant with a slash", func(c *Config) { c.TenantID = "a/b" }, []string{"Config.TenantID"}},
		{"http authority", func(c *Config) { c.AuthorityHost = "http://127.0.0.1:1/" }, []string{"Config.AuthorityHost", "https"}},
		{"http graph", func(c *Config) { c.GraphBaseURL = "http://graph.microsoft.com/v1.0" }, []string{"Config.GraphBaseURL", "https"}},
		{"graph with query", func(c *Config) { c.GraphBaseURL = "https://graph.microsoft.com/v1.0?x=1" }, []string{"Config.GraphBaseURL"}},
		{"trusted CA for a real host", func(c *Config) { c.TrustedCAPEM = testCAPEM(t) }, []string{"Config.TrustedCAPEM", "loopback"}},
		{"trusted CA for loopback", func(c *Config) {
			c.TrustedCAPEM = testCAPEM(t)
			c.AuthorityHost, c.GraphBaseURL = "https://127.0.0.1:9/", "https://127.0.0.1:9/v1.0"
		}, nil},
		{"trusted CA not PEM", func(c *Config) {
			c.TrustedCAPEM = []byte("nope")
			c.AuthorityHost, c.GraphBaseURL = "https://127.0.0.1:9/", "https://127.0.0.1:9/v1.0"
		}, []string{"Config.TrustedCAPEM holds no PEM"}},
		{"page size", func(c *Config) { c.PageSize = 5000 }, []string{"Config.PageSize"}},
		{"negative wait", func(c *Config) { c.MaxInCallWait = -time.Second }, []string{"Config.MaxInCallWait"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			_, err := validate(cfg)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("validate succeeded, want an error with %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}

func TestValidateDefaults(t *testing.T) {
	st, err := validate(Config{TenantID: "t", ClientID: "c", ClientSecret: "x", GraphBaseURL: "https://graph.microsoft.com/v1.0/"})
	if err != nil {
		t.Fatal(err)
	}
	got := []any{st.AuthorityHost, st.GraphBaseURL, st.MaxInCallWait, st.RequestTimeout}
	want := []any{DefaultAuthorityHost, "https://graph.microsoft.com/v1.0", DefaultMaxInCallWait, DefaultRequestTimeout}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestChunkGroupIDs(t *testing.T) {
	ids := make([]string, 0, 120)
	for i := range 120 {
		ids = append(ids, fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i))
	}
	ids = append(ids, strings.ToUpper(ids[3])) // a duplicate in another case
	chunks, err := chunkGroupIDs(ids)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, c := range chunks {
		sizes = append(sizes, len(c))
	}
	if diff := cmp.Diff([]int{50, 50, 20}, sizes); diff != "" {
		t.Errorf("chunk sizes (-want +got):\n%s", diff)
	}

	for _, bad := range []string{"x' or 1 eq 1 or id eq '", "not-a-guid", ""} {
		_, err := chunkGroupIDs([]string{ids[0], bad})
		if dirsync.ErrorCode(err) != dirsync.EINVALID {
			t.Errorf("chunkGroupIDs(%q) = %v, want EINVALID", bad, err)
		}
	}
}

func TestIDFilter(t *testing.T) {
	got := idFilter([]string{"00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"})
	want := "id eq '00000000-0000-0000-0000-000000000001' or id eq '00000000-0000-0000-0000-000000000002'"
	if got != want {
		t.Errorf("idFilter = %q, want %q", got, want)
	}
}

func TestGroupRoundLink(t *testing.T) {
	r := groupRound{Cur: 1, Chunks: []groupChunk{
		{Link: "https://127.0.0.1:1/v1.0/groups/delta()?$deltatoken=a"},
		{IDs: []string{"00000000-0000-0000-0000-000000000001"}},
	}}
	link := r.encode()
	if !strings.HasPrefix(link, compositePrefix) {
		t.Fatalf("link %q lacks the prefix", link)
	}
	got, err := decodeGroupRound(link)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, bad := range []string{
		compositePrefix + "!!!",
		compositePrefix + groupRound{Cur: 5, Chunks: r.Chunks}.encode()[len(compositePrefix):],
		groupRound{Chunks: []groupChunk{{}}}.encode(),
		groupRound{Chunks: []groupChunk{{IDs: []string{"') or true"}}}}.encode(),
	} {
		if _, err := decodeGroupRound(bad); err == nil {
			t.Errorf("decodeGroupRound(%q) succeeded", bad)
		}
	}
}

func TestMapUser(t *testing.T) {
	tests := []struct {
		name string
		json string
		want dirsync.SourceUser
	}{
		{
			name: "values of every kind",
			json: `{"id":"u1","@odata.type":"#microsoft.graph.user","displayName":"Zoë Ñúñez","accountEnabled":false,
				"businessPhones":["+1 555","+1 556"],"otherMails":[],"mail":null,"employeeHireDate":"2020-01-02T00:00:00Z",
				"onPremisesExtensionAttributes":{"extensionAttribute1":"a","extensionAttribute2":null},
				"employeeOrgData":{"division":"R&D","costCenter":"42"},
				"extension_abc_costCenter":"77","manager@delta":[{"@odata.type":"#microsoft.graph.user","id":"m1"}]}`,
			want: dirsync.SourceUser{ID: "u1", Attributes: map[string]string{
				"id": "u1", "displayName": "Zoë Ñúñez", "accountEnabled": "false", "businessPhones": "+1 555; +1 556",
				"otherMails": "", "mail": "", "employeeHireDate": "2020-01-02T00:00:00Z",
				"extensionAttribute1": "a", "extensionAttribute2": "",
				"employeeOrgData.division": "R&D", "employeeOrgData.costCenter": "42",
				"extension_abc_costCenter": "77", "manager": "m1",
			}},
		},
		{
			name: "soft-deleted",
			json: `{"id":"u2","@removed":{"reason":"changed"}}`,
			want: dirsync.SourceUser{ID: "u2", Removed: dirsync.RemovedChanged, Attributes: map[string]string{"id": "u2"}},
		},
		{
			name: "hard-deleted",
			json: `{"id":"u3","@removed":{"reason":"deleted"}}`,
			want: dirsync.SourceUser{ID: "u3", Removed: dirsync.RemovedDeleted, Attributes: map[string]string{"id": "u3"}},
		},
		{
			name: "manager removed",
			json: `{"id":"u4","manager@delta":[{"id":"m1","@removed":{"reason":"deleted"}}]}`,
			want: dirsync.SourceUser{ID: "u4", Attributes: map[string]string{"id": "u4", "manager": ""}},
		},
		{
			name: "manager expanded",
			json: `{"id":"u5","manager":{"id":"m2","displayName":"Boss"}}`,
			want: dirsync.SourceUser{ID: "u5", Attributes: map[string]string{"id": "u5", "manager": "m2"}},
		},
		{
			name: "number and list of objects",
			json: `{"id":"u6","n":12.5,"identities":[{"signInType":"userPrincipalName","issuer":"x"}]}`,
			want: dirsync.SourceUser{ID: "u6", Attributes: map[string]string{"id": "u6", "n": "12.5",
				"identities": `[{"signInType":"userPrincipalName","issuer":"x"}]`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var item map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tt.json), &item); err != nil {
				t.Fatal(err)
			}
			got, err := mapUser(item)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mapUser (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := mapUser(map[string]json.RawMessage{"displayName": json.RawMessage(`"x"`)}); err == nil {
		t.Error("mapUser of a user without id succeeded")
	}
}

func TestSelectList(t *testing.T) {
	got, err := selectList([]string{"displayName", "id", "mail", "displayname", "extension_abc_x",
		"extensionAttribute3", "extensionAttribute15", "manager", "extensionAttribute16"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"id", "displayName", "mail", "extension_abc_x", "onPremisesExtensionAttributes", "manager", "extensionAttribute16"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("selectList (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"mail,manager", "a&$filter=x", "", "display name"} {
		if _, err := selectList([]string{bad}); dirsync.ErrorCode(err) != dirsync.EINVALID {
			t.Errorf("selectList(%q) = %v, want EINVALID", bad, err)
		}
	}
}

func TestCheckUserID(t *testing.T) {
	for _, id := range []string{"00000000-0000-0000-0000-000000000001", "ann@contoso.com", "a_b.com#EXT#@x.onmicrosoft.com"} {
		if err := checkUserID(id); err != nil {
			t.Errorf("checkUserID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", "x", "../groups", "a b@c", "a@b/c", "a@b?x"} {
		if err := checkUserID(id); dirsync.ErrorCode(err) != dirsync.EINVALID {
			t.Errorf("checkUserID(%q) = %v, want EINVALID", id, err)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{"1.5", 1500 * time.Millisecond, true},
		{"Mon, 23 Nov 2026 10:02:00 GMT", 2 * time.Minute, true},
		{"Mon, 23 Nov 2026 09:00:00 GMT", 0, true},
		{"-3", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestKiotaShouldRetry(t *testing.T) {
	opts := kiotaRetryOptions(10*time.Second, discardLogger())
	req, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1/v1.0/users/delta()", nil)
	resp := func(retryAfter string) *http.Response {
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		return &http.Response{StatusCode: 429, Status: "429 Too Many Requests", Header: h}
	}
	tests := []struct {
		name       string
		slept      time.Duration
		retries    int
		retryAfter string
		want       bool
	}{
		{"short Retry-After", 0, 0, "2", true},
		{"Retry-After above the in-call wait", 0, 0, "30", false},
		{"budget used up", 9 * time.Second, 2, "2", false},
		{"no Retry-After, first backoff", 0, 0, "", true},
		{"no Retry-After, backoff beyond budget", 6 * time.Second, 2, "", false},
	}
	for _, tt := range tests {
		if got := opts.ShouldRetry(tt.slept, tt.retries, req, resp(tt.retryAfter)); got != tt.want {
			t.Errorf("%s: ShouldRetry = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func odataErr(status int, code string, header map[string]string) error {
	e := odataerrors.NewODataError()
	e.ResponseStatusCode = status
	if code != "" {
		me := odataerrors.NewMainError()
		me.SetCode(&code)
		msg := "message for " + code
		me.SetMessage(&msg)
		e.SetErrorEscaped(me)
	}
	h := abs.NewResponseHeaders()
	for k, v := range header {
		h.Add(k, v)
	}
	e.SetResponseHeaders(h)
	return e
}

func apiErr(status int, header map[string]string) error {
	h := abs.NewResponseHeaders()
	for k, v := range header {
		h.Add(k, v)
	}
	return &abs.ApiError{ResponseStatusCode: status, ResponseHeaders: h}
}

func authErr(status int, body string) error {
	return &azidentity.AuthenticationFailedError{RawResponse: &http.Response{
		StatusCode: status, Status: http.StatusText(status), Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)),
	}}
}

func TestMapError(t *testing.T) {
	usersOp := op{name: "read users (users delta)", perm: permUsers}
	groupsOp := op{name: "read groups (groups delta)", perm: permGroups}
	photoOp := op{name: "read a user's photo", perm: permPhotos, notFound: "user u1 has no photo"}
	type want struct {
		Code       dirsync.Code
		RetryAfter time.Duration
		InMessage  string
		InHint     string
	}
	tests := []struct {
		name string
		op   op
		err  error
		ex   *exchange
		want want
	}{
		{"syncStateNotFound", usersOp, odataErr(400, "syncStateNotFound", nil), nil,
			want{Code: dirsync.ETOKENEXPIRED, InMessage: "delta token has expired"}},
		{"resyncRequired", usersOp, odataErr(400, "resyncRequired", nil), nil,
			want{Code: dirsync.ETOKENEXPIRED, InMessage: "full sync will start"}},
		{"410 with Location", usersOp, odataErr(410, "syncStateNotFound", map[string]string{"Location": "https://x/v1.0/users/delta"}), nil,
			want{Code: dirsync.ETOKENEXPIRED}},
		{"410 without body", usersOp, apiErr(410, nil), nil, want{Code: dirsync.ETOKENEXPIRED}},
		{"429 seconds", usersOp, odataErr(429, "TooManyRequests", map[string]string{"Retry-After": "120"}), nil,
			want{Code: dirsync.ETHROTTLED, RetryAfter: 120 * time.Second, InMessage: "2m0s"}},
		{"429 no header", usersOp, apiErr(429, nil), nil, want{Code: dirsync.ETHROTTLED, RetryAfter: defaultThrottleWait}},
		{"503 with advice", usersOp, apiErr(503, map[string]string{"Retry-After": "40"}), nil,
			want{Code: dirsync.EUNAVAILABLE, RetryAfter: 40 * time.Second}},
		{"500 after attempts", usersOp, odataErr(500, "generalException", nil), &exchange{attempts: 3},
			want{Code: dirsync.EUNAVAILABLE, InMessage: "after 3 attempts"}},
		{"403 users", usersOp, odataErr(403, "Authorization_RequestDenied", nil), nil,
			want{Code: dirsync.EFORBIDDEN, InHint: "User.Read.All"}},
		{"403 groups", groupsOp, apiErr(403, nil), nil,
			want{Code: dirsync.EFORBIDDEN, InHint: "GroupMember.Read.All"}},
		{"403 photos", photoOp, apiErr(403, nil), nil,
			want{Code: dirsync.EFORBIDDEN, InHint: "ProfilePhoto.Read.All"}},
		{"403 hint says how", usersOp, apiErr(403, nil), nil,
			want{Code: dirsync.EFORBIDDEN, InHint: "Grant admin consent"}},
		{"401", usersOp, odataErr(401, "InvalidAuthenticationToken", nil), nil,
			want{Code: dirsync.EUNAUTHORIZED, InHint: "expired"}},
		{"404", photoOp, odataErr(404, "ImageNotFound", nil), nil,
			want{Code: dirsync.ENOTFOUND, InMessage: "has no photo"}},
		{"400 other", usersOp, odataErr(400, "Request_BadRequest", nil), nil,
			want{Code: dirsync.EINVALID, InMessage: "Request_BadRequest"}},
		{"OData error without body fields", usersOp, odataErr(502, "", nil), nil,
			want{Code: dirsync.EUNAVAILABLE}},
		{"status lost by the SDK", usersOp, errors.New("invalid json"), &exchange{status: 429, header: http.Header{"Retry-After": {"5"}}},
			want{Code: dirsync.ETHROTTLED, RetryAfter: 5 * time.Second}},
		{"dropped connection", usersOp, &transportError{err: io.ErrUnexpectedEOF}, &exchange{attempts: 3},
			want{Code: dirsync.EUNAVAILABLE, InMessage: "connection to Microsoft Graph failed"}},
		{"attempt timeout", usersOp, &transportError{timeout: true, err: errAttemptTimeout}, nil,
			want{Code: dirsync.EUNAVAILABLE, InMessage: "did not answer in time"}},
		{"wrong secret", usersOp, authErr(401, `{"error":"invalid_client","error_codes":[7000215]}`), nil,
			want{Code: dirsync.EUNAUTHORIZED, InMessage: "AADSTS7000215", InHint: "client secret setting"}},
		{"token endpoint throttles", usersOp, authErr(429, `{}`), nil,
			want{Code: dirsync.ETHROTTLED, RetryAfter: defaultThrottleWait}},
		{"token endpoint unreachable", usersOp, &azidentity.AuthenticationFailedError{}, nil,
			want{Code: dirsync.EUNAVAILABLE}},
		{"anything else", usersOp, errors.New("boom"), nil, want{Code: dirsync.EINTERNAL, InMessage: "internal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mapError(context.Background(), tt.op, tt.err, tt.ex)
			got := want{Code: dirsync.ErrorCode(err), RetryAfter: dirsync.RetryAfter(err)}
			msg, hint := dirsync.ErrorMessage(err), dirsync.ErrorHint(err)
			if strings.Contains(msg, tt.want.InMessage) {
				got.InMessage = tt.want.InMessage
			} else {
				got.InMessage = msg
			}
			if strings.Contains(hint, tt.want.InHint) {
				got.InHint = tt.want.InHint
			} else {
				got.InHint = hint
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mapError(%v) (-want +got):\n%s", tt.err, diff)
			}
			_ = fmt.Sprint(err) // must not panic, whatever the SDK error held
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := mapError(ctx, usersOp, &transportError{err: context.Canceled}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("with a cancelled context: %v, want context.Canceled", err)
	}
}
