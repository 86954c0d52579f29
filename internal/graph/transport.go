package graph

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	khttp "github.com/microsoft/kiota-http-go"
)

// In-call retry policy. Two layers, with disjoint triggers, so the number of
// attempts stays small and predictable:
//
//   - kiota's RetryHandler (the SDK's own middleware) retries 429, 503 and 504,
//     honouring Retry-After. Its ShouldRetry is configured so that the total
//     time slept inside one call never exceeds MaxInCallWait: a longer
//     Retry-After is not slept on but returned as ETHROTTLED / EUNAVAILABLE
//     with RetryAfter, and the engine reschedules the work.
//   - retryTransport, below the middleware, retries what kiota never retries:
//     a connection that failed or dropped before the whole answer arrived, and
//     500/502. Only idempotent requests (everything this adapter sends is a
//     GET), with short backoff, within the same MaxInCallWait budget.
//
// An attempt that hits RequestTimeout is not retried: a Graph that slow is
// better left to the engine's rescheduling than to hold a worker longer.
const (
	kiotaMaxRetries     = 3
	kiotaDelaySeconds   = 1 // kiota's minimum; backoff doubles from it when there is no Retry-After
	transportMaxRetries = 2
	transportBaseDelay  = 200 * time.Millisecond
	maxBodyBytes        = 64 << 20 // a photo is at most a few MiB; a page far less
)

// exchange records what happened on the wire for one adapter call. It rides in
// the request context, so the boundary can report status, headers and the
// number of attempts even when the SDK error lost them (a malformed error
// body yields an error with no status).
type exchange struct {
	// limit, when set, bounds a successful answer's body: a larger one is
	// not read past it (a photo over photoMaxBytes), and fails with
	// *tooLargeError.
	limit    int64
	attempts int
	status   int
	header   http.Header
}

type exchangeKey struct{}

func withExchange(ctx context.Context) (context.Context, *exchange) {
	ex := &exchange{}
	return context.WithValue(ctx, exchangeKey{}, ex), ex
}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// transportError marks a failure to get a complete answer from the server
// (connection refused, reset or dropped, TLS handshake, attempt timeout), as
// opposed to an answer that said no.
type transportError struct {
	timeout bool
	err     error
}

func (e *transportError) Error() string { return "graph transport: " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// retryTransport sits under kiota's middleware. Each attempt gets its own
// RequestTimeout and reads the whole body before returning, so a connection
// dropped in the middle of a page is retried like one dropped before it.
type retryTransport struct {
	next      http.RoundTripper
	timeout   time.Duration
	maxWait   time.Duration
	log       *slog.Logger
	onAttempt func() // test hook: counts attempts
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	ex := exchangeFrom(ctx)
	idempotent := req.Method == http.MethodGet || req.Method == http.MethodHead
	var slept time.Duration
	for try := 0; ; try++ {
		resp, err := t.attempt(req)
		if ex != nil {
			ex.attempts++
			ex.status, ex.header = 0, nil
			if resp != nil {
				ex.status, ex.header = resp.StatusCode, resp.Header
			}
		}
		if ctx.Err() != nil {
			// The caller gave up: report that, not a transport failure.
			if resp != nil {
				resp.Body.Close()
			}
			return nil, ctx.Err()
		}
		var retryable bool
		var delay time.Duration
		switch {
		case err != nil:
			var te *transportError
			retryable = errors.As(err, &te) && !te.timeout
		case resp.StatusCode == http.StatusInternalServerError || resp.StatusCode == http.StatusBadGateway:
			retryable = true
			if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				delay = d
			}
		}
		if delay == 0 {
			delay = transportBaseDelay<<try + rand.N(transportBaseDelay/2)
		}
		if !retryable || !idempotent || try >= transportMaxRetries || slept+delay > t.maxWait {
			return resp, err
		}
		if resp != nil {
			resp.Body.Close()
		}
		t.log.LogAttrs(ctx, slog.LevelInfo, "graph: retrying request",
			slog.String("path", req.URL.Path), slog.Int("attempt", try+2),
			slog.String("reason", retryReason(resp, err)), slog.Duration("delay", delay))
		if !sleep(ctx, delay) {
			return nil, ctx.Err()
		}
		slept += delay
	}
}

// attempt sends req once and buffers the body.
func (t *retryTransport) attempt(req *http.Request) (*http.Response, error) {
	if t.onAttempt != nil {
		t.onAttempt()
	}
	ctx, cancel := context.WithTimeoutCause(req.Context(), t.timeout, errAttemptTimeout)
	defer cancel()
	resp, err := t.next.RoundTrip(req.Clone(ctx))
	if err != nil {
		return nil, t.classify(ctx, err)
	}
	defer resp.Body.Close()
	if ex := exchangeFrom(req.Context()); ex != nil && ex.limit > 0 && resp.StatusCode == http.StatusOK {
		if resp.ContentLength > ex.limit {
			return nil, &tooLargeError{size: resp.ContentLength, limit: ex.limit}
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, ex.limit+1))
		if err != nil {
			return nil, t.classify(ctx, err)
		}
		if int64(len(body)) > ex.limit {
			return nil, &tooLargeError{size: -1, limit: ex.limit}
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return nil, t.classify(ctx, err)
	}
	if len(body) > maxBodyBytes {
		return nil, fmt.Errorf("graph: the answer to %s is larger than %d MiB", req.URL.Path, maxBodyBytes>>20)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return resp, nil
}

var errAttemptTimeout = errors.New("no answer within the request timeout")

// tooLargeError is an answer whose body exceeds the exchange's limit; size
// is -1 when the server sent no Content-Length.
type tooLargeError struct{ size, limit int64 }

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("graph: the answer is larger than %d bytes", e.limit)
}

func (t *retryTransport) classify(ctx context.Context, err error) error {
	if context.Cause(ctx) == errAttemptTimeout {
		return &transportError{timeout: true, err: fmt.Errorf("%w (%s)", errAttemptTimeout, t.timeout)}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return err // a trust problem, not a transient one: retrying cannot help
	}
	return &transportError{err: err}
}

func retryReason(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// kiotaRetryOptions configures the SDK's RetryHandler. kiota calls
// ShouldRetry with the delay slept so far and the retries made so far, before
// it computes the next delay; the next delay is therefore computed here the
// same way kiota will (Retry-After in whole seconds or as an HTTP date, else
// DelaySeconds doubled per retry plus up to 1 s of jitter), and the retry is
// refused when it would take the call's total sleep past maxWait. kiota then
// returns the 429/503 response and the boundary turns it into ETHROTTLED /
// EUNAVAILABLE with the server's Retry-After.
func kiotaRetryOptions(maxWait time.Duration, log *slog.Logger) *khttp.RetryHandlerOptions {
	return &khttp.RetryHandlerOptions{
		MaxRetries:   kiotaMaxRetries,
		DelaySeconds: kiotaDelaySeconds,
		ShouldRetry: func(slept time.Duration, retries int, req *http.Request, resp *http.Response) bool {
			next := kiotaNextDelay(resp.Header.Get("Retry-After"), retries, time.Now())
			if slept+next > maxWait {
				return false
			}
			log.LogAttrs(req.Context(), slog.LevelInfo, "graph: retrying request",
				slog.String("path", req.URL.Path), slog.Int("attempt", retries+2),
				slog.String("reason", resp.Status), slog.Duration("delay", next))
			return true
		},
	}
}

// kiotaNextDelay is the longest delay kiota's RetryHandler (v1.5.4,
// getRetryDelay) would sleep before retry number retries+1.
func kiotaNextDelay(retryAfter string, retries int, now time.Time) time.Duration {
	if retryAfter != "" {
		if secs, err := strconv.ParseFloat(retryAfter, 64); err == nil {
			return time.Duration(secs) * time.Second // kiota truncates fractions
		}
		if t, err := time.Parse(time.RFC1123, retryAfter); err == nil {
			return t.Sub(now)
		}
	}
	return time.Duration(kiotaDelaySeconds<<retries)*time.Second + time.Second // + max jitter
}

// parseRetryAfter reads a Retry-After header: delay-seconds (fractions
// allowed, as Graph never sends them but proxies might) or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs < 0 || secs > 24*3600 {
			return 0, false
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}
