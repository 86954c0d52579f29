package table

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Get reads one row. ENOTFOUND when it does not exist.
func (s *Store) Get(ctx context.Context, table, pk, rk string) (dirsync.Entity, error) {
	if err := checkKeys(pk, rk); err != nil {
		return dirsync.Entity{}, err
	}
	var resp aztables.GetEntityResponse
	err := s.withTable(ctx, table, func(c *aztables.Client) (err error) {
		resp, err = c.GetEntity(ctx, pk, rk, nil)
		return err
	})
	if err != nil {
		return dirsync.Entity{}, translateRow("get", table, pk, rk, err)
	}
	e, err := decodeEntity(resp.Value, string(resp.ETag))
	if err != nil {
		return dirsync.Entity{}, fmt.Errorf("table: get %s row (%s, %s): %w", table, pk, rk, err)
	}
	return e, nil
}

// Insert creates a row that must not exist yet (ECONFLICT otherwise).
func (s *Store) Insert(ctx context.Context, table string, e dirsync.Entity) (string, error) {
	body, err := encodeEntity(e)
	if err != nil {
		return "", err
	}
	var resp aztables.AddEntityResponse
	err = s.withTable(ctx, table, func(c *aztables.Client) (err error) {
		resp, err = c.AddEntity(ctx, body, nil)
		return err
	})
	if err != nil {
		return "", translateRow("insert", table, e.PartitionKey, e.RowKey, err)
	}
	return string(resp.ETag), nil
}

// Upsert creates or replaces a row, whatever its ETag.
func (s *Store) Upsert(ctx context.Context, table string, e dirsync.Entity) (string, error) {
	body, err := encodeEntity(e)
	if err != nil {
		return "", err
	}
	var resp aztables.UpsertEntityResponse
	err = s.withTable(ctx, table, func(c *aztables.Client) (err error) {
		resp, err = c.UpsertEntity(ctx, body, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace})
		return err
	})
	if err != nil {
		return "", translateRow("upsert", table, e.PartitionKey, e.RowKey, err)
	}
	return string(resp.ETag), nil
}

// Replace overwrites a row: only if it still has e.ETag when that is set
// (EPRECONDITION otherwise, ENOTFOUND if the row is gone), unconditionally
// (as Upsert) when it is empty.
func (s *Store) Replace(ctx context.Context, table string, e dirsync.Entity) (string, error) {
	if e.ETag == "" {
		return s.Upsert(ctx, table, e)
	}
	body, err := encodeEntity(e)
	if err != nil {
		return "", err
	}
	etag := azcore.ETag(e.ETag)
	var resp aztables.UpdateEntityResponse
	err = s.withTable(ctx, table, func(c *aztables.Client) (err error) {
		resp, err = c.UpdateEntity(ctx, body, &aztables.UpdateEntityOptions{UpdateMode: aztables.UpdateModeReplace, IfMatch: &etag})
		return err
	})
	if err != nil {
		return "", translateRow("replace", table, e.PartitionKey, e.RowKey, err)
	}
	return string(resp.ETag), nil
}

// Delete removes a row; a missing row is not an error. A non-empty etag makes
// the delete conditional (EPRECONDITION when the row has changed).
func (s *Store) Delete(ctx context.Context, table, pk, rk, etag string) error {
	if err := checkKeys(pk, rk); err != nil {
		return err
	}
	opts := &aztables.DeleteEntityOptions{}
	if etag != "" {
		opts.IfMatch = (*azcore.ETag)(&etag)
	}
	err := s.withTable(ctx, table, func(c *aztables.Client) error {
		_, err := c.DeleteEntity(ctx, pk, rk, opts)
		return err
	})
	if err != nil {
		err = translateRow("delete", table, pk, rk, err)
		if dirsync.IsCode(err, dirsync.ENOTFOUND) {
			return nil
		}
		return err
	}
	return nil
}
