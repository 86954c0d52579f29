package dirsync

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// The users pages of a round form a chain: a page's fetch needs the link
// its predecessor returned, so every link of the chain adds its latency,
// and anything between two fetches (recording the successor, queueing it,
// the next item's reads of the run and the lock) adds to every page. Two
// things take those off the chain's path:
//
//   - prefetchNext: as soon as Graph answers a page, the item starts
//     fetching the next one (the request its item would make: the link and
//     the page size), and keeps it for that item in this process.
//   - prefetchPage: an item whose page was not prefetched here (another
//     instance fetched its predecessor) starts its fetch as soon as its run
//     is known, beside the lock and page-record reads.
//
// fetchPage takes a prefetched answer for the same request, else fetches.
// A prefetched page is one Graph request made earlier, not an extra one;
// it is dropped unused when its item ends early (its page was applied
// already) or never comes to this process, and is not kept past
// prefetchTTL. With a concurrency of 1, as in the simulator (which replays
// a seed exactly), nothing is prefetched.

// prefetched is a page's Graph request started ahead of its item.
type prefetched struct {
	req  DeltaRequest
	at   time.Time
	done chan struct{}
	page UserPage
	err  error
}

type prefetchKey struct{}

const (
	// maxPrefetched bounds the pages kept for later items (each holds up
	// to a page of users).
	maxPrefetched = 8
	prefetchTTL   = 2 * time.Minute
	// prefetchTimeout bounds a prefetch, which outlives the item that
	// started it.
	prefetchTimeout = 2 * time.Minute
)

// nextPages are the pages prefetchNext fetched, by source and request.
var nextPages = struct {
	sync.Mutex
	m map[string]*prefetched
}{m: map[string]*prefetched{}}

func (e *Engine) prefetchKeyOf(req DeltaRequest) string {
	return fmt.Sprintf("%p|%d|%s", e.Source, req.PageSize, req.Link)
}

// startFetch makes req in the background.
func (e *Engine) startFetch(ctx context.Context, req DeltaRequest) *prefetched {
	p := &prefetched{req: req, at: e.now(), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), prefetchTimeout)
		defer cancel()
		p.page, p.err = e.Source.UsersDelta(ctx, req)
	}()
	return p
}

// prefetchNext starts fetching the page after this one (see above).
func (e *Engine) prefetchNext(ctx context.Context, s Settings, link string) {
	if e.concurrency() < 2 {
		return
	}
	req := DeltaRequest{Link: link, PageSize: s.PageSize}
	key := e.prefetchKeyOf(req)
	nextPages.Lock()
	defer nextPages.Unlock()
	if _, ok := nextPages.m[key]; ok {
		return
	}
	now := e.now()
	for k, p := range nextPages.m {
		if now.Sub(p.at) > prefetchTTL {
			delete(nextPages.m, k)
		}
	}
	if len(nextPages.m) >= maxPrefetched {
		return
	}
	nextPages.m[key] = e.startFetch(ctx, req)
}

// takeNextPage returns (and forgets) the page prefetchNext fetched for req.
func (e *Engine) takeNextPage(req DeltaRequest) *prefetched {
	key := e.prefetchKeyOf(req)
	nextPages.Lock()
	defer nextPages.Unlock()
	p := nextPages.m[key]
	delete(nextPages.m, key)
	if p == nil || e.now().Sub(p.at) > prefetchTTL {
		return nil
	}
	return p
}

// prefetchPage starts a later page's fetch as soon as its run is known,
// unless it was prefetched already (see above).
func (e *Engine) prefetchPage(ctx context.Context, run Run, s Settings, w WorkItem) context.Context {
	if w.Kind != WorkPage || w.Seq == 0 || w.Link == "" || run.Status != RunRunning || e.concurrency() < 2 {
		return ctx
	}
	req := DeltaRequest{Link: w.Link, PageSize: s.PageSize}
	p := e.takeNextPage(req)
	if p == nil {
		p = e.startFetch(ctx, req)
	}
	return context.WithValue(ctx, prefetchKey{}, p)
}

// prefetchedPage is the prefetched answer to req that prefetchPage put in
// ctx, if any. Select is not compared: a link carries its own selection
// (DeltaRequest).
func (e *Engine) prefetchedPage(ctx context.Context, req DeltaRequest) *prefetched {
	p, ok := ctx.Value(prefetchKey{}).(*prefetched)
	if ok && p.req.Link == req.Link && p.req.PageSize == req.PageSize {
		return p
	}
	return nil
}
