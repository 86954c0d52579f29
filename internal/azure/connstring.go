package azure

import (
	"errors"
	"strings"
)

// ErrMalformedConnectionString is what ParseConnectionString returns for a
// string that is not key=value pairs. Its text quotes nothing of the string.
var ErrMalformedConnectionString = errors.New("expected key=value pairs separated by ';'")

// ConnectionString is a parsed connection string: its key=value pairs in
// the order written, keys and values trimmed of spaces. It holds the
// account's key: never log it or put any of it in an error.
type ConnectionString struct {
	pairs [][2]string
}

// ParseConnectionString splits cs into key=value pairs separated by ';'.
// Empty parts (a trailing ';', or ";;") are skipped, as the Service Bus SDK
// skips them; a part without '=' or with an empty key is
// ErrMalformedConnectionString, which never quotes cs. Whether the keys the
// service needs are present is the adapter's business.
func ParseConnectionString(cs string) (ConnectionString, error) {
	var c ConnectionString
	for _, part := range strings.Split(cs, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return ConnectionString{}, ErrMalformedConnectionString
		}
		c.pairs = append(c.pairs, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return c, nil
}

// Value returns the value of key, spelled exactly so, as the storage SDKs
// match keys; the last one wins when a key repeats, as in the SDKs. "" when
// it is absent.
func (c ConnectionString) Value(key string) string {
	return c.lookup(func(k string) bool { return k == key })
}

// ValueFold is Value with keys compared without regard to case, as the
// Service Bus SDK matches them.
func (c ConnectionString) ValueFold(key string) string {
	return c.lookup(func(k string) bool { return strings.EqualFold(k, key) })
}

func (c ConnectionString) lookup(match func(string) bool) string {
	for i := len(c.pairs) - 1; i >= 0; i-- {
		if match(c.pairs[i][0]) {
			return c.pairs[i][1]
		}
	}
	return ""
}
