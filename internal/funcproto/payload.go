package funcproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Header and environment names of the protocol.
const (
	// InvocationIDHeader carries the invocation id on every request the host
	// sends to the handler, payload or proxied.
	InvocationIDHeader = "X-Azure-Functions-InvocationId"
	// HostVersionHeader carries the host's version.
	HostVersionHeader = "X-Azure-Functions-HostVersion"
	// PortEnv is the environment variable naming the port the handler must
	// listen on (127.0.0.1).
	PortEnv = "FUNCTIONS_CUSTOMHANDLER_PORT"
)

// ListenAddr returns the loopback address the handler must listen on, from
// FUNCTIONS_CUSTOMHANDLER_PORT.
func ListenAddr() (string, error) {
	v := strings.TrimSpace(os.Getenv(PortEnv))
	if v == "" {
		return "", fmt.Errorf("%s is not set: the Functions host sets it when it starts the handler; to run the handler alone, set it (for example %s=8080)", PortEnv, PortEnv)
	}
	port, err := strconv.Atoi(v)
	if err != nil || port < 1 || port > 65535 {
		return "", fmt.Errorf("%s=%q is not a TCP port: it must be a number from 1 to 65535", PortEnv, v)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// Payload is the host's invocation request body, decoded once: Data has one
// raw entry per input binding, Metadata one per binding-data item. The typed
// accessors (Timer, ServiceBusMessage, HTTPRequest, Sys) decode the entries
// they need.
type Payload struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// PayloadError says what is wrong with an invocation payload. The Router
// answers it with 400.
type PayloadError struct {
	Field string // e.g. "Data.message", "Metadata.DeliveryCount"; "" for the whole body
	Err   error
}

func (e *PayloadError) Error() string {
	if e.Field == "" {
		return "malformed invocation payload: " + e.Err.Error()
	}
	return fmt.Sprintf("malformed invocation payload: %s: %v", e.Field, e.Err)
}

func (e *PayloadError) Unwrap() error { return e.Err }

func payloadErr(field string, format string, args ...any) *PayloadError {
	return &PayloadError{Field: field, Err: fmt.Errorf(format, args...)}
}

// DecodePayload reads a host invocation body {"Data":{...},"Metadata":{...}}.
func DecodePayload(r io.Reader) (*Payload, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, &PayloadError{Err: fmt.Errorf("reading the body: %w", err)}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &PayloadError{Err: errors.New(`the body is empty; expected {"Data":{...},"Metadata":{...}}`)}
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, &PayloadError{Err: fmt.Errorf(`the body is not a JSON object {"Data":{...},"Metadata":{...}}: %v`, err)}
	}
	if p.Data == nil {
		p.Data = map[string]json.RawMessage{}
	}
	if p.Metadata == nil {
		p.Metadata = map[string]json.RawMessage{}
	}
	return &p, nil
}

// Sys is Metadata.sys: what the host adds to every invocation.
type Sys struct {
	MethodName string
	UtcNow     time.Time
	RandGuid   string
}

// Sys decodes Metadata.sys. A payload without it yields the zero Sys: the
// field is informational and its absence is no reason to fail the invocation.
func (p *Payload) Sys() (Sys, error) {
	raw, ok := p.Metadata["sys"]
	if !ok || isNull(raw) {
		return Sys{}, nil
	}
	var w struct {
		MethodName string   `json:"MethodName"`
		UtcNow     hostTime `json:"UtcNow"`
		RandGuid   string   `json:"RandGuid"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return Sys{}, payloadErr("Metadata.sys", "%v", err)
	}
	return Sys{MethodName: w.MethodName, UtcNow: time.Time(w.UtcNow), RandGuid: w.RandGuid}, nil
}

// data returns Data[binding], or the only Data entry when binding is "" and
// there is exactly one.
func (p *Payload) data(binding string) (json.RawMessage, string, error) {
	if binding == "" {
		if len(p.Data) == 1 {
			for name, raw := range p.Data {
				return raw, name, nil
			}
		}
		return nil, "Data", payloadErr("Data", "expected exactly one binding, found %d (%s)", len(p.Data), strings.Join(keys(p.Data), ", "))
	}
	raw, ok := p.Data[binding]
	if !ok || isNull(raw) {
		return nil, "Data." + binding, payloadErr("Data."+binding, "missing: the payload has no value for binding %q (it has: %s); check the binding name in function.json", binding, strings.Join(keys(p.Data), ", "))
	}
	return raw, "Data." + binding, nil
}

func keys(m map[string]json.RawMessage) []string {
	if len(m) == 0 {
		return []string{"nothing"}
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// metaLookup finds a Metadata entry by name, case-insensitively like the
// host's binding data dictionary.
func (p *Payload) metaLookup(name string) (json.RawMessage, bool) {
	if raw, ok := p.Metadata[name]; ok {
		return raw, !isNull(raw)
	}
	for k, raw := range p.Metadata {
		if strings.EqualFold(k, name) {
			return raw, !isNull(raw)
		}
	}
	return nil, false
}

// metaString reads a Metadata value as text. The host serializes a string
// twice ("\"abc\"") and a number as a string ("1"); plain strings and numbers
// are accepted too.
func metaString(raw json.RawMessage) (string, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return "", nil
	}
	switch t[0] {
	case '"':
		var s string
		if err := json.Unmarshal(t, &s); err != nil {
			return "", err
		}
		return unquoteOnce(s), nil
	case '{', '[':
		return "", fmt.Errorf("expected a string, found %s", kindOf(t))
	default: // number or bool
		return string(t), nil
	}
}

// unquoteOnce undoes the host's second serialization: if s is itself a JSON
// string literal, it returns its content; otherwise s unchanged.
func unquoteOnce(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		var inner string
		if err := json.Unmarshal([]byte(s), &inner); err == nil {
			return inner
		}
	}
	return s
}

func kindOf(t []byte) string {
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func metaInt(raw json.RawMessage) (int64, error) {
	s, err := metaString(raw)
	if err != nil {
		return 0, err
	}
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	return n, nil
}

func metaTime(raw json.RawMessage) (time.Time, error) {
	s, err := metaString(raw)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	return parseHostTime(s)
}

// metaObject reads a Metadata value that is a JSON object (the host emits
// dictionaries as objects); a string holding an object is accepted too.
func metaObject(raw json.RawMessage) (map[string]any, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil, nil
	}
	if t[0] == '"' {
		var s string
		if err := json.Unmarshal(t, &s); err != nil {
			return nil, err
		}
		s = unquoteOnce(s)
		if strings.TrimSpace(s) == "" {
			return nil, nil
		}
		t = []byte(s)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("expected an object: %v", err)
	}
	return m, nil
}

// hostTime is a time as the host writes it: RFC 3339 with or without a zone
// and fraction ("0001-01-01T00:00:00", "2019-10-09T17:58:31+00:00",
// "2023-10-12T20:13:49.640002Z"). A time without a zone is UTC: Azure runs
// its hosts in UTC.
type hostTime time.Time

func (t *hostTime) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		*t = hostTime{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("expected a time string, found %s", kindOf(bytes.TrimSpace(b)))
	}
	v, err := parseHostTime(unquoteOnce(s))
	if err != nil {
		return err
	}
	*t = hostTime(v)
	return nil
}

var hostTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"01/02/2006 15:04:05",
	"1/2/2006 3:04:05 PM",
	time.RFC1123,
}

func parseHostTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range hostTimeLayouts {
		if v, err := time.Parse(layout, s); err == nil {
			return v.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time the host writes (expected RFC 3339, e.g. 2026-11-23T10:00:00Z)", s)
}
