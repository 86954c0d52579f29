package graphsim

import (
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"
)

// RouteBatch is Graph's JSON batching endpoint, POST /v1.0/$batch. Faults on
// it hit the whole batch; faults on an inner request's route (say
// users/{id}/photo with kind throttle) answer inside the batch, as Graph
// does: each inner request is throttled, counted and budgeted on its own.
const RouteBatch = "$batch"

// maxBatchRequests is Graph's limit of requests in one batch.
const maxBatchRequests = 20

type batchRequest struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
}

// handleBatch serves POST /v1.0/$batch: each inner GET goes through the
// simulator's own routes (faults, budget, handlers), and its answer is put
// into the batch's responses: JSON bodies as JSON, other bodies base64, as
// Graph sends them.
func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request, c *call) {
	if r.Method != http.MethodPost {
		graphError(w, c, http.StatusMethodNotAllowed, "Request_BadRequest", "$batch takes POST.")
		return
	}
	var body struct {
		Requests []batchRequest `json:"requests"`
	}
	// The Graph SDK compresses request bodies (kiota's compression
	// handler), as Graph accepts.
	var in io.Reader = r.Body
	var err error
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		if in, err = gzip.NewReader(r.Body); err != nil {
			graphError(w, c, http.StatusBadRequest, "BadRequest", "Invalid batch payload: the gzip body cannot be read: "+err.Error())
			return
		}
	}
	raw, err := io.ReadAll(io.LimitReader(in, 1<<20))
	if err == nil {
		err = json.Unmarshal(raw, &body)
	}
	switch {
	case err != nil:
		graphError(w, c, http.StatusBadRequest, "BadRequest", "Invalid batch payload: "+err.Error())
		return
	case len(body.Requests) == 0:
		graphError(w, c, http.StatusBadRequest, "BadRequest", "Invalid batch payload: no requests.")
		return
	case len(body.Requests) > maxBatchRequests:
		graphError(w, c, http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("Invalid batch payload: %d requests; the limit is %d.", len(body.Requests), maxBatchRequests))
		return
	}
	seen := map[string]bool{}
	type answer struct {
		ID      string            `json:"id"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers,omitempty"`
		Body    json.RawMessage   `json:"body,omitempty"`
	}
	out := struct {
		Responses []answer `json:"responses"`
	}{}
	for _, br := range body.Requests {
		if br.ID == "" || seen[br.ID] {
			graphError(w, c, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid batch payload: request id %q is empty or repeated.", br.ID))
			return
		}
		seen[br.ID] = true
		rec := s.batchOne(r, c, br)
		a := answer{ID: br.ID, Status: rec.Code, Headers: map[string]string{}}
		for k := range rec.Header() {
			a.Headers[k] = rec.Header().Get(k)
		}
		b := rec.Body.Bytes()
		switch {
		case len(b) == 0:
		case json.Valid(b) && strings.Contains(rec.Header().Get("Content-Type"), "json"):
			a.Body = b
		default:
			a.Body, _ = json.Marshal(base64.StdEncoding.EncodeToString(b))
		}
		out.Responses = append(out.Responses, a)
	}
	writeJSON(w, http.StatusOK, "application/json", out)
}

// batchOne runs one inner request and records its answer.
func (s *Server) batchOne(outer *http.Request, oc *call, br batchRequest) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	u, err := url.Parse(br.URL)
	c := &call{app: oc.app, requestID: newRequestID(), clientID: oc.clientID}
	if err != nil || u.IsAbs() || !strings.HasPrefix(br.URL, "/") {
		graphError(rec, c, http.StatusBadRequest, "BadRequest", "A batch request's url must be relative to the version, like /users/{id}/photo.")
		return rec
	}
	if !strings.EqualFold(br.Method, http.MethodGet) {
		graphError(rec, c, http.StatusMethodNotAllowed, "Request_BadRequest", "The simulator's Graph is read-only: only GET is supported inside $batch.")
		return rec
	}
	c.segs = strings.Split(strings.Trim(u.Path, "/"), "/")
	c.route = graphRoute(c.segs)
	route := c.route
	if route == "" || route == RouteBatch {
		route = "unknown"
	}
	defer func() {
		s.tenant.count(func(st *statsData) {
			st.requests[route]++
			st.batched++
			st.statuses[rec.Code]++
		})
	}()
	if c.route == "" || c.route == RouteBatch {
		graphError(rec, c, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", c.segs[len(c.segs)-1]))
		return rec
	}
	r := outer.Clone(outer.Context())
	r.Method, r.URL, r.Body = http.MethodGet, &url.URL{Path: "/v1.0" + u.Path, RawQuery: u.RawQuery}, http.NoBody
	if f, ok := s.tenant.faultFor(c.route); ok && f.Kind != KindDrop {
		if done := s.applyGraphFault(rec, r, c, f); done {
			return rec
		}
	}
	if wait, ok := s.tenant.spend(c.app); !ok {
		rec.Header().Set("Retry-After", retryAfterHeader(max(wait, time.Second)))
		graphError(rec, c, http.StatusTooManyRequests, "TooManyRequests",
			"Too many requests from this application. Wait for the number of seconds in Retry-After, then try again.")
		return rec
	}
	s.dispatch(rec, r, c)
	return rec
}

// maxControlPhoto bounds a photo set through the control API: above the
// engine's largest photoMaxBytes (20 MiB), so tests can send one too large.
const maxControlPhoto = 24 << 20
