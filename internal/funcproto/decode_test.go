package funcproto

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The fixtures in testdata/ follow payloads captured from real hosts:
//
//   - timer_no_status.json: a timer payload logged by a Functions host
//     4.24.4.4 (ScheduleStatus null, AdjustForDST true), from a public custom
//     handler's source comments.
//   - http_get.json: an HTTP payload logged by Core Tools 4.33.2 with request
//     tracing on (Headers as arrays, Params {}, one anonymous identity; the
//     Metadata repeats Query and Headers with flat values).
//   - servicebus_*.json: built from azure-functions-host
//     ScriptInvocationContextExtensions.GetHttpScriptInvocationContextValue
//     (strings and numbers are serialized twice, DateTime loses its zone,
//     byte[] becomes base64, objects stay objects) applied to the binding
//     data of the Service Bus extension v5
//     (ServiceBusTriggerBindingStrategy.AddBindingData), and checked against
//     a captured storage-queue payload with the same quirks ("DequeueCount":
//     "5", "Id": "\"4434...\"", a body serialized twice).
//   - servicebus_object.json: the docs' example style (plain values, the body
//     as a JSON value), which older hosts and other local hosts produce.

func loadPayload(t *testing.T, name string) *Payload {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := DecodePayload(f)
	if err != nil {
		t.Fatalf("DecodePayload(%s): %v", name, err)
	}
	return p
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestTimerDecode(t *testing.T) {
	tests := []struct {
		file    string
		want    TimerInfo
		wantSys Sys
	}{
		{
			file:    "timer_no_status.json",
			want:    TimerInfo{Schedule: TimerSchedule{AdjustForDST: true}},
			wantSys: Sys{MethodName: "SyncTimer", UtcNow: utc("2023-09-07T11:40:45.004275Z"), RandGuid: "35e6e68c-5583-436c-a277-5aec2b416ba8"},
		},
		{
			file: "timer_first_run.json",
			want: TimerInfo{Schedule: TimerSchedule{AdjustForDST: true}, ScheduleStatus: &ScheduleStatus{
				Last: time.Time{}, Next: utc("2026-11-23T10:05:00Z"), LastUpdated: time.Time{},
			}},
			wantSys: Sys{MethodName: "SyncTimer", UtcNow: utc("2026-11-23T10:00:00.0012345Z"), RandGuid: "0f8fad5b-d9cb-469f-a165-70867728950e"},
		},
		{
			file: "timer_past_due.json",
			want: TimerInfo{Schedule: TimerSchedule{AdjustForDST: true}, IsPastDue: true, ScheduleStatus: &ScheduleStatus{
				Last: utc("2026-11-23T10:00:00.640002Z"), Next: utc("2026-11-23T10:10:00Z"), LastUpdated: utc("2026-11-23T10:07:31.5Z"),
			}},
			wantSys: Sys{MethodName: "SyncTimer", UtcNow: utc("2026-11-23T10:07:31.5Z"), RandGuid: "7c9e6679-7425-40de-944b-e07fc1f90ae7"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p := loadPayload(t, tt.file)
			got, err := p.Timer("timer")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Timer (-want +got):\n%s", diff)
			}
			sys, err := p.Sys()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantSys, sys); diff != "" {
				t.Errorf("Sys (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServiceBusDecode(t *testing.T) {
	body := `{"kind":"page","runId":"r-20261123-1","page":3}`
	tests := []struct {
		file   string
		binary bool
		want   ServiceBusMessage
	}{
		{
			file: "servicebus_string.json",
			want: ServiceBusMessage{
				Body:            []byte(body),
				MessageID:       "r-20261123-1/page/3",
				DeliveryCount:   2,
				EnqueuedTimeUTC: utc("2026-11-23T10:00:01Z"),
				SequenceNumber:  42,
				LockToken:       "6f2d3c1a-3b7e-4d55-9d0e-2b8f4c1e9a70",
				ExpiresAtUTC:    utc("9999-12-31T23:59:59Z"),
				ContentType:     "application/json",
				ApplicationProperties: map[string]any{
					"runId": "r-20261123-1", "attempt": json.Number("2"),
				},
			},
		},
		{
			file: "servicebus_text.json",
			want: ServiceBusMessage{
				Body:                  []byte(`hello "quoted" world`),
				MessageID:             "m-1",
				DeliveryCount:         1,
				SequenceNumber:        1,
				EnqueuedTimeUTC:       utc("2026-11-23T10:00:00Z"),
				ApplicationProperties: map[string]any{},
			},
		},
		{
			file: "servicebus_object.json",
			want: ServiceBusMessage{
				Body:                  []byte(body),
				MessageID:             "r-20261123-1/page/3",
				DeliveryCount:         3,
				SequenceNumber:        42,
				EnqueuedTimeUTC:       utc("2026-11-23T10:00:01.123Z"),
				ApplicationProperties: map[string]any{"runId": "r-20261123-1"},
			},
		},
		{
			file:   "servicebus_binary.json",
			binary: true,
			want: ServiceBusMessage{
				Body:          []byte("\x00\x01binary\xff"),
				MessageID:     "bin-1",
				DeliveryCount: 1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p := loadPayload(t, tt.file)
			got, err := p.ServiceBusMessage("message", tt.binary)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ServiceBusMessage (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHTTPRequestDecode(t *testing.T) {
	anon := Identity{}
	tests := []struct {
		file string
		want HTTPRequest
	}{
		{
			file: "http_get.json",
			want: HTTPRequest{
				URL: "http://localhost:7071/api/health", Method: "GET",
				Query: map[string]string{},
				Headers: http.Header{
					"Accept": {"*/*"}, "Connection": {"keep-alive"}, "Host": {"localhost:7071"},
					"User-Agent": {"PostmanRuntime/7.37.3"}, "Accept-Encoding": {"gzip, deflate, br"},
					"Cache-Control": {"no-cache"}, "Postman-Token": {"f7cc026e-5cb0-4b7a-8f70-ed394a0e97ef"},
				},
				Params:     map[string]string{},
				Identities: []Identity{anon},
			},
		},
		{
			file: "http_post.json",
			want: HTTPRequest{
				URL: "http://localhost:7071/api/runs/42/retry?mode=full&tag=a&tag=b", Method: "POST",
				Query: map[string]string{"mode": "full", "tag": "a,b"},
				Headers: http.Header{
					"Accept": {"application/json"}, "Host": {"localhost:7071"},
					"Content-Type": {"application/json; charset=utf-8"}, "Content-Length": {"24"},
					"If-None-Match": {`"abc"`}, "X-Custom": {"one", "two"},
				},
				Params: map[string]string{"path": "runs/42/retry"},
				Identities: []Identity{{
					AuthenticationType: "WebJobsAuthLevel", IsAuthenticated: true,
					Claims: []Claim{
						{Type: "http://schemas.microsoft.com/2017/07/functions/claims/authlevel", Value: "Function"},
						{Type: "http://schemas.microsoft.com/2017/07/functions/claims/keyid", Value: "default"},
					},
				}},
				Body: []byte(`{"reason":"admin asked"}`),
			},
		},
		{
			file: "http_octet.json",
			want: HTTPRequest{
				URL: "http://localhost:7071/api/photos/u1", Method: "PUT",
				Query:      map[string]string{},
				Headers:    http.Header{"Host": {"localhost:7071"}, "Content-Type": {"application/octet-stream"}, "Content-Length": {"4"}},
				Params:     map[string]string{"path": "photos/u1"},
				Identities: []Identity{anon},
				Body:       []byte("\x89PNG"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p := loadPayload(t, tt.file)
			got, err := p.HTTPRequest("req")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("HTTPRequest (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMalformedPayloads(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		decode  func(*Payload) error
		wantErr string // substring
	}{
		{"empty body", ``, nil, "the body is empty"},
		{"not JSON", `Data=1`, nil, "not a JSON object"},
		{"missing binding", `{"Data":{"msg":"\"x\""},"Metadata":{}}`,
			func(p *Payload) error { _, err := p.ServiceBusMessage("message", false); return err },
			`Data.message: missing: the payload has no value for binding "message" (it has: msg)`},
		{"bad delivery count", `{"Data":{"message":"\"x\""},"Metadata":{"DeliveryCount":"many"}}`,
			func(p *Payload) error { _, err := p.ServiceBusMessage("message", false); return err },
			`Metadata.DeliveryCount: "many" is not an integer`},
		{"bad base64", `{"Data":{"message":"%%%"},"Metadata":{}}`,
			func(p *Payload) error { _, err := p.ServiceBusMessage("message", true); return err },
			`Data.message: the binding has dataType binary, so the body must be base64`},
		{"timer not an object", `{"Data":{"timer":"now"},"Metadata":{}}`,
			func(p *Payload) error { _, err := p.Timer("timer"); return err },
			`Data.timer: expected a timer object`},
		{"bad timer time", `{"Data":{"timer":{"ScheduleStatus":{"Last":"yesterday"}}},"Metadata":{}}`,
			func(p *Payload) error { _, err := p.Timer("timer"); return err },
			`"yesterday" is not a time the host writes`},
		{"http without method", `{"Data":{"req":{"Url":"http://x/api/a"}},"Metadata":{}}`,
			func(p *Payload) error { _, err := p.HTTPRequest("req"); return err },
			`Data.req.Method: missing`},
		{"http header object", `{"Data":{"req":{"Url":"http://x/api/a","Method":"GET","Headers":{"A":{"b":1}}}},"Metadata":{}}`,
			func(p *Payload) error { _, err := p.HTTPRequest("req"); return err },
			`Data.req.Headers.A: expected a string or an array of strings, found an object`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DecodePayload(strings.NewReader(tt.body))
			if err == nil && tt.decode != nil {
				err = tt.decode(p)
			}
			if err == nil {
				t.Fatalf("want an error containing %q, got none", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			var pe *PayloadError
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *PayloadError", err)
			}
		})
	}
}

func TestMetaString(t *testing.T) {
	tests := []struct{ raw, want string }{
		{`"\"abc\""`, "abc"},       // the host's double serialization
		{`"abc"`, "abc"},           // plain
		{`"\"\\\"q\\\"\""`, `"q"`}, // a body that itself was a quoted string
		{`7`, "7"},
		{`"7"`, "7"},
		{`null`, ""},
	}
	for _, tt := range tests {
		got, err := metaString(json.RawMessage(tt.raw))
		if err != nil {
			t.Errorf("metaString(%s): %v", tt.raw, err)
			continue
		}
		if got != tt.want {
			t.Errorf("metaString(%s) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestListenAddr(t *testing.T) {
	tests := []struct {
		env, want, wantErr string
	}{
		{"8080", "127.0.0.1:8080", ""},
		{"", "", "FUNCTIONS_CUSTOMHANDLER_PORT is not set"},
		{"http", "", `FUNCTIONS_CUSTOMHANDLER_PORT="http" is not a TCP port`},
		{"70000", "", "is not a TCP port"},
	}
	for _, tt := range tests {
		t.Setenv(PortEnv, tt.env)
		got, err := ListenAddr()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ListenAddr with %q: error %v, want one containing %q", tt.env, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ListenAddr with %q = %q, %v; want %q", tt.env, got, err, tt.want)
		}
	}
}
