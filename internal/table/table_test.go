package table_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/azurite"
	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/table"
	"github.com/entrasync/entrasync/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newStore returns a Store on the shared Azurite whose tables no other test
// sees (a unique prefix).
func newStore(t *testing.T) *table.Store {
	t.Helper()
	s, err := table.New(table.Config{ConnectionString: testenv.Storage(t), TablePrefix: testenv.UniqueName(t, "t")})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func wantCode(t *testing.T, what string, err error, want dirsync.Code) {
	t.Helper()
	if got := dirsync.ErrorCode(err); got != want {
		t.Fatalf("%s: error code %q (%v), want %q", what, got, err, want)
	}
	if err != nil && strings.Contains(err.Error(), azurite.AccountKey) {
		t.Fatalf("%s: error message holds the account key: %v", what, err)
	}
}

func ent(pk, rk string, props map[string]any) dirsync.Entity {
	return dirsync.Entity{PartitionKey: pk, RowKey: rk, Props: props}
}

func TestPropertyTypesRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	when := time.Date(2026, 11, 23, 10, 30, 15, 123456700, time.FixedZone("CET", 3600))
	props := map[string]any{
		"Name":     "Zoë O'Brien ✓ 😀",
		"Empty":    "",
		"Active":   true,
		"Deleted":  false,
		"Big":      int64(math.MaxInt64),
		"Small":    int64(math.MinInt64),
		"Beyond53": int64(1<<53 + 1), // a float64 would round this
		"Zero":     int64(0),
		"Plain":    42,        // int: stored and read back as int64
		"Narrow":   int32(-7), // int32: likewise
		"Whole":    2.0,       // must stay a float64, not turn into an int
		"Frac":     -1.5e-300,
		"Max":      math.MaxFloat64,
		"When":     when,
		"Nothing":  nil,         // not stored
		"Never":    time.Time{}, // not stored
	}
	etag, err := s.Insert(ctx, "types", ent("p", "r", props))
	if err != nil {
		t.Fatalf("Insert: %v", err)
	}
	got, err := s.Get(ctx, "types", "p", "r")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want := dirsync.Entity{PartitionKey: "p", RowKey: "r", ETag: etag, Props: map[string]any{
		"Name": "Zoë O'Brien ✓ 😀", "Empty": "", "Active": true, "Deleted": false,
		"Big": int64(math.MaxInt64), "Small": int64(math.MinInt64), "Beyond53": int64(1<<53 + 1), "Zero": int64(0),
		"Plain": int64(42), "Narrow": int64(-7),
		"Whole": 2.0, "Frac": -1.5e-300, "Max": math.MaxFloat64,
		"When": when.UTC(),
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Get after Insert (-want +got):\n%s", diff)
	}
	if got.Time("When").Location() != time.UTC {
		t.Errorf("time read back in %v, want UTC", got.Time("When").Location())
	}

	page, err := s.Query(ctx, "types", dirsync.Query{PartitionKey: "p"})
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	if len(page.Entities) != 1 {
		t.Fatalf("Query returned %d rows, want 1", len(page.Entities))
	}
	if diff := cmp.Diff(want, page.Entities[0]); diff != "" {
		t.Errorf("Query after Insert (-want +got):\n%s", diff)
	}

	// Nanoseconds below the service's 100 ns resolution are dropped.
	if _, err := s.Upsert(ctx, "types", ent("p", "ns", map[string]any{"When": time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.UTC)})); err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	got, err = s.Get(ctx, "types", "p", "ns")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if w := time.Date(2026, 1, 1, 0, 0, 0, 123456700, time.UTC); !got.Time("When").Equal(w) {
		t.Errorf("time with ns = %v, want %v", got.Time("When"), w)
	}
}

func TestInsertConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Insert(ctx, "users", ent("p", "r", map[string]any{"V": "one"})); err != nil {
		t.Fatalf("first Insert: %v", err)
	}
	_, err := s.Insert(ctx, "users", ent("p", "r", map[string]any{"V": "two"}))
	wantCode(t, "second Insert", err, dirsync.ECONFLICT)
	got, err := s.Get(ctx, "users", "p", "r")
	if err != nil {
		t.Fatal(err)
	}
	if got.Str("V") != "one" {
		t.Errorf("row after failed insert has V=%q, want one", got.Str("V"))
	}
}

func TestConditionalWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	e := ent("p", "r", map[string]any{"N": int64(1)})
	etag1, err := s.Insert(ctx, "state", e)
	if err != nil {
		t.Fatal(err)
	}
	e.ETag, e.Props = etag1, map[string]any{"N": int64(2)}
	etag2, err := s.Replace(ctx, "state", e)
	if err != nil {
		t.Fatalf("Replace with current ETag: %v", err)
	}
	if etag2 == "" || etag2 == etag1 {
		t.Fatalf("Replace returned ETag %q after %q; want a new one", etag2, etag1)
	}

	e.ETag, e.Props = etag1, map[string]any{"N": int64(3)}
	_, err = s.Replace(ctx, "state", e)
	wantCode(t, "Replace with stale ETag", err, dirsync.EPRECONDITION)
	wantCode(t, "Delete with stale ETag", s.Delete(ctx, "state", "p", "r", etag1), dirsync.EPRECONDITION)
	got, err := s.Get(ctx, "state", "p", "r")
	if err != nil {
		t.Fatal(err)
	}
	if got.Int("N") != 2 || got.ETag != etag2 {
		t.Fatalf("row = N %d ETag %q, want N 2 ETag %q", got.Int("N"), got.ETag, etag2)
	}

	// Replace replaces: properties not given are gone.
	e.ETag, e.Props = etag2, map[string]any{"M": "x"}
	etag3, err := s.Replace(ctx, "state", e)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = s.Get(ctx, "state", "p", "r")
	if diff := cmp.Diff(map[string]any{"M": "x"}, got.Props); diff != "" {
		t.Errorf("props after Replace (-want +got):\n%s", diff)
	}

	if err := s.Delete(ctx, "state", "p", "r", etag3); err != nil {
		t.Fatalf("Delete with current ETag: %v", err)
	}
	_, err = s.Get(ctx, "state", "p", "r")
	wantCode(t, "Get after Delete", err, dirsync.ENOTFOUND)

	e.ETag = etag3
	_, err = s.Replace(ctx, "state", e)
	wantCode(t, "conditional Replace of a deleted row", err, dirsync.ENOTFOUND)

	// Without an ETag, Replace is an upsert.
	e.ETag = ""
	if _, err := s.Replace(ctx, "state", e); err != nil {
		t.Fatalf("unconditional Replace of a missing row: %v", err)
	}
	if _, err := s.Get(ctx, "state", "p", "r"); err != nil {
		t.Fatalf("Get after unconditional Replace: %v", err)
	}
}

func TestMissingRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Insert(ctx, "users", ent("p", "exists", nil)); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(ctx, "users", "p", "missing")
	wantCode(t, "Get missing", err, dirsync.ENOTFOUND)
	if err := s.Delete(ctx, "users", "p", "missing", ""); err != nil {
		t.Errorf("Delete missing: %v, want nil", err)
	}
	if err := s.Delete(ctx, "users", "p", "missing", `W/"datetime'2020-01-01T00%3A00%3A00Z'"`); err != nil {
		t.Errorf("conditional Delete of a missing row: %v, want nil", err)
	}
}

func TestMissingTablesAreCreated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	// Each first operation meets a table that does not exist yet.
	_, err := s.Get(ctx, "fresh-get", "p", "r")
	wantCode(t, "Get on a new table", err, dirsync.ENOTFOUND)
	if err := s.Delete(ctx, "fresh-delete", "p", "r", ""); err != nil {
		t.Errorf("Delete on a new table: %v", err)
	}
	page, err := s.Query(ctx, "fresh-query", dirsync.Query{})
	if err != nil || len(page.Entities) != 0 || page.Continuation != "" {
		t.Errorf("Query on a new table = %+v, %v; want an empty last page", page, err)
	}
	if _, err := s.Insert(ctx, "fresh-insert", ent("p", "r", nil)); err != nil {
		t.Errorf("Insert on a new table: %v", err)
	}
	if _, err := s.Upsert(ctx, "fresh-upsert", ent("p", "r", nil)); err != nil {
		t.Errorf("Upsert on a new table: %v", err)
	}
	if err := s.Batch(ctx, "fresh-batch", []dirsync.BatchOp{{Kind: dirsync.BatchInsert, Entity: ent("p", "r", nil)}}); err != nil {
		t.Errorf("Batch on a new table: %v", err)
	}
	if _, err := s.Get(ctx, "fresh-batch", "p", "r"); err != nil {
		t.Errorf("Get after Batch on a new table: %v", err)
	}

	// Two stores racing to create the same table both succeed.
	prefix := testenv.UniqueName(t, "race")
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := table.New(table.Config{ConnectionString: testenv.Storage(t), TablePrefix: prefix})
			if err == nil {
				_, err = s.Upsert(ctx, "shared", ent("p", "r", nil))
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent first use: %v", err)
		}
	}
}

func TestBatchAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Insert(ctx, "members", ent("g1", "r05", map[string]any{"V": "old"})); err != nil {
		t.Fatal(err)
	}
	var ops []dirsync.BatchOp
	for i := range 10 {
		ops = append(ops, dirsync.BatchOp{Kind: dirsync.BatchInsert, Entity: ent("g1", fmt.Sprintf("r%02d", i), map[string]any{"V": "new"})})
	}
	err := s.Batch(ctx, "members", ops)
	wantCode(t, "Batch with one conflicting insert", err, dirsync.ECONFLICT)
	if !strings.Contains(err.Error(), "operation 5") || !strings.Contains(err.Error(), `"r05"`) {
		t.Errorf("batch error %q does not name the failing operation 5 (row r05)", err)
	}
	if i, ok := dirsync.FailedOp(err); !ok || i != 5 {
		t.Errorf("FailedOp(%v) = %d, %v; want 5, true (the engine leaves that operation out and sends the rest)", err, i, ok)
	}
	rows := allRows(t, s, "members", dirsync.Query{PartitionKey: "g1"})
	if diff := cmp.Diff([]string{"r05"}, keys(rows)); diff != "" {
		t.Errorf("rows after a failed batch (-want +got):\n%s", diff)
	}
	if rows[0].Str("V") != "old" {
		t.Errorf("r05 changed by a failed batch: V=%q", rows[0].Str("V"))
	}

	// A stale ETag fails the batch with EPRECONDITION, and nothing changes.
	etag := rows[0].ETag
	if _, err := s.Upsert(ctx, "members", ent("g1", "r05", map[string]any{"V": "newer"})); err != nil {
		t.Fatal(err)
	}
	stale := ent("g1", "r05", map[string]any{"V": "stale"})
	stale.ETag = etag
	err = s.Batch(ctx, "members", []dirsync.BatchOp{
		{Kind: dirsync.BatchUpsert, Entity: ent("g1", "r06", nil)},
		{Kind: dirsync.BatchReplace, Entity: stale},
	})
	wantCode(t, "Batch with stale ETag", err, dirsync.EPRECONDITION)
	if _, err := s.Get(ctx, "members", "g1", "r06"); !dirsync.IsCode(err, dirsync.ENOTFOUND) {
		t.Errorf("r06 written by a failed batch (Get error %v)", err)
	}

	// A batch delete of a missing row fails the batch: it cannot be skipped.
	err = s.Batch(ctx, "members", []dirsync.BatchOp{
		{Kind: dirsync.BatchUpsert, Entity: ent("g1", "r07", nil)},
		{Kind: dirsync.BatchDelete, Entity: ent("g1", "gone", nil)},
	})
	wantCode(t, "Batch deleting a missing row", err, dirsync.ENOTFOUND)
}

func TestBatchOf100(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	var ops []dirsync.BatchOp
	for i := range dirsync.MaxBatch {
		ops = append(ops, dirsync.BatchOp{Kind: dirsync.BatchUpsert, Entity: ent("b00", fmt.Sprintf("u%03d", i), map[string]any{"I": int64(i)})})
	}
	if err := s.Batch(ctx, "users", ops); err != nil {
		t.Fatalf("Batch of 100 upserts: %v", err)
	}
	rows := allRows(t, s, "users", dirsync.Query{PartitionKey: "b00"})
	if len(rows) != 100 || rows[99].Int("I") != 99 {
		t.Fatalf("after batch: %d rows, want 100", len(rows))
	}

	// Mixed kinds in one batch, conditional ones with current ETags.
	mixed := []dirsync.BatchOp{
		{Kind: dirsync.BatchInsert, Entity: ent("b00", "new", nil)},
		{Kind: dirsync.BatchDelete, Entity: dirsync.Entity{PartitionKey: "b00", RowKey: "u000", ETag: rows[0].ETag}},
		{Kind: dirsync.BatchDelete, Entity: ent("b00", "u001", nil)},
		{Kind: dirsync.BatchReplace, Entity: dirsync.Entity{PartitionKey: "b00", RowKey: "u002", ETag: rows[2].ETag, Props: map[string]any{"I": int64(-2)}}},
		{Kind: dirsync.BatchReplace, Entity: ent("b00", "u003", map[string]any{"I": int64(-3)})},
	}
	if err := s.Batch(ctx, "users", mixed); err != nil {
		t.Fatalf("mixed Batch: %v", err)
	}
	rows = allRows(t, s, "users", dirsync.Query{PartitionKey: "b00", RowKeyBefore: "u004"})
	got := map[string]int64{}
	for _, r := range rows {
		got[r.RowKey] = r.Int("I")
	}
	if diff := cmp.Diff(map[string]int64{"new": 0, "u002": -2, "u003": -3}, got); diff != "" {
		t.Errorf("after mixed batch (-want +got):\n%s", diff)
	}

	tooMany := append(ops, dirsync.BatchOp{Kind: dirsync.BatchUpsert, Entity: ent("b00", "x", nil)})
	wantCode(t, "Batch of 101", s.Batch(ctx, "users", tooMany), dirsync.EINVALID)
	wantCode(t, "Batch over two partitions", s.Batch(ctx, "users", []dirsync.BatchOp{
		{Kind: dirsync.BatchUpsert, Entity: ent("b00", "x", nil)},
		{Kind: dirsync.BatchUpsert, Entity: ent("b01", "x", nil)},
	}), dirsync.EINVALID)
	wantCode(t, "Batch touching a row twice", s.Batch(ctx, "users", []dirsync.BatchOp{
		{Kind: dirsync.BatchUpsert, Entity: ent("b00", "x", nil)},
		{Kind: dirsync.BatchDelete, Entity: ent("b00", "x", nil)},
	}), dirsync.EINVALID)
	if err := s.Batch(ctx, "users", nil); err != nil {
		t.Errorf("empty Batch: %v", err)
	}
}

// allRows pages through a query with the given Top and returns every row.
func allRows(t *testing.T, s *table.Store, tbl string, q dirsync.Query) []dirsync.Entity {
	t.Helper()
	var rows []dirsync.Entity
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("query does not end")
		}
		page, err := s.Query(context.Background(), tbl, q)
		if err != nil {
			t.Fatalf("Query %+v: %v", q, err)
		}
		rows = append(rows, page.Entities...)
		if page.Continuation == "" {
			return rows
		}
		q.Continuation = page.Continuation
	}
}

func keys(rows []dirsync.Entity) []string {
	ks := make([]string, len(rows))
	for i, r := range rows {
		ks[i] = r.RowKey
	}
	return ks
}

func TestQuery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	// 1,150 rows in p1 (more than one 1,000-row page), a few in p2.
	var want []string
	for start := 0; start < 1150; start += 100 {
		var ops []dirsync.BatchOp
		for i := start; i < min(start+100, 1150); i++ {
			rk := fmt.Sprintf("r%04d", i)
			want = append(want, rk)
			ops = append(ops, dirsync.BatchOp{Kind: dirsync.BatchUpsert, Entity: ent("p1", rk, map[string]any{"I": int64(i)})})
		}
		if err := s.Batch(ctx, "runs", ops); err != nil {
			t.Fatal(err)
		}
	}
	for _, rk := range []string{"o'brien", "o'bx", "ob", "r0005"} {
		if _, err := s.Insert(ctx, "runs", ent("p2", rk, nil)); err != nil {
			t.Fatal(err)
		}
	}

	for rk, i := range map[string]int64{"small": 7, "big": 1 << 40, "bigger": 1<<40 + 5, "negative": -3} {
		if _, err := s.Insert(ctx, "runs", ent("p3", rk, map[string]any{"I": i})); err != nil {
			t.Fatal(err)
		}
	}

	first, err := s.Query(ctx, "runs", dirsync.Query{PartitionKey: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Entities) != 1000 || first.Continuation == "" {
		t.Fatalf("first page: %d rows, continuation %q; want 1000 rows and a continuation", len(first.Entities), first.Continuation)
	}
	if diff := cmp.Diff(want, keys(allRows(t, s, "runs", dirsync.Query{PartitionKey: "p1"}))); diff != "" {
		t.Errorf("all of p1 (-want +got):\n%s", diff)
	}

	tests := []struct {
		name string
		q    dirsync.Query
		want []string
	}{
		{"prefix with small pages", dirsync.Query{PartitionKey: "p1", RowKeyPrefix: "r10", Top: 30}, want[1000:1100]},
		{"range", dirsync.Query{PartitionKey: "p1", RowKeyFrom: "r0100", RowKeyBefore: "r0200", Top: 7}, want[100:200]},
		{"prefix and range", dirsync.Query{PartitionKey: "p1", RowKeyPrefix: "r01", RowKeyFrom: "r0150"}, want[150:200]},
		{"prefix with a quote", dirsync.Query{PartitionKey: "p2", RowKeyPrefix: "o'b"}, []string{"o'brien", "o'bx"}},
		{"injection attempt stays a literal", dirsync.Query{PartitionKey: "p2' or PartitionKey ne 'x"}, nil},
		{"injection in prefix", dirsync.Query{PartitionKey: "p2", RowKeyPrefix: "x' or RowKey ne '"}, nil},
		{"every partition", dirsync.Query{RowKeyPrefix: "r0005"}, []string{"r0005", "r0005"}},
		{"no match", dirsync.Query{PartitionKey: "nope"}, nil},
		{"any of two integer conditions", dirsync.Query{PartitionKey: "p1", Top: 2, AnyOf: []dirsync.IntCond{{Prop: "I", Value: 3}, {Prop: "I", AtLeast: true, Value: 1148}}},
			[]string{"r0000", "r0001", "r0002", "r1148", "r1149"}},
		{"integers beyond 32 bits", dirsync.Query{PartitionKey: "p3", AnyOf: []dirsync.IntCond{{Prop: "I", AtLeast: true, Value: 1 << 40}}}, []string{"big", "bigger"}},
		{"negative integers", dirsync.Query{PartitionKey: "p3", AnyOf: []dirsync.IntCond{{Prop: "I", Value: 0}}}, []string{"negative"}},
		{"rows without the property meet no condition", dirsync.Query{PartitionKey: "p2", AnyOf: []dirsync.IntCond{{Prop: "I", Value: 10}, {Prop: "I", AtLeast: true, Value: 10}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := keys(allRows(t, s, "runs", tt.q))
			if len(got) == 0 {
				got = nil
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	// Pages of a small Top hold at most Top rows.
	page, err := s.Query(ctx, "runs", dirsync.Query{PartitionKey: "p1", Top: 3})
	if err != nil || len(page.Entities) != 3 || page.Continuation == "" {
		t.Fatalf("Top 3: %d rows, continuation %q, err %v", len(page.Entities), page.Continuation, err)
	}
	if diff := cmp.Diff(int64(0), page.Entities[0].Int("I")); diff != "" {
		t.Errorf("first row's I (-want +got):\n%s", diff)
	}
}

func TestQueryRejectsBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	const msg = "the paging token is not valid; start again without it"
	for _, tok := range []string{
		"not base64!",
		"e30",                            // {}
		"eyJOZXh0UGFydGl0aW9uS2V5IjoxfQ", // {"NextPartitionKey":1}
		"eyJOZXh0UGFydGl0aW9uS2V5IjoiYSIsIngiOjF9", // unknown field
		strings.Repeat("A", 10000),
	} {
		_, err := s.Query(ctx, "runs", dirsync.Query{Continuation: tok})
		wantCode(t, "Query with token "+tok[:min(len(tok), 20)], err, dirsync.EINVALID)
		if err.Error() != msg {
			t.Errorf("message %q, want %q", err.Error(), msg)
		}
	}
	for _, top := range []int{-1, 1001} {
		_, err := s.Query(ctx, "runs", dirsync.Query{Top: top})
		wantCode(t, fmt.Sprintf("Top %d", top), err, dirsync.EINVALID)
	}
	_, err := s.Query(ctx, "runs", dirsync.Query{PartitionKey: "a/b"})
	wantCode(t, "PartitionKey with '/'", err, dirsync.EINVALID)
	_, err = s.Query(ctx, "runs", dirsync.Query{AnyOf: []dirsync.IntCond{{Prop: "I lt 5 or I", Value: 1}}})
	wantCode(t, "a condition on a property name with spaces", err, dirsync.EINVALID)
}

func TestBadKeysAndValues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	for _, key := range []string{"a/b", `a\b`, "a#b", "a?b", "a\tb", "a\x7fb", "a\u0085b", "", strings.Repeat("k", 513), strings.Repeat("😀", 257), "bad\xffutf8"} {
		what := fmt.Sprintf("key %q", key[:min(len(key), 12)])
		_, err := s.Insert(ctx, "users", ent("p", key, nil))
		wantCode(t, what+" Insert", err, dirsync.EINVALID)
		if key != "" && !strings.Contains(err.Error(), "RowKey") {
			t.Errorf("%s: message %q does not name the key", what, err)
		}
		_, err = s.Get(ctx, "users", key, "r")
		wantCode(t, what+" Get", err, dirsync.EINVALID)
		wantCode(t, what+" Delete", s.Delete(ctx, "users", "p", key, ""), dirsync.EINVALID)
		wantCode(t, what+" Batch", s.Batch(ctx, "users", []dirsync.BatchOp{{Kind: dirsync.BatchDelete, Entity: ent("p", key, nil)}}), dirsync.EINVALID)
	}
	for _, key := range []string{strings.Repeat("k", 512), strings.Repeat("é", 512), strings.Repeat("😀", 256)} {
		if _, err := s.Insert(ctx, "users", ent("p", key, nil)); err != nil {
			t.Errorf("key of 1 KiB in UTF-16: %v", err)
		}
	}
	for name, props := range map[string]map[string]any{
		"reserved name":   {"PartitionKey": "x"},
		"name with @":     {"a@odata.type": "Edm.Int64"},
		"name with space": {"a b": "x"},
		"bytes":           {"B": []byte("x")},
		"uint64":          {"U": uint64(1)},
		"NaN":             {"F": math.NaN()},
		"infinity":        {"F": math.Inf(1)},
		"ancient time":    {"T": time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)},
		"bad utf-8":       {"S": "\xff"},
		"long string":     {"S": strings.Repeat("x", 32*1024+1)},
	} {
		_, err := s.Upsert(ctx, "users", ent("p", "r", props))
		wantCode(t, name, err, dirsync.EINVALID)
	}
	_, err := s.Get(ctx, "no/slash", "p", "r")
	wantCode(t, "bad table name", err, dirsync.EINVALID)
}

// TestUnusualKeys checks keys that are valid but travel awkwardly in URLs and
// filters, through every operation including batches.
func TestUnusualKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	keysIn := []string{"o'brien@example.com", "it''s", "a b", "100%", "a+b&c=d", "x|y", "ünï ✓ 😀", "(paren)", "semi;colon", "'"}
	for _, k := range keysIn {
		etag, err := s.Insert(ctx, "emails", ent(k, k, map[string]any{"K": k}))
		if err != nil {
			t.Fatalf("Insert %q: %v", k, err)
		}
		got, err := s.Get(ctx, "emails", k, k)
		if err != nil || got.Str("K") != k || got.PartitionKey != k || got.RowKey != k {
			t.Fatalf("Get %q = %+v, %v", k, got, err)
		}
		e := ent(k, k, map[string]any{"K": k + "!"})
		e.ETag = etag
		if _, err := s.Replace(ctx, "emails", e); err != nil {
			t.Fatalf("Replace %q: %v", k, err)
		}
		rows := allRows(t, s, "emails", dirsync.Query{PartitionKey: k, RowKeyPrefix: k})
		if len(rows) != 1 || rows[0].Str("K") != k+"!" {
			t.Fatalf("Query for %q = %+v", k, rows)
		}
		// Batch upsert, replace and delete address the row by URL.
		if err := s.Batch(ctx, "emails", []dirsync.BatchOp{{Kind: dirsync.BatchUpsert, Entity: ent(k, k, map[string]any{"K": "batch"})}, {Kind: dirsync.BatchReplace, Entity: ent(k, k+"2", nil)}}); err != nil {
			t.Fatalf("Batch upsert %q: %v", k, err)
		}
		got, err = s.Get(ctx, "emails", k, k)
		if err != nil || got.Str("K") != "batch" || got.RowKey != k {
			t.Fatalf("after batch upsert %q: %+v, %v", k, got, err)
		}
		if err := s.Batch(ctx, "emails", []dirsync.BatchOp{{Kind: dirsync.BatchDelete, Entity: got}, {Kind: dirsync.BatchDelete, Entity: ent(k, k+"2", nil)}}); err != nil {
			t.Fatalf("Batch delete %q: %v", k, err)
		}
		if _, err := s.Get(ctx, "emails", k, k); !dirsync.IsCode(err, dirsync.ENOTFOUND) {
			t.Fatalf("after batch delete of %q: Get error %v, want ENOTFOUND", k, err)
		}
		if err := s.Delete(ctx, "emails", k, k, ""); err != nil {
			t.Fatalf("Delete %q: %v", k, err)
		}
	}
	rows := allRows(t, s, "emails", dirsync.Query{})
	if len(rows) != 0 {
		t.Errorf("rows left: %v", keys(rows))
	}
}

func TestTableName(t *testing.T) {
	s, err := table.New(table.Config{ConnectionString: azurite.ConnectionString("http://127.0.0.1:1/a", "http://127.0.0.1:1/a", "http://127.0.0.1:1/a"), TablePrefix: "es"})
	if err != nil {
		t.Fatal(err)
	}
	for logical, want := range map[string]string{
		"users":    "esUsers",
		"run-logs": "esRunLogs",
		"run_logs": "esRunLogs",
		"audit2":   "esAudit2",
		"Groups":   "esGroups",
	} {
		got, err := s.TableName(logical)
		if err != nil || got != want {
			t.Errorf("TableName(%q) = %q, %v; want %q", logical, got, err, want)
		}
	}
	for _, bad := range []string{"", "a.b", "ü", strings.Repeat("x", 62)} {
		_, err := s.TableName(bad)
		wantCode(t, fmt.Sprintf("TableName(%q)", bad), err, dirsync.EINVALID)
	}
}

func TestConfigErrors(t *testing.T) {
	cs := azurite.ConnectionString("http://127.0.0.1:1/a", "http://127.0.0.1:1/a", "http://127.0.0.1:1/a")
	tests := []struct {
		name string
		cfg  table.Config
		want string // in the message
	}{
		{"nothing", table.Config{}, "ConnectionString"},
		{"both", table.Config{ConnectionString: cs, AccountURL: "https://a.table.core.windows.net/"}, "AccountURL"},
		{"prefix", table.Config{ConnectionString: cs, TablePrefix: "9x"}, "TablePrefix"},
		{"long prefix", table.Config{ConnectionString: cs, TablePrefix: strings.Repeat("a", 41)}, "TablePrefix"},
		{"malformed", table.Config{ConnectionString: "AccountKey=s3cretKEY;garbage"}, "ConnectionString"},
		{"identity with string", table.Config{ConnectionString: cs, ClientID: "x"}, "ClientID"},
		{"bad url", table.Config{AccountURL: "table.core.windows.net"}, "AccountURL"},
		{"sas url", table.Config{AccountURL: "https://a.table.core.windows.net/?sig=s3cretKEY"}, "AccountURL"},
		{"sas, not a url", table.Config{AccountURL: "a.table.core.windows.net?sig=s3cretKEY"}, "AccountURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := table.New(tt.cfg)
			wantCode(t, "New", err, dirsync.EINVALID)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("message %q does not name %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cretKEY") {
				t.Errorf("message %q leaks the secret", err)
			}
		})
	}
	if _, err := table.New(table.Config{AccountURL: "https://a.table.core.windows.net/"}); err != nil {
		t.Errorf("AccountURL with default credential: %v", err)
	}
	if _, err := table.New(table.Config{AccountURL: "https://a.table.core.windows.net/", UseManagedIdentity: true, ClientID: "00000000-0000-0000-0000-000000000001"}); err != nil {
		t.Errorf("AccountURL with managed identity: %v", err)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}

	// A wrong key: Azurite answers 403 AuthorizationFailure.
	wrong := strings.Replace(testenv.Storage(t), azurite.AccountKey, "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXk=", 1)
	bad, err := table.New(table.Config{ConnectionString: wrong, MaxRetries: -1})
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
	if strings.Contains(err.Error(), "d3Jvbmcga2V5") {
		t.Errorf("error leaks the key: %v", err)
	}

	// Nothing listening.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	down, err := table.New(table.Config{ConnectionString: azurite.ConnectionString("http://"+addr+"/a", "http://"+addr+"/a", "http://"+addr+"/a"), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "Ping of a closed port", down.Ping(ctx), dirsync.EUNAVAILABLE)
}

// TestServiceErrors drives the error translation with a server that answers
// like a struggling storage service.
func TestServiceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status     int
		code       string
		retryAfter string
		want       dirsync.Code
		wantAfter  time.Duration
	}{
		{http.StatusServiceUnavailable, "ServerBusy", "7", dirsync.ETHROTTLED, 7 * time.Second},
		{http.StatusTooManyRequests, "", "", dirsync.ETHROTTLED, 0},
		{http.StatusInternalServerError, "InternalError", "", dirsync.EUNAVAILABLE, 0},
		{http.StatusGatewayTimeout, "", "", dirsync.EUNAVAILABLE, 0},
		// The storage account refusing the app's credentials is not the API
		// caller's fault: unavailable, not unauthorized or forbidden.
		{http.StatusForbidden, "AuthenticationFailed", "", dirsync.EUNAVAILABLE, 0},
		{http.StatusForbidden, "AuthorizationPermissionMismatch", "", dirsync.EUNAVAILABLE, 0},
		{http.StatusForbidden, "AuthorizationFailure", "", dirsync.EUNAVAILABLE, 0},
		{http.StatusUnauthorized, "", "", dirsync.EUNAVAILABLE, 0},
		{http.StatusBadRequest, "PropertyValueTooLarge", "", dirsync.EINVALID, 0},
		{http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", "", dirsync.EINVALID, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", tt.status, tt.code), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.code != "" {
					w.Header().Set("x-ms-error-code", tt.code)
				}
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				fmt.Fprintf(w, `{"odata.error":{"code":%q,"message":{"value":"x"}}}`, tt.code)
			}))
			defer srv.Close()
			u := srv.URL + "/devstoreaccount1"
			s, err := table.New(table.Config{ConnectionString: azurite.ConnectionString(u, u, u), MaxRetries: -1})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Get(context.Background(), "users", "p", "r")
			wantCode(t, "Get", err, tt.want)
			if got := dirsync.RetryAfter(err); got != tt.wantAfter {
				t.Errorf("RetryAfter = %v, want %v", got, tt.wantAfter)
			}
			if dirsync.ErrorHint(err) == "" {
				t.Errorf("no hint in %v", err)
			}
		})
	}
}

// BatchETags reports the ETag each row got, in the order of the ops: a
// conditional write with it succeeds (the engine writes a partition's
// counts row with the ETag its last batch reported, without reading it).
func TestBatchETags(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	for _, rk := range []string{"replaced", "deleted", "merged"} {
		if _, err := s.Insert(ctx, "users", ent("b01", rk, map[string]any{"V": "old"})); err != nil {
			t.Fatal(err)
		}
	}
	cur, err := s.Get(ctx, "users", "b01", "replaced")
	if err != nil {
		t.Fatal(err)
	}
	replace := ent("b01", "replaced", map[string]any{"V": "new"})
	replace.ETag = cur.ETag
	ops := []dirsync.BatchOp{
		{Kind: dirsync.BatchInsert, Entity: ent("b01", "inserted", map[string]any{"V": "new"})},
		{Kind: dirsync.BatchReplace, Entity: replace},
		{Kind: dirsync.BatchDelete, Entity: ent("b01", "deleted", nil)},
		{Kind: dirsync.BatchUpsert, Entity: ent("b01", "upserted", map[string]any{"V": "new"})},
		{Kind: dirsync.BatchUpsert, Entity: ent("b01", "merged", map[string]any{"V": "new"})},
	}
	etags, err := s.BatchETags(ctx, "users", ops)
	if err != nil {
		t.Fatal(err)
	}
	etags0 := etags[1]
	var want []string
	for _, op := range ops {
		if op.Kind == dirsync.BatchDelete {
			want = append(want, "")
			continue
		}
		got, err := s.Get(ctx, "users", "b01", op.Entity.RowKey)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, got.ETag)
	}
	if diff := cmp.Diff(want, etags); diff != "" {
		t.Fatalf("ETags (-read back +reported):\n%s", diff)
	}
	// The reported ETag makes a conditional write succeed, and a stale one
	// fail.
	next := ent("b01", "replaced", map[string]any{"V": "newer"})
	next.ETag = etags[1]
	if err := s.Batch(ctx, "users", []dirsync.BatchOp{{Kind: dirsync.BatchReplace, Entity: next}}); err != nil {
		t.Errorf("replace with the reported ETag: %v", err)
	}
	err = s.Batch(ctx, "users", []dirsync.BatchOp{{Kind: dirsync.BatchReplace, Entity: next}})
	wantCode(t, "replace with the reported ETag after it moved", err, dirsync.EPRECONDITION)
	// A failed batch reports nothing, and fails with the failing
	// operation's code, as Batch does.
	etags, err = s.BatchETags(ctx, "users", ops[:1])
	wantCode(t, "BatchETags inserting an existing row", err, dirsync.ECONFLICT)
	if etags != nil {
		t.Errorf("a failed batch reported ETags %v", etags)
	}
	stale := ent("b01", "replaced", map[string]any{"V": "stale"})
	stale.ETag = etags0
	_, err = s.BatchETags(ctx, "users", []dirsync.BatchOp{{Kind: dirsync.BatchReplace, Entity: stale}})
	wantCode(t, "BatchETags replacing with a stale ETag", err, dirsync.EPRECONDITION)
}
