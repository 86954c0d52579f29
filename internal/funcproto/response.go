package funcproto

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
)

// Response is the handler's answer to a payload invocation. Outputs holds
// one value per output binding; Logs are written to the invocation's log by
// the host; ReturnValue goes to a "$return" binding if there is one.
type Response struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// HTTPResponse is the value of an "http" output binding (Outputs.res) in
// payload mode. The host reads statusCode, headers and body; a string body is
// written as it is, so binary content does not survive this path (use
// enableProxyingHttpRequest for it).
type HTTPResponse struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

// NewRequest builds the *http.Request that the payload describes, for a
// standard http.Handler. The URL keeps the original path and query
// (/api/...); RequestURI is set as a server would set it.
func (hr HTTPRequest) NewRequest(ctx context.Context) (*http.Request, error) {
	u, err := url.Parse(hr.URL)
	if err != nil {
		return nil, &PayloadError{Field: "Data.req.Url", Err: err}
	}
	var body *bytes.Reader
	if hr.Body != nil {
		body = bytes.NewReader(hr.Body)
	} else {
		body = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, hr.Method, u.String(), body)
	if err != nil {
		return nil, &PayloadError{Field: "Data.req", Err: err}
	}
	req.Header = hr.Headers.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Host = u.Host
	if h := req.Header.Get("Host"); h != "" {
		req.Host = h
	}
	req.ContentLength = int64(len(hr.Body))
	req.RequestURI = u.RequestURI()
	if xff := req.Header.Get("X-Forwarded-For"); xff != "" {
		req.RemoteAddr = strings.TrimSpace(strings.Split(xff, ",")[0])
	}
	return req, nil
}

// responseRecorder captures what an http.Handler writes, for Outputs.res.
type responseRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newResponseRecorder() *responseRecorder { return &responseRecorder{header: http.Header{}} }

func (r *responseRecorder) Header() http.Header { return r.header }

func (r *responseRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *responseRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

func (r *responseRecorder) result() HTTPResponse {
	status := r.status
	if status == 0 {
		status = http.StatusOK
	}
	headers := make(map[string]string, len(r.header))
	for k, v := range r.header {
		headers[k] = strings.Join(v, ", ")
	}
	if _, ok := headers["Content-Type"]; !ok && r.body.Len() > 0 {
		headers["Content-Type"] = http.DetectContentType(r.body.Bytes())
	}
	return HTTPResponse{StatusCode: status, Headers: headers, Body: r.body.String()}
}
