package table

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Names the service reserves or that carry annotations, never user properties.
const (
	propPartitionKey = "PartitionKey"
	propRowKey       = "RowKey"
	propTimestamp    = "Timestamp"
	typeSuffix       = "@odata.type"
)

// The service stores strings as UTF-16, so its "1 KiB" key limit is 512
// UTF-16 code units and its "64 KiB" string property limit 32,768 (Azurite
// enforces exactly these counts).
const (
	maxKeyUnits    = 512
	maxStringUnits = 32 * 1024
)

// utf16Len counts the UTF-16 code units of s.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

// minTime is the earliest Edm.DateTime the service accepts.
var minTime = time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC)

// checkKey returns EINVALID when s cannot be a PartitionKey or RowKey: the
// service forbids '/', '\', '#', '?' and control characters and allows at
// most 1 KiB of UTF-16. Checking before sending gives a message that names the key
// instead of the service's generic 400.
func checkKey(which, s string) error {
	reason := ""
	switch {
	case s == "":
		reason = "is empty"
	case !utf8.ValidString(s):
		reason = "is not valid UTF-8"
	case utf16Len(s) > maxKeyUnits:
		reason = fmt.Sprintf("is %d characters long; the limit is 1 KiB in UTF-16 (512 characters)", utf16Len(s))
	default:
		for _, r := range s {
			if r == '/' || r == '\\' || r == '#' || r == '?' {
				reason = fmt.Sprintf("contains %q, which table keys cannot hold", r)
				break
			}
			if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
				reason = "contains a control character, which table keys cannot hold"
				break
			}
		}
	}
	if reason == "" {
		return nil
	}
	return dirsync.Errorf(dirsync.EINVALID, "%s %s %s", which, quoteKey(s), reason).
		WithHint("escape the value before using it as a key (dirsync.EscapeKey)")
}

// quoteKey quotes a key for a message, shortened so a 1 KiB key does not
// swamp the log.
func quoteKey(s string) string {
	if len(s) > 80 {
		cut := 77
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}

func checkKeys(pk, rk string) error {
	if err := checkKey("PartitionKey", pk); err != nil {
		return err
	}
	return checkKey("RowKey", rk)
}

// checkPropName accepts what the service accepts for a property name (an
// identifier of at most 255 characters) minus the names it reserves.
func checkPropName(name string) error {
	switch name {
	case propPartitionKey, propRowKey, propTimestamp, "ETag":
		return dirsync.Errorf(dirsync.EINVALID, "property name %q is reserved by Table Storage", name).
			WithHint("keys go in Entity.PartitionKey and Entity.RowKey; rename the property")
	}
	ok := name != "" && len(name) <= 255
	for i, r := range name {
		if !(r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || i > 0 && '0' <= r && r <= '9') {
			ok = false
			break
		}
	}
	if !ok {
		return dirsync.Errorf(dirsync.EINVALID, "property name %q is not valid: use up to 255 letters, digits and '_', not starting with a digit", name).
			WithHint("rename the property")
	}
	return nil
}

// encodeEntity renders e as the JSON body the service expects, with explicit
// Edm types wherever JSON alone would lose the type.
func encodeEntity(e dirsync.Entity) ([]byte, error) {
	if err := checkKeys(e.PartitionKey, e.RowKey); err != nil {
		return nil, err
	}
	return encodeBody(e.PartitionKey, e.RowKey, e.Props)
}

// encodeBody is encodeEntity without the key check, for callers that have
// checked the keys and then transformed them.
func encodeBody(pk, rk string, props map[string]any) ([]byte, error) {
	m := make(map[string]any, 2*len(props)+2)
	m[propPartitionKey] = pk
	m[propRowKey] = rk
	for name, v := range props {
		if err := checkPropName(name); err != nil {
			return nil, err
		}
		switch v := v.(type) {
		case nil:
			continue // absent
		case string:
			if !utf8.ValidString(v) {
				return nil, propError(name, "is not valid UTF-8")
			}
			if n := utf16Len(v); n > maxStringUnits {
				return nil, propError(name, fmt.Sprintf("is %d characters long; Table Storage holds at most 64 KiB of UTF-16 (32,768 characters) per string", n))
			}
			m[name] = v
		case bool:
			m[name] = v
		case int64:
			m[name], m[name+typeSuffix] = strconv.FormatInt(v, 10), "Edm.Int64"
		case int:
			m[name], m[name+typeSuffix] = strconv.FormatInt(int64(v), 10), "Edm.Int64"
		case int32:
			m[name], m[name+typeSuffix] = strconv.FormatInt(int64(v), 10), "Edm.Int64"
		case float64:
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, propError(name, "is NaN or infinite")
			}
			// The annotation keeps 2.0 a Double; without it the service
			// would infer Int32 from the JSON "2".
			m[name], m[name+typeSuffix] = v, "Edm.Double"
		case time.Time:
			if v.IsZero() {
				continue // absent: Entity.Time reports the zero time for it
			}
			if v.Before(minTime) {
				return nil, propError(name, "is a time before 1601-01-01, which Table Storage cannot hold")
			}
			m[name], m[name+typeSuffix] = v.UTC().Truncate(100*time.Nanosecond).Format(time.RFC3339Nano), "Edm.DateTime"
		default:
			return nil, propError(name, fmt.Sprintf("has type %T; Table Storage properties must be string, bool, int64, float64 or time.Time", v))
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode entity: %w", err)
	}
	return b, nil
}

func propError(name, why string) error {
	return dirsync.Errorf(dirsync.EINVALID, "property %q %s", name, why).WithHint("fix the value before storing it")
}

// decodeEntity parses an entity as the service (through the SDK) returns it.
func decodeEntity(raw []byte, etag string) (dirsync.Entity, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil {
		return dirsync.Entity{}, fmt.Errorf("decode entity: %w", err)
	}
	e := dirsync.Entity{ETag: etag, Props: map[string]any{}}
	if err := unmarshalString(m[propPartitionKey], &e.PartitionKey); err != nil {
		return e, fmt.Errorf("decode PartitionKey: %w", err)
	}
	if err := unmarshalString(m[propRowKey], &e.RowKey); err != nil {
		return e, fmt.Errorf("decode RowKey: %w", err)
	}
	if e.ETag == "" {
		unmarshalString(m["odata.etag"], &e.ETag)
	}
	for name, rawValue := range m {
		if name == propPartitionKey || name == propRowKey || name == propTimestamp ||
			strings.HasPrefix(name, "odata.") || strings.Contains(name, "@") {
			continue
		}
		var edm string
		unmarshalString(m[name+typeSuffix], &edm)
		v, err := decodeValue(rawValue, edm)
		if err != nil {
			return e, fmt.Errorf("decode property %q: %w", name, err)
		}
		if v != nil {
			e.Props[name] = v
		}
	}
	return e, nil
}

func unmarshalString(raw json.RawMessage, dst *string) error {
	if raw == nil {
		return nil
	}
	return json.Unmarshal(raw, dst)
}

func decodeValue(raw json.RawMessage, edm string) (any, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	switch edm {
	case "Edm.Int64", "Edm.Int32":
		switch v := v.(type) {
		case string:
			return strconv.ParseInt(v, 10, 64)
		case json.Number:
			return v.Int64()
		}
		return nil, fmt.Errorf("%s value %s", edm, raw)
	case "Edm.DateTime":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("Edm.DateTime value %s", raw)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, err
		}
		return t.UTC(), nil
	case "Edm.Double":
		switch v := v.(type) {
		case string: // "NaN", "Infinity", "-Infinity" from other writers
			return strconv.ParseFloat(v, 64)
		case json.Number:
			return v.Float64()
		}
		return nil, fmt.Errorf("Edm.Double value %s", raw)
	}
	// Guid and Binary read back as their string forms; plain JSON numbers are
	// doubles (we always annotate Int64, so an unannotated integer can only be
	// another tool's Int32, which a float64 holds exactly).
	if n, ok := v.(json.Number); ok {
		return n.Float64()
	}
	return v, nil
}
