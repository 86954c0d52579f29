package funcproto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"
)

// TimerInfo is a timer trigger's value (Data.<binding>), as the host's
// TimerInfo serializes: {"Schedule":{"AdjustForDST":true},
// "ScheduleStatus":null|{...},"IsPastDue":false}.
type TimerInfo struct {
	Schedule TimerSchedule
	// ScheduleStatus is nil when the host keeps no schedule status (useMonitor
	// false, or no storage account locally). Last is the zero time before the
	// first run.
	ScheduleStatus *ScheduleStatus
	// IsPastDue is true when this invocation happened later than scheduled
	// (the host was down or busy at the due time).
	IsPastDue bool
}

// TimerSchedule is what the host serializes of the schedule.
type TimerSchedule struct {
	AdjustForDST bool
}

// ScheduleStatus is the host's record of a timer's occurrences.
type ScheduleStatus struct {
	Last        time.Time
	Next        time.Time
	LastUpdated time.Time
}

// Timer decodes the timer trigger value of binding (e.g. "timer").
func (p *Payload) Timer(binding string) (TimerInfo, error) {
	raw, field, err := p.data(binding)
	if err != nil {
		return TimerInfo{}, err
	}
	var w struct {
		Schedule       *TimerSchedule `json:"Schedule"`
		ScheduleStatus *struct {
			Last        hostTime `json:"Last"`
			Next        hostTime `json:"Next"`
			LastUpdated hostTime `json:"LastUpdated"`
		} `json:"ScheduleStatus"`
		IsPastDue bool `json:"IsPastDue"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return TimerInfo{}, payloadErr(field, "expected a timer object {\"Schedule\":...,\"ScheduleStatus\":...,\"IsPastDue\":...}: %v", err)
	}
	info := TimerInfo{IsPastDue: w.IsPastDue}
	if w.Schedule != nil {
		info.Schedule = *w.Schedule
	}
	if s := w.ScheduleStatus; s != nil {
		info.ScheduleStatus = &ScheduleStatus{Last: time.Time(s.Last), Next: time.Time(s.Next), LastUpdated: time.Time(s.LastUpdated)}
	}
	return info, nil
}

// ServiceBusMessage is a Service Bus trigger's message: the body from
// Data.<binding>, the rest from the trigger's Metadata.
type ServiceBusMessage struct {
	Body            []byte
	MessageID       string
	DeliveryCount   int
	EnqueuedTimeUTC time.Time
	SequenceNumber  int64
	LockToken       string
	ExpiresAtUTC    time.Time
	ContentType     string
	CorrelationID   string
	Subject         string
	To              string
	ReplyTo         string
	SessionID       string
	// ApplicationProperties are the sender's properties (the host sends them
	// as both ApplicationProperties and UserProperties). Numbers are
	// json.Number.
	ApplicationProperties map[string]any
}

// ServiceBusMessage decodes the Service Bus trigger value of binding (e.g.
// "message") and its metadata.
//
// The body arrives as one of: a JSON string holding the body serialized once
// more (what the host sends for a function.json without dataType, the usual
// case: "\"{\\\"a\\\":1}\""); a plain JSON string; a JSON object or array
// (the body itself was JSON and was passed as a value). With binary set (the
// binding has "dataType": "binary"), the string is the body's bytes in
// base64, as the host serializes a byte[].
func (p *Payload) ServiceBusMessage(binding string, binary bool) (ServiceBusMessage, error) {
	raw, field, err := p.data(binding)
	if err != nil {
		return ServiceBusMessage{}, err
	}
	var m ServiceBusMessage
	if m.Body, err = messageBody(raw, binary); err != nil {
		return ServiceBusMessage{}, payloadErr(field, "%v", err)
	}

	strs := []struct {
		name string
		dst  *string
	}{
		{"MessageId", &m.MessageID},
		{"LockToken", &m.LockToken},
		{"ContentType", &m.ContentType},
		{"CorrelationId", &m.CorrelationID},
		{"To", &m.To},
		{"ReplyTo", &m.ReplyTo},
		{"SessionId", &m.SessionID},
	}
	for _, f := range strs {
		if v, ok := p.metaLookup(f.name); ok {
			if *f.dst, err = metaString(v); err != nil {
				return ServiceBusMessage{}, payloadErr("Metadata."+f.name, "%v", err)
			}
		}
	}
	// Subject is the v5 name; Label the older one, still sent for backcompat.
	for _, name := range []string{"Subject", "Label"} {
		if v, ok := p.metaLookup(name); ok && m.Subject == "" {
			if m.Subject, err = metaString(v); err != nil {
				return ServiceBusMessage{}, payloadErr("Metadata."+name, "%v", err)
			}
		}
	}
	if v, ok := p.metaLookup("DeliveryCount"); ok {
		n, err := metaInt(v)
		if err != nil {
			return ServiceBusMessage{}, payloadErr("Metadata.DeliveryCount", "%v", err)
		}
		m.DeliveryCount = int(n)
	}
	if v, ok := p.metaLookup("SequenceNumber"); ok {
		if m.SequenceNumber, err = metaInt(v); err != nil {
			return ServiceBusMessage{}, payloadErr("Metadata.SequenceNumber", "%v", err)
		}
	}
	// EnqueuedTime (v5, with zone) is preferred over EnqueuedTimeUtc, which
	// the host writes without a zone.
	for _, t := range []struct {
		names []string
		dst   *time.Time
	}{
		{[]string{"EnqueuedTime", "EnqueuedTimeUtc"}, &m.EnqueuedTimeUTC},
		{[]string{"ExpiresAt", "ExpiresAtUtc"}, &m.ExpiresAtUTC},
	} {
		for _, name := range t.names {
			v, ok := p.metaLookup(name)
			if !ok {
				continue
			}
			if *t.dst, err = metaTime(v); err != nil {
				return ServiceBusMessage{}, payloadErr("Metadata."+name, "%v", err)
			}
			break
		}
	}
	for _, name := range []string{"ApplicationProperties", "UserProperties"} {
		v, ok := p.metaLookup(name)
		if !ok {
			continue
		}
		if m.ApplicationProperties, err = metaObject(v); err != nil {
			return ServiceBusMessage{}, payloadErr("Metadata."+name, "%v", err)
		}
		break
	}
	return m, nil
}

func messageBody(raw json.RawMessage, binary bool) ([]byte, error) {
	t := bytes.TrimSpace(raw)
	switch t[0] {
	case '"':
		var s string
		if err := json.Unmarshal(t, &s); err != nil {
			return nil, err
		}
		if binary {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, fmt.Errorf("the binding has dataType binary, so the body must be base64: %v", err)
			}
			return b, nil
		}
		return []byte(unquoteOnce(s)), nil
	default: // the body was JSON and came as a value: compact it, its layout is the host's
		return compactJSON(t), nil
	}
}

func compactJSON(t []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, t); err != nil {
		return append([]byte(nil), t...)
	}
	return b.Bytes()
}

// HTTPRequest is an HTTP trigger's value in payload mode (Data.req).
type HTTPRequest struct {
	URL    string
	Method string
	// Query has one value per name; the host joins repeated values with ",".
	Query   map[string]string
	Headers http.Header
	// Params are the route parameters ({path} in the route template).
	Params     map[string]string
	Identities []Identity
	// Body is the request body; nil when the request had none. The host sends
	// it as text, or as base64 for application/octet-stream and multipart/*
	// content, which is decoded here.
	Body []byte
}

// Identity is one of the caller's identities as the host serializes a
// ClaimsIdentity.
type Identity struct {
	AuthenticationType string
	IsAuthenticated    bool
	Name               string
	Claims             []Claim
}

// Claim is one claim of an Identity.
type Claim struct {
	Type  string
	Value string
}

// HTTPRequest decodes the HTTP trigger value of binding ("" takes the only
// Data entry).
func (p *Payload) HTTPRequest(binding string) (HTTPRequest, error) {
	raw, field, err := p.data(binding)
	if err != nil {
		return HTTPRequest{}, err
	}
	var w struct {
		URL        string                     `json:"Url"`
		Method     string                     `json:"Method"`
		Query      map[string]json.RawMessage `json:"Query"`
		Headers    map[string]json.RawMessage `json:"Headers"`
		Params     map[string]json.RawMessage `json:"Params"`
		Identities []struct {
			AuthenticationType *string `json:"AuthenticationType"`
			IsAuthenticated    bool    `json:"IsAuthenticated"`
			Name               *string `json:"Name"`
			Claims             []struct {
				Type  string `json:"Type"`
				Value string `json:"Value"`
			} `json:"Claims"`
		} `json:"Identities"`
		Body json.RawMessage `json:"Body"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return HTTPRequest{}, payloadErr(field, "expected an HTTP request object {\"Url\",\"Method\",\"Headers\",...}: %v", err)
	}
	if w.Method == "" {
		return HTTPRequest{}, payloadErr(field+".Method", "missing")
	}
	if w.URL == "" {
		return HTTPRequest{}, payloadErr(field+".Url", "missing")
	}
	req := HTTPRequest{URL: w.URL, Method: strings.ToUpper(w.Method), Headers: http.Header{}}
	for name, v := range w.Headers {
		vals, err := stringList(v)
		if err != nil {
			return HTTPRequest{}, payloadErr(field+".Headers."+name, "%v", err)
		}
		for _, s := range vals {
			req.Headers.Add(name, s)
		}
	}
	if req.Query, err = stringMap(w.Query); err != nil {
		return HTTPRequest{}, payloadErr(field+".Query", "%v", err)
	}
	if req.Params, err = stringMap(w.Params); err != nil {
		return HTTPRequest{}, payloadErr(field+".Params", "%v", err)
	}
	for _, id := range w.Identities {
		out := Identity{IsAuthenticated: id.IsAuthenticated}
		if id.AuthenticationType != nil {
			out.AuthenticationType = *id.AuthenticationType
		}
		if id.Name != nil {
			out.Name = *id.Name
		}
		for _, c := range id.Claims {
			out.Claims = append(out.Claims, Claim{Type: c.Type, Value: c.Value})
		}
		req.Identities = append(req.Identities, out)
	}
	if !isNull(w.Body) {
		if req.Body, err = httpBody(w.Body, req.Headers.Get("Content-Type")); err != nil {
			return HTTPRequest{}, payloadErr(field+".Body", "%v", err)
		}
	}
	return req, nil
}

// httpBody decodes Data.req.Body: text as a JSON string, bytes as base64 for
// octet-stream and multipart content (the host's byte[]), or a JSON value
// (older hosts parsed JSON bodies).
func httpBody(raw json.RawMessage, contentType string) ([]byte, error) {
	t := bytes.TrimSpace(raw)
	if t[0] != '"' {
		return compactJSON(t), nil
	}
	var s string
	if err := json.Unmarshal(t, &s); err != nil {
		return nil, err
	}
	if isBinaryMedia(contentType) {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("the content type %q is binary, so the host sends the body as base64: %v", contentType, err)
		}
		return b, nil
	}
	return []byte(s), nil
}

func isBinaryMedia(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/octet-stream" || strings.HasPrefix(mt, "multipart/")
}

// stringList reads a header value: an array of strings (what the host sends)
// or a single string.
func stringList(raw json.RawMessage) ([]string, error) {
	t := bytes.TrimSpace(raw)
	if isNull(t) {
		return nil, nil
	}
	if t[0] == '[' {
		var vals []string
		if err := json.Unmarshal(t, &vals); err != nil {
			return nil, fmt.Errorf("expected an array of strings: %v", err)
		}
		return vals, nil
	}
	// Header, query and route values are sent as they are (an ETag header's
	// quotes are part of its value), so no unquoting here.
	if t[0] == '"' {
		var s string
		if err := json.Unmarshal(t, &s); err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	if t[0] == '{' {
		return nil, fmt.Errorf("expected a string or an array of strings, found an object")
	}
	return []string{string(t)}, nil
}

// stringMap reads an object of strings; an array value is joined with ","
// like the host joins repeated query values.
func stringMap(m map[string]json.RawMessage) (map[string]string, error) {
	if len(m) == 0 {
		return map[string]string{}, nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		vals, err := stringList(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", k, err)
		}
		out[k] = strings.Join(vals, ",")
	}
	return out, nil
}
