package graphsim

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// simClient talks to a started simulator over real HTTPS, trusting only its
// certificate, with an access token from its token endpoint.
type simClient struct {
	t     *testing.T
	sim   *Server
	http  *http.Client
	token string
}

func startSim(t *testing.T, cfg Config) *simClient {
	t.Helper()
	sim, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(sim.CertificatePEM()) {
		t.Fatal("CertificatePEM is not a PEM certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	c := &simClient{t: t, sim: sim, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	c.token = c.getToken(sim.cfg.ClientID, sim.cfg.ClientSecret)
	return c
}

func (c *simClient) getToken(clientID, secret string) string {
	c.t.Helper()
	status, body := c.postForm(c.sim.URL()+"/"+c.sim.cfg.TenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {clientID},
		"client_secret": {secret},
		"scope":         {"https://graph.microsoft.com/.default"},
	})
	if status != http.StatusOK {
		c.t.Fatalf("token endpoint: status %d: %s", status, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		c.t.Fatalf("token answer %s: %v", body, err)
	}
	return tok.AccessToken
}

func (c *simClient) postForm(u string, form url.Values) (int, []byte) {
	c.t.Helper()
	resp, err := c.http.PostForm(u, form)
	if err != nil {
		c.t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// url turns a path under /v1.0 (or a full link) into a URL.
func (c *simClient) url(pathOrURL string) string {
	if strings.HasPrefix(pathOrURL, "https://") {
		return pathOrURL
	}
	return c.sim.GraphBaseURL() + pathOrURL
}

// do sends a request and returns the response with its body read.
func (c *simClient) do(method, pathOrURL string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	c.t.Helper()
	resp, b, err := c.try(method, pathOrURL, body, hdr...)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, pathOrURL, err)
	}
	return resp, b
}

func (c *simClient) try(method, pathOrURL string, body io.Reader, hdr ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, c.url(pathOrURL), body)
	if err != nil {
		return nil, nil, err
	}
	if c.token != "" && !strings.Contains(pathOrURL, "/_sim/") {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// get fetches JSON, failing the test unless the status is want.
func (c *simClient) get(pathOrURL string, want int, hdr ...string) map[string]any {
	c.t.Helper()
	resp, body := c.do(http.MethodGet, pathOrURL, nil, hdr...)
	if resp.StatusCode != want {
		c.t.Fatalf("GET %s: status %d, want %d: %s", pathOrURL, resp.StatusCode, want, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		c.t.Fatalf("GET %s: body is not a JSON object: %v: %s", pathOrURL, err, body)
	}
	return m
}

func (c *simClient) control(method, path string, body string) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	resp, b := c.do(method, c.sim.URL()+"/_sim/"+strings.TrimPrefix(path, "/"), r)
	return resp.StatusCode, b
}

// round follows a delta round from start (a path or a stored link) to its
// deltaLink, returning every object of every page in order.
type round struct {
	items     []map[string]any
	pages     int
	deltaLink string
}

func (c *simClient) round(start string, pageSize int) round {
	c.t.Helper()
	var hdr []string
	if pageSize > 0 {
		hdr = []string{"Prefer", "odata.maxpagesize=" + itoa(pageSize)}
	}
	var rd round
	link := start
	for {
		page := c.get(link, http.StatusOK, hdr...)
		rd.pages++
		if _, ok := page["@odata.context"].(string); !ok {
			c.t.Fatalf("page %d has no @odata.context: %v", rd.pages, page)
		}
		for _, v := range page["value"].([]any) {
			rd.items = append(rd.items, v.(map[string]any))
		}
		next, hasNext := page["@odata.nextLink"].(string)
		dl, hasDelta := page["@odata.deltaLink"].(string)
		if hasNext == hasDelta {
			c.t.Fatalf("page %d must have exactly one of nextLink and deltaLink: %v", rd.pages, page)
		}
		if hasDelta {
			rd.deltaLink = dl
			return rd
		}
		if !strings.HasPrefix(next, c.sim.URL()+"/") {
			c.t.Fatalf("nextLink %s is not on the simulator's host", next)
		}
		if rd.pages > 100000 {
			c.t.Fatal("delta round does not end")
		}
		link = next
	}
}

// flatten turns delta objects into id -> properties, folding manager@delta
// into "manager" like the ground truth has it, and keeping the last
// occurrence of an object.
func flatten(t *testing.T, items []map[string]any) map[string]map[string]any {
	t.Helper()
	out := make(map[string]map[string]any, len(items))
	for _, it := range items {
		m := make(map[string]any, len(it))
		for k, v := range it {
			switch k {
			case "id":
			case "manager@delta":
				for _, e := range v.([]any) {
					em := e.(map[string]any)
					if _, removed := em["@removed"]; !removed {
						m["manager"] = em["id"]
					}
				}
			default:
				m[k] = v
			}
		}
		out[it["id"].(string)] = m
	}
	return out
}

// truth is the ground truth restricted to the selected properties, in the
// types JSON decoding produces.
func truth(t *testing.T, users []User, sel []string) map[string]map[string]any {
	t.Helper()
	out := make(map[string]map[string]any, len(users))
	for _, u := range users {
		b, err := json.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		kept := map[string]any{}
		for k, v := range m {
			if k != "id" && slices.Contains(sel, k) {
				kept[k] = v
			}
		}
		out[u.ID] = kept
	}
	return out
}

func ids(items []map[string]any) []string {
	var out []string
	for _, it := range items {
		out = append(out, it["id"].(string))
	}
	return out
}

func byID(items []map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, it := range items {
		out[it["id"].(string)] = it
	}
	return out
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				Date      string `json:"date"`
				RequestID string `json:"request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not Graph's error JSON: %v: %s", err, body)
	}
	if e.Error.Message == "" || e.Error.InnerError.Date == "" || e.Error.InnerError.RequestID == "" {
		t.Errorf("error body lacks message, innerError.date or innerError.request-id: %s", body)
	}
	return e.Error.Code
}
