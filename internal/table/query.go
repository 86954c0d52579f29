package table

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// maxTop is the service's page size limit.
const maxTop = 1000

// Query returns one page of matching rows in key order. A page may hold fewer
// rows than Top, even none, and still carry a Continuation: the service ends a
// page at partition boundaries and after 5 seconds. Callers loop until
// Continuation is "".
func (s *Store) Query(ctx context.Context, table string, q dirsync.Query) (dirsync.EntityPage, error) {
	top := q.Top
	if top == 0 {
		top = maxTop
	}
	if top < 0 || top > maxTop {
		return dirsync.EntityPage{}, dirsync.Errorf(dirsync.EINVALID, "query page size %d is out of range 1..%d", q.Top, maxTop).
			WithHint("ask for at most 1000 rows per page")
	}
	filter, err := buildFilter(q)
	if err != nil {
		return dirsync.EntityPage{}, err
	}
	top32 := int32(top)
	opts := &aztables.ListEntitiesOptions{Top: &top32}
	if filter != "" {
		opts.Filter = &filter
	}
	if q.Continuation != "" {
		tok, err := decodeContinuation(q.Continuation)
		if err != nil {
			return dirsync.EntityPage{}, err
		}
		opts.NextPartitionKey, opts.NextRowKey = &tok.NextPartitionKey, &tok.NextRowKey
	}
	var resp aztables.ListEntitiesResponse
	err = s.withTable(ctx, table, func(c *aztables.Client) (err error) {
		resp, err = c.NewListEntitiesPager(opts).NextPage(ctx)
		return err
	})
	if err != nil {
		return dirsync.EntityPage{}, translate("query "+table, err)
	}
	page := dirsync.EntityPage{Entities: make([]dirsync.Entity, 0, len(resp.Entities))}
	for _, raw := range resp.Entities {
		e, err := decodeEntity(raw, "")
		if err != nil {
			return dirsync.EntityPage{}, fmt.Errorf("table: query %s: %w", table, err)
		}
		page.Entities = append(page.Entities, e)
	}
	tok := continuation{deref(resp.NextPartitionKey), deref(resp.NextRowKey)}
	if tok.NextPartitionKey != "" || tok.NextRowKey != "" {
		page.Continuation = tok.encode()
	}
	return page, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// buildFilter renders q as an OData filter. Values are quoted with doubled
// single quotes, so no value can end the literal and add a clause.
func buildFilter(q dirsync.Query) (string, error) {
	var clauses []string
	add := func(field, op, value string) { clauses = append(clauses, field+" "+op+" "+quote(value)) }
	if q.PartitionKey != "" {
		if err := checkKey("query PartitionKey", q.PartitionKey); err != nil {
			return "", err
		}
		add("PartitionKey", "eq", q.PartitionKey)
	}
	for _, v := range []struct{ name, value string }{
		{"RowKeyPrefix", q.RowKeyPrefix}, {"RowKeyFrom", q.RowKeyFrom}, {"RowKeyBefore", q.RowKeyBefore},
	} {
		if !utf8.ValidString(v.value) || strings.ContainsFunc(v.value, func(r rune) bool { return r < 0x20 }) {
			return "", dirsync.Errorf(dirsync.EINVALID, "query %s %s is not valid UTF-8 text", v.name, quoteKey(v.value)).
				WithHint("pass a key prefix or bound made of printable characters")
		}
	}
	if q.RowKeyPrefix != "" {
		add("RowKey", "ge", q.RowKeyPrefix)
		add("RowKey", "lt", prefixEnd(q.RowKeyPrefix))
	}
	if q.RowKeyFrom != "" {
		add("RowKey", "ge", q.RowKeyFrom)
	}
	if q.RowKeyBefore != "" {
		add("RowKey", "lt", q.RowKeyBefore)
	}
	if len(q.AnyOf) > 0 {
		var any []string
		for _, c := range q.AnyOf {
			if err := checkPropName(c.Prop); err != nil {
				return "", err
			}
			op := "lt"
			if c.AtLeast {
				op = "ge"
			}
			any = append(any, fmt.Sprintf("%s %s %dL", c.Prop, op, c.Value))
		}
		clauses = append(clauses, "("+strings.Join(any, " or ")+")")
	}
	return strings.Join(clauses, " and "), nil
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// prefixEnd returns the smallest string greater than every string starting
// with p: p with its last character incremented. When that character is
// outside the BMP's ordinary range (where UTF-8 and UTF-16 order could
// disagree), it returns p + U+FFFF instead, which only misses keys holding
// that non-character right after the prefix.
func prefixEnd(p string) string {
	r, size := utf8.DecodeLastRuneInString(p)
	if r < 0xD7FF && r != utf8.RuneError {
		return p[:len(p)-size] + string(r+1)
	}
	return p + "\uffff"
}

// continuation is the position the service gave for the next page, carried
// opaquely by callers.
type continuation struct {
	NextPartitionKey string `json:"NextPartitionKey"`
	NextRowKey       string `json:"NextRowKey,omitempty"`
}

func (c continuation) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinuation(s string) (continuation, error) {
	bad := func() (continuation, error) {
		return continuation{}, dirsync.Errorf(dirsync.EINVALID, "the paging token is not valid; start again without it").
			WithHint("pass back the Continuation of the previous page unchanged, or omit it to start from the first page")
	}
	if len(s) > 16*maxKeyUnits {
		return bad()
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return bad()
	}
	var c continuation
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() || c.NextPartitionKey == "" {
		return bad()
	}
	// The service's markers are opaque but never hold control characters;
	// refusing them keeps anything odd out of the request headers.
	for _, v := range []string{c.NextPartitionKey, c.NextRowKey} {
		if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return bad()
		}
	}
	return c, nil
}
