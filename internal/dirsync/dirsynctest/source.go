package dirsynctest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Source is an in-memory Graph: a tenant with a change history, serving
// users delta pages with links like Graph's (opaque strings to the engine).
// A round (a full enumeration, or the changes since a delta link) is fixed
// when it starts, as Graph's is: users changed during the round appear with
// their current state, and again in the next round.
type Source struct {
	mu      sync.Mutex
	users   map[string]map[string]string // present users
	removed map[string]string            // id -> removal reason
	version map[string]int               // id -> version of last change
	history map[string][]snapshot        // id -> states by version
	rounds  map[int][]string             // round -> ids, fixed at its start
	ver     int
	gen     int // Expire increments it; links of older generations are expired
	// PageSize is the number of users per page (default 100).
	PageSize int
	// Partial makes later delta rounds send only the attributes that changed
	// since the round's delta link was issued, and removed ones as cleared
	// (null), as Graph may.
	Partial bool
	// FreshLinks words every link a fetch returns anew (a fetch counter in
	// it), as Graph may and the local Graph simulator does (its skiptokens
	// carry when they were issued): a page fetched again leads to another
	// link to the same next page.
	FreshLinks bool
	// Errs are returned, in order, by the next UsersDelta calls.
	Errs  []error
	Calls int

	// Groups (groups.go).
	groups        map[string]*fakeGroup // existing groups
	deletedGroups map[string]bool       // ids of deleted groups, never reused
	removedFrom   map[string][]string   // soft-deleted user -> groups to restore it to
	groupLog      []groupEvent          // every group change, by version
	groupRounds   []groupRound          // groups delta rounds by number
	// GroupPageSize is the number of group entries per groups delta page,
	// GroupMembersPerPage the most member changes one entry carries (a
	// group with more is split over entries), MemberPageSize the members
	// per transitive members page. Zero picks the Default* values.
	GroupPageSize       int
	GroupMembersPerPage int
	MemberPageSize      int
	// GroupErrs are returned, in order, by the next calls of GroupsDelta,
	// GroupTransitiveMembers and Group (a nil entry lets one call through);
	// GroupCalls counts those calls.
	GroupErrs  []error
	GroupCalls int
	// repeat: users the next round lists a second time, at its end.
	repeat []string
	photos map[string]fakePhoto
	photoV int
	// PhotoErrs are returned, in order, by the next UserPhotos calls (the
	// whole batch fails); ThrottlePhotos makes the next n requests inside
	// batches answer 429 (ETHROTTLED, RetryAfter 5 s).
	PhotoErrs      []error
	ThrottlePhotos int
	// PhotoBatches and PhotoDownloads count UserPhotos and UserPhotoData
	// calls; PhotoChecks the users asked about in batches.
	PhotoBatches, PhotoDownloads, PhotoChecks int
	// PhotoAsked lists every id asked about in batches, in order.
	PhotoAsked []string
}

type fakePhoto struct {
	data        []byte
	contentType string
	etag        string
}

type snapshot struct {
	ver   int
	attrs map[string]string // nil: removed
}

var _ dirsync.Source = (*Source)(nil)

func NewSource() *Source {
	return &Source{users: map[string]map[string]string{}, removed: map[string]string{}, version: map[string]int{},
		history: map[string][]snapshot{}, rounds: map[int][]string{}, PageSize: 3}
}

// Put adds, changes or restores a user.
func (s *Source) Put(id string, attrs map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ver++
	_, wasRemoved := s.removed[id]
	s.users[id] = maps.Clone(attrs)
	delete(s.removed, id)
	if wasRemoved {
		s.userRestored(id)
	}
	s.version[id] = s.ver
	s.history[id] = append(s.history[id], snapshot{ver: s.ver, attrs: maps.Clone(attrs)})
}

// Remove deletes a user (reason dirsync.RemovedChanged or RemovedDeleted),
// taking it out of its groups (a later Put restores a soft-deleted user's
// memberships).
func (s *Source) Remove(id, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[id]; !ok {
		return
	}
	s.ver++
	delete(s.users, id)
	s.removed[id] = reason
	s.userRemoved(id, reason)
	s.version[id] = s.ver
	s.history[id] = append(s.history[id], snapshot{ver: s.ver})
}

// Expire makes every link issued so far invalid.
func (s *Source) Expire() { s.mu.Lock(); s.gen++; s.mu.Unlock() }

// Users returns the present users (ground truth).
func (s *Source) Users() map[string]map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[string]string{}
	for id, a := range s.users {
		out[id] = maps.Clone(a)
	}
	return out
}

// stateAt returns a user's attributes at version v (nil: absent).
func (s *Source) stateAt(id string, v int) map[string]string {
	var cur map[string]string
	for _, h := range s.history[id] {
		if h.ver > v {
			break
		}
		cur = h.attrs
	}
	return cur
}

// touchedSince lists the attributes of a user that any change after
// version v touched (set, changed or removed).
func (s *Source) touchedSince(id string, v int) map[string]bool {
	out := map[string]bool{}
	var prev map[string]string
	for _, h := range s.history[id] {
		if h.ver > v {
			for k, val := range h.attrs {
				if pv, ok := prev[k]; !ok || pv != val {
					out[k] = true
				}
			}
			for k := range prev {
				if _, ok := h.attrs[k]; !ok {
					out[k] = true
				}
			}
		}
		prev = h.attrs
	}
	return out
}

// Links: "round|<round>|<since>|<at>|<offset>|<generation>" within a round
// (since -1 for a full enumeration) and "delta|<at>|<generation>" at its end;
// with FreshLinks, "fetch<n>|" before the generation.
// RepeatLater makes the next round list user id a second time, in its
// last page: Graph may return a user in more than one page of a round.
func (s *Source) RepeatLater(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repeat = append(s.repeat, id)
}

func (s *Source) UsersDelta(ctx context.Context, req dirsync.DeltaRequest) (dirsync.UserPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Calls++
	if len(s.Errs) > 0 {
		err := s.Errs[0]
		s.Errs = s.Errs[1:]
		if err != nil {
			return dirsync.UserPage{}, err
		}
	}
	parts := strings.Split(req.Link, "|")
	if req.Link != "" {
		if g, _ := strconv.Atoi(parts[len(parts)-1]); g < s.gen {
			return dirsync.UserPage{}, &dirsync.Error{Code: dirsync.ETOKENEXPIRED, Message: "the delta token has expired"}
		}
	}
	atoi := func(i int) int { n, _ := strconv.Atoi(parts[i]); return n }
	var round, since, at, offset int
	switch {
	case req.Link == "" || parts[0] == "delta":
		since, at = -1, s.ver
		if req.Link != "" {
			since = atoi(1)
		}
		var ids []string
		for id, v := range s.version {
			_, present := s.users[id]
			if (since < 0 && present) || (since >= 0 && v > since) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range s.repeat {
			if _, present := s.users[id]; present {
				ids = append(ids, id)
			}
		}
		s.repeat = nil
		round = len(s.rounds) + 1
		s.rounds[round] = ids
	case parts[0] == "round" && (len(parts) == 6 || len(parts) == 7):
		round, since, at, offset = atoi(1), atoi(2), atoi(3), atoi(4)
	default:
		return dirsync.UserPage{}, dirsync.Errorf(dirsync.EINVALID, "bad link %q", req.Link)
	}
	ids := s.rounds[round]
	size := s.PageSize
	if size <= 0 {
		size = 100
	}
	offset = min(offset, len(ids))
	end := min(offset+size, len(ids))
	var page dirsync.UserPage
	for _, id := range ids[offset:end] {
		a, present := s.users[id]
		switch {
		case present:
			su := dirsync.SourceUser{ID: id, Attributes: maps.Clone(a)}
			if before := s.stateAt(id, since); since >= 0 && before != nil {
				// A later round sends every attribute updated since the
				// link was issued (even one changed and changed back), a
				// cleared one as null; Partial sends nothing else.
				touched := s.touchedSince(id, since)
				for k := range touched {
					if _, ok := a[k]; !ok {
						su.Cleared = append(su.Cleared, k)
					}
				}
				sort.Strings(su.Cleared)
				if s.Partial {
					su.Attributes = map[string]string{}
					for k := range touched {
						if v, ok := a[k]; ok {
							su.Attributes[k] = v
						}
					}
				}
			}
			page.Users = append(page.Users, su)
		case since >= 0:
			page.Users = append(page.Users, dirsync.SourceUser{ID: id, Removed: s.removed[id]})
		}
	}
	fresh := ""
	if s.FreshLinks {
		fresh = fmt.Sprintf("fetch%d|", s.Calls)
	}
	if end < len(ids) {
		page.NextLink = fmt.Sprintf("round|%d|%d|%d|%d|%s%d", round, since, at, end, fresh, s.gen)
	} else {
		page.DeltaLink = fmt.Sprintf("delta|%d|%s%d", at, fresh, s.gen)
	}
	return page, nil
}

// ReverseRounds reverses the order of the users of every round begun so
// far, so that a page fetched again holds other users than it did: Graph
// answering a retried link from another round.
func (s *Source) ReverseRounds() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ids := range s.rounds {
		slices.Reverse(ids)
	}
}

func (s *Source) User(ctx context.Context, id string, sel []string) (dirsync.SourceUser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.users[id]
	if !ok {
		// Graph also finds a user by its userPrincipalName.
		for uid, attrs := range s.users {
			if strings.EqualFold(attrs["userPrincipalName"], id) {
				id, a, ok = uid, attrs, true
				break
			}
		}
	}
	if !ok {
		return dirsync.SourceUser{}, dirsync.Errorf(dirsync.ENOTFOUND, "user %s not found", id)
	}
	return dirsync.SourceUser{ID: id, Attributes: maps.Clone(a)}, nil
}

// SetPhoto gives user id a photo (or a new one: a new ETag each time).
func (s *Source) SetPhoto(id string, data []byte, contentType string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.photos == nil {
		s.photos = map[string]fakePhoto{}
	}
	s.photoV++
	s.photos[id] = fakePhoto{data: slices.Clone(data), contentType: contentType, etag: fmt.Sprintf("W/\"photo-%d\"", s.photoV)}
}

// RemovePhoto removes user id's photo.
func (s *Source) RemovePhoto(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.photos, id)
}

// Photo returns user id's photo and its ETag ("" when none).
func (s *Source) Photo(id string) (data []byte, contentType, etag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.photos[id]
	return slices.Clone(p.data), p.contentType, p.etag
}

func (s *Source) photoInfo(id string) (dirsync.PhotoInfo, error) {
	p, ok := s.photos[id]
	if _, user := s.users[id]; !ok || !user {
		return dirsync.PhotoInfo{}, dirsync.Errorf(dirsync.ENOTFOUND, "user %s has no photo", id)
	}
	return dirsync.PhotoInfo{ETag: p.etag, ContentType: p.contentType, Width: 48, Height: 48}, nil
}

func (s *Source) UserPhoto(ctx context.Context, id string) (dirsync.PhotoInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.photoInfo(id)
}

func (s *Source) UserPhotos(ctx context.Context, ids []string) (map[string]dirsync.PhotoInfo, map[string]error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.PhotoBatches++
	if len(s.PhotoErrs) > 0 {
		err := s.PhotoErrs[0]
		s.PhotoErrs = s.PhotoErrs[1:]
		if err != nil {
			return nil, nil, err
		}
	}
	if len(ids) > dirsync.MaxPhotoBatch {
		return nil, nil, dirsync.Errorf(dirsync.EINVALID, "a batch holds at most %d requests, got %d", dirsync.MaxPhotoBatch, len(ids))
	}
	infos, errs := map[string]dirsync.PhotoInfo{}, map[string]error{}
	for _, id := range ids {
		s.PhotoChecks++
		s.PhotoAsked = append(s.PhotoAsked, id)
		if s.ThrottlePhotos > 0 {
			s.ThrottlePhotos--
			errs[id] = &dirsync.Error{Code: dirsync.ETHROTTLED, Message: "throttled inside the batch", RetryAfter: 5 * time.Second}
			continue
		}
		info, err := s.photoInfo(id)
		if err != nil {
			errs[id] = err
		} else {
			infos[id] = info
		}
	}
	return infos, errs, nil
}

func (s *Source) UserPhotoData(ctx context.Context, id string, maxBytes int64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.PhotoDownloads++
	if _, err := s.photoInfo(id); err != nil {
		return nil, err
	}
	p := s.photos[id]
	if int64(len(p.data)) > maxBytes {
		return nil, dirsync.PhotoTooLarge(id, int64(len(p.data)), maxBytes)
	}
	return slices.Clone(p.data), nil
}
