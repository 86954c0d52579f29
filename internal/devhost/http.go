package devhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"time"
)

// ServeHTTP serves the function routes (/api/...), the admin API
// (/admin/...) and the local queue API (/_devhost/...).
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/_devhost/"):
		h.serveQueueAPI(w, r)
	case strings.HasPrefix(p, "/admin/"):
		h.serveAdmin(w, r)
	default:
		h.serveFunction(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// serveFunction routes a request to an HTTP function, checks its key like
// the host (401 with an empty body) and passes it on, proxied or as a
// payload.
func (h *Host) serveFunction(w http.ResponseWriter, r *http.Request) {
	fn, params, ok := h.routes.match(r.URL.Path, r.Method)
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	g, ok := h.keys.authorize(fn.AuthLevel, fn.Name, presentedKey(r))
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if fn.Proxied {
		h.proxy(w, r, fn)
		return
	}
	h.payloadHTTP(w, r, fn, params, g)
}

// statusRecorder remembers the status for the invocation log and keeps
// flushing working for streamed responses.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// proxy forwards the original request to the handler at its original path
// and streams both bodies, like the host's enableProxyingHttpRequest (YARP):
// method, path, query and headers pass through, X-Forwarded-* are added and
// the invocation headers set.
func (h *Host) proxy(w http.ResponseWriter, r *http.Request, fn *Function) {
	invID := newUUID()
	log := h.log.With("function", fn.Name, "invocation_id", invID)
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.StartTimeout)
	base, err := h.proc.endpoint(ctx)
	cancel()
	if err != nil {
		log.Error("executed function: failed", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	target, _ := url.Parse(base)
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			h.invocationHeaders(pr.Out.Header, invID)
			// The original User-Agent is the client's; the host appends its own.
			if ua := pr.In.Header.Get("User-Agent"); ua != "" {
				pr.Out.Header.Set("User-Agent", ua+" Azure-Functions-Host/"+HostVersion)
			}
		},
		Transport:     h.client.Transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil {
				log.Error("executed function: failed", "err", err)
			}
			w.WriteHeader(http.StatusInternalServerError)
		},
	}
	log.Info("executing function", "reason", "This function was programmatically called via the host APIs.", "method", r.Method, "path", r.URL.Path)
	rp.ServeHTTP(rec, r)
	log.Info("executed function", "status", rec.status, "duration", time.Since(start).Round(time.Millisecond))
}

// maxRequestBody is the host's limit on an HTTP request (100 MB).
const maxRequestBody = 100 << 20

func (h *Host) payloadHTTP(w http.ResponseWriter, r *http.Request, fn *Function, params map[string]string, g grant) {
	var body []byte
	switch {
	case r.ContentLength > maxRequestBody:
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	case r.ContentLength > 0:
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, r.ContentLength)); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
	case r.ContentLength < 0:
		// The host reads the body only when Content-Length is set.
		h.log.Warn("devhost: request body without Content-Length is not passed to the function (payload mode reads only bodies with a Content-Length, like the host)", "function", fn.Name)
	}
	resp, err := h.invoke(r.Context(), fn, "This HTTP triggered function executed.", httpPayload(fn, r, body, params, g, time.Now()))
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	out := fn.httpOutput()
	var raw json.RawMessage
	if out == "$return" {
		raw = resp.ReturnValue
	} else {
		raw = resp.Outputs[out]
		if raw == nil {
			for k, v := range resp.Outputs {
				if strings.EqualFold(k, out) {
					raw = v
				}
			}
		}
	}
	if len(raw) == 0 || string(raw) == "null" {
		h.log.Warn("devhost: the handler set no http output; answering 204", "function", fn.Name, "output", out)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err := writeHTTPOutput(w, raw); err != nil {
		h.log.Error("devhost: bad http output from the handler", "function", fn.Name, "err", err)
		w.WriteHeader(http.StatusInternalServerError)
	}
}

// serveAdmin is the subset of the host's admin API the devhost has:
// POST /admin/functions/{name} fires a non-HTTP function (202), and
// GET /admin/host/status. Both need the master key.
func (h *Host) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if !keyEqual(presentedKey(r), h.keys.Master) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/admin/")
	switch {
	case path == "host/status" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"id": "devhost", "state": "Running", "version": HostVersion, "functions": h.functionNames()})
	case strings.HasPrefix(path, "functions/") && r.Method == http.MethodPost:
		name := strings.TrimPrefix(path, "functions/")
		fn := h.funcs[strings.ToLower(name)]
		if fn == nil {
			writeError(w, http.StatusNotFound, "no function named %q; the app has %s", name, h.functionNames())
			return
		}
		if fn.Kind == KindHTTP {
			writeError(w, http.StatusBadRequest, "function %s is an HTTP function: call it at /%s", fn.Name, strings.Trim(h.cfg.routePrefix+"/"+fn.Route, "/"))
			return
		}
		var in struct {
			Input string `json:"input"`
		}
		if b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20)); len(strings.TrimSpace(string(b))) > 0 {
			if err := json.Unmarshal(b, &in); err != nil {
				writeError(w, http.StatusBadRequest, "the body must be {\"input\": \"...\"}: %v", err)
				return
			}
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			if err := h.Invoke(h.bg, fn.Name, in.Input); err != nil {
				h.log.Error("devhost: admin invocation failed", "function", fn.Name, "err", err)
			}
		}()
		w.WriteHeader(http.StatusAccepted)
	default:
		writeError(w, http.StatusNotFound, "the devhost's admin API has POST /admin/functions/{name} and GET /admin/host/status")
	}
}

// sendRequest is the body of POST /_devhost/queues/{queue}/messages.
type sendRequest struct {
	MessageID               string         `json:"messageId"`
	Body                    *string        `json:"body"`
	ScheduledEnqueueTimeUTC string         `json:"scheduledEnqueueTimeUtc"`
	ApplicationProperties   map[string]any `json:"applicationProperties"`
	ContentType             string         `json:"contentType"`
	CorrelationID           string         `json:"correlationId"`
	Subject                 string         `json:"subject"`
}

// serveQueueAPI is the local queue protocol the handler uses in place of
// Service Bus:
//
//	POST /_devhost/queues/{queue}/messages  send (201; 200 for a duplicate)
//	GET  /_devhost/queues/{queue}/deadletter  dead letters
//	GET  /_devhost/queues/{queue}             counts
//	GET  /_devhost/queues                     counts of every queue
func (h *Host) serveQueueAPI(w http.ResponseWriter, r *http.Request) {
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, "/_devhost/"), "/")
	parts := strings.Split(rest, "/")
	if parts[0] != "queues" {
		writeError(w, http.StatusNotFound, "unknown devhost path %s", r.URL.Path)
		return
	}
	switch {
	case len(parts) == 1 && r.Method == http.MethodGet:
		h.qmu.Lock()
		var all []QueueCounts
		for _, q := range h.queues {
			all = append(all, q.counts(time.Now()))
		}
		h.qmu.Unlock()
		slices.SortFunc(all, func(a, b QueueCounts) int { return strings.Compare(a.Queue, b.Queue) })
		writeJSON(w, http.StatusOK, all)
	case len(parts) == 3 && parts[2] == "messages" && r.Method == http.MethodPost:
		h.serveSend(w, r, parts[1])
	case len(parts) == 3 && parts[2] == "deadletter" && r.Method == http.MethodGet:
		if h.queue(parts[1], false) == nil {
			writeError(w, http.StatusNotFound, "no queue named %q", parts[1])
			return
		}
		writeJSON(w, http.StatusOK, h.DeadLetters(parts[1]))
	case len(parts) == 2 && r.Method == http.MethodGet:
		c, ok := h.QueueCounts(parts[1])
		if !ok {
			writeError(w, http.StatusNotFound, "no queue named %q", parts[1])
			return
		}
		writeJSON(w, http.StatusOK, c)
	default:
		writeError(w, http.StatusNotFound, "%s %s is not part of the devhost queue API (POST /_devhost/queues/{queue}/messages, GET /_devhost/queues/{queue}, GET /_devhost/queues/{queue}/deadletter)", r.Method, r.URL.Path)
	}
}

func (h *Host) serveSend(w http.ResponseWriter, r *http.Request, queueName string) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, int64(h.opts.MaxMessageSize)*4+64<<10))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var req sendRequest
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "the request is larger than any message the queue accepts (%d bytes)", h.opts.MaxMessageSize)
			return
		}
		writeError(w, http.StatusBadRequest, "the body must be {\"messageId\",\"body\",\"scheduledEnqueueTimeUtc\",\"applicationProperties\"}: %v", err)
		return
	}
	if req.Body == nil {
		writeError(w, http.StatusBadRequest, "body is missing: send the message body as a string (\"\" for an empty one)")
		return
	}
	m := Message{
		ID: req.MessageID, Body: []byte(*req.Body), ApplicationProperties: req.ApplicationProperties,
		ContentType: req.ContentType, CorrelationID: req.CorrelationID, Subject: req.Subject,
	}
	if req.ScheduledEnqueueTimeUTC != "" {
		t, err := time.Parse(time.RFC3339Nano, req.ScheduledEnqueueTimeUTC)
		if err != nil {
			writeError(w, http.StatusBadRequest, "scheduledEnqueueTimeUtc %q is not an RFC 3339 time (e.g. 2026-11-23T10:00:00Z)", req.ScheduledEnqueueTimeUTC)
			return
		}
		m.ScheduledEnqueueTime = t
	}
	res, err := h.Send(queueName, m)
	var tooLarge errTooLarge
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "%v", err)
	case err != nil:
		writeError(w, http.StatusBadRequest, "%v", err)
	case res.Duplicate:
		writeJSON(w, http.StatusOK, map[string]any{"messageId": res.MessageID, "status": "duplicate"})
	default:
		status := "accepted"
		if res.Scheduled {
			status = "scheduled"
		}
		writeJSON(w, http.StatusCreated, map[string]any{"messageId": res.MessageID, "sequenceNumber": res.SequenceNumber, "status": status})
	}
}
