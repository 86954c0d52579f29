package dirsync

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// WorkPhotos is the photo phase (Settings.PhotoSync): after the users are
// applied and before deletions are decided, it checks photo metadata by ETag
// and stores changed photos in the PhotoStore. Photo changes never appear in
// Graph's delta, so it checks
//   - every user this run added or changed: in a delta run, the ids its
//     pages reported (recorded per page in pages partition "<run>|photo",
//     read back here, no scan); in a full run, found by the scan below;
//   - a rolling slice of everyone else: the directory's key space is cut into
//     photoSlices slices (bucket x first hex digit of the object id), and a
//     run checks the slices that fell due since the last photo pass, at a
//     rate of photoSlices per photoCycle, so every photo is checked at least
//     once per photoCycle plus the gap between two runs, whatever the
//     tenant's size (docs/architecture.md, "Photo sync").
//
// Each item handles at most photoUsersPerItem users (two $batch requests of
// metadata and the downloads of the photos that changed), so Graph requests
// per item are bounded. A throttled item is rescheduled; photo errors never
// fail the run: after photoMaxAttempts reschedules, or on a permission
// error, the photo phase stops with a warning and the run goes on.
const WorkPhotos = "photos"

// PhasePhotos is the run's phase while photos are checked.
const PhasePhotos = "photos"

func init() { steps[WorkPhotos] = (*Engine).doPhotos }

const (
	photoSlices         = UserBuckets * 16
	photoCycle          = 22 * time.Hour
	photoUsersPerItem   = 2 * MaxPhotoBatch
	photoScanTop        = 200
	photoQueriesPerItem = 20
	photoMaxAttempts    = 20
	photoStateRowKey    = "photos"
	photoIDsPerProp     = 800 // 800 GUIDs = 29,600 characters, under a property's 32K
)

// Photo log events.
const (
	EvPhotoStored  = "photo_stored"
	EvPhotoRemoved = "photo_removed"
	EvPhotoSkipped = "photo_skipped"
	EvPhotos       = "photos"
	EvPhotoStopped = "photos_stopped"
)

// Photo item stages, the first letter of WorkItem.Cursor.
const (
	photoStageChanged = "c" // "c|<page record key from>|<offset>": ids a delta run's pages reported
	photoStageFull    = "f" // "f|<row key from>", Bucket: a full run's scan of every row
	photoStageSlice   = "s" // "s|<row key from>", Seq: the j-th due slice of the plan
)

// afterUsers returns the item and phase that follow the users' phases
// (collect, sweep, evaluate): the photo phase when photo sync is on,
// otherwise decide.
func (e *Engine) afterUsers(s Settings, w WorkItem) (WorkItem, string) {
	// A preview leaves photos alone: they live in Blob Storage, outside the
	// preview's copy-on-write view of the tables.
	_, preview := e.Store.(*previewStore)
	if s.PhotoSync && e.Photos != nil && !preview {
		return w.next(WorkPhotos), PhasePhotos
	}
	return w.next(WorkDecide), PhaseDeciding
}

// keepPhoto carries the photo fields of a row over to its next state: a page
// rewriting a user does not know its photo.
func keepPhoto(u *User, old User) {
	u.PhotoETag, u.PhotoSize, u.PhotoType, u.PhotoBy, u.PhotoSkipped = old.PhotoETag, old.PhotoSize, old.PhotoType, old.PhotoBy, old.PhotoSkipped
}

// notePhotoCandidates records, in a delta run with photo sync on, the users
// a page reported, for the photo phase to check. A retried page records
// what it read last.
func (e *Engine) notePhotoCandidates(ctx context.Context, run Run, s Settings, w WorkItem, users []SourceUser) error {
	if !s.PhotoSync || e.Photos == nil || run.Mode != ModeDelta {
		return nil
	}
	var ids []string
	for _, u := range users {
		if u.Removed == "" && validObjectID(u.ID) {
			ids = append(ids, u.ID)
		}
	}
	props := map[string]any{"n": int64(len(ids))}
	for i := 0; i*photoIDsPerProp < len(ids); i++ {
		props[fmt.Sprintf("ids%02d", i)] = strings.Join(ids[i*photoIDsPerProp:min(len(ids), (i+1)*photoIDsPerProp)], ",")
	}
	_, err := e.Store.Upsert(ctx, TablePages, Entity{PartitionKey: run.ID + "|photo", RowKey: pageRowKey(w.Epoch, w.Seq), Props: props})
	if err != nil {
		return fmt.Errorf("record the page's users for photo sync: %w", err)
	}
	return nil
}

// photoPlan is the rolling slice a run checks: count slices from slice from,
// and the pass time the photo state moves to when the run has checked them.
type photoPlan struct {
	From, Count int
	At          time.Time
}

// due reports whether the user's slice is in the plan.
func (p photoPlan) due(id string) bool {
	return (photoSlice(id)-p.From+photoSlices)%photoSlices < p.Count
}

// photoSlice is the slice of a user id: its bucket, then its first hex digit.
func photoSlice(id string) int {
	b, _ := strconv.Atoi(strings.TrimPrefix(Bucket(id), "b"))
	d, _ := strconv.ParseInt(id[:1], 16, 64)
	if c := id[0]; 'A' <= c && c <= 'F' {
		d = 9 // sorts between '9' and 'a': in slice 9's key range
	}
	return b*16 + int(d)
}

// planPhotos computes the slices due since the last photo pass: the photo
// state holds the next slice and the time up to which slices are done;
// slices fall due at photoSlices per photoCycle. The first pass, or one
// after more than a cycle, checks everyone. A plan is recorded once per
// epoch (redeliveries and retries read the same one); the state moves only
// when the photo phase has completed it.
func (e *Engine) planPhotos(ctx context.Context, run Run, w WorkItem) (photoPlan, error) {
	key := "plan-" + epochPrefix(w.Epoch)
	ent, err := e.Store.Get(ctx, TablePages, run.ID+"|photo", key)
	if err == nil {
		return photoPlan{From: int(ent.Int("from")), Count: int(ent.Int("count")), At: ent.Time("at")}, nil
	}
	if !IsCode(err, ENOTFOUND) {
		return photoPlan{}, fmt.Errorf("read the photo plan: %w", err)
	}
	st, err := e.Store.Get(ctx, TableState, statePartition, photoStateRowKey)
	if err != nil && !IsCode(err, ENOTFOUND) {
		return photoPlan{}, fmt.Errorf("read the photo state: %w", err)
	}
	now := e.now()
	from, at := int(st.Int("pos"))%photoSlices, st.Time("at")
	var p photoPlan
	switch elapsed := now.Sub(at); {
	case at.IsZero() || elapsed >= photoCycle:
		p = photoPlan{From: from, Count: photoSlices, At: now}
	case elapsed <= 0:
		p = photoPlan{From: from, At: at}
	default:
		n := int(elapsed * photoSlices / photoCycle)
		p = photoPlan{From: from, Count: n, At: at.Add(time.Duration(n) * photoCycle / photoSlices)}
	}
	_, err = e.Store.Insert(ctx, TablePages, Entity{PartitionKey: run.ID + "|photo", RowKey: key,
		Props: map[string]any{"from": int64(p.From), "count": int64(p.Count), "at": p.At}})
	if IsCode(err, ECONFLICT) {
		return e.planPhotos(ctx, run, w)
	}
	if err != nil {
		return photoPlan{}, fmt.Errorf("record the photo plan: %w", err)
	}
	return p, nil
}

// photoChunk is what one photo item did, recorded once with its counters.
type photoChunk struct {
	c  Counters
	lb *logBuffer
}

func (e *Engine) doPhotos(ctx context.Context, run Run, s Settings, w WorkItem) error {
	plan, err := e.planPhotos(ctx, run, w)
	if err != nil {
		return err
	}
	stage, rest, _ := strings.Cut(w.Cursor, "|")
	if stage == "" {
		stage = photoStageChanged
		if run.Mode == ModeFull {
			stage = photoStageFull
		}
	}
	var ids []string
	var after string // the next item's cursor within the stage; "" when the stage is done
	index, done := 0, false
	switch stage {
	case photoStageChanged:
		ids, after, err = e.photoChanged(ctx, run, rest)
		done = after == ""
	case photoStageFull, photoStageSlice:
		ids, index, after, done, err = e.photoScan(ctx, run, plan, stage, rest, w)
	default:
		// Never from this engine; photos must not fail the run either way.
		lb := e.newLog(run, nil)
		lb.add(LogEvent{Event: EvPhotoStopped, Level: LevelWarn, Reason: fmt.Sprintf("photo work item with an unknown cursor %q", truncate(w.Cursor, 32)),
			Message: "Photo sync stopped for this run; the users are synced as usual."})
		e.flushLog(ctx, run, lb)
		return e.endPhotos(ctx, w, plan, false)
	}
	if err != nil {
		return err
	}
	ch := &photoChunk{lb: e.newLog(run, nil)}
	defer e.flushLog(ctx, run, ch.lb)
	wait, stop, err := e.checkPhotos(ctx, run, s, ids, ch)
	switch {
	case err != nil:
		return err
	case stop != nil:
		ch.lb.add(LogEvent{Event: EvPhotoStopped, Level: LevelWarn, Reason: ErrorMessage(stop),
			Message: "Photo sync stopped for this run; the users are synced as usual. " + ErrorHint(stop)})
		return e.endPhotos(ctx, w, plan, false)
	case wait != 0:
		if w.Attempt >= photoMaxAttempts {
			ch.lb.add(LogEvent{Event: EvPhotoStopped, Level: LevelWarn, Reason: fmt.Sprintf("Graph throttled or failed the photo requests %d times in a row", photoMaxAttempts),
				Message: "Photo sync stopped for this run; the users are synced as usual, and the photos not checked are checked by a later run."})
			return e.endPhotos(ctx, w, plan, false)
		}
		if wait < 0 {
			wait = 30 * time.Second
		}
		return e.reschedule(ctx, run, w, wait, "Graph asked us to slow down (photos)")
	}
	// The chunk's counters are recorded once, beside the pages; the run's
	// counters are summed from these records.
	p := map[string]any{}
	ch.c.props(p)
	_, err = e.Store.Insert(ctx, TablePages, Entity{PartitionKey: run.ID, RowKey: epochPrefix(w.Epoch) + "photo-" + shortHash(fmt.Sprintf("%d|%d|%s", w.Seq, w.Bucket, w.Cursor)), Props: p})
	if err != nil && !IsCode(err, ECONFLICT) {
		return fmt.Errorf("record photo chunk: %w", err)
	}
	if ch.c.PhotosChecked+ch.c.PhotosRemoved > 0 {
		ch.lb.add(LogEvent{Event: EvPhotos, Message: fmt.Sprintf("photos: %d checked, %d stored, %d removed, %d skipped; %d Graph requests (%d resource units)",
			ch.c.PhotosChecked, ch.c.PhotosFetched, ch.c.PhotosRemoved, ch.c.PhotosSkipped, ch.c.PhotoRequests, ch.c.PhotoUnits)})
	}
	next := w.next(WorkPhotos)
	switch {
	case !done && stage == photoStageChanged:
		next.Cursor = stage + "|" + after
	case !done && stage == photoStageSlice:
		next.Seq, next.Cursor = int64(index), stage+"|"+after
	case !done:
		next.Bucket, next.Cursor = index, stage+"|"+after
	case stage == photoStageChanged && plan.Count > 0:
		next.Cursor = photoStageSlice + "|"
	default:
		return e.endPhotos(ctx, w, plan, true)
	}
	return e.send(ctx, next, zeroTime)
}

// endPhotos ends the photo phase: with done, the plan's slices are checked
// and the photo state moves on; then the run decides on its deletions.
func (e *Engine) endPhotos(ctx context.Context, w WorkItem, plan photoPlan, done bool) error {
	if done {
		_, err := e.modify(ctx, TableState, statePartition, photoStateRowKey, func(ent *Entity, _ bool) error {
			if !ent.Time("at").Before(plan.At) && ent.Int("pos") == int64((plan.From+plan.Count)%photoSlices) {
				return errSkipWrite // a redelivered last item
			}
			ent.Props = map[string]any{"pos": int64((plan.From + plan.Count) % photoSlices), "at": plan.At}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if _, err := e.advance(ctx, w, func(r *Run) error { r.Phase = PhaseDeciding; return nil }); err != nil {
		return err
	}
	return e.send(ctx, w.next(WorkDecide), zeroTime)
}

// photoChanged returns up to photoUsersPerItem ids a delta run's pages
// reported, from the cursor "<page record key>|<offset>".
func (e *Engine) photoChanged(ctx context.Context, run Run, cursor string) (ids []string, after string, err error) {
	from, offStr, _ := strings.Cut(cursor, "|")
	off, _ := strconv.Atoi(offStr)
	page, err := e.Store.Query(ctx, TablePages, Query{PartitionKey: run.ID + "|photo", RowKeyFrom: from, RowKeyBefore: "plan", Top: 1})
	if err != nil {
		return nil, "", fmt.Errorf("read the users recorded for photo sync: %w", err)
	}
	if len(page.Entities) == 0 {
		return nil, "", nil
	}
	ent := page.Entities[0]
	var all []string
	for i := 0; ; i++ {
		v, ok := ent.Props[fmt.Sprintf("ids%02d", i)].(string)
		if !ok {
			break
		}
		all = append(all, strings.Split(v, ",")...)
	}
	off = min(max(off, 0), len(all))
	end := min(off+photoUsersPerItem, len(all))
	if end < len(all) {
		return all[off:end], ent.RowKey + "|" + strconv.Itoa(end), nil
	}
	// This record is done; the next item starts after it (a later record,
	// or none: the stage ends there, costing one empty read).
	return all[off:end], ent.RowKey + "!|0", nil
}

// photoScan returns the ids of a scan chunk: in a full run the rows of
// the buckets from w.Bucket on that this run added or changed or whose slice
// is due; in a delta run the rows of the plan's slices from the w.Seq-th on
// that this run did not add or change (those were checked from the pages).
// It goes on into the next buckets or slices until it has
// photoUsersPerItem ids or made photoQueriesPerItem queries, and returns
// where the next item starts (index: bucket or slice number, after: the row
// key cursor in it), or done.
func (e *Engine) photoScan(ctx context.Context, run Run, plan photoPlan, stage, from string, w WorkItem) (ids []string, index int, after string, done bool, err error) {
	index, limit := w.Bucket, UserBuckets
	if stage == photoStageSlice {
		index, limit = int(w.Seq), plan.Count
	}
	const digit = "0123456789abcdefg"
	for range photoQueriesPerItem {
		if index >= limit {
			return ids, index, "", true, nil
		}
		q := Query{PartitionKey: bucketKey(index), RowKeyFrom: from, Top: photoScanTop}
		span := 1
		if stage == photoStageSlice {
			// The due slices of one bucket are one key range: one query.
			slice := (plan.From + index) % photoSlices
			d := slice % 16
			span = min(16-d, limit-index)
			q.PartitionKey = bucketKey(slice / 16)
			if q.RowKeyFrom == "" {
				q.RowKeyFrom = digit[d : d+1]
			}
			q.RowKeyBefore = digit[d+span : d+span+1]
		}
		page, err := e.Store.Query(ctx, TableUsers, q)
		if err != nil {
			return nil, 0, "", false, err
		}
		for _, ent := range page.Entities {
			u := userFromEntity(ent)
			changed := u.RunSeq == run.Seq && (u.Action == actAdded || u.Action == actUpdated)
			switch {
			case stage == photoStageSlice && changed:
			case stage == photoStageFull && !changed && !plan.due(u.ID):
			default:
				ids = append(ids, u.ID)
			}
			if len(ids) == photoUsersPerItem {
				return ids, index, ent.RowKey + "!", false, nil
			}
		}
		if page.Continuation != "" && len(page.Entities) > 0 {
			from = page.Entities[len(page.Entities)-1].RowKey + "!"
			continue
		}
		index, from = index+span, ""
	}
	return ids, index, from, index >= limit, nil
}

// checkPhotos checks the photos of ids. It returns wait > 0 (or < 0 for "no
// advice") when Graph throttled or failed some request and the item must be
// retried later, stop when photo sync cannot go on in this run (a missing
// permission), and err for storage failures.
func (e *Engine) checkPhotos(ctx context.Context, run Run, s Settings, ids []string, ch *photoChunk) (wait time.Duration, stop, err error) {
	rows, err := e.readUsers(ctx, ids)
	if err != nil {
		return 0, nil, err
	}
	var ask []string
	for _, id := range ids {
		u, ok := rows[id]
		switch {
		case !ok:
		case u.Status != StatusActive:
			// Not in the directory's synced users: its photo goes too.
			if u.PhotoETag != "" {
				if err := e.removePhoto(ctx, run, s, u, ch); err != nil {
					return 0, nil, err
				}
			}
		default:
			ask = append(ask, id)
		}
	}
	retry := func(err error) {
		if d := RetryAfter(err); d > wait {
			wait = d
		} else if wait == 0 {
			wait = -1
		}
	}
	for len(ask) > 0 {
		batch := ask[:min(len(ask), MaxPhotoBatch)]
		ask = ask[len(batch):]
		infos, errs, err := e.Source.UserPhotos(ctx, batch)
		ch.c.PhotoRequests++
		ch.c.PhotoUnits += int64(len(batch))
		if err != nil {
			if photoStop(err) {
				return 0, err, nil
			}
			retry(err)
			continue
		}
		for _, id := range batch {
			u := rows[id]
			info, ok := infos[id]
			if !ok {
				perr := errs[id]
				switch {
				case perr == nil:
					retry(Errorf(EUNAVAILABLE, "Graph's batch answer left out user %s", id))
				case IsCode(perr, ENOTFOUND):
					ch.c.PhotosChecked++
					if u.PhotoETag != "" || u.PhotoSkipped != "" {
						if err := e.removePhoto(ctx, run, s, u, ch); err != nil {
							return 0, nil, err
						}
					} else if u.PhotoBy == run.Seq {
						ch.c.PhotosRemoved++ // removed by an earlier attempt of this item
					}
				case photoStop(perr):
					return 0, perr, nil
				default:
					retry(perr)
				}
				continue
			}
			ch.c.PhotosChecked++
			if err := e.syncPhoto(ctx, run, s, u, info, ch); err != nil {
				if !isPhotoRetry(err) {
					return 0, nil, err
				}
				if photoStop(err) {
					return 0, err, nil
				}
				retry(err)
			}
		}
	}
	return wait, nil, nil
}

// photoStop reports errors after which photo sync cannot go on in this run.
func photoStop(err error) bool {
	switch ErrorCode(err) {
	case EFORBIDDEN, EUNAUTHORIZED:
		return true
	}
	return false
}

// graphPhotoError marks a Graph error of a photo download (as opposed to a
// storage error), for checkPhotos to retry or stop on.
type graphPhotoError struct{ error }

func (g graphPhotoError) Unwrap() error { return g.error }

func isPhotoRetry(err error) bool { _, ok := err.(graphPhotoError); return ok }

// syncPhoto stores the photo of u when its ETag differs from the row's (or
// when a photo skipped as too large now fits the limit), and records it on
// the row.
func (e *Engine) syncPhoto(ctx context.Context, run Run, s Settings, u User, info PhotoInfo, ch *photoChunk) error {
	limit := s.PhotoMaxBytes
	if limit <= 0 {
		limit = DefaultPhotoMaxBytes
	}
	refit := u.PhotoSkipped != "" && u.PhotoSize > 0 && u.PhotoSize <= limit
	if info.ETag != "" && info.ETag == u.PhotoETag && !refit {
		if u.PhotoBy == run.Seq { // stored or skipped by an earlier attempt of this item
			if u.PhotoSkipped != "" {
				ch.c.PhotosSkipped++
			} else {
				ch.c.PhotosFetched++
			}
		}
		return nil
	}
	logUser := LogEvent{UserID: u.ID, UPN: s.logUPN(u.UPN)}
	data, err := e.Source.UserPhotoData(ctx, u.ID, limit)
	ch.c.PhotoRequests++
	ch.c.PhotoUnits++
	var tl *PhotoTooLargeError
	switch {
	case err == nil:
	case IsCode(err, ENOTFOUND):
		if u.PhotoETag == "" && u.PhotoSkipped == "" {
			return nil
		}
		return e.removePhoto(ctx, run, s, u, ch)
	case asTooLarge(err, &tl):
		// The stored photo, if any, is of an older ETag: it goes.
		if err := e.Photos.DeletePhoto(ctx, u.ID); err != nil {
			return fmt.Errorf("delete the outdated photo of %s: %w", u.ID, err)
		}
		next := u
		next.PhotoETag, next.PhotoSize, next.PhotoType, next.PhotoBy = info.ETag, tl.Size, info.ContentType, run.Seq
		next.PhotoSkipped = "larger than photoMaxBytes"
		if err := e.writePhotoRow(ctx, next); err != nil {
			return err
		}
		ch.c.PhotosSkipped++
		ev := logUser
		ev.Event, ev.Level = EvPhotoSkipped, LevelWarn
		ev.Reason = tl.Error() + " (photoMaxBytes); it is not stored, and an older stored photo was removed"
		ch.lb.add(ev)
		return nil
	default:
		return graphPhotoError{err}
	}
	ctype := info.ContentType
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	if err := e.Photos.PutPhoto(ctx, u.ID, ctype, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("store the photo of %s: %w", u.ID, err)
	}
	next := u
	next.PhotoETag, next.PhotoSize, next.PhotoType, next.PhotoBy, next.PhotoSkipped = info.ETag, int64(len(data)), ctype, run.Seq, ""
	if err := e.writePhotoRow(ctx, next); err != nil {
		return err
	}
	ch.c.PhotosFetched++
	ev := logUser
	ev.Event = EvPhotoStored
	ev.Message = fmt.Sprintf("photo stored (%d bytes, %s)", len(data), ctype)
	if u.PhotoETag != "" {
		ev.Message = fmt.Sprintf("photo changed in Entra; stored (%d bytes, %s)", len(data), ctype)
	}
	ch.lb.add(ev)
	return nil
}

func asTooLarge(err error, tl **PhotoTooLargeError) bool {
	for err != nil {
		if t, ok := err.(*PhotoTooLargeError); ok {
			*tl = t
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// removePhoto deletes u's stored photo and clears the row's photo fields.
func (e *Engine) removePhoto(ctx context.Context, run Run, s Settings, u User, ch *photoChunk) error {
	if err := e.Photos.DeletePhoto(ctx, u.ID); err != nil {
		return fmt.Errorf("delete the photo of %s: %w", u.ID, err)
	}
	next := u
	next.PhotoETag, next.PhotoSize, next.PhotoType, next.PhotoBy, next.PhotoSkipped = "", 0, "", run.Seq, ""
	if err := e.writePhotoRow(ctx, next); err != nil {
		return err
	}
	ch.c.PhotosRemoved++
	reason := "the user has no photo in Entra any more"
	if u.Status != StatusActive {
		reason = "the user is not synced (" + u.Status + ")"
	}
	ch.lb.add(LogEvent{Event: EvPhotoRemoved, UserID: u.ID, UPN: s.logUPN(u.UPN), Reason: reason})
	return nil
}

// writePhotoRow writes a row's photo fields, conditional on the row as
// read: a page or promotion writing the user meanwhile makes the item retry
// (re-reading it; the photo it stored is found by its ETag).
func (e *Engine) writePhotoRow(ctx context.Context, u User) error {
	if _, err := e.Store.Replace(ctx, TableUsers, userToEntity(u)); err != nil {
		if IsCode(err, EPRECONDITION) || IsCode(err, ENOTFOUND) {
			return &Error{Code: EUNAVAILABLE, Message: "a user changed while its photo was synced; checking again", Err: err}
		}
		return fmt.Errorf("record the photo of %s: %w", u.ID, err)
	}
	return nil
}

// OpenUserPhoto streams the stored photo of a directory user, with its
// content type and size; the caller closes the reader. Errors: EINVALID for
// a malformed id, ENOTFOUND when the user is not in the directory or has no
// stored photo (the message says why that may be).
func (e *Engine) OpenUserPhoto(ctx context.Context, id string) (io.ReadCloser, string, int64, error) {
	u, err := e.GetUser(ctx, id)
	if err != nil {
		return nil, "", 0, err
	}
	if e.Photos == nil {
		return nil, "", 0, &Error{Code: ENOTFOUND, Message: "photos are not stored by this deployment (no photo store is configured)",
			Hint: "Configure the photo container (see docs/operations.md, Photo sync) and turn photoSync on in the settings."}
	}
	rc, ctype, size, err := e.Photos.OpenPhoto(ctx, id)
	if IsCode(err, ENOTFOUND) {
		why := "the user has no photo in Entra, photo sync (the photoSync setting) is off, or the photo has not been checked yet: every photo is checked within a day"
		if u.PhotoSkipped != "" {
			why = fmt.Sprintf("its photo (%d bytes) is %s", u.PhotoSize, u.PhotoSkipped)
		}
		return nil, "", 0, &Error{Code: ENOTFOUND, Message: fmt.Sprintf("user %s has no stored photo: %s", id, why),
			Hint: "Check GET /api/users/{id} (photoETag) and the photo_* lines of the latest run's log.", Err: err}
	}
	return rc, ctype, size, err
}
