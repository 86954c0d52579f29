package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/entrasync/entrasync/internal/azurite"
	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/table"
)

func main() {
	ctx := context.Background()
	n, _ := strconv.Atoi(os.Args[1])
	inst, err := azurite.Start(ctx, azurite.Options{})
	if err != nil {
		panic(err)
	}
	defer inst.Close()
	st, err := table.New(table.Config{ConnectionString: inst.ConnectionString()})
	if err != nil {
		panic(err)
	}
	props := func(i int) map[string]any {
		return map[string]any{"f_displayName": fmt.Sprintf("User %d", i), "f_mail": fmt.Sprintf("user%d@contoso.example", i), "status": "active", "runSeq": int64(1), "pageSeq": int64(i), "hash": "abcdef0123456789"}
	}
	id := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
	byPK := map[string][]dirsync.BatchOp{}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		pk := dirsync.Bucket(id(i))
		byPK[pk] = append(byPK[pk], dirsync.BatchOp{Kind: dirsync.BatchUpsert, Entity: dirsync.Entity{PartitionKey: pk, RowKey: id(i), Props: props(i)}})
		if len(byPK[pk]) == 100 {
			if err := st.Batch(ctx, dirsync.TableUsers, byPK[pk]); err != nil {
				panic(err)
			}
			byPK[pk] = nil
		}
	}
	for _, ops := range byPK {
		if len(ops) > 0 {
			if err := st.Batch(ctx, dirsync.TableUsers, ops); err != nil {
				panic(err)
			}
		}
	}
	fmt.Printf("n=%d fill %.1fs\n", n, time.Since(t0).Seconds())
	const k = 1000
	t0 = time.Now()
	for i := 0; i < k; i++ {
		j := i * (n / k)
		if _, err := st.Get(ctx, dirsync.TableUsers, dirsync.Bucket(id(j)), id(j)); err != nil {
			panic(err)
		}
	}
	fmt.Printf("  get existing: %.2f ms\n", time.Since(t0).Seconds()*1000/k)
	t0 = time.Now()
	for i := 0; i < k; i++ {
		j := n + i
		st.Get(ctx, dirsync.TableUsers, dirsync.Bucket(id(j)), id(j))
	}
	fmt.Printf("  get missing: %.2f ms\n", time.Since(t0).Seconds()*1000/k)
	t0 = time.Now()
	for i := 0; i < 200; i++ {
		var ops []dirsync.BatchOp
		pk := ""
		for j := n + 10000 + i*1000; len(ops) < 12; j++ {
			if p := dirsync.Bucket(id(j)); pk == "" || p == pk {
				pk = p
				ops = append(ops, dirsync.BatchOp{Kind: dirsync.BatchInsert, Entity: dirsync.Entity{PartitionKey: p, RowKey: id(j), Props: props(j)}})
			}
		}
		if err := st.Batch(ctx, dirsync.TableUsers, ops); err != nil {
			panic(err)
		}
	}
	fmt.Printf("  batch of 12 inserts: %.2f ms\n", time.Since(t0).Seconds()*1000/200)
	t0 = time.Now()
	for i := 0; i < 200; i++ {
		j := i * (n / 200)
		e := dirsync.Entity{PartitionKey: dirsync.Bucket(id(j)), RowKey: id(j), Props: props(j)}
		if _, err := st.Upsert(ctx, dirsync.TableUsers, e); err != nil {
			panic(err)
		}
	}
	fmt.Printf("  single upsert: %.2f ms\n", time.Since(t0).Seconds()*1000/200)
	t0 = time.Now()
	for i := 0; i < 200; i++ {
		j := i*(n/200) + 1
		if err := st.Delete(ctx, dirsync.TableUsers, dirsync.Bucket(id(j)), id(j), ""); err != nil {
			panic(err)
		}
	}
	fmt.Printf("  delete: %.2f ms\n", time.Since(t0).Seconds()*1000/200)
	t0 = time.Now()
	q := dirsync.Query{PartitionKey: "b03"}
	pages := 0
	for {
		p, err := st.Query(ctx, dirsync.TableUsers, q)
		if err != nil {
			panic(err)
		}
		pages++
		if p.Continuation == "" {
			break
		}
		q.Continuation = p.Continuation
	}
	fmt.Printf("  query partition b03: %d pages, %.1f ms/page\n", pages, time.Since(t0).Seconds()*1000/float64(pages))
	t0 = time.Now()
	for i := 0; i < 50; i++ {
		st.Query(ctx, dirsync.TableUsers, dirsync.Query{PartitionKey: "b03", RowKeyBefore: "~", Top: 1})
	}
	fmt.Printf("  query top 1: %.2f ms\n", time.Since(t0).Seconds()*1000/50)
}
