package devhost

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// This file builds invocation payloads the way the Functions host does
// (azure-functions-host ScriptInvocationContextExtensions and
// HttpRequestExtensions.GetRequestAsJObject), including its serialization
// quirks, so a handler tested here reads real payloads too:
//
//   - a string or number in Data or Metadata that is not a JSON object is
//     serialized twice (Newtonsoft JsonConvert.SerializeObject): a message
//     body "x" is sent as "\"x\"", DeliveryCount 1 as "1";
//   - DateTime values are re-parsed from their text, losing the zone and the
//     fraction ("2026-11-23T10:00:01"); DateTimeOffset keep "+00:00";
//   - byte[] values are base64;
//   - dictionaries and objects stay JSON objects.

// HostVersion is sent in X-Azure-Functions-HostVersion and User-Agent.
const HostVersion = "4.1037.0-devhost"

// twice returns s as the host's first serialization writes it; the payload
// then carries that text as a JSON string.
func twice(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func dotnetDateTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05") }

func dotnetDateTimeOffset(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05-07:00")
}

// timerTime formats a timer status time like the host's local DateTime
// (Azure runs in UTC): "2026-11-23T10:05:00+00:00".
func timerTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00+00:00"
	}
	return t.UTC().Format("2006-01-02T15:04:05.9999999-07:00")
}

func sysMetadata(function string, now time.Time) map[string]any {
	return map[string]any{
		"MethodName": function,
		"UtcNow":     now.UTC().Format("2006-01-02T15:04:05.9999999Z07:00"),
		"RandGuid":   newUUID(),
	}
}

func timerPayload(fn *Function, info dueInfo, now time.Time) map[string]any {
	st := info.status
	return map[string]any{
		"Data": map[string]any{
			fn.Binding: map[string]any{
				"Schedule": map[string]any{"AdjustForDST": true},
				"ScheduleStatus": map[string]any{
					"Last":        timerTime(st.last),
					"Next":        timerTime(st.next),
					"LastUpdated": timerTime(st.lastUpdated),
				},
				"IsPastDue": info.isPastDue,
			},
		},
		"Metadata": map[string]any{"sys": sysMetadata(fn.Name, now)},
	}
}

// serviceBusPayload is what the host sends for one message, from the binding
// data of the Service Bus extension v5 (ServiceBusTriggerBindingStrategy).
// Null values are left out, as the host leaves them out.
func serviceBusPayload(fn *Function, m *message, namespace string, now time.Time) map[string]any {
	var body any = twice(string(m.Body))
	if fn.DataType == "binary" {
		body = base64.StdEncoding.EncodeToString(m.Body)
	}
	props := m.ApplicationProperties
	if props == nil {
		props = map[string]any{}
	}
	meta := map[string]any{
		// The settlement objects have no public properties to serialize.
		"MessageReceiver": map[string]any{},
		"MessageSession":  map[string]any{},
		"MessageActions":  map[string]any{},
		"SessionActions":  map[string]any{},
		"ReceiveActions":  map[string]any{},
		"Client": map[string]any{
			"FullyQualifiedNamespace": namespace,
			"IsClosed":                false,
			"TransportType":           0,
			"Identifier":              namespace + "-devhost",
		},
		"DeliveryCount":         strconv.Itoa(m.deliveryCount),
		"LockToken":             twice(m.lockToken),
		"ExpiresAtUtc":          "9999-12-31T23:59:59",
		"ExpiresAt":             "9999-12-31T23:59:59+00:00",
		"EnqueuedTimeUtc":       dotnetDateTime(m.enqueued),
		"EnqueuedTime":          dotnetDateTimeOffset(m.enqueued),
		"MessageId":             twice(m.ID),
		"SequenceNumber":        strconv.FormatInt(m.seq, 10),
		"ApplicationProperties": props,
		"UserProperties":        props,
		"sys":                   sysMetadata(fn.Name, now),
	}
	if m.ContentType != "" {
		meta["ContentType"] = twice(m.ContentType)
	}
	if m.CorrelationID != "" {
		meta["CorrelationId"] = twice(m.CorrelationID)
	}
	if m.Subject != "" {
		meta["Subject"] = twice(m.Subject)
		meta["Label"] = twice(m.Subject)
	}
	return map[string]any{"Data": map[string]any{fn.Binding: body}, "Metadata": meta}
}

// serviceBusNamespace is the namespace host of a Service Bus connection
// string setting ("Endpoint=sb://x.servicebus.windows.net/;..."), for the
// Client metadata; it never includes the key.
func serviceBusNamespace(conn string) string {
	for _, part := range strings.Split(conn, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "Endpoint") {
			if u, err := url.Parse(strings.TrimSpace(v)); err == nil && u.Host != "" {
				return u.Host
			}
		}
	}
	if strings.HasSuffix(conn, ".servicebus.windows.net") {
		return conn // an identity-based connection's fullyQualifiedNamespace
	}
	return "devhost.servicebus.localhost"
}

const (
	nameClaimType = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
	roleClaimType = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
	claimValueStr = "http://www.w3.org/2001/XMLSchema#string"
)

func identity(authType any, authenticated bool, name any, claims []any, nameType, roleType string) map[string]any {
	if claims == nil {
		claims = []any{}
	}
	return map[string]any{
		"AuthenticationType": authType, "IsAuthenticated": authenticated,
		"Actor": nil, "BootstrapContext": nil, "Claims": claims, "Label": nil, "Name": name,
		"NameClaimType": nameType, "RoleClaimType": roleType,
	}
}

func claim(typ, value string) map[string]any {
	return map[string]any{
		"Issuer": "LOCAL AUTHORITY", "OriginalIssuer": "LOCAL AUTHORITY", "Properties": map[string]any{},
		"Type": typ, "Value": value, "ValueType": claimValueStr,
	}
}

// identities are the caller's ClaimsIdentities as the host serializes them:
// an App Service Authentication principal (x-ms-client-principal), the
// function key's identity, or else one anonymous identity.
func identities(r *http.Request, g grant) []any {
	var ids []any
	if p := clientPrincipal(r.Header.Get("X-MS-CLIENT-PRINCIPAL")); p != nil {
		ids = append(ids, p)
	}
	if g.level != "" {
		ids = append(ids, identity("WebJobsAuthLevel", true, nil, []any{
			claim("http://schemas.microsoft.com/2017/07/functions/claims/authlevel", g.level),
			claim("http://schemas.microsoft.com/2017/07/functions/claims/keyid", g.name),
		}, nameClaimType, roleClaimType))
	}
	if len(ids) == 0 {
		ids = append(ids, identity(nil, false, nil, nil, nameClaimType, roleClaimType))
	}
	return ids
}

// clientPrincipal decodes the App Service Authentication header (base64 JSON
// {"auth_typ","name_typ","role_typ","claims":[{"typ","val"}]}) into an
// identity; nil when absent or malformed.
func clientPrincipal(header string) map[string]any {
	if header == "" {
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(header); err != nil {
			return nil
		}
	}
	var p struct {
		AuthType string `json:"auth_typ"`
		NameType string `json:"name_typ"`
		RoleType string `json:"role_typ"`
		Claims   []struct {
			Typ string `json:"typ"`
			Val string `json:"val"`
		} `json:"claims"`
	}
	if json.Unmarshal(raw, &p) != nil || p.AuthType == "" {
		return nil
	}
	if p.NameType == "" {
		p.NameType = nameClaimType
	}
	if p.RoleType == "" {
		p.RoleType = roleClaimType
	}
	var claims []any
	var name any
	for _, c := range p.Claims {
		cl := claim(c.Typ, c.Val)
		cl["Issuer"], cl["OriginalIssuer"] = p.AuthType, p.AuthType
		claims = append(claims, cl)
		if c.Typ == p.NameType && name == nil {
			name = c.Val
		}
	}
	return identity(p.AuthType, true, name, claims, p.NameType, p.RoleType)
}

// httpPayload is what the host sends for an HTTP trigger in payload mode.
// body is nil when the request had no Content-Length (the host reads a body
// only then).
func httpPayload(fn *Function, r *http.Request, body []byte, params map[string]string, g grant, now time.Time) map[string]any {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	u := scheme + "://" + r.Host + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	query := map[string]string{}
	for k, v := range r.URL.Query() {
		query[k] = strings.Join(v, ",")
	}
	headers := map[string][]string{}
	flat := map[string]string{}
	for k, v := range r.Header {
		headers[k] = v
		flat[k] = strings.Join(v, ",")
	}
	if r.Host != "" {
		headers["Host"] = []string{r.Host}
		flat["Host"] = r.Host
	}
	if params == nil {
		params = map[string]string{}
	}
	req := map[string]any{
		"Url": u, "Method": r.Method, "Query": query, "Headers": headers,
		"Params": params, "Identities": identities(r, g),
	}
	if len(body) > 0 {
		if binaryMedia(r.Header.Get("Content-Type")) {
			req["Body"] = base64.StdEncoding.EncodeToString(body)
		} else {
			req["Body"] = string(body)
		}
	}
	meta := map[string]any{"Query": query, "Headers": flat, "sys": sysMetadata(fn.Name, now)}
	for k, v := range params {
		meta[k] = twice(v)
	}
	return map[string]any{"Data": map[string]any{fn.Binding: req}, "Metadata": meta}
}

func binaryMedia(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/octet-stream" || strings.HasPrefix(mt, "multipart/"))
}

// handlerResponse is the handler's answer to a payload invocation. Field
// names match case-insensitively, as the host's deserializer does.
type handlerResponse struct {
	Outputs     map[string]json.RawMessage `json:"Outputs"`
	Logs        []string                   `json:"Logs"`
	ReturnValue json.RawMessage            `json:"ReturnValue"`
}

// writeHTTPOutput writes an "http" output binding value
// {"statusCode","headers","body"} as the response.
func writeHTTPOutput(w http.ResponseWriter, raw json.RawMessage) error {
	var res struct {
		StatusCode json.RawMessage            `json:"statusCode"`
		Status     json.RawMessage            `json:"status"`
		Headers    map[string]json.RawMessage `json:"headers"`
		Body       json.RawMessage            `json:"body"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("the http output is not an object {\"statusCode\",\"headers\",\"body\"}: %v", err)
	}
	status := http.StatusOK
	for _, s := range []json.RawMessage{res.StatusCode, res.Status} {
		if len(s) == 0 || string(s) == "null" {
			continue
		}
		text := strings.Trim(string(s), `"`)
		n, err := strconv.Atoi(text)
		if err != nil || n < 100 || n > 999 {
			return fmt.Errorf("the http output's statusCode %s is not an HTTP status", s)
		}
		status = n
		break
	}
	for k, v := range res.Headers {
		var vals []string
		var one string
		switch {
		case json.Unmarshal(v, &vals) == nil:
		case json.Unmarshal(v, &one) == nil:
			vals = []string{one}
		default:
			vals = []string{string(bytes.TrimSpace(v))}
		}
		for _, s := range vals {
			w.Header().Add(k, s)
		}
	}
	var body []byte
	if len(res.Body) > 0 && string(res.Body) != "null" {
		var s string
		if json.Unmarshal(res.Body, &s) == nil {
			body = []byte(s)
		} else {
			body = res.Body
			if w.Header().Get("Content-Type") == "" {
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
			}
		}
	}
	if len(body) > 0 && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
