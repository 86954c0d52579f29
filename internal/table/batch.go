package table

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/entrasync/entrasync/internal/azure"
	"github.com/entrasync/entrasync/internal/dirsync"
)

// Batch applies up to dirsync.MaxBatch operations on rows of one partition as
// one entity group transaction: all of them or none. A failing operation fails
// the batch with that operation's code, as a *dirsync.BatchOpError naming
// it when the service says which (it does, and so does Azurite).
//
// Unlike Store.Delete, a BatchDelete of a missing row fails the batch
// (ENOTFOUND): an atomic batch cannot skip one of its operations.
func (s *Store) Batch(ctx context.Context, table string, ops []dirsync.BatchOp) error {
	_, err := s.batch(ctx, table, ops, false)
	return err
}

// BatchETags is Batch, also returning the ETag each row got, in the order
// of ops ("" for a delete), read from the transaction's response: the SDK
// parses it and drops it (its TransactionResponse has no fields), so a
// policy keeps the body (keepBatchBody). nil when the response could not
// be read as expected.
func (s *Store) BatchETags(ctx context.Context, table string, ops []dirsync.BatchOp) ([]string, error) {
	return s.batch(ctx, table, ops, true)
}

func (s *Store) batch(ctx context.Context, table string, ops []dirsync.BatchOp, wantETags bool) ([]string, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	if len(ops) > dirsync.MaxBatch {
		return nil, dirsync.Errorf(dirsync.EINVALID, "a batch holds %d operations; the limit is %d", len(ops), dirsync.MaxBatch).
			WithHint("split the batch")
	}
	pk := ops[0].Entity.PartitionKey
	seen := make(map[string]bool, len(ops))
	actions := make([]aztables.TransactionAction, len(ops))
	for i, op := range ops {
		e := op.Entity
		if e.PartitionKey != pk {
			return nil, dirsync.Errorf(dirsync.EINVALID, "batch operation %d is for partition %s but operation 0 is for %s; a batch covers one partition", i, quoteKey(e.PartitionKey), quoteKey(pk)).
				WithHint("group the operations by partition key")
		}
		if seen[e.RowKey] {
			return nil, dirsync.Errorf(dirsync.EINVALID, "batch operation %d repeats row %s; a batch may touch each row once", i, quoteKey(e.RowKey)).
				WithHint("merge the operations on that row")
		}
		seen[e.RowKey] = true
		a, err := transactionAction(op)
		if err != nil {
			return nil, fmt.Errorf("batch operation %d: %w", i, err)
		}
		actions[i] = a
	}
	var kept *keptBody
	if wantETags {
		kept = &keptBody{}
		ctx = context.WithValue(ctx, keptBodyKey{}, kept)
	}
	err := s.withTable(ctx, table, func(c *aztables.Client) error {
		_, err := c.SubmitTransaction(ctx, actions, nil)
		return batchError(err)
	})
	if err != nil {
		return nil, translateBatch(table, pk, ops, err)
	}
	if kept == nil {
		return nil, nil
	}
	return batchETags(kept.body, ops), nil
}

// keptBody receives a transaction's response body (keepBatchBody).
type keptBody struct{ body []byte }

type keptBodyKey struct{}

// keepBatchBody is a pipeline policy that keeps a copy of the response body
// of a request whose context holds a *keptBody (the last attempt's).
type keepBatchBody struct{}

func (keepBatchBody) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	kept, ok := req.Raw().Context().Value(keptBodyKey{}).(*keptBody)
	if err != nil || !ok || resp == nil || resp.Body == nil {
		return resp, err
	}
	// runtime.Payload leaves the body readable again (the SDK reads it
	// after us, and batchError reads a failure's body once more).
	kept.body = nil
	if body, err := runtime.Payload(resp); err == nil {
		kept.body = body
	}
	return resp, nil
}

var innerETag = regexp.MustCompile(`(?mi)^ETag:[ \t]*(\S+)\r?$`)

// batchETags reads, from a successful transaction's multipart response,
// the ETag of each operation's row, in order (the service answers the
// operations of a changeset in the order they were sent). nil unless it
// finds one inner response per operation, each with an ETag but deletes.
func batchETags(body []byte, ops []dirsync.BatchOp) []string {
	starts := innerStatus.FindAllIndex(body, -1)
	if len(starts) != len(ops) {
		return nil
	}
	etags := make([]string, len(ops))
	for i, at := range starts {
		end := len(body)
		if i+1 < len(starts) {
			end = starts[i+1][0]
		}
		part := body[at[0]:end]
		if h := bytes.Index(part, []byte("\r\n\r\n")); h >= 0 {
			part = part[:h]
		}
		m := innerETag.FindSubmatch(part)
		switch {
		case m != nil:
			etags[i] = string(m[1])
		case ops[i].Kind != dirsync.BatchDelete:
			return nil
		}
	}
	return etags
}

func transactionAction(op dirsync.BatchOp) (aztables.TransactionAction, error) {
	e := op.Entity
	var a aztables.TransactionAction
	if err := checkKeys(e.PartitionKey, e.RowKey); err != nil {
		return a, err
	}
	if e.ETag != "" && (op.Kind == dirsync.BatchReplace || op.Kind == dirsync.BatchDelete) {
		a.IfMatch = (*azcore.ETag)(&e.ETag)
	}
	// Every kind but insert addresses the row in the request URL, where the
	// SDK puts batch keys without the quote escaping its single-row methods
	// apply (Azure/azure-sdk-for-go#21048), so we escape them ourselves.
	pk, rk := escapeURLKey(e.PartitionKey), escapeURLKey(e.RowKey)
	props := e.Props
	switch op.Kind {
	case dirsync.BatchInsert:
		a.ActionType = aztables.TransactionTypeAdd
		pk, rk = e.PartitionKey, e.RowKey // POSTed in the body only
	case dirsync.BatchUpsert:
		a.ActionType = aztables.TransactionTypeInsertReplace
	case dirsync.BatchReplace:
		// Without If-Match the service treats the PUT as insert-or-replace,
		// which is what Replace without an ETag promises.
		a.ActionType = aztables.TransactionTypeUpdateReplace
	case dirsync.BatchDelete:
		a.ActionType = aztables.TransactionTypeDelete
		props = nil // only the keys matter
	default:
		return a, dirsync.Errorf(dirsync.EINVALID, "unknown batch operation kind %d", op.Kind).
			WithHint("use one of dirsync.BatchInsert, BatchUpsert, BatchReplace, BatchDelete")
	}
	body, err := encodeBody(pk, rk, props)
	if err != nil {
		return a, err
	}
	a.Entity = body
	return a, nil
}

// escapeURLKey doubles single quotes, as OData string literals need. The
// service (and Azurite) take the row's keys from the URL, so the doubled
// quotes in the body do not end up in the stored keys.
func escapeURLKey(k string) string { return strings.ReplaceAll(k, "'", "''") }

// batchFailure is one failed operation inside a transaction. The service
// answers a failed transaction with 202 Accepted and puts the failing
// operation's status and error in the multipart body; the SDK turns that into
// a ResponseError with no error code and status 202, so we read the body.
type batchFailure struct {
	Index  int // -1 when the service did not say
	Status int
	Code   string
	err    error
}

func (f *batchFailure) Error() string {
	return fmt.Sprintf("transaction failed at operation %d: %d %s", f.Index, f.Status, f.Code)
}
func (f *batchFailure) Unwrap() error { return f.err }

var (
	innerStatus = regexp.MustCompile(`HTTP/1\.[01] (\d{3})`)
	opIndex     = regexp.MustCompile(`^(\d+):`)
)

// batchError replaces a transaction's ResponseError by a *batchFailure read
// from the response body, when there is one.
func batchError(err error) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.RawResponse == nil {
		return err
	}
	body, perr := runtime.Payload(re.RawResponse)
	if perr != nil || len(body) == 0 {
		return err
	}
	f := parseBatchFailure(body)
	if f == nil {
		return err
	}
	f.err = err
	return f
}

func parseBatchFailure(body []byte) *batchFailure {
	for _, m := range innerStatus.FindAllSubmatchIndex(body, -1) {
		status, _ := strconv.Atoi(string(body[m[2]:m[3]]))
		if status < 400 {
			continue
		}
		f := &batchFailure{Index: -1, Status: status}
		rest := body[m[1]:]
		if i := bytes.IndexByte(rest, '{'); i >= 0 {
			var doc struct {
				ODataError struct {
					Code    string `json:"code"`
					Message struct {
						Value string `json:"value"`
					} `json:"message"`
				} `json:"odata.error"`
			}
			if json.NewDecoder(bytes.NewReader(rest[i:])).Decode(&doc) == nil {
				f.Code = doc.ODataError.Code
				if sm := opIndex.FindStringSubmatch(doc.ODataError.Message.Value); sm != nil {
					f.Index, _ = strconv.Atoi(sm[1])
				}
			}
		}
		return f
	}
	return nil
}

// translateBatch names the failing operation in the message and, when the
// service said which it was, returns a *dirsync.BatchOpError with its index.
func translateBatch(table, pk string, ops []dirsync.BatchOp, err error) error {
	batch := fmt.Sprintf("batch of %d operations on %s partition %s", len(ops), table, quoteKey(pk))
	var f *batchFailure
	if !errors.As(err, &f) {
		return translate(batch, err)
	}
	resp := azure.Response{Status: f.Status, Code: f.Code}
	if f.Index < 0 || f.Index >= len(ops) {
		return fromResponse(tableStorage.Name+": "+batch, resp, err)
	}
	o := ops[f.Index]
	op := fmt.Sprintf("batch of %d operations on %s: operation %d (%s row (%s, %s))",
		len(ops), table, f.Index, kindName(o.Kind), quoteKey(o.Entity.PartitionKey), quoteKey(o.Entity.RowKey))
	return &dirsync.BatchOpError{Index: f.Index, Err: fromResponse(tableStorage.Name+": "+op, resp, err)}
}

func kindName(k dirsync.BatchKind) string {
	switch k {
	case dirsync.BatchInsert:
		return "insert"
	case dirsync.BatchUpsert:
		return "upsert"
	case dirsync.BatchReplace:
		return "replace"
	case dirsync.BatchDelete:
		return "delete"
	}
	return "operation " + strconv.Itoa(int(k))
}
