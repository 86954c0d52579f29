package dirsync_test

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

func photoEnv(t *testing.T, maxBytes int64) *env {
	t.Helper()
	e := newEnv(t)
	ctx := context.Background()
	s, etag, err := e.Engine.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.PhotoSync, s.PhotoMaxBytes = true, maxBytes
	if _, err := e.Engine.PutSettings(ctx, s, etag, "admin"); err != nil {
		t.Fatal(err)
	}
	return e
}

type photoCounts struct{ Checked, Fetched, Removed, Skipped int64 }

func photoCountsOf(r dirsync.Run) photoCounts {
	c := r.Counters
	return photoCounts{c.PhotosChecked, c.PhotosFetched, c.PhotosRemoved, c.PhotosSkipped}
}

func mustSucceed(t *testing.T, r dirsync.Run) dirsync.Run {
	t.Helper()
	if r.Status != dirsync.RunSucceeded {
		t.Fatalf("run %s = %s: %s", r.ID, r.Status, r.Error)
	}
	return r
}

func TestPhotoSyncAddsChangesRemovesAndSkips(t *testing.T) {
	e := photoEnv(t, 1024)
	e.Seed(5)
	big := bytes.Repeat([]byte("x"), 2000)
	e.Source.SetPhoto(uid(1), []byte("jpeg one"), "image/jpeg")
	e.Source.SetPhoto(uid(2), []byte("png two"), "image/png")
	e.Source.SetPhoto(uid(3), big, "image/jpeg")

	run := mustSucceed(t, e.Sync(dirsynctest.DrainOptions{Duplicate: true}))
	if diff := cmp.Diff(photoCounts{Checked: 5, Fetched: 2, Skipped: 1}, photoCountsOf(run)); diff != "" {
		t.Errorf("first run's photo counters (-want +got):\n%s", diff)
	}
	want := map[string]dirsynctest.StoredPhoto{
		uid(1): {Data: []byte("jpeg one"), ContentType: "image/jpeg"},
		uid(2): {Data: []byte("png two"), ContentType: "image/png"},
	}
	if diff := cmp.Diff(want, e.Photos.All()); diff != "" {
		t.Errorf("stored photos (-want +got):\n%s", diff)
	}
	ctx := context.Background()
	u1, _ := e.Engine.GetUser(ctx, uid(1))
	_, _, etag1 := e.Source.Photo(uid(1))
	if u1.PhotoETag != etag1 || u1.PhotoSize != 8 || u1.PhotoType != "image/jpeg" {
		t.Errorf("user 1's photo fields = %q %d %q, want %q 8 image/jpeg", u1.PhotoETag, u1.PhotoSize, u1.PhotoType, etag1)
	}
	log := e.Logs.Text(run.LogName)
	if !strings.Contains(log, `"event":"photo_skipped"`) || !strings.Contains(log, "2000 bytes, more than the limit of 1024 bytes") {
		t.Errorf("the log does not say why user 3's photo was skipped:\n%s", log)
	}

	// Nothing changed: a run soon after checks only a slice, downloads nothing.
	downloads := e.Source.PhotoDownloads
	e.Clock.Advance(40 * time.Minute)
	mustSucceed(t, e.Sync(dirsynctest.DrainOptions{}))
	if e.Source.PhotoDownloads != downloads {
		t.Errorf("an unchanged directory downloaded %d photos", e.Source.PhotoDownloads-downloads)
	}

	// Changed, removed, and a user changed in Entra whose photo is new.
	e.Source.SetPhoto(uid(1), []byte("jpeg one, new"), "image/jpeg")
	e.Source.RemovePhoto(uid(2))
	p := dirsynctest.Person(4)
	p["jobTitle"] = "Manager"
	e.Source.Put(uid(4), p)
	e.Source.SetPhoto(uid(4), []byte("four"), "image/jpeg")
	e.Clock.Advance(23 * time.Hour)
	run = mustSucceed(t, e.Sync(dirsynctest.DrainOptions{}))
	if diff := cmp.Diff(photoCounts{Checked: 5, Fetched: 2, Removed: 1, Skipped: 0}, photoCountsOf(run)); diff != "" {
		t.Errorf("photo counters after a day (-want +got):\n%s", diff)
	}
	want = map[string]dirsynctest.StoredPhoto{
		uid(1): {Data: []byte("jpeg one, new"), ContentType: "image/jpeg"},
		uid(4): {Data: []byte("four"), ContentType: "image/jpeg"},
	}
	if diff := cmp.Diff(want, e.Photos.All()); diff != "" {
		t.Errorf("stored photos after changes (-want +got):\n%s", diff)
	}
	if run.Counters.PhotoRequests == 0 || run.Counters.PhotoUnits < run.Counters.PhotosChecked {
		t.Errorf("Graph requests not counted: %+v", run.Counters)
	}
}

func TestPhotoOfChangedUserCheckedInDeltaRun(t *testing.T) {
	e := photoEnv(t, dirsync.DefaultPhotoMaxBytes)
	e.Seed(3)
	mustSucceed(t, e.Sync(dirsynctest.DrainOptions{}))
	e.Clock.Advance(time.Minute) // no slice is due yet
	p := dirsynctest.Person(2)
	p["department"] = "Sales"
	e.Source.Put(uid(2), p)
	e.Source.SetPhoto(uid(2), []byte("two"), "image/jpeg")
	asked := len(e.Source.PhotoAsked)
	run := mustSucceed(t, e.Sync(dirsynctest.DrainOptions{}))
	if run.Mode != dirsync.ModeDelta {
		t.Fatalf("run mode = %s, want delta", run.Mode)
	}
	if diff := cmp.Diff([]string{uid(2)}, e.Source.PhotoAsked[asked:]); diff != "" {
		t.Errorf("photos checked in the delta run (-want +got):\n%s", diff)
	}
	if _, ok := e.Photos.All()[uid(2)]; !ok {
		t.Error("the changed user's new photo was not stored")
	}
}

func TestPhotoThrottlingReschedulesAndNeverFailsTheRun(t *testing.T) {
	e := photoEnv(t, dirsync.DefaultPhotoMaxBytes)
	e.Seed(4)
	for i := 1; i <= 4; i++ {
		e.Source.SetPhoto(uid(i), []byte(fmt.Sprint("photo ", i)), "image/jpeg")
	}
	e.Source.ThrottlePhotos = 2
	e.Source.PhotoErrs = []error{&dirsync.Error{Code: dirsync.ETHROTTLED, Message: "429", RetryAfter: 20 * time.Second}}
	run := mustSucceed(t, e.Sync(dirsynctest.DrainOptions{}))
	if len(e.Photos.All()) != 4 || run.Counters.PhotosFetched != 4 || run.Counters.PhotosChecked != 4 {
		t.Errorf("after throttling: %d photos stored, counters %+v; want 4", len(e.Photos.All()), run.Counters)
	}
	if log := e.Logs.Text(run.LogName); !strings.Contains(log, "Graph asked us to slow down (photos)") {
		t.Errorf("the log does not mention the throttling:\n%s", log)
	}

	// A missing permission stops the photo phase, not the run.
	e.Source.PhotoErrs = []error{&dirsync.Error{Code: dirsync.EFORBIDDEN, Message: "no ProfilePhoto.Read.All"}}
	e.Clock.Advance(23 * time.Hour)
	run = mustSucceed(t, e.Sync(dirsynctest.DrainOptions{}))
	if log := e.Logs.Text(run.LogName); !strings.Contains(log, `"event":"photos_stopped"`) {
		t.Errorf("the log does not say photo sync stopped:\n%s", log)
	}
}

func TestPhotoSyncOffCallsNothing(t *testing.T) {
	e := newEnv(t)
	e.Seed(3)
	e.Source.SetPhoto(uid(1), []byte("x"), "image/jpeg")
	mustSucceed(t, e.Sync(dirsynctest.DrainOptions{}))
	if e.Source.PhotoBatches+e.Source.PhotoDownloads != 0 || len(e.Photos.All()) != 0 {
		t.Errorf("photo sync off: %d batches, %d downloads", e.Source.PhotoBatches, e.Source.PhotoDownloads)
	}
}

// spreadID returns an object id whose first hex digits spread like Graph's
// random GUIDs.
func spreadID(n int) string {
	h := fnv.New32a()
	fmt.Fprint(h, n)
	return fmt.Sprintf("%08x-0000-4000-8000-%012d", h.Sum32(), n)
}

// TestPhotoRollingSliceCoversEveryoneDaily runs a quiet tenant every 40
// minutes for three days and checks that every user's photo is checked at
// least once in every 24 hours, and not much more often.
func TestPhotoRollingSliceCoversEveryoneDaily(t *testing.T) {
	e := photoEnv(t, dirsync.DefaultPhotoMaxBytes)
	const n = 600
	for i := 1; i <= n; i++ {
		e.Source.Put(spreadID(i), dirsynctest.Person(i))
	}
	mustSucceed(t, e.Sync(dirsynctest.DrainOptions{}))
	last := map[string]time.Time{}
	for _, id := range e.Source.PhotoAsked {
		last[id] = e.Clock.Now()
	}
	if len(last) != n {
		t.Fatalf("the first photo pass checked %d of %d users", len(last), n)
	}
	start, asked := e.Clock.Now(), len(e.Source.PhotoAsked)
	worst := time.Duration(0)
	for e.Clock.Now().Sub(start) < 72*time.Hour {
		e.Clock.Advance(40 * time.Minute)
		mustSucceed(t, e.Sync(dirsynctest.DrainOptions{}))
		now := e.Clock.Now()
		for _, id := range e.Source.PhotoAsked[asked:] {
			worst = max(worst, now.Sub(last[id]))
			last[id] = now
		}
		asked = len(e.Source.PhotoAsked)
		for id, at := range last {
			if now.Sub(at) > 24*time.Hour {
				t.Fatalf("at %s user %s was last checked %s ago", now.Sub(start), id, now.Sub(at))
			}
		}
	}
	perDay := float64(len(e.Source.PhotoAsked)-n) / 3
	if perDay > 1.2*n {
		t.Errorf("%.0f photo checks a day for %d users: more than the rolling slice needs", perDay, n)
	}
	t.Logf("longest gap between two checks of one user: %s; %.0f checks a day for %d users", worst, perDay, n)
}

func TestPhotoSettings(t *testing.T) {
	s := dirsync.DefaultSettings()
	if s.PhotoSync || s.PhotoMaxBytes != 4<<20 {
		t.Errorf("defaults: photoSync %v, photoMaxBytes %d; want false, 4 MiB", s.PhotoSync, s.PhotoMaxBytes)
	}
	on := s
	on.PhotoSync, on.PhotoMaxBytes = true, 1<<20
	if on.ShapeHash() != s.ShapeHash() {
		t.Error("turning photo sync on changed the shape hash (it would force a full user sync)")
	}
	d, err := dirsync.DecodeSettings([]byte(`{"enabled": true}`))
	if err != nil || d.PhotoMaxBytes != dirsync.DefaultPhotoMaxBytes || d.PhotoSync {
		t.Errorf("DecodeSettings without photo fields = %v, %d, %v", d.PhotoSync, d.PhotoMaxBytes, err)
	}
	for _, tc := range []struct {
		max  int64
		want string
	}{{1023, "photoMaxBytes: 1023 is out of range"}, {20<<20 + 1, "use 1024 (1 KiB) to 20971520 (20 MiB)"}, {1024, ""}, {20 << 20, ""}} {
		bad := s
		bad.PhotoMaxBytes = tc.max
		err := bad.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if (tc.want == "") != (err == nil) || !strings.Contains(got, tc.want) {
			t.Errorf("photoMaxBytes %d: got %q, want %q", tc.max, got, tc.want)
		}
	}
}

// TestPhotoScenarios is a seeded scenario (kept out of sim.go's tenant
// mutations): photos added, changed, removed and grown too large, users
// changed, added and deleted, between runs at random intervals, every work
// item delivered twice and some workers killed before completing. After a
// quiet day the stored photos are exactly the active users' photos within
// the limit, and each row's photo ETag is Entra's.
func TestPhotoScenarios(t *testing.T) {
	for seed := int64(1); seed <= 25; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			e := photoEnv(t, 1024)
			setThreshold(t, e, dirsync.DeletionThreshold{})
			next := 1
			for ; next <= 30; next++ {
				e.Source.Put(spreadID(next), dirsynctest.Person(next))
			}
			photo := func() []byte { return bytes.Repeat([]byte{byte(rng.Intn(256))}, 1+rng.Intn(1400)) }
			for round := 0; round < 6; round++ {
				for range 1 + rng.Intn(8) {
					id := spreadID(1 + rng.Intn(next-1))
					switch rng.Intn(6) {
					case 0, 1:
						e.Source.SetPhoto(id, photo(), "image/jpeg")
					case 2:
						e.Source.RemovePhoto(id)
					case 3:
						p := dirsynctest.Person(next)
						e.Source.Put(spreadID(next), p)
						e.Source.SetPhoto(spreadID(next), photo(), "image/png")
						next++
					case 4:
						if a, ok := e.Source.Users()[id]; ok {
							a["jobTitle"] = fmt.Sprint("Title ", rng.Intn(100))
							e.Source.Put(id, a)
						}
					case 5:
						e.Source.Remove(id, dirsync.RemovedDeleted)
					}
				}
				e.Clock.Advance(time.Duration(1+rng.Intn(8)) * time.Hour)
				e.Sync(dirsynctest.DrainOptions{Duplicate: true, Before: func(m dirsync.Message, count int) error {
					if count < 3 && rng.Intn(10) == 0 {
						return fmt.Errorf("worker killed")
					}
					return nil
				}})
			}
			e.Clock.Advance(23 * time.Hour)
			mustSucceed(t, e.Sync(dirsynctest.DrainOptions{}))

			want := map[string]dirsynctest.StoredPhoto{}
			active := e.directory(dirsync.StatusActive)
			for id := range active {
				if data, ctype, _ := e.Source.Photo(id); len(data) > 0 && len(data) <= 1024 {
					want[id] = dirsynctest.StoredPhoto{Data: data, ContentType: ctype}
				}
			}
			got := map[string]dirsynctest.StoredPhoto{}
			for id, p := range e.Photos.All() {
				if _, ok := active[id]; ok {
					got[id] = p
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("stored photos of active users (-want +got):\n%s", diff)
			}
			ctx := context.Background()
			for id := range active {
				u, _ := e.Engine.GetUser(ctx, id)
				if _, _, etag := e.Source.Photo(id); u.PhotoETag != etag {
					t.Errorf("user %s: row photo ETag %q, Entra's %q", id, u.PhotoETag, etag)
				}
			}
		})
	}
}

// Found by the simulator: a deleted user's stored photo stayed in Blob
// Storage (and came back with the user when it was restored without one).
// A user leaving the directory takes its photo along.
func TestDeletedUsersPhotoIsRemoved(t *testing.T) {
	e := photoEnv(t, dirsync.DefaultPhotoMaxBytes)
	e.Seed(3)
	e.Source.SetPhoto(uid(1), []byte("one"), "image/jpeg")
	e.Source.SetPhoto(uid(2), []byte("two"), "image/jpeg")
	mustSucceed(t, e.Sync(dirsynctest.DrainOptions{}))
	if len(e.Photos.All()) != 2 {
		t.Fatalf("%d photos stored after the first sync, want 2", len(e.Photos.All()))
	}
	e.Source.Remove(uid(1), "deleted")
	mustSucceed(t, e.Sync(dirsynctest.DrainOptions{}))
	if _, ok := e.Photos.All()[uid(1)]; ok {
		t.Error("the deleted user's photo is still stored")
	}
	if _, ok := e.Photos.All()[uid(2)]; !ok {
		t.Error("another user's photo was removed")
	}
}
