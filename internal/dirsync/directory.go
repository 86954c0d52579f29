package dirsync

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
)

// UserQuery selects directory users for the admin API.
type UserQuery struct {
	// Status filters by status ("" = any).
	Status string
	// Prefix matches the start of the display name or the email,
	// case-insensitively.
	Prefix string
	// Limit is the page size (1..100, default 50).
	Limit int
	// Token continues a previous listing.
	Token string
}

type userCursor struct {
	Bucket int    `json:"b"`
	Cont   string `json:"c,omitempty"`
}

// userScanBudget bounds the storage pages one listing call reads, so a
// search that matches little answers promptly with a token to go on.
const userScanBudget = 8

// ListUsers returns directory users bucket by bucket (not sorted by name:
// the storage layout is by object id). A non-empty token means more may
// follow, even when this page has fewer than Limit users.
// Errors: EINVALID for a bad status, prefix or token.
func (e *Engine) ListUsers(ctx context.Context, q UserQuery) ([]User, string, error) {
	switch q.Status {
	case "", StatusActive, StatusDuplicate, StatusSkipped:
	default:
		return nil, "", Errorf(EINVALID, "status %q is not one of active, duplicate, skipped", q.Status)
	}
	if len(q.Prefix) > 256 {
		return nil, "", Errorf(EINVALID, "the search prefix is longer than 256 characters")
	}
	limit := q.Limit
	if limit <= 0 || limit > 100 {
		limit = 50
	}
	cur := userCursor{}
	if q.Token != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.Token)
		if err != nil || json.Unmarshal(b, &cur) != nil || cur.Bucket < 0 || cur.Bucket >= UserBuckets {
			return nil, "", Errorf(EINVALID, "the paging token is not valid").WithHint("Start the listing again without a token.")
		}
	}
	prefix := strings.ToLower(q.Prefix)
	var out []User
	for range userScanBudget {
		page, err := e.Store.Query(ctx, TableUsers, Query{PartitionKey: bucketKey(cur.Bucket), RowKeyBefore: countsRowKey, Top: limit, Continuation: cur.Cont})
		if err != nil {
			return nil, "", err
		}
		for _, ent := range page.Entities {
			u := userFromEntity(ent)
			if q.Status != "" && u.Status != q.Status {
				continue
			}
			if prefix != "" && !strings.HasPrefix(strings.ToLower(u.Fields["displayName"]), prefix) && !strings.HasPrefix(u.Email, prefix) {
				continue
			}
			out = append(out, u)
		}
		cur.Cont = page.Continuation
		if cur.Cont == "" {
			cur.Bucket++
			if cur.Bucket >= UserBuckets {
				return out, "", nil
			}
		}
		if len(out) >= limit {
			break
		}
	}
	b, _ := json.Marshal(cur)
	return out, base64.RawURLEncoding.EncodeToString(b), nil
}
