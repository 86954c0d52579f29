package servicebus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"
	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
)

const testConn = "Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=s3cretKEY="

func wantCode(t *testing.T, what string, err error, want dirsync.Code) {
	t.Helper()
	if got := dirsync.ErrorCode(err); got != want {
		t.Fatalf("%s: error code %q (%v), want %q", what, got, err, want)
	}
	if err != nil && strings.Contains(err.Error()+dirsync.ErrorHint(err), "s3cret") {
		t.Fatalf("%s: error leaks the key: %v", what, err)
	}
}

// devhost records what a fake local host receives and answers with status.
type devhost struct {
	mu       sync.Mutex
	requests []recorded
	status   int
	header   http.Header
}

type recorded struct {
	Method, Path, ContentType string
	Body                      map[string]any
}

func (d *devhost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&body); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	d.requests = append(d.requests, recorded{r.Method, r.URL.EscapedPath(), r.Header.Get("Content-Type"), body})
	status := d.status
	d.mu.Unlock()
	for k, v := range d.header {
		w.Header()[k] = v
	}
	if status == 0 {
		status = http.StatusCreated
	}
	w.WriteHeader(status)
	if status == http.StatusOK {
		io.WriteString(w, "duplicate")
	}
}

func TestLocalSenderProtocol(t *testing.T) {
	host := &devhost{}
	srv := httptest.NewServer(host)
	defer srv.Close()
	q, err := New(Config{DevhostURL: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := q.(*LocalSender); !ok {
		t.Fatalf("New with DevhostURL returned %T, want *LocalSender", q)
	}
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 12, 0, 5, 500_000_000, time.FixedZone("CET", 3600))
	if err := q.Send(ctx, dirsync.Message{ID: "run-1/page-1", Body: []byte(`{"kind":"page","n":1}`)}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := q.Send(ctx, dirsync.Message{ID: "run-1/page-2", Body: []byte(`{"text":"ünï ✓"}`), NotBefore: at}); err != nil {
		t.Fatalf("Send scheduled: %v", err)
	}
	want := []recorded{
		{"POST", "/_devhost/queues/sync-work/messages", "application/json", map[string]any{
			"messageId": "run-1/page-1", "body": `{"kind":"page","n":1}`,
		}},
		{"POST", "/_devhost/queues/sync-work/messages", "application/json", map[string]any{
			"messageId": "run-1/page-2", "body": `{"text":"ünï ✓"}`, "scheduledEnqueueTimeUtc": "2026-11-23T11:00:05.5Z",
		}},
	}
	if diff := cmp.Diff(want, host.requests); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if ts, err := time.Parse(time.RFC3339, host.requests[1].Body["scheduledEnqueueTimeUtc"].(string)); err != nil || !ts.Equal(at) {
		t.Errorf("scheduled time %v does not parse back as RFC 3339 to %v (%v)", ts, at, err)
	}

	// A duplicate (200) is success.
	host.status = http.StatusOK
	if err := q.Send(ctx, dirsync.Message{ID: "run-1/page-1", Body: []byte(`{}`)}); err != nil {
		t.Errorf("Send of a duplicate: %v", err)
	}
}

func TestLocalSenderErrors(t *testing.T) {
	tests := []struct {
		status    int
		header    http.Header
		want      dirsync.Code
		wantAfter time.Duration
	}{
		{http.StatusRequestEntityTooLarge, nil, dirsync.EINVALID, 0},
		{http.StatusTooManyRequests, http.Header{"Retry-After": {"3"}}, dirsync.ETHROTTLED, 3 * time.Second},
		{http.StatusInternalServerError, nil, dirsync.EUNAVAILABLE, 0},
		{http.StatusServiceUnavailable, nil, dirsync.EUNAVAILABLE, 0},
		{http.StatusBadRequest, nil, dirsync.EINVALID, 0},
		{http.StatusNotFound, nil, dirsync.EINTERNAL, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			srv := httptest.NewServer(&devhost{status: tt.status, header: tt.header})
			defer srv.Close()
			q, err := NewLocalSender(Config{DevhostURL: srv.URL, Queue: "other.queue"})
			if err != nil {
				t.Fatal(err)
			}
			err = q.Send(context.Background(), dirsync.Message{ID: "m", Body: []byte(`{}`)})
			wantCode(t, "Send", err, tt.want)
			if got := dirsync.RetryAfter(err); got != tt.wantAfter {
				t.Errorf("RetryAfter = %v, want %v", got, tt.wantAfter)
			}
		})
	}

	t.Run("host down", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		q, err := NewLocalSender(Config{DevhostURL: "http://" + addr})
		if err != nil {
			t.Fatal(err)
		}
		wantCode(t, "Send to a closed port", q.Send(context.Background(), dirsync.Message{ID: "m", Body: []byte(`{}`)}), dirsync.EUNAVAILABLE)
	})
}

// TestMessageLimits: both senders refuse the same messages before sending.
func TestMessageLimits(t *testing.T) {
	host := &devhost{}
	srv := httptest.NewServer(host)
	defer srv.Close()
	local, err := NewLocalSender(Config{DevhostURL: srv.URL, MaxMessageBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	azure, err := NewSender(Config{ConnectionString: testConn, MaxMessageBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer azure.Close(context.Background())
	for name, m := range map[string]dirsync.Message{
		"no id":        {Body: []byte(`{}`)},
		"long id":      {ID: strings.Repeat("x", 129), Body: []byte(`{}`)},
		"too large":    {ID: "m", Body: []byte(strings.Repeat("x", 101))},
		"binary body":  {ID: "m", Body: []byte{0xff, 0xfe}},
		"bad utf-8 id": {ID: "\xff", Body: []byte(`{}`)},
	} {
		wantCode(t, "local "+name, local.Send(context.Background(), m), dirsync.EINVALID)
		wantCode(t, "azure "+name, azure.Send(context.Background(), m), dirsync.EINVALID)
	}
	if len(host.requests) != 0 {
		t.Errorf("invalid messages reached the host: %d requests", len(host.requests))
	}
	if err := local.Send(context.Background(), dirsync.Message{ID: strings.Repeat("x", 128), Body: []byte(strings.Repeat("x", 100))}); err != nil {
		t.Errorf("message at the limits: %v", err)
	}
}

func TestToMessage(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	got, err := toMessage(dirsync.Message{ID: "a", Body: []byte(`{"x":1}`), NotBefore: at}, DefaultMaxMessageBytes)
	if err != nil {
		t.Fatal(err)
	}
	want := &azservicebus.Message{
		MessageID:            to.Ptr("a"),
		Body:                 []byte(`{"x":1}`),
		ContentType:          to.Ptr("application/json"),
		ScheduledEnqueueTime: to.Ptr(at.UTC()),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("toMessage (-want +got):\n%s", diff)
	}
	got, err = toMessage(dirsync.Message{ID: "b", Body: []byte(`{}`)}, DefaultMaxMessageBytes)
	if err != nil || got.ScheduledEnqueueTime != nil {
		t.Errorf("unscheduled message: ScheduledEnqueueTime %v, err %v; want nil", got.ScheduledEnqueueTime, err)
	}
}

func TestNewPicksSender(t *testing.T) {
	for name, cfg := range map[string]Config{
		"connection string": {ConnectionString: testConn},
		"namespace":         {Namespace: "example.servicebus.windows.net"},
		"namespace, sb://":  {Namespace: "sb://example.servicebus.windows.net/", UseManagedIdentity: true},
		"user identity":     {Namespace: "example.servicebus.windows.net", ClientID: "00000000-0000-0000-0000-000000000001"},
	} {
		q, err := New(cfg)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, ok := q.(*Sender); !ok {
			t.Errorf("%s: New returned %T, want *Sender", name, q)
		}
		q.Close(context.Background())
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing", Config{}, "Config.ConnectionString"},
		{"both", Config{ConnectionString: testConn, Namespace: "a.servicebus.windows.net"}, "Config.Namespace"},
		{"no endpoint", Config{ConnectionString: "SharedAccessKeyName=a;SharedAccessKey=s3cretKEY"}, "Endpoint"},
		{"http endpoint", Config{ConnectionString: "Endpoint=https://a/;SharedAccessKeyName=a;SharedAccessKey=s3cretKEY"}, "Endpoint"},
		{"no key", Config{ConnectionString: "Endpoint=sb://a.servicebus.windows.net/;SharedAccessKeyName=a"}, "SharedAccessKey"},
		{"malformed", Config{ConnectionString: "Endpoint=sb://a/;s3cretKEY"}, "Config.ConnectionString"},
		{"identity with string", Config{ConnectionString: testConn, UseManagedIdentity: true}, "Config.UseManagedIdentity"},
		{"bad namespace", Config{Namespace: "https://a.servicebus.windows.net/path"}, "Config.Namespace"},
		{"bad devhost", Config{DevhostURL: "127.0.0.1:7071"}, "Config.DevhostURL"},
		{"bad queue", Config{ConnectionString: testConn, Queue: "a queue"}, "queue name"},
		{"negative size", Config{ConnectionString: testConn, MaxMessageBytes: -1}, "MaxMessageBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			wantCode(t, "New", err, dirsync.EINVALID)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("message %q does not name %s", err, tt.want)
			}
		})
	}
}

func TestTranslate(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want dirsync.Code
	}{
		{"too large", azservicebus.ErrMessageTooLarge, dirsync.EINVALID},
		// The namespace refusing the app's credentials is not the API
		// caller's fault: unavailable, not unauthorized.
		{"unauthorized", &azservicebus.Error{Code: azservicebus.CodeUnauthorizedAccess}, dirsync.EUNAVAILABLE},
		{"connection lost", &azservicebus.Error{Code: azservicebus.CodeConnectionLost}, dirsync.EUNAVAILABLE},
		{"timeout", &azservicebus.Error{Code: azservicebus.CodeTimeout}, dirsync.EUNAVAILABLE},
		{"queue missing", &azservicebus.Error{Code: azservicebus.CodeNotFound}, dirsync.EINTERNAL},
		{"server busy", fmt.Errorf("send: %w", &amqp.Error{Condition: "com.microsoft:server-busy"}), dirsync.ETHROTTLED},
		{"quota", &amqp.Error{Condition: amqp.ErrCondResourceLimitExceeded}, dirsync.ETHROTTLED},
		{"deadline", context.DeadlineExceeded, dirsync.EUNAVAILABLE},
		{"network", &net.OpError{Op: "dial", Err: errors.New("refused")}, dirsync.EUNAVAILABLE},
		{"other", errors.New("boom"), dirsync.EINTERNAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := translate("send message m", tt.err)
			wantCode(t, "translate", err, tt.want)
			if !errors.Is(err, tt.err) {
				t.Errorf("translated error does not wrap the cause")
			}
		})
	}
	if err := translate("op", context.Canceled); !errors.Is(err, context.Canceled) || dirsync.ErrorCode(err) != dirsync.EINTERNAL {
		t.Errorf("canceled: %v", err)
	}
	refused := translate("send message m", &azservicebus.Error{Code: azservicebus.CodeUnauthorizedAccess})
	if msg := dirsync.ErrorMessage(refused); !strings.Contains(msg, "the namespace refused the app's credentials") {
		t.Errorf("unauthorized: message %q does not say the namespace refused the app's credentials", msg)
	}
	if hint := dirsync.ErrorHint(refused); !strings.Contains(hint, "connection string") || !strings.Contains(hint, "Data Sender") {
		t.Errorf("unauthorized: hint %q does not name the connection string and the role", hint)
	}
}

// TestSenderUnreachable sends through the real SDK to a port where nothing
// listens (emulator-style plain AMQP connection string), with retries off.
func TestSenderUnreachable(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cs := "Endpoint=sb://" + addr + ";SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=s3cretKEY;UseDevelopmentEmulator=true"
	q, err := NewSender(Config{ConnectionString: cs, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = q.Send(ctx, dirsync.Message{ID: "m", Body: []byte(`{}`)})
	wantCode(t, "Send to a closed port", err, dirsync.EUNAVAILABLE)
}
