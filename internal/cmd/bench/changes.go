package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"
)

// changeSet is what was changed in the simulated directory before an
// incremental run.
type changeSet struct {
	Total       int     `json:"total"`
	Attributes  int     `json:"attributeChanges"`
	Adds        int     `json:"adds"`
	SoftDeletes int     `json:"softDeletes"`
	HardDeletes int     `json:"hardDeletes"`
	Seconds     float64 `json:"seconds"`
}

// makeChanges changes n users through the simulator's control API (HTTPS,
// as a test or developer would): 60% get a new job title, 20% are new users,
// 10% are soft-deleted and 10% hard-deleted. The existing users touched are
// spread evenly over the id order, so they fall on many delta pages and
// partitions, as real changes do.
func (bs *benchStack) makeChanges(ctx context.Context, n int) (changeSet, error) {
	users := bs.Graph.Tenant().Users()
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	sort.Strings(ids)
	cs := changeSet{Adds: n / 5, SoftDeletes: n / 10, HardDeletes: n / 10}
	cs.Attributes = n - cs.Adds - cs.SoftDeletes - cs.HardDeletes
	existing := cs.Attributes + cs.SoftDeletes + cs.HardDeletes
	if existing > len(ids) {
		return cs, fmt.Errorf("%d changes of existing users but the tenant has %d", existing, len(ids))
	}
	stride := len(ids) / max(existing, 1)
	pick := func(i int) string { return ids[i*stride] }

	began := time.Now()
	var i int
	for k := range cs.Attributes {
		if err := bs.sim(ctx, http.MethodPatch, "/_sim/users/"+pick(i), map[string]any{"jobTitle": fmt.Sprintf("Bench title %d", k)}); err != nil {
			return cs, err
		}
		i++
	}
	for range cs.SoftDeletes {
		if err := bs.sim(ctx, http.MethodDelete, "/_sim/users/"+pick(i), nil); err != nil {
			return cs, err
		}
		i++
	}
	for range cs.HardDeletes {
		if err := bs.sim(ctx, http.MethodDelete, "/_sim/users/"+pick(i)+"?hard=true", nil); err != nil {
			return cs, err
		}
		i++
	}
	for k := range cs.Adds {
		upn := fmt.Sprintf("bench.added%d@contoso.onmicrosoft.com", k)
		if err := bs.sim(ctx, http.MethodPost, "/_sim/users", map[string]any{
			"displayName": fmt.Sprintf("Bench Added %d", k), "givenName": "Bench", "surname": fmt.Sprintf("Added%d", k),
			"userPrincipalName": upn, "mail": upn, "jobTitle": "Engineer", "department": "Benchmarks", "accountEnabled": true,
		}); err != nil {
			return cs, err
		}
	}
	cs.Total = n
	cs.Seconds = time.Since(began).Seconds()
	return cs, nil
}

func (bs *benchStack) sim(ctx context.Context, method, path string, body any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, bs.Graph.URL()+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := bs.tls.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %.300s", method, path, resp.StatusCode, b)
	}
	return nil
}
