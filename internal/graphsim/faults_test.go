package graphsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFaultKinds(t *testing.T) {
	tests := []struct {
		name  string
		fault Fault
		check func(t *testing.T, resp *http.Response, body []byte, err error, took time.Duration)
	}{
		{"throttle", Fault{Route: RouteUsersDelta, Kind: KindThrottle, RetryAfter: 1500 * time.Millisecond},
			func(t *testing.T, resp *http.Response, body []byte, err error, _ time.Duration) {
				wantStatus(t, resp, err, 429)
				if got := resp.Header.Get("Retry-After"); got != "2" {
					t.Errorf("Retry-After %q, want 2 (1.5s rounded up)", got)
				}
				if code := errorCode(t, body); code != "TooManyRequests" {
					t.Errorf("code %q", code)
				}
			}},
		{"throttle without Retry-After", Fault{Route: RouteAll, Kind: KindThrottle, RetryAfter: -1},
			func(t *testing.T, resp *http.Response, _ []byte, err error, _ time.Duration) {
				wantStatus(t, resp, err, 429)
				if _, ok := resp.Header["Retry-After"]; ok {
					t.Error("Retry-After sent although RetryAfter is negative")
				}
			}},
		{"status 502", Fault{Route: RouteUsersDelta, Kind: KindStatus, Status: 502},
			func(t *testing.T, resp *http.Response, body []byte, err error, _ time.Duration) {
				wantStatus(t, resp, err, 502)
				if code := errorCode(t, body); code != "BadGateway" {
					t.Errorf("code %q", code)
				}
			}},
		{"status 503 with Retry-After", Fault{Route: RouteUsersDelta, Kind: KindStatus, RetryAfter: 3 * time.Second},
			func(t *testing.T, resp *http.Response, body []byte, err error, _ time.Duration) {
				wantStatus(t, resp, err, 503)
				if resp.Header.Get("Retry-After") != "3" || errorCode(t, body) != "ServiceNotAvailable" {
					t.Errorf("Retry-After %q, body %s", resp.Header.Get("Retry-After"), body)
				}
			}},
		{"status-empty 504", Fault{Route: RouteUsersDelta, Kind: KindStatusEmpty, Status: 504},
			func(t *testing.T, resp *http.Response, body []byte, err error, _ time.Duration) {
				wantStatus(t, resp, err, 504)
				if len(body) != 0 {
					t.Errorf("body %q, want empty", body)
				}
			}},
		{"slow", Fault{Route: RouteUsersDelta, Kind: KindSlow, Delay: 300 * time.Millisecond},
			func(t *testing.T, resp *http.Response, _ []byte, err error, took time.Duration) {
				wantStatus(t, resp, err, 200)
				if took < 300*time.Millisecond {
					t.Errorf("answered after %s, want at least the 300ms delay", took)
				}
			}},
		{"drop", Fault{Route: RouteUsersDelta, Kind: KindDrop},
			func(t *testing.T, resp *http.Response, _ []byte, err error, _ time.Duration) {
				if err == nil {
					t.Errorf("dropped connection answered %d", resp.StatusCode)
				}
			}},
		{"malformed", Fault{Route: RouteUsersDelta, Kind: KindMalformed},
			func(t *testing.T, resp *http.Response, body []byte, err error, _ time.Duration) {
				wantStatus(t, resp, err, 200)
				if json.Valid(body) || !strings.HasPrefix(string(body), `{"@odata.context"`) {
					t.Errorf("body should be truncated JSON: %s", body)
				}
			}},
		{"expired-400", Fault{Route: RouteUsersDelta, Kind: KindExpired400},
			func(t *testing.T, resp *http.Response, body []byte, err error, _ time.Duration) {
				wantStatus(t, resp, err, 400)
				if code := errorCode(t, body); code != "syncStateNotFound" {
					t.Errorf("code %q", code)
				}
			}},
		{"expired-resync", Fault{Route: RouteUsersDelta, Kind: KindExpiredResync},
			func(t *testing.T, resp *http.Response, body []byte, err error, _ time.Duration) {
				wantStatus(t, resp, err, 400)
				if code := errorCode(t, body); code != "resyncRequired" {
					t.Errorf("code %q", code)
				}
			}},
		{"expired-resync as 410", Fault{Route: RouteUsersDelta, Kind: KindExpiredResync, Status: 410},
			func(t *testing.T, resp *http.Response, body []byte, err error, _ time.Duration) {
				wantStatus(t, resp, err, 410)
				if code := errorCode(t, body); code != "resyncRequired" {
					t.Errorf("code %q", code)
				}
			}},
		{"expired-410", Fault{Route: RouteUsersDelta, Kind: KindExpired410},
			func(t *testing.T, resp *http.Response, body []byte, err error, _ time.Duration) {
				wantStatus(t, resp, err, 410)
				if errorCode(t, body) != "syncStateNotFound" || !strings.Contains(resp.Header.Get("Location"), "/v1.0/users/delta()?$deltatoken=&$select=displayName") {
					t.Errorf("Location %q, body %s", resp.Header.Get("Location"), body)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startSim(t, Config{Users: 10})
			tt.fault.Count = 1
			if err := c.sim.Tenant().SetFault(tt.fault); err != nil {
				t.Fatal(err)
			}
			if tt.fault.Kind == KindDrop {
				// Go's transport retries a GET once, silently, when a reused
				// keep-alive connection closes before answering; on a fresh
				// connection the drop reaches the caller.
				c.http.Transport.(*http.Transport).CloseIdleConnections()
			}
			start := time.Now()
			resp, body, err := c.try(http.MethodGet, "/users/delta()?$select=displayName", nil)
			tt.check(t, resp, body, err, time.Since(start))
			// Count 1: the next request is served normally.
			c.get("/users/delta()?$select=displayName", http.StatusOK)
			if got := c.sim.Tenant().Stats().Faults[tt.fault.Kind]; got != 1 {
				t.Errorf("Stats().Faults[%q] = %d, want 1", tt.fault.Kind, got)
			}
		})
	}
}

func wantStatus(t *testing.T, resp *http.Response, err error, want int) {
	t.Helper()
	if err != nil {
		t.Fatalf("request failed: %v", err)
	}
	if resp.StatusCode != want {
		t.Fatalf("status %d, want %d", resp.StatusCode, want)
	}
}

func TestFaultRoutingCountAndFraction(t *testing.T) {
	c := startSim(t, Config{Users: 10, Seed: 99})
	tn := c.sim.Tenant()
	if err := tn.SetFault(Fault{Route: RouteGroupsDelta, Kind: KindStatus, Status: 500}); err != nil {
		t.Fatal(err)
	}
	c.get("/users/delta", http.StatusOK) // other routes are untouched
	for range 3 {                        // Count 0: until cleared
		if resp, _ := c.do(http.MethodGet, "/groups/delta", nil); resp.StatusCode != 500 {
			t.Fatalf("groups/delta: %d, want 500", resp.StatusCode)
		}
	}
	tn.ClearFaults()
	c.get("/groups/delta", http.StatusOK)

	pattern := func() string {
		tn.ClearFaults()
		if err := tn.SetFault(Fault{Route: RouteAll, Kind: KindThrottle, Fraction: 0.5}); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for range 40 {
			resp, _ := c.do(http.MethodGet, "/users/delta", nil)
			b.WriteString(map[bool]string{true: "x", false: "."}[resp.StatusCode == 429])
		}
		return b.String()
	}
	first := pattern()
	hits := strings.Count(first, "x")
	if hits < 8 || hits > 32 {
		t.Errorf("fraction 0.5 throttled %d of 40 requests: %s", hits, first)
	}
	faults := tn.Faults()
	if len(faults) != 1 {
		t.Fatalf("Faults() = %v", faults)
	}
	// Deterministic for the seed: a fresh simulator with the same seed
	// throttles the same requests.
	c2 := startSim(t, Config{Users: 10, Seed: 99})
	c2.sim.Tenant().stats.faultSeq = tn.stats.faultSeq - 1
	if err := c2.sim.Tenant().SetFault(Fault{Route: RouteAll, Kind: KindThrottle, Fraction: 0.5}); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for range 40 {
		resp, _ := c2.do(http.MethodGet, "/users/delta", nil)
		b.WriteString(map[bool]string{true: "x", false: "."}[resp.StatusCode == 429])
	}
	if diff := cmp.Diff(first, b.String()); diff != "" {
		t.Errorf("same seed, different throttled requests (-first +second):\n%s", diff)
	}
}

func TestFaultValidation(t *testing.T) {
	tn := mustNew(t, Config{}).Tenant()
	for _, f := range []Fault{
		{Route: "users/nope", Kind: KindDrop},
		{Route: RouteAll, Kind: "explode"},
		{Route: RouteAll, Kind: KindStatus, Status: 200},
		{Route: RouteAll, Kind: KindDrop, Fraction: 1.5},
		{Route: RouteAll, Kind: KindDrop, Count: -1},
		{Route: RouteAll, Kind: KindExpiredResync, Status: 500},
	} {
		if err := tn.SetFault(f); err == nil {
			t.Errorf("SetFault(%+v) accepted a bad fault", f)
		}
	}
}

func TestThrottlingBudget(t *testing.T) {
	clock := newFakeClock()
	c := startSim(t, Config{Users: 3, RequestsPer10s: 3, Now: clock.Now})
	for range 3 {
		c.get("/users/delta", http.StatusOK)
		clock.Advance(time.Second)
	}
	resp, body := c.do(http.MethodGet, "/users/delta", nil)
	if resp.StatusCode != http.StatusTooManyRequests || errorCode(t, body) != "TooManyRequests" {
		t.Fatalf("4th request in 10s: %d %s, want 429 TooManyRequests", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Retry-After"); got != "7" {
		t.Errorf("Retry-After %q, want 7 (the first request leaves the window in 7s)", got)
	}
	clock.Advance(7 * time.Second)
	c.get("/users/delta", http.StatusOK)
	if got := c.sim.Tenant().Stats().Throttled; got != 1 {
		t.Errorf("Stats().Throttled = %d, want 1", got)
	}
}

func TestDropOverHTTP2(t *testing.T) {
	c := startSim(t, Config{Users: 3})
	tr := c.http.Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = true
	defer tr.CloseIdleConnections()
	c.http = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	if r, _ := c.do(http.MethodGet, "/users/delta", nil); r.ProtoMajor != 2 {
		t.Fatalf("the client speaks %s, want HTTP/2", r.Proto)
	}
	if err := c.sim.Tenant().SetFault(Fault{Route: RouteUsersDelta, Kind: KindDrop, Count: 1}); err != nil {
		t.Fatal(err)
	}
	r, _, err := c.try(http.MethodGet, "/users/delta", nil)
	if err == nil {
		t.Fatalf("dropped HTTP/2 stream answered %d %s", r.StatusCode, r.Proto)
	}
	c.get("/users/delta", http.StatusOK)
}
