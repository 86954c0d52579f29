package dirsynctest

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Clock is a settable clock for tests.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

func NewClock(t time.Time) *Clock { return &Clock{t: t} }

func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func (c *Clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// Queue is an in-memory dirsync.Queue with duplicate detection and a
// driver that delivers messages like Service Bus (redelivery on error, dead
// letter after MaxDeliveries).
type Queue struct {
	mu       sync.Mutex
	pending  []queued
	seen     map[string]bool
	Sent     int
	Dead     []dirsync.Message
	Attempts map[string]int
	// MaxDeliveries defaults to 10.
	MaxDeliveries int
}

type queued struct {
	msg   dirsync.Message
	count int
	order int
	dup   bool
}

var _ dirsync.Queue = (*Queue)(nil)

func NewQueue() *Queue { return &Queue{seen: map[string]bool{}, Attempts: map[string]int{}} }

func (q *Queue) Send(ctx context.Context, m dirsync.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.seen[m.ID] {
		return nil
	}
	q.seen[m.ID] = true
	q.Sent++
	q.pending = append(q.pending, queued{msg: m, order: q.Sent})
	return nil
}

// Len returns the number of messages not yet completed.
func (q *Queue) Len() int { q.mu.Lock(); defer q.mu.Unlock(); return len(q.pending) }

// Handler processes one delivery.
type Handler func(ctx context.Context, body []byte, d dirsync.Delivery) error

// DrainOptions tune Drain.
type DrainOptions struct {
	// Duplicate delivers every message twice (after success), as an
	// at-least-once queue may.
	Duplicate bool
	// Before is called before each delivery; returning an error simulates a
	// worker crash before completion (the message is redelivered).
	Before func(m dirsync.Message, count int) error
	// MaxSteps bounds the loop (default 100000).
	MaxSteps int
}

// Drain delivers messages until the queue is empty, advancing clock to the
// next scheduled message when nothing is due. It returns the number of
// deliveries.
func (q *Queue) Drain(ctx context.Context, clock *Clock, h Handler, opt DrainOptions) int {
	maxDel := q.MaxDeliveries
	if maxDel == 0 {
		maxDel = 10
	}
	steps := opt.MaxSteps
	if steps == 0 {
		steps = 100000
	}
	n := 0
	for ; n < steps; n++ {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.mu.Unlock()
			return n
		}
		sort.SliceStable(q.pending, func(i, j int) bool {
			a, b := q.pending[i], q.pending[j]
			if !a.msg.NotBefore.Equal(b.msg.NotBefore) {
				return a.msg.NotBefore.Before(b.msg.NotBefore)
			}
			return a.order < b.order
		})
		item := q.pending[0]
		q.pending = q.pending[1:]
		q.mu.Unlock()
		if now := clock.Now(); item.msg.NotBefore.After(now) {
			clock.Set(item.msg.NotBefore)
		}
		item.count++
		q.Attempts[item.msg.ID]++
		var err error
		if opt.Before != nil {
			err = opt.Before(item.msg, item.count)
		}
		if err == nil {
			err = h(ctx, item.msg.Body, dirsync.Delivery{MessageID: item.msg.ID, Count: item.count})
		}
		q.mu.Lock()
		switch {
		case err != nil && item.count >= maxDel:
			q.Dead = append(q.Dead, item.msg)
		case err != nil:
			item.msg.NotBefore = clock.Now().Add(time.Second)
			q.pending = append(q.pending, item)
		case opt.Duplicate && !item.dup:
			// deliver a copy again later, as an at-least-once queue may
			item.dup, item.count, item.order = true, 0, 1<<30+n
			q.pending = append(q.pending, item)
		}
		q.mu.Unlock()
	}
	return n
}
