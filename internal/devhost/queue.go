package devhost

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Message is a message to send to a devhost queue.
type Message struct {
	// ID is the MessageId; duplicate detection drops a second message with
	// the same id within the window. Empty gets a random id.
	ID   string
	Body []byte
	// ScheduledEnqueueTime delays delivery until then (zero: now).
	ScheduledEnqueueTime  time.Time
	ApplicationProperties map[string]any
	ContentType           string
	CorrelationID         string
	Subject               string
}

// SendResult says what happened to a sent message.
type SendResult struct {
	MessageID      string
	SequenceNumber int64
	Duplicate      bool // dropped by duplicate detection
	Scheduled      bool
}

// QueueCounts are a queue's message counts. Active includes messages being
// delivered (locked), as Service Bus counts them.
type QueueCounts struct {
	Queue        string `json:"queue"`
	Active       int    `json:"active"`
	Scheduled    int    `json:"scheduled"`
	DeadLettered int    `json:"deadLettered"`
	InFlight     int    `json:"inFlight"`
}

// DeadLetter is a dead-lettered message.
type DeadLetter struct {
	MessageID                  string         `json:"messageId"`
	Body                       string         `json:"body"`
	DeliveryCount              int            `json:"deliveryCount"`
	DeadLetterReason           string         `json:"deadLetterReason"`
	DeadLetterErrorDescription string         `json:"deadLetterErrorDescription"`
	EnqueuedTimeUTC            time.Time      `json:"enqueuedTimeUtc"`
	SequenceNumber             int64          `json:"sequenceNumber"`
	ApplicationProperties      map[string]any `json:"applicationProperties,omitempty"`
}

type msgState int

const (
	stateScheduled msgState = iota // waiting for its scheduled enqueue time
	stateActive                    // deliverable at availableAt
	stateLocked                    // being delivered
)

type message struct {
	Message
	seq           int64
	enqueued      time.Time // when it became active (the scheduled time for scheduled messages)
	availableAt   time.Time
	deliveryCount int
	lockToken     string
	lastError     string
	state         msgState
}

// notifier wakes every waiter when something changes.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{})} }

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}

// queue is an in-process Service Bus queue: peek-lock delivery, abandon and
// redelivery with a growing DeliveryCount, dead-lettering after
// maxDelivery deliveries, scheduled messages and duplicate detection.
type queue struct {
	name        string
	maxDelivery int
	dupWindow   time.Duration
	redelivery  time.Duration
	maxSize     int
	// lockLimit is how long a delivery keeps its lock: the lock duration
	// plus maxAutoLockRenewalDuration. A delivery running longer loses the
	// lock and the message is delivered again while it still runs, as with
	// Service Bus. Zero: no limit.
	lockLimit time.Duration
	changed   *notifier // shared by all queues of a host

	mu   sync.Mutex
	seq  int64
	msgs []*message // not dead-lettered, in sequence order
	dead []*message
	seen map[string]time.Time // message id -> when sent
}

// errTooLarge is returned for a message over the size limit.
type errTooLarge struct{ size, max int }

func (e errTooLarge) Error() string {
	return fmt.Sprintf("the message is %d bytes; the queue accepts at most %d (the Service Bus Standard tier limit)", e.size, e.max)
}

func (q *queue) send(m Message, now time.Time) (SendResult, error) {
	if size := len(m.Body) + propsSize(m.ApplicationProperties); size > q.maxSize {
		return SendResult{}, errTooLarge{size, q.maxSize}
	}
	if m.ID == "" {
		m.ID = newUUID()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for id, at := range q.seen {
		if now.Sub(at) >= q.dupWindow {
			delete(q.seen, id)
		}
	}
	if _, dup := q.seen[m.ID]; dup {
		return SendResult{MessageID: m.ID, Duplicate: true}, nil
	}
	q.seen[m.ID] = now
	q.seq++
	msg := &message{Message: m, seq: q.seq, state: stateActive, enqueued: now, availableAt: now}
	msg.Body = append([]byte(nil), m.Body...)
	scheduled := m.ScheduledEnqueueTime.After(now)
	if scheduled {
		msg.state = stateScheduled
		msg.enqueued = m.ScheduledEnqueueTime
		msg.availableAt = m.ScheduledEnqueueTime
	}
	q.msgs = append(q.msgs, msg)
	q.changed.notify()
	return SendResult{MessageID: m.ID, SequenceNumber: msg.seq, Scheduled: scheduled}, nil
}

func propsSize(p map[string]any) int {
	n := 0
	for k, v := range p {
		n += len(k) + len(fmt.Sprint(v))
	}
	return n
}

// lock takes the next deliverable message: the earliest enqueued among those
// whose time has come. It returns nil and how long to wait when none is.
func (q *queue) lock(now time.Time) (*message, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var best *message
	wait := time.Duration(-1)
	for _, m := range q.msgs {
		if m.state == stateLocked {
			continue
		}
		if m.availableAt.After(now) {
			if d := m.availableAt.Sub(now); wait < 0 || d < wait {
				wait = d
			}
			continue
		}
		if best == nil || m.enqueued.Before(best.enqueued) || (m.enqueued.Equal(best.enqueued) && m.seq < best.seq) {
			best = m
		}
	}
	if best == nil {
		return nil, wait
	}
	best.state = stateLocked
	best.deliveryCount++
	best.lockToken = newUUID()
	q.changed.notify()
	cp := *best
	return &cp, 0
}

// settle completes the delivery of message seq under lockToken: a nil err
// completes (deletes) it; an error abandons it, so it is redelivered after the
// redelivery delay, or dead-lettered once it has been delivered maxDelivery
// times. A delivery whose lock was lost settles nothing (lost is true).
func (q *queue) settle(seq int64, lockToken string, err error, now time.Time) (lost bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	defer q.changed.notify()
	i := slices.IndexFunc(q.msgs, func(m *message) bool { return m.seq == seq })
	if i < 0 || q.msgs[i].state != stateLocked || q.msgs[i].lockToken != lockToken {
		return true
	}
	if err == nil {
		q.msgs = slices.Delete(q.msgs, i, i+1)
		return false
	}
	q.abandon(i, err.Error(), now)
	return false
}

// abandon puts q.msgs[i] back for redelivery, or dead-letters it. q.mu is held.
func (q *queue) abandon(i int, reason string, now time.Time) {
	m := q.msgs[i]
	m.lastError = reason
	if m.deliveryCount >= q.maxDelivery {
		q.msgs = slices.Delete(q.msgs, i, i+1)
		q.dead = append(q.dead, m)
		return
	}
	m.state = stateActive
	m.availableAt = now.Add(q.redelivery)
}

// expireLock ends the lock of a delivery that ran past lockLimit: the message
// becomes deliverable again (or is dead-lettered) while the first delivery
// may still run.
func (q *queue) expireLock(seq int64, lockToken string, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.IndexFunc(q.msgs, func(m *message) bool { return m.seq == seq })
	if i < 0 || q.msgs[i].state != stateLocked || q.msgs[i].lockToken != lockToken {
		return false
	}
	q.abandon(i, fmt.Sprintf("the lock expired after %s: the function ran longer than the lock duration plus maxAutoLockRenewalDuration", q.lockLimit), now)
	if j := slices.IndexFunc(q.msgs, func(m *message) bool { return m.seq == seq }); j >= 0 {
		q.msgs[j].availableAt = now // a lost lock is not an abandon: no redelivery delay
	}
	q.changed.notify()
	return true
}

func (q *queue) counts(now time.Time) QueueCounts {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := QueueCounts{Queue: q.name, DeadLettered: len(q.dead)}
	for _, m := range q.msgs {
		switch {
		case m.state == stateScheduled && m.availableAt.After(now):
			c.Scheduled++
		case m.state == stateLocked:
			c.InFlight++
			c.Active++
		default:
			c.Active++
		}
	}
	return c
}

func (q *queue) deadLetters() []DeadLetter {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]DeadLetter, 0, len(q.dead))
	for _, m := range q.dead {
		out = append(out, DeadLetter{
			MessageID:                  m.ID,
			Body:                       string(m.Body),
			DeliveryCount:              m.deliveryCount,
			DeadLetterReason:           "MaxDeliveryCountExceeded",
			DeadLetterErrorDescription: fmt.Sprintf("Message could not be consumed after %d delivery attempts. Last error: %s", m.deliveryCount, m.lastError),
			EnqueuedTimeUTC:            m.enqueued.UTC(),
			SequenceNumber:             m.seq,
			ApplicationProperties:      m.ApplicationProperties,
		})
	}
	return out
}

// idle reports whether the queue has nothing to deliver and nothing in
// flight; scheduled messages count only with includeScheduled.
func (q *queue) idle(now time.Time, includeScheduled bool) bool {
	c := q.counts(now)
	return c.Active == 0 && (!includeScheduled || c.Scheduled == 0)
}

// consume runs one consumer: it locks messages and hands them to deliver
// until ctx ends.
//
// onLockLost, if set, is told when a delivery's lock expires; that
// delivery's outcome is then ignored, as Service Bus refuses to complete a
// message whose lock was lost.
func (q *queue) consume(ctx context.Context, deliver func(ctx context.Context, m *message) error, now func() time.Time, onLockLost func(m *message)) {
	for {
		wake := q.changed.wait()
		m, wait := q.lock(now())
		if m == nil {
			var timer *time.Timer
			var due <-chan time.Time
			if wait >= 0 {
				timer = time.NewTimer(wait)
				due = timer.C
			}
			select {
			case <-ctx.Done():
			case <-wake:
			case <-due:
			}
			if timer != nil {
				timer.Stop()
			}
			if ctx.Err() != nil {
				return
			}
			continue
		}
		var expiry *time.Timer
		if q.lockLimit > 0 {
			expiry = time.AfterFunc(q.lockLimit, func() {
				if q.expireLock(m.seq, m.lockToken, now()) && onLockLost != nil {
					onLockLost(m)
				}
			})
		}
		err := deliver(ctx, m)
		if expiry != nil {
			expiry.Stop()
		}
		if ctx.Err() != nil && err != nil {
			// Shutting down: the lock is released without counting against
			// the message, as a closing receiver's would be.
			q.release(m.seq, m.lockToken)
			return
		}
		q.settle(m.seq, m.lockToken, err, now())
	}
}

// release unlocks a message without a failed delivery (the host stopped).
func (q *queue) release(seq int64, lockToken string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	defer q.changed.notify()
	for _, m := range q.msgs {
		if m.seq == seq && m.state == stateLocked && m.lockToken == lockToken {
			m.state = stateActive
			m.deliveryCount--
		}
	}
}
