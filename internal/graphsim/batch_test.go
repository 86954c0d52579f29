package graphsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type batchAnswer struct {
	Responses []struct {
		ID      string            `json:"id"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	} `json:"responses"`
}

func (c *simClient) batch(ids ...string) (int, batchAnswer) {
	c.t.Helper()
	var reqs []string
	for i, id := range ids {
		reqs = append(reqs, fmt.Sprintf(`{"id":"%d","method":"GET","url":"/users/%s/photo"}`, i, id))
	}
	resp, body := c.do(http.MethodPost, "/$batch", strings.NewReader(`{"requests":[`+strings.Join(reqs, ",")+`]}`), "Content-Type", "application/json")
	var a batchAnswer
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &a); err != nil {
			c.t.Fatalf("batch answer %s: %v", body, err)
		}
	}
	return resp.StatusCode, a
}

func TestBatchPhotos(t *testing.T) {
	c := startSim(t, Config{Users: 40, Seed: 3})
	tn := c.sim.Tenant()
	var with, without string
	for _, rec := range tn.order {
		if rec.photo != nil && with == "" {
			with = rec.id
		}
		if rec.photo == nil && without == "" {
			without = rec.id
		}
	}
	status, a := c.batch(with, without, "00000000-0000-4000-8000-000000000999")
	if status != 200 || len(a.Responses) != 3 {
		t.Fatalf("batch: %d %+v", status, a)
	}
	got := map[string]int{}
	for _, r := range a.Responses {
		got[r.ID] = r.Status
	}
	if diff := cmp.Diff(map[string]int{"0": 200, "1": 404, "2": 404}, got); diff != "" {
		t.Errorf("inner statuses (-want +got):\n%s", diff)
	}
	var meta map[string]any
	for _, r := range a.Responses {
		if r.ID == "0" {
			_ = json.Unmarshal(r.Body, &meta)
		}
	}
	if e, _ := meta["@odata.mediaEtag"].(string); !strings.HasPrefix(e, `"`) {
		t.Errorf("inner photo body %v has no @odata.mediaEtag", meta)
	}

	// A throttled photo route answers 429 inside the batch, with Retry-After.
	if err := tn.SetFault(Fault{Route: RouteUserPhoto, Kind: KindThrottle, RetryAfter: 7 * time.Second, Count: 1}); err != nil {
		t.Fatal(err)
	}
	_, a = c.batch(with, with)
	if a.Responses[0].Status != 429 || a.Responses[0].Headers["Retry-After"] != "7" || a.Responses[1].Status != 200 {
		t.Errorf("throttled batch: %+v", a.Responses)
	}
	st := tn.Stats()
	if st.Requests[RouteBatch] != 2 || st.Batched != 5 || st.Requests[RouteUserPhoto] != 5 {
		t.Errorf("stats: $batch %d, batched %d, photo %d; want 2, 5, 5", st.Requests[RouteBatch], st.Batched, st.Requests[RouteUserPhoto])
	}

	// More than 20 requests, or a write inside, is refused.
	many := make([]string, 21)
	for i := range many {
		many[i] = with
	}
	if status, _ := c.batch(many...); status != 400 {
		t.Errorf("21 requests: status %d, want 400", status)
	}
	var del batchAnswer
	_, body := c.do(http.MethodPost, "/$batch", strings.NewReader(`{"requests":[{"id":"1","method":"DELETE","url":"/users/`+with+`"}]}`), "Content-Type", "application/json")
	_ = json.Unmarshal(body, &del)
	if len(del.Responses) != 1 || del.Responses[0].Status != 405 {
		t.Errorf("DELETE inside a batch: %s", body)
	}
}

func TestControlLargeAndRemovedPhoto(t *testing.T) {
	c := startSim(t, Config{Users: 5, Seed: 1})
	tn := c.sim.Tenant()
	id := tn.order[0].id
	big := strings.Repeat("x", 21<<20)
	if status, body := c.control(http.MethodPut, "users/"+id+"/photo", big); status != http.StatusNoContent {
		t.Fatalf("PUT a 21 MiB photo: %d %s", status, body)
	}
	resp, data := c.do(http.MethodGet, "/users/"+id+"/photo/$value", nil)
	if resp.StatusCode != 200 || len(data) != 21<<20 || resp.Header.Get("Content-Length") != fmt.Sprint(21<<20) {
		t.Errorf("large photo: %d, %d bytes", resp.StatusCode, len(data))
	}
	if status, _ := c.control(http.MethodDelete, "users/"+id+"/photo", ""); status != http.StatusNoContent {
		t.Fatalf("DELETE photo: %d", status)
	}
	if resp, _ := c.do(http.MethodGet, "/users/"+id+"/photo", nil); resp.StatusCode != 404 {
		t.Errorf("removed photo: %d, want 404", resp.StatusCode)
	}
}
