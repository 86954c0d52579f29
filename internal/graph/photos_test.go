package graph

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/graphsim"
)

func TestUserPhotosBatch(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 30, Seed: 4, Groups: -1})
	src, _ := newSource(t, sim, nil)
	tn := sim.Tenant()
	ctx := ctxT(t)
	users := tn.Users()
	var ids []string
	for _, u := range users[:25] {
		ids = append(ids, u.ID)
		mustDo(t, tn.SetPhoto(u.ID, []byte("photo of "+u.ID), "image/jpeg", 48, 48))
	}
	mustDo(t, tn.DeletePhoto(ids[3]))
	missing := "00000000-0000-4000-8000-000000000999"

	if _, _, err := src.UserPhotos(ctx, ids); dirsync.ErrorCode(err) != dirsync.EINVALID {
		t.Errorf("25 ids: got %v, want EINVALID (at most 20)", err)
	}
	batch := append(append([]string{}, ids[:19]...), missing)
	before := tn.Stats()
	infos, errs, err := src.UserPhotos(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	after := tn.Stats()
	if n := after.Requests[graphsim.RouteBatch] - before.Requests[graphsim.RouteBatch]; n != 1 {
		t.Errorf("%d $batch requests for 20 photos, want 1", n)
	}
	codes := map[string]dirsync.Code{}
	for id, e := range errs {
		codes[id] = dirsync.ErrorCode(e)
	}
	if diff := cmp.Diff(map[string]dirsync.Code{ids[3]: dirsync.ENOTFOUND, missing: dirsync.ENOTFOUND}, codes); diff != "" {
		t.Errorf("per-user errors (-want +got):\n%s", diff)
	}
	if len(infos) != 18 {
		t.Errorf("%d photos, want 18", len(infos))
	}
	single, err := src.UserPhoto(ctx, ids[0])
	if err != nil || infos[ids[0]] != single {
		t.Errorf("batched %+v, single %+v (%v): want equal", infos[ids[0]], single, err)
	}

	// 429 inside the batch: that request is ETHROTTLED with its Retry-After.
	mustDo(t, tn.SetFault(graphsim.Fault{Route: graphsim.RouteUserPhoto, Kind: graphsim.KindThrottle, RetryAfter: 30 * time.Second, Count: 1}))
	infos, errs, err = src.UserPhotos(ctx, ids[:2])
	if err != nil {
		t.Fatal(err)
	}
	throttled := 0
	for _, e := range errs {
		if dirsync.ErrorCode(e) == dirsync.ETHROTTLED && dirsync.RetryAfter(e) == 30*time.Second {
			throttled++
		}
	}
	if throttled != 1 || len(infos) != 1 {
		t.Errorf("throttled batch: infos %v, errs %v; want one of each", infos, errs)
	}
}

func TestUserPhotoDataLimit(t *testing.T) {
	sim := startSim(t, graphsim.Config{Users: 5, Seed: 4, Groups: -1})
	src, _ := newSource(t, sim, nil)
	tn := sim.Tenant()
	ctx := ctxT(t)
	id := tn.Users()[0].ID
	big := bytes.Repeat([]byte("x"), 5000)
	mustDo(t, tn.SetPhoto(id, big, "image/jpeg", 48, 48))
	_, err := src.UserPhotoData(ctx, id, 4096)
	var tl *dirsync.PhotoTooLargeError
	if dirsync.ErrorCode(err) != dirsync.EINVALID || !errors.As(err, &tl) || tl.Size != 5000 || !strings.Contains(dirsync.ErrorHint(err), "photoMaxBytes") {
		t.Errorf("a 5000-byte photo with a 4096 limit: %v (%+v)", err, tl)
	}
	if data, err := src.UserPhotoData(ctx, id, 5000); err != nil || len(data) != 5000 {
		t.Errorf("at the limit: %d bytes, %v", len(data), err)
	}
}
