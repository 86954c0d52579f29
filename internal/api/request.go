package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// readBody reads the whole body, at most the configured limit. An empty body
// (only whitespace) gives nil.
func (c *call) readBody() ([]byte, error) {
	if c.r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, c.h.maxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, &dirsync.Error{Code: codeTooLarge,
			Message: fmt.Sprintf("the request body is larger than %s", byteSize(tooBig.Limit)),
			Hint:    "Send a smaller body (a settings document is a few KiB)."}
	}
	if err != nil {
		return nil, invalid("Send the request again.", "the request body could not be read")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	return body, nil
}

func byteSize(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// decodeJSON decodes body strictly into v: unknown fields, wrong types and
// trailing data are errors naming the field. what names the document in
// messages ("settings", "sync request").
func decodeJSON(body []byte, v any, what string) error {
	hint := fmt.Sprintf("Fix the %s and send it again; see GET /api/openapi.json for its fields. Nothing was changed.", what)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid(hint, "%s: %s", what, describeJSONError(err, body))
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid(hint, "%s: the body holds more than one JSON value; send exactly one object", what)
	}
	return nil
}

func describeJSONError(err error, body []byte) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var perr *time.ParseError
	switch {
	case errors.As(err, &syn):
		line, col := position(body, syn.Offset)
		return fmt.Sprintf("the body is not valid JSON (line %d, column %d): %s", line, col, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the body ends in the middle of a JSON value"
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return fmt.Sprintf("the body must be %s, not %s", kindWords(typ.Type), valueWords(typ.Value))
		}
		return fmt.Sprintf("field %q must be %s, not %s", field, kindWords(typ.Type), valueWords(typ.Value))
	case errors.As(err, &perr):
		return fmt.Sprintf("%q is not a time in RFC 3339 form such as 2026-11-23T02:00:00Z", perr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Sprintf("unknown field %s; remove it (field names are case-sensitive)", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func position(body []byte, offset int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < offset-1 && i < int64(len(body)); i++ {
		if body[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

func kindWords(t reflect.Type) string {
	if t == reflect.TypeOf(time.Time{}) {
		return "a time (RFC 3339 string)"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return kindWords(t.Elem())
	}
	return t.String()
}

func valueWords(v string) string {
	switch v {
	case "string":
		return "a string"
	case "number":
		return "a number"
	case "bool":
		return "true or false"
	case "array":
		return "a list"
	case "object":
		return "an object"
	}
	if n, ok := strings.CutPrefix(v, "number "); ok {
		return "the number " + n // a fraction where a whole number was expected
	}
	return v
}

// requireFields checks that the JSON object in body has every key that
// fields of v's type (a struct) marshal without omitempty: a document that
// replaces another must be whole, or a forgotten "enabled" would silently
// turn sync off.
func requireFields(body []byte, v any, what string) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return invalid("Send a JSON object.", "%s: the body must be a JSON object", what)
	}
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var missing []string
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !t.Field(i).IsExported() || strings.Contains(opts, "omitempty") {
			continue
		}
		if name == "" {
			name = t.Field(i).Name
		}
		if _, ok := keys[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		hint := "PUT replaces the whole document: GET /api/settings, change what you need, and send all of it back. Nothing was changed."
		if len(missing) == 1 {
			return invalid(hint, "%s: the field %q is missing", what, missing[0])
		}
		return invalid(hint, "%s: %d fields are missing: %s", what, len(missing), strings.Join(missing, ", "))
	}
	return nil
}

// runID returns the {id} path parameter as a run id.
func (c *call) runID() (string, error) {
	id := c.params["id"]
	if !dirsync.ValidRunID(id) {
		return "", invalid("Run ids look like 20261123-112233-a1b2c3; list runs with GET /api/runs.",
			"%s is not a run id", quoteShort(id))
	}
	return id, nil
}

// objectID returns the {id} path parameter as an Entra object id.
func (c *call) objectID() (string, error) {
	id := c.params["id"]
	if !dirsync.ValidObjectID(id) {
		return "", invalid("User ids are Entra object ids (GUIDs such as 0f8fad5b-d9cb-469f-a165-70867728950e); find them with GET /api/users.",
			"%s is not a user object id", quoteShort(id))
	}
	return strings.ToLower(id), nil
}

// quoteShort quotes untrusted text for a message, cut to a readable length.
func quoteShort(s string) string {
	if len(s) > 80 {
		cut := 80
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return strconv.Quote(s)
}

// page is a listing request: its size and where to go on.
type page struct {
	limit int
	token string // the Service's own token, unwrapped
	// listing identifies the listing and its filters, so a token is only
	// accepted by the listing that issued it.
	listing string
}

const maxTokenLen = 4096

// paging reads limit and token. def is the default limit.
func (c *call) paging(def int, filters ...string) (page, error) {
	p := page{limit: def, listing: c.r.URL.Path + "?" + strings.Join(filters, "&")}
	q := c.r.URL.Query()
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return p, invalid("Use a whole number from 1 to 100, or leave limit out.", "limit %s is not a whole number from 1 to 100", quoteShort(s))
		}
		p.limit = n
	}
	if t := q.Get("token"); t != "" {
		inner, err := unwrapToken(t, p.listing)
		if err != nil {
			return p, err
		}
		p.token = inner
	}
	return p, nil
}

// pageToken is the opaque token given to clients.
type pageToken struct {
	Listing string `json:"l"` // hash of path and filters
	Inner   string `json:"t"`
}

func listingHash(listing string) string {
	sum := sha256.Sum256([]byte(listing))
	return hex.EncodeToString(sum[:6])
}

func wrapToken(inner, listing string) string {
	if inner == "" {
		return ""
	}
	b, _ := json.Marshal(pageToken{Listing: listingHash(listing), Inner: inner})
	return base64.RawURLEncoding.EncodeToString(b)
}

func unwrapToken(t, listing string) (string, error) {
	badHint := "Pass back nextToken exactly as it was given, or start the listing again without token."
	if len(t) > maxTokenLen {
		return "", invalid(badHint, "the paging token is not valid (too long)")
	}
	b, err := base64.RawURLEncoding.DecodeString(t)
	var pt pageToken
	if err != nil || json.Unmarshal(b, &pt) != nil || pt.Inner == "" {
		return "", invalid(badHint, "the paging token is not valid")
	}
	if pt.Listing != listingHash(listing) {
		return "", invalid("A token only continues the listing (path and filters) that returned it; start again without token.",
			"the paging token belongs to another listing or other filters")
	}
	return pt.Inner, nil
}

// listResponse is the shape of every listing: items under name, plus the
// token and link to the next page when there is one.
func (c *call) listResponse(name string, items any, p page, innerNext string, params url.Values) *response {
	body := map[string]any{name: items}
	if next := wrapToken(innerNext, p.listing); next != "" {
		body["nextToken"] = next
		params.Set("limit", strconv.Itoa(p.limit))
		params.Set("token", next)
		// Built from known parameters only: the request's own query may
		// carry the code key, which must never be echoed.
		body["nextLink"] = c.r.URL.Path + "?" + params.Encode()
	}
	return jsonResponse(http.StatusOK, body)
}

// oneOf checks an enumerated query parameter.
func oneOf(name, v string, allowed ...string) error {
	if v == "" {
		return nil
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return invalid(fmt.Sprintf("Use one of: %s (or leave %s out).", strings.Join(allowed, ", "), name),
		"%s %s is not one of %s", name, quoteShort(v), strings.Join(allowed, ", "))
}

// checkQuery rejects query parameters the route does not know, so a typo
// (?stauts=failed) is not silently ignored. "code" is the API key.
func (c *call) checkQuery(known ...string) error {
	for name := range c.r.URL.Query() {
		if name == "code" {
			continue
		}
		ok := false
		for _, k := range known {
			if name == k {
				ok = true
				break
			}
		}
		if !ok {
			hint := "This route takes no query parameters."
			if len(known) > 0 {
				hint = "This route takes: " + strings.Join(known, ", ") + "."
			}
			return invalid(hint, "unknown query parameter %s", quoteShort(name))
		}
	}
	return nil
}
