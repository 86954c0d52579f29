package graphsim

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"
)

// Fault kinds.
const (
	// KindThrottle answers 429 with Retry-After and a TooManyRequests body.
	KindThrottle = "throttle"
	// KindStatus answers Status (500, 502, 503 or 504; default 503) with a
	// Graph error body.
	KindStatus = "status"
	// KindStatusEmpty is KindStatus with an empty body.
	KindStatusEmpty = "status-empty"
	// KindSlow waits Delay, then answers normally.
	KindSlow = "slow"
	// KindDrop closes the connection without answering.
	KindDrop = "drop"
	// KindMalformed answers 200 with truncated JSON.
	KindMalformed = "malformed"
	// KindExpired400 answers 400 syncStateNotFound.
	KindExpired400 = "expired-400"
	// KindExpiredResync answers 400 resyncRequired (Status may make it 410).
	KindExpiredResync = "expired-resync"
	// KindExpired410 answers 410 Gone, code syncStateNotFound, with a
	// Location header that starts a fresh round.
	KindExpired410 = "expired-410"
)

// Routes a Fault can target, also the keys of Stats.Requests.
const (
	RouteAll              = "*"
	RouteToken            = "token"
	RouteDiscovery        = "discovery" // openid-configuration and instance discovery
	RouteUsersDelta       = "users/delta"
	RouteGroupsDelta      = "groups/delta"
	RouteUsers            = "users"
	RouteUser             = "users/{id}"
	RouteUserManager      = "users/{id}/manager"
	RouteUserPhoto        = "users/{id}/photo"
	RouteUserPhotoValue   = "users/{id}/photo/$value"
	RouteGroup            = "groups/{id}"
	RouteTransitiveMember = "groups/{id}/transitiveMembers"
)

var faultRoutes = []string{
	RouteAll, RouteToken, RouteDiscovery, RouteUsersDelta, RouteGroupsDelta, RouteUsers, RouteUser,
	RouteUserManager, RouteUserPhoto, RouteUserPhotoValue, RouteGroup, RouteTransitiveMember, RouteBatch,
}

var faultKinds = []string{
	KindThrottle, KindStatus, KindStatusEmpty, KindSlow, KindDrop, KindMalformed,
	KindExpired400, KindExpiredResync, KindExpired410,
}

// Fault makes matching requests fail in a chosen way.
type Fault struct {
	// Route is one of the Route constants ("users/delta", "token", "*"...).
	Route string
	// Kind is one of the Kind constants.
	Kind string
	// Status is the HTTP status for KindStatus/KindStatusEmpty (default
	// 503) and KindExpiredResync (default 400; 410 allowed).
	Status int
	// RetryAfter is sent as Retry-After (whole seconds, rounded up) with
	// KindThrottle (default 1s) and the status kinds (only when set). A
	// negative value sends no Retry-After at all.
	RetryAfter time.Duration
	// Delay is how long KindSlow waits (default 2s).
	Delay time.Duration
	// Count applies the fault to the next Count matching requests; 0 means
	// until ClearFaults.
	Count int
	// Fraction, when above 0, applies the fault to that fraction of the
	// matching requests, chosen deterministically from the seed.
	Fraction float64
}

type faultJSON struct {
	Route      string          `json:"route"`
	Kind       string          `json:"kind"`
	Status     int             `json:"status,omitempty"`
	RetryAfter json.RawMessage `json:"retryAfter,omitempty"`
	Delay      json.RawMessage `json:"delay,omitempty"`
	Count      int             `json:"count,omitempty"`
	Fraction   float64         `json:"fraction,omitempty"`
}

// MarshalJSON writes durations as Go duration strings ("1.5s").
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Route: f.Route, Kind: f.Kind, Status: f.Status, Count: f.Count, Fraction: f.Fraction}
	if f.RetryAfter != 0 {
		j.RetryAfter, _ = json.Marshal(f.RetryAfter.String())
	}
	if f.Delay != 0 {
		j.Delay, _ = json.Marshal(f.Delay.String())
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads durations as Go duration strings ("500ms") or numbers
// of seconds.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	ra, err := parseDurationJSON("retryAfter", j.RetryAfter)
	if err != nil {
		return err
	}
	d, err := parseDurationJSON("delay", j.Delay)
	if err != nil {
		return err
	}
	*f = Fault{Route: j.Route, Kind: j.Kind, Status: j.Status, RetryAfter: ra, Delay: d, Count: j.Count, Fraction: j.Fraction}
	return nil
}

func parseDurationJSON(field string, raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a duration like \"1.5s\" or \"500ms\"", field, s)
		}
		return d, nil
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil {
		return 0, fmt.Errorf("%s must be a duration string like \"2s\" or a number of seconds", field)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

func (f *Fault) validate() error {
	if !slices.Contains(faultRoutes, f.Route) {
		return fmt.Errorf("%w: fault route %q is unknown; use one of %v", ErrInvalid, f.Route, faultRoutes)
	}
	if !slices.Contains(faultKinds, f.Kind) {
		return fmt.Errorf("%w: fault kind %q is unknown; use one of %v", ErrInvalid, f.Kind, faultKinds)
	}
	switch f.Kind {
	case KindStatus, KindStatusEmpty:
		if f.Status == 0 {
			f.Status = 503
		}
		if f.Status < 400 || f.Status > 599 {
			return fmt.Errorf("%w: fault status %d: use an error status such as 500, 502, 503 or 504", ErrInvalid, f.Status)
		}
	case KindExpiredResync:
		if f.Status == 0 {
			f.Status = 400
		}
		if f.Status != 400 && f.Status != 410 {
			return fmt.Errorf("%w: fault status %d: resyncRequired comes with 400 or 410", ErrInvalid, f.Status)
		}
	case KindThrottle:
		if f.RetryAfter == 0 {
			f.RetryAfter = time.Second
		}
	case KindSlow:
		if f.Delay < 0 {
			return fmt.Errorf("%w: fault delay %s must not be negative", ErrInvalid, f.Delay)
		}
		if f.Delay == 0 {
			f.Delay = 2 * time.Second
		}
	}
	if f.Count < 0 {
		return fmt.Errorf("%w: fault count %d must be 0 (until cleared) or more", ErrInvalid, f.Count)
	}
	if f.Fraction < 0 || f.Fraction > 1 || math.IsNaN(f.Fraction) {
		return fmt.Errorf("%w: fault fraction %v must be between 0 and 1", ErrInvalid, f.Fraction)
	}
	return nil
}

func retryAfterHeader(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
}

type faultState struct {
	Fault
	id      uint64
	seen    int
	applied int
}

// SetFault adds a fault. Faults are checked in the order they were added;
// the first one that applies to a request wins.
func (t *Tenant) SetFault(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	t.fmu.Lock()
	defer t.fmu.Unlock()
	t.stats.faultSeq++
	t.faults = append(t.faults, &faultState{Fault: f, id: t.stats.faultSeq})
	return nil
}

// ClearFaults removes every fault.
func (t *Tenant) ClearFaults() {
	t.fmu.Lock()
	defer t.fmu.Unlock()
	t.faults = nil
}

// Faults lists the faults still in force.
func (t *Tenant) Faults() []Fault {
	t.fmu.Lock()
	defer t.fmu.Unlock()
	var out []Fault
	for _, f := range t.faults {
		if f.Count == 0 || f.applied < f.Count {
			out = append(out, f.Fault)
		}
	}
	return out
}

// faultFor picks the fault to apply to one request of route, if any.
func (t *Tenant) faultFor(route string) (Fault, bool) {
	t.fmu.Lock()
	defer t.fmu.Unlock()
	for _, f := range t.faults {
		if f.Route != route && f.Route != RouteAll {
			continue
		}
		if f.Count > 0 && f.applied >= f.Count {
			continue
		}
		if f.Fraction > 0 {
			f.seen++
			r := newRNG(t.cfg.Seed, streamFault, f.id<<32|uint64(f.seen))
			if !r.chance(f.Fraction) {
				continue
			}
		}
		f.applied++
		t.stats.faults[f.Kind]++
		return f.Fault, true
	}
	return Fault{}, false
}

// spend charges one Graph request to app's budget; over budget it returns
// how long until a request fits again.
func (t *Tenant) spend(app string) (wait time.Duration, ok bool) {
	if t.cfg.RequestsPer10s == 0 {
		return 0, true
	}
	const window = 10 * time.Second
	now := t.cfg.Now()
	t.fmu.Lock()
	defer t.fmu.Unlock()
	q := t.budget[app]
	cut := 0
	for cut < len(q) && !q[cut].After(now.Add(-window)) {
		cut++
	}
	q = q[cut:]
	if len(q) >= t.cfg.RequestsPer10s {
		t.budget[app] = q
		t.stats.throttled++
		return q[0].Add(window).Sub(now), false
	}
	t.budget[app] = append(q, now)
	return 0, true
}

// Stats counts what the simulator answered since it started.
type Stats struct {
	// Requests counts requests per route (see the Route constants; the
	// control API is "_sim", unknown paths "unknown"). A $batch counts as
	// one "$batch" request plus each inner request under its own route.
	Requests map[string]int `json:"requests"`
	// Batched counts the requests that arrived inside a $batch.
	Batched int `json:"batched"`
	// Statuses counts answers per HTTP status code.
	Statuses map[int]int `json:"statuses"`
	// Throttled counts 429 answers from the RequestsPer10s budget.
	Throttled int `json:"throttled"`
	// Faults counts injected faults per kind.
	Faults map[string]int `json:"faults"`
	// TokensIssued counts access tokens the token endpoint issued.
	TokensIssued int `json:"tokensIssued"`
	// TokenRequestsRejected counts token requests refused (wrong client,
	// secret, tenant, grant or scope).
	TokenRequestsRejected int `json:"tokenRequestsRejected"`
	// Unauthorized counts Graph requests answered 401.
	Unauthorized int `json:"unauthorized"`
	// BusySeconds is the time spent answering requests, per route, from
	// each request's arrival to its answer's end (a page's added latency
	// included; the requests inside a $batch count under "$batch"). For a
	// sync that fetches one page at a time, that of users/delta is its
	// time spent fetching, as the server saw it.
	BusySeconds map[string]float64 `json:"busySeconds"`
}

type statsData struct {
	batched      int
	requests     map[string]int
	statuses     map[int]int
	faults       map[string]int
	throttled    int
	issued       int
	rejected     int
	unauthorized int
	faultSeq     uint64
	busy         map[string]time.Duration
}

func (s *statsData) init() {
	s.requests = make(map[string]int)
	s.statuses = make(map[int]int)
	s.faults = make(map[string]int)
	s.busy = make(map[string]time.Duration)
}

// Stats returns a snapshot of the counters.
func (t *Tenant) Stats() Stats {
	t.fmu.Lock()
	defer t.fmu.Unlock()
	return Stats{
		Requests:              maps.Clone(t.stats.requests),
		Statuses:              maps.Clone(t.stats.statuses),
		Throttled:             t.stats.throttled,
		Faults:                maps.Clone(t.stats.faults),
		TokensIssued:          t.stats.issued,
		TokenRequestsRejected: t.stats.rejected,
		Unauthorized:          t.stats.unauthorized,
		Batched:               t.stats.batched,
		BusySeconds:           busySeconds(t.stats.busy),
	}
}

func busySeconds(busy map[string]time.Duration) map[string]float64 {
	out := make(map[string]float64, len(busy))
	for route, d := range busy {
		out[route] = d.Seconds()
	}
	return out
}

func (t *Tenant) count(f func(s *statsData)) {
	t.fmu.Lock()
	defer t.fmu.Unlock()
	f(&t.stats)
}
