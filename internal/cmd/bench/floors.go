package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/graph"
	"github.com/entrasync/entrasync/internal/graphsim"
	"github.com/entrasync/entrasync/internal/table"
)

// floorResult is how fast the storage or Graph side alone goes.
type floorResult struct {
	Seconds  float64 `json:"seconds"`
	Entities int64   `json:"entities,omitempty"`
	Batches  int64   `json:"batches,omitempty"`
	Workers  int     `json:"workers,omitempty"`
	Pages    int64   `json:"pages,omitempty"`
	Users    int64   `json:"users,omitempty"`
	PerSec   float64 `json:"perSecond"`
}

// storageFloor writes, with batched upserts through the table adapter, the
// rows a first sync of the tenant writes at the least: one user row and one
// email claim per user, shaped like the engine's (same partitions, the same
// properties and sizes), into tables of their own prefix in the same Azurite.
// workers batches are in flight at once.
func storageFloor(ctx context.Context, conn string, users []graphsim.User, settings dirsync.Settings, workers int, out io.Writer) (floorResult, error) {
	st, err := table.New(table.Config{ConnectionString: conn, TablePrefix: "benchfloor"})
	if err != nil {
		return floorResult{}, err
	}
	now := time.Now().UTC()
	byTable := map[string]map[string][]dirsync.BatchOp{dirsync.TableUsers: {}, dirsync.TableEmails: {}}
	for _, u := range users {
		email := attr(u, "mail")
		if email == "" {
			email = attr(u, "userPrincipalName")
		}
		props := map[string]any{
			"status": "active", "hash": hash(u), "runSeq": int64(1), "pageSeq": int64(1), "action": "added",
			"createdAt": now, "changedAt": now, "email": email, "upn": attr(u, "userPrincipalName"),
		}
		for _, m := range settings.Mapping {
			v := attr(u, m.Source)
			if v == "" && m.Fallback != "" {
				v = attr(u, m.Fallback)
			}
			if v != "" {
				props["f_"+m.Field] = v
			}
		}
		ue := dirsync.Entity{PartitionKey: dirsync.Bucket(u.ID), RowKey: u.ID, Props: props}
		byTable[dirsync.TableUsers][ue.PartitionKey] = append(byTable[dirsync.TableUsers][ue.PartitionKey], dirsync.BatchOp{Kind: dirsync.BatchUpsert, Entity: ue})
		if email != "" {
			ce := dirsync.Entity{PartitionKey: dirsync.Bucket(email), RowKey: "c|" + dirsync.EscapeKey(email),
				Props: map[string]any{"owner": u.ID, "email": email, "runSeq": int64(1)}}
			byTable[dirsync.TableEmails][ce.PartitionKey] = append(byTable[dirsync.TableEmails][ce.PartitionKey], dirsync.BatchOp{Kind: dirsync.BatchUpsert, Entity: ce})
		}
	}
	type batch struct {
		table string
		ops   []dirsync.BatchOp
	}
	var batches []batch
	var entities int64
	for tbl, parts := range byTable {
		for _, ops := range parts {
			// A claim row key is unique per email; two users sharing an
			// email would repeat a row in one batch, which Azure refuses.
			ops = uniqueRows(ops)
			entities += int64(len(ops))
			for len(ops) > 0 {
				n := min(len(ops), dirsync.MaxBatch)
				batches = append(batches, batch{tbl, ops[:n]})
				ops = ops[n:]
			}
		}
	}
	// Tables are created on first use; create them before the clock starts.
	for tbl := range byTable {
		if err := st.Batch(ctx, tbl, []dirsync.BatchOp{{Kind: dirsync.BatchUpsert, Entity: dirsync.Entity{PartitionKey: "warm", RowKey: "warm", Props: map[string]any{}}}}); err != nil {
			return floorResult{}, fmt.Errorf("create %s: %w", tbl, err)
		}
	}

	began := time.Now()
	work := make(chan batch)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				if err := st.Batch(ctx, b.table, b.ops); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var ferr error
feed:
	for i, b := range batches {
		// Progress every ~10%: Azurite slows as its tables grow, and a
		// silent minute-long step looks like a hang.
		if step := len(batches) / 10; step > 0 && i > 0 && i%step == 0 {
			fmt.Fprintf(out, "   storage floor: %d%% after %.0fs\n", 100*i/len(batches), time.Since(began).Seconds())
		}
		select {
		case work <- b:
		case ferr = <-errs:
			break feed
		}
	}
	close(work)
	wg.Wait()
	if ferr == nil && len(errs) > 0 {
		ferr = <-errs
	}
	if ferr != nil {
		return floorResult{}, fmt.Errorf("storage floor: %w", ferr)
	}
	secs := time.Since(began).Seconds()
	return floorResult{Seconds: secs, Entities: entities, Batches: int64(len(batches)), Workers: workers, PerSec: float64(entities) / secs}, nil
}

func uniqueRows(ops []dirsync.BatchOp) []dirsync.BatchOp {
	seen := make(map[string]bool, len(ops))
	out := ops[:0]
	for _, op := range ops {
		if !seen[op.Entity.RowKey] {
			seen[op.Entity.RowKey] = true
			out = append(out, op)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Entity.RowKey < out[j].Entity.RowKey })
	return out
}

func attr(u graphsim.User, name string) string {
	s, _ := u.Attributes[name].(string)
	return s
}

// hash stands in for the engine's content hash: same length, so the rows
// weigh the same.
func hash(u graphsim.User) string {
	sum := sha256.Sum256([]byte(fmt.Sprint(u.ID, u.Attributes)))
	return hex.EncodeToString(sum[:])
}

// graphFloor pages through the whole tenant with the Graph adapter alone,
// asking for what the engine asks for, and decodes every page as the engine
// would receive it; nothing is stored.
func graphFloor(ctx context.Context, sim *graphsim.Server, settings dirsync.Settings) (floorResult, error) {
	gc := sim.Config()
	src, err := graph.New(graph.Config{
		TenantID: gc.TenantID, ClientID: gc.ClientID, ClientSecret: gc.ClientSecret,
		AuthorityHost: sim.AuthorityHost(), GraphBaseURL: sim.GraphBaseURL(), TrustedCAPEM: sim.CertificatePEM(),
	})
	if err != nil {
		return floorResult{}, err
	}
	began := time.Now()
	var res floorResult
	req := dirsync.DeltaRequest{Select: settings.SelectAttributes(), PageSize: settings.PageSize}
	for {
		page, err := src.UsersDelta(ctx, req)
		if err != nil {
			return floorResult{}, fmt.Errorf("graph floor, page %d: %w", res.Pages+1, err)
		}
		res.Pages++
		res.Users += int64(len(page.Users))
		if page.NextLink == "" {
			break
		}
		req = dirsync.DeltaRequest{Link: page.NextLink, PageSize: settings.PageSize}
	}
	res.Seconds = time.Since(began).Seconds()
	res.PerSec = float64(res.Users) / res.Seconds
	return res, nil
}

// requestCost is what single requests cost in the Azurite of a synced
// tenant: Azurite looks a row up by scanning its partition (LokiJS finds
// the partition by index, then compares every row key), so the same
// request costs more in a larger directory. It explains the incremental
// runs' times, which make the same requests at every tenant size.
type requestCost struct {
	// PointReadMs: a Get of an existing user row; MissingReadMs: of an id
	// the directory does not hold (both in ms, one request at a time).
	PointReadMs   float64 `json:"pointReadMs"`
	MissingReadMs float64 `json:"missingReadMs"`
	Reads         int     `json:"reads"`
}

// probeRequestCost times reads of user rows, one at a time, in the tables
// of the handler (prefix entrasync).
func probeRequestCost(ctx context.Context, conn string, users []graphsim.User) (requestCost, error) {
	st, err := table.New(table.Config{ConnectionString: conn})
	if err != nil {
		return requestCost{}, err
	}
	const reads = 300
	rc := requestCost{Reads: reads}
	time1 := func(id string, wantFound bool) (time.Duration, error) {
		start := time.Now()
		_, err := st.Get(ctx, dirsync.TableUsers, dirsync.Bucket(id), id)
		if wantFound && err != nil || !wantFound && !dirsync.IsCode(err, dirsync.ENOTFOUND) {
			return 0, fmt.Errorf("probe read of %s: %v", id, err)
		}
		return time.Since(start), nil
	}
	var found, missing time.Duration
	for i := range reads {
		d, err := time1(users[i*len(users)/reads].ID, true)
		if err != nil {
			return rc, err
		}
		found += d
		if d, err = time1(fmt.Sprintf("ffffffff-0000-4000-8000-%012d", i), false); err != nil {
			return rc, err
		}
		missing += d
	}
	rc.PointReadMs = found.Seconds() * 1000 / reads
	rc.MissingReadMs = missing.Seconds() * 1000 / reads
	return rc, nil
}
