package blob_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/azurite"
	"github.com/entrasync/entrasync/internal/blob"
	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newStore(t *testing.T) (*blob.LogStore, string) {
	t.Helper()
	container := testenv.UniqueName(t, "logs")
	s, err := blob.New(blob.Config{ConnectionString: testenv.Storage(t), Container: container})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, container
}

// noSecrets fails when err's message holds anything that grants access.
func noSecrets(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error() + " " + dirsync.ErrorHint(err)
	for _, secret := range []string{azurite.AccountKey, "AccountKey=", "SharedAccessSignature=", "sig="} {
		if strings.Contains(msg, secret) {
			t.Fatalf("%s: error message holds %q: %s", what, secret, msg)
		}
	}
}

func wantCode(t *testing.T, what string, err error, want dirsync.Code) {
	t.Helper()
	if got := dirsync.ErrorCode(err); got != want {
		t.Fatalf("%s: error code %q (%v), want %q", what, got, err, want)
	}
	noSecrets(t, what, err)
}

func readLog(t *testing.T, s *blob.LogStore, name string) []byte {
	t.Helper()
	rc, err := s.OpenLog(context.Background(), name)
	if err != nil {
		t.Fatalf("OpenLog %s: %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func TestCreateAppendOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	const name = "2026/11/23/run-1.jsonl"
	if err := s.CreateLog(ctx, name); err != nil { // also creates the container
		t.Fatalf("CreateLog: %v", err)
	}
	if got := readLog(t, s, name); len(got) != 0 {
		t.Fatalf("new log holds %q", got)
	}
	for _, line := range []string{`{"event":"start"}` + "\n", "", `{"event":"ünïcode ✓"}` + "\n"} {
		if err := s.AppendLog(ctx, name, []byte(line)); err != nil {
			t.Fatalf("AppendLog: %v", err)
		}
	}
	// Creating it again leaves it as it is.
	if err := s.CreateLog(ctx, name); err != nil {
		t.Fatalf("second CreateLog: %v", err)
	}
	want := `{"event":"start"}` + "\n" + `{"event":"ünïcode ✓"}` + "\n"
	if diff := cmp.Diff(want, string(readLog(t, s, name))); diff != "" {
		t.Errorf("log content (-want +got):\n%s", diff)
	}
	// Another log in the same container is separate.
	if err := s.CreateLog(ctx, "2026/11/23/run-2.jsonl"); err != nil {
		t.Fatal(err)
	}
	if got := readLog(t, s, "2026/11/23/run-2.jsonl"); len(got) != 0 {
		t.Errorf("second log holds %q", got)
	}
}

func TestAppendSplitsLargeData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, container := newStore(t)
	const name = "big.jsonl"
	if err := s.CreateLog(ctx, name); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 2*blob.MaxBlockBytes+12345) // three blocks
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	if err := s.AppendLog(ctx, name, data); err != nil {
		t.Fatalf("AppendLog of %d bytes: %v", len(data), err)
	}
	if err := s.AppendLog(ctx, name, []byte("tail")); err != nil {
		t.Fatal(err)
	}
	got := readLog(t, s, name)
	if len(got) != len(data)+4 || sha256.Sum256(got[:len(data)]) != sha256.Sum256(data) || string(got[len(data):]) != "tail" {
		t.Fatalf("read back %d bytes, want the %d appended", len(got), len(data)+4)
	}

	// Ask the service directly how many blocks it holds.
	svc, err := service.NewClientFromConnectionString(testenv.Storage(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	props, err := svc.NewContainerClient(container).NewAppendBlobClient(name).GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if props.BlobCommittedBlockCount == nil || *props.BlobCommittedBlockCount != 4 {
		t.Errorf("committed blocks = %v, want 4 (3 for the large append, 1 for the tail)", props.BlobCommittedBlockCount)
	}

	// OpenLog streams: reading a little and closing early works.
	rc, err := s.OpenLog(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 10)
	if _, err := io.ReadFull(rc, head); err != nil || string(head) != "abcdefghij" {
		t.Errorf("first bytes %q, %v", head, err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("Close after partial read: %v", err)
	}
}

func TestMissingLogs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	// The container does not exist yet.
	_, err := s.OpenLog(ctx, "nope.jsonl")
	wantCode(t, "OpenLog before the container exists", err, dirsync.ENOTFOUND)
	wantCode(t, "AppendLog before the container exists", s.AppendLog(ctx, "nope.jsonl", []byte("x")), dirsync.ENOTFOUND)
	if err := s.CreateLog(ctx, "exists.jsonl"); err != nil {
		t.Fatal(err)
	}
	_, err = s.OpenLog(ctx, "nope.jsonl")
	wantCode(t, "OpenLog of a missing log", err, dirsync.ENOTFOUND)
	wantCode(t, "AppendLog to a missing log", s.AppendLog(ctx, "nope.jsonl", []byte("x")), dirsync.ENOTFOUND)
	_, err = s.LogURL(ctx, "nope.jsonl", time.Hour)
	wantCode(t, "LogURL of a missing log", err, dirsync.ENOTFOUND)
}

func TestBadNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	for _, name := range []string{"", "/abs.jsonl", "a//b", "a/../b", "./a", "trailing/", `back\slash`, "nl\nx", strings.Repeat("x", 1025), "\xff"} {
		wantCode(t, fmt.Sprintf("CreateLog(%q)", name[:min(len(name), 12)]), s.CreateLog(ctx, name), dirsync.EINVALID)
		_, err := s.OpenLog(ctx, name)
		wantCode(t, "OpenLog", err, dirsync.EINVALID)
		wantCode(t, "AppendLog", s.AppendLog(ctx, name, []byte("x")), dirsync.EINVALID)
		_, err = s.LogURL(ctx, name, time.Hour)
		wantCode(t, "LogURL", err, dirsync.EINVALID)
	}
	// Names that need URL escaping work.
	for _, name := range []string{"2026/11/23/a b+c%d&e.jsonl", "ünï/✓.jsonl"} {
		if err := s.CreateLog(ctx, name); err != nil {
			t.Fatalf("CreateLog(%q): %v", name, err)
		}
		if err := s.AppendLog(ctx, name, []byte(name)); err != nil {
			t.Fatalf("AppendLog(%q): %v", name, err)
		}
		if got := string(readLog(t, s, name)); got != name {
			t.Errorf("log %q holds %q", name, got)
		}
	}
}

func TestLogURL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	const name = "2026/11/23/run-sas.jsonl"
	if err := s.CreateLog(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLog(ctx, name, []byte("line 1\n")); err != nil {
		t.Fatal(err)
	}
	link, err := s.LogURL(ctx, name, time.Hour)
	if err != nil {
		t.Fatalf("LogURL: %v", err)
	}
	if !strings.Contains(link, "sp=r&") || !strings.Contains(link, "sig=") {
		t.Errorf("link is not a read-only SAS (sp=r): %d chars", len(link))
	}

	resp, err := http.Get(link)
	if err != nil {
		t.Fatalf("GET link: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "line 1\n" {
		t.Fatalf("GET link: %d %q, want 200 with the log", resp.StatusCode, body)
	}

	// The link must not allow writing: overwrite, append, delete.
	for _, try := range []struct {
		method, query string
		header        map[string]string
	}{
		{http.MethodPut, "", map[string]string{"x-ms-blob-type": "BlockBlob"}},
		{http.MethodPut, "&comp=appendblock", nil},
		{http.MethodDelete, "", nil},
	} {
		req, _ := http.NewRequest(try.method, link+try.query, strings.NewReader("evil"))
		for k, v := range try.header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s link: %v", try.method, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s%s with the read-only link: %d, want 403", try.method, try.query, resp.StatusCode)
		}
	}
	if got := string(readLog(t, s, name)); got != "line 1\n" {
		t.Errorf("log changed through the read-only link: %q", got)
	}

	for _, ttl := range []time.Duration{0, -time.Second, blob.MaxLinkTTL + time.Second} {
		_, err := s.LogURL(ctx, name, ttl)
		wantCode(t, fmt.Sprintf("LogURL ttl %s", ttl), err, dirsync.EINVALID)
	}
}

// TestLogURLWithoutKey: a connection string holding a SAS instead of the
// account key can read and write but cannot sign links.
func TestLogURLWithoutKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, container := newStore(t)
	if err := s.CreateLog(ctx, "x.jsonl"); err != nil {
		t.Fatal(err)
	}
	keyed, err := service.NewClientFromConnectionString(testenv.Storage(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	sasURL, err := keyed.GetSASURL(sas.AccountResourceTypes{Service: true, Container: true, Object: true},
		sas.AccountPermissions{Read: true, Write: true, Create: true, Add: true, List: true}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	base, query, _ := strings.Cut(sasURL, "?")
	cs := "BlobEndpoint=" + strings.TrimSuffix(base, "/") + ";SharedAccessSignature=" + query
	noKey, err := blob.New(blob.Config{ConnectionString: cs, Container: container})
	if err != nil {
		t.Fatalf("New with a SAS connection string: %v", err)
	}
	if got := string(readLog(t, noKey, "x.jsonl")); got != "" {
		t.Fatalf("read through SAS connection string: %q", got)
	}
	_, err = noKey.LogURL(ctx, "x.jsonl", time.Hour)
	wantCode(t, "LogURL without an account key", err, dirsync.EINVALID)
}

func TestPing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	if err := s.Ping(ctx); err != nil { // the container does not exist yet
		t.Fatalf("Ping before the container exists: %v", err)
	}
	if err := s.CreateLog(ctx, "x.jsonl"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}

	wrong := strings.Replace(testenv.Storage(t), azurite.AccountKey, "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXk=", 1)
	bad, err := blob.New(blob.Config{ConnectionString: wrong, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Ping(ctx)
	// The app's own credential was refused: unavailable, not unauthorized
	// (the API would answer 401 and blame the caller's function key).
	wantCode(t, "Ping with a wrong key", err, dirsync.EUNAVAILABLE)
	if msg := dirsync.ErrorMessage(err); !strings.Contains(msg, "the storage account refused the app's credentials") {
		t.Errorf("Ping with a wrong key: message %q does not say the storage account refused the app's credentials", msg)
	}
	if hint := dirsync.ErrorHint(err); !strings.Contains(hint, "storage connection string") || !strings.Contains(hint, "role assignment") {
		t.Errorf("Ping with a wrong key: hint %q does not name the storage connection string and the role assignment", hint)
	}
	noSecrets(t, "Ping with a wrong key", err)
	if strings.Contains(err.Error(), "d3Jvbmcga2V5") {
		t.Errorf("error leaks the key: %v", err)
	}

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	u := "http://" + addr + "/devstoreaccount1"
	down, err := blob.New(blob.Config{ConnectionString: azurite.ConnectionString(u, u, u), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "Ping of a closed port", down.Ping(ctx), dirsync.EUNAVAILABLE)
}

func TestConfigErrors(t *testing.T) {
	u := "http://127.0.0.1:1/devstoreaccount1"
	cs := azurite.ConnectionString(u, u, u)
	tests := []struct {
		name string
		cfg  blob.Config
		want string
	}{
		{"nothing", blob.Config{}, "ConnectionString"},
		{"both", blob.Config{ConnectionString: cs, AccountURL: "https://a.blob.core.windows.net/"}, "AccountURL"},
		{"container", blob.Config{ConnectionString: cs, Container: "Sync_Logs"}, "Container"},
		{"container short", blob.Config{ConnectionString: cs, Container: "ab"}, "Container"},
		{"container hyphens", blob.Config{ConnectionString: cs, Container: "a--b"}, "Container"},
		{"malformed", blob.Config{ConnectionString: "AccountKey=s3cretKEY;junk"}, "ConnectionString"},
		{"bad key", blob.Config{ConnectionString: "AccountName=a;AccountKey=s3cret!KEY;BlobEndpoint=" + u}, "AccountKey"},
		{"identity with string", blob.Config{ConnectionString: cs, UseManagedIdentity: true}, "UseManagedIdentity"},
		{"bad url", blob.Config{AccountURL: "blob.core.windows.net"}, "AccountURL"},
		{"sas url", blob.Config{AccountURL: "https://a.blob.core.windows.net/?sig=s3cretKEY"}, "AccountURL"},
		{"sas, not a url", blob.Config{AccountURL: "a.blob.core.windows.net?sig=s3cretKEY"}, "AccountURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := blob.New(tt.cfg)
			wantCode(t, "New", err, dirsync.EINVALID)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("message %q does not name %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("message %q leaks the secret", err)
			}
		})
	}
	if _, err := blob.New(blob.Config{AccountURL: "https://a.blob.core.windows.net/", ClientID: "00000000-0000-0000-0000-000000000001"}); err != nil {
		t.Errorf("AccountURL with a user-assigned identity: %v", err)
	}
}

// TestServiceErrors drives the error translation with a server that answers
// like a struggling or refusing storage service.
func TestServiceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status     int
		code       string
		retryAfter string
		want       dirsync.Code
		wantAfter  time.Duration
	}{
		{http.StatusServiceUnavailable, "ServerBusy", "5", dirsync.ETHROTTLED, 5 * time.Second},
		{http.StatusInternalServerError, "InternalError", "", dirsync.EUNAVAILABLE, 0},
		// The storage account refusing the app's credentials is not the API
		// caller's fault: unavailable, not unauthorized or forbidden.
		{http.StatusForbidden, "AuthenticationFailed", "", dirsync.EUNAVAILABLE, 0},
		{http.StatusForbidden, "AuthorizationPermissionMismatch", "", dirsync.EUNAVAILABLE, 0},
		{http.StatusForbidden, "AuthorizationFailure", "", dirsync.EUNAVAILABLE, 0},
		{http.StatusUnauthorized, "", "", dirsync.EUNAVAILABLE, 0},
		{http.StatusConflict, "BlockCountExceedsLimit", "", dirsync.EINVALID, 0},
		{http.StatusConflict, "InvalidBlobType", "", dirsync.EINVALID, 0},
		{http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", "", dirsync.EINVALID, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", tt.status, tt.code), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("x-ms-error-code", tt.code)
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			u := srv.URL + "/devstoreaccount1"
			s, err := blob.New(blob.Config{ConnectionString: azurite.ConnectionString(u, u, u), MaxRetries: -1})
			if err != nil {
				t.Fatal(err)
			}
			err = s.AppendLog(context.Background(), "x.jsonl", []byte("line\n"))
			wantCode(t, "AppendLog", err, tt.want)
			if got := dirsync.RetryAfter(err); got != tt.wantAfter {
				t.Errorf("RetryAfter = %v, want %v", got, tt.wantAfter)
			}
		})
	}
}
