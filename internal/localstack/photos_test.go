package localstack_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/internal/devhost"
	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/graphsim"
	"github.com/entrasync/entrasync/internal/testenv"
)

// TestPhotoSyncEndToEnd turns photo sync on through the API and shows
// photos stored, changed, skipped as too large and removed, served by
// GET /api/users/{id}/photo, with the Graph requests of each run counted
// (the run's counters against the simulator's own request count).
func TestPhotoSyncEndToEnd(t *testing.T) {
	e := start(t, graphsim.Config{Users: 60, Seed: 21, PageSize: 50}, devhost.Options{},
		map[string]string{"PHOTO_CONTAINER": testenv.UniqueName(t, "photos")})
	tenant := e.stack.Graph.Tenant()
	e.sync(false) // users first, to know who is active; photo sync is off
	dir := e.directory()
	var active []string
	for id, u := range dir {
		if u.Status == dirsync.StatusActive {
			active = append(active, id)
		}
	}
	sort.Strings(active)
	small, large, none, removed := active[0], active[1], active[2], active[3]
	smallData := []byte("\xff\xd8\xff\xe0 small photo")
	must(t, tenant.SetPhoto(small, smallData, "image/jpeg", 48, 48))
	must(t, tenant.SetPhoto(large, bytes.Repeat([]byte{0xff}, 70<<10), "image/jpeg", 480, 480))
	must(t, tenant.SetPhoto(removed, []byte("\x89PNG to be removed"), "image/png", 48, 48))
	if err := tenant.DeletePhoto(none); err != nil && !strings.Contains(err.Error(), "no photo") {
		t.Fatal(err)
	}

	resp, body, err := e.stack.Do(e.ctx, e.stack.AdminKey, http.MethodGet, "/settings", nil, nil)
	must(t, err)
	var s dirsync.Settings
	must(t, jsonUnmarshal(body, &s))
	s.PhotoSync, s.PhotoMaxBytes = true, 64<<10
	resp, body, err = e.stack.Do(e.ctx, e.stack.AdminKey, http.MethodPut, "/settings", s, http.Header{"If-Match": {resp.Header.Get("ETag")}})
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT settings: %d %s", resp.StatusCode, body)
	}

	// The first photo pass checks everyone (there was none before), even
	// in a delta run that changes no user.
	before := tenant.Stats()
	run := e.sync(false)
	after := tenant.Stats()
	if run.Status != dirsync.RunSucceeded {
		t.Fatalf("run %s: %s", run.Status, run.Error)
	}
	c := run.Counters
	if c["photosChecked"] != int64(len(active)) || c["photosFetched"] < 2 || c["photosSkipped"] < 1 {
		t.Errorf("first photo pass: %v; want %d checked, at least 2 stored and 1 skipped", c, len(active))
	}
	graphPhotoRequests := int64(after.Requests[graphsim.RouteBatch] - before.Requests[graphsim.RouteBatch] +
		after.Requests[graphsim.RouteUserPhotoValue] - before.Requests[graphsim.RouteUserPhotoValue])
	batches := int64(after.Requests[graphsim.RouteBatch] - before.Requests[graphsim.RouteBatch])
	if c["photoRequests"] != graphPhotoRequests || batches > c["photosChecked"]/dirsync.MaxPhotoBatch+2 {
		t.Errorf("photo requests: the run counted %d, the simulator saw %d ($batch and $value); %d $batch requests for %d users checked",
			c["photoRequests"], graphPhotoRequests, batches, c["photosChecked"])
	}
	t.Logf("first pass: %v; Graph: %d $batch, %d photo reads inside them, %d downloads", c,
		after.Requests[graphsim.RouteBatch]-before.Requests[graphsim.RouteBatch],
		after.Requests[graphsim.RouteUserPhoto]-before.Requests[graphsim.RouteUserPhoto],
		after.Requests[graphsim.RouteUserPhotoValue]-before.Requests[graphsim.RouteUserPhotoValue])

	photo := func(id string) (int, string, []byte) {
		t.Helper()
		resp, body, err := e.stack.Do(e.ctx, e.stack.SupportKey, http.MethodGet, "/users/"+id+"/photo", nil, nil)
		must(t, err)
		return resp.StatusCode, resp.Header.Get("Content-Type"), body
	}
	if status, ctype, got := photo(small); status != 200 || ctype != "image/jpeg" || !bytes.Equal(got, smallData) {
		t.Errorf("small photo: %d %s %q", status, ctype, got)
	}
	if status, _, got := photo(large); status != 404 || !strings.Contains(string(got), "larger than photoMaxBytes") {
		t.Errorf("large photo: %d %s", status, got)
	}
	if status, _, _ := photo(none); status != 404 {
		t.Errorf("user without a photo: %d, want 404", status)
	}
	if log := e.log(run.ID, "event=photo_skipped"); !strings.Contains(log, large) || !strings.Contains(log, "more than the limit") {
		t.Errorf("no reason logged for the large photo:\n%s", log)
	}

	// Changed and removed photos of users changed in Entra: a delta run.
	newData := []byte("\xff\xd8\xff\xe0 a new picture")
	must(t, tenant.SetPhoto(small, newData, "image/jpeg", 48, 48))
	must(t, tenant.DeletePhoto(removed))
	must(t, tenant.UpdateUser(small, map[string]any{"jobTitle": "Photographer"}))
	must(t, tenant.UpdateUser(removed, map[string]any{"jobTitle": "Camera-shy"}))
	before = tenant.Stats()
	run = e.sync(false)
	after = tenant.Stats()
	if run.Status != dirsync.RunSucceeded || run.Mode != dirsync.ModeDelta {
		t.Fatalf("delta run %s/%s: %s", run.Status, run.Mode, run.Error)
	}
	c = run.Counters
	if c["photosChecked"] != 2 || c["photosFetched"] != 1 || c["photosRemoved"] != 1 {
		t.Errorf("delta run photos: %v; want 2 checked, 1 stored, 1 removed", c)
	}
	if n := after.Requests[graphsim.RouteBatch] - before.Requests[graphsim.RouteBatch]; n != 1 {
		t.Errorf("the delta run sent %d $batch requests, want 1", n)
	}
	if status, _, got := photo(small); status != 200 || !bytes.Equal(got, newData) {
		t.Errorf("changed photo: %d %q", status, got)
	}
	if status, _, got := photo(removed); status != 404 {
		t.Errorf("removed photo: %d %s", status, got)
	}
	if log := e.log(run.ID, "event=photos"); !strings.Contains(log, fmt.Sprintf("%d Graph requests", c["photoRequests"])) {
		t.Errorf("the photos line does not count the Graph requests:\n%s", log)
	}
}
