package dirsynctest

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Source is an in-memory Graph: a tenant with a change log, serving users
// delta pages with links like Graph's (opaque strings to the engine).
type Source struct {
	mu       sync.Mutex
	users    map[string]map[string]string // present users
	removed  map[string]string            // id -> removal reason
	version  map[string]int               // id -> version of last change
	ver      int
	gen      int // Expire increments it; links of older generations are expired
	PageSize int
	// Partial makes later delta rounds send only the attributes that changed
	// in a user's last Put, and list removed ones as cleared (null), as Graph
	// may.
	Partial bool
	changed map[string]map[string]string // id -> attributes changed by the last Put
	cleared map[string][]string
	// Errs are returned, in order, by the next UsersDelta calls.
	Errs  []error
	Calls int
}

var _ dirsync.Source = (*Source)(nil)

func NewSource() *Source {
	return &Source{users: map[string]map[string]string{}, removed: map[string]string{}, version: map[string]int{}, PageSize: 3}
}

// Put adds or changes a user.
func (s *Source) Put(id string, attrs map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ver++
	if s.changed == nil {
		s.changed, s.cleared = map[string]map[string]string{}, map[string][]string{}
	}
	prev, existed := s.users[id]
	diff, gone := map[string]string{}, []string(nil)
	for k, v := range attrs {
		if prev[k] != v || !existed {
			diff[k] = v
		}
	}
	for k := range prev {
		if _, ok := attrs[k]; !ok {
			gone = append(gone, k)
		}
	}
	sort.Strings(gone)
	if existed {
		s.changed[id], s.cleared[id] = diff, gone
	} else {
		delete(s.changed, id)
		delete(s.cleared, id)
	}
	s.users[id] = maps.Clone(attrs)
	delete(s.removed, id)
	s.version[id] = s.ver
}

// Remove deletes a user (reason dirsync.RemovedChanged or RemovedDeleted).
func (s *Source) Remove(id, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ver++
	delete(s.users, id)
	s.removed[id] = reason
	s.version[id] = s.ver
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

// Links: "full|<ver>|<offset>" (enumeration), "delta|<ver>" (delta link),
// "changes|<since>|<ver>|<offset>", each followed by "|<generation>".
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
		parts = parts[:len(parts)-1]
	}
	atoi := func(i int) int { n, _ := strconv.Atoi(parts[i]); return n }
	var ids []string
	var offset, at int
	var kind string
	switch {
	case req.Link == "":
		kind, at = "full", s.ver
		for id := range s.users {
			ids = append(ids, id)
		}
	case parts[0] == "full":
		kind, at, offset = "full", atoi(1), atoi(2)
		for id := range s.users {
			ids = append(ids, id)
		}
	case parts[0] == "delta" || parts[0] == "changes":
		since := atoi(1)
		kind, at = "changes", s.ver
		if parts[0] == "changes" {
			at, offset = atoi(2), atoi(3)
		}
		for id, v := range s.version {
			if v > since && v <= at {
				ids = append(ids, id)
			}
		}
		if parts[0] == "delta" {
			parts = []string{"changes", parts[1]}
		}
	default:
		return dirsync.UserPage{}, dirsync.Errorf(dirsync.EINVALID, "bad link %q", req.Link)
	}
	sort.Strings(ids)
	size := s.PageSize
	if size <= 0 {
		size = 100
	}
	end := min(offset+size, len(ids))
	var page dirsync.UserPage
	for _, id := range ids[offset:end] {
		if a, ok := s.users[id]; ok {
			su := dirsync.SourceUser{ID: id, Attributes: maps.Clone(a)}
			if diff, partial := s.changed[id]; partial && s.Partial && kind == "changes" {
				su.Attributes, su.Cleared = maps.Clone(diff), s.cleared[id]
			}
			page.Users = append(page.Users, su)
		} else if kind == "changes" {
			page.Users = append(page.Users, dirsync.SourceUser{ID: id, Removed: s.removed[id]})
		}
	}
	if end < len(ids) {
		if kind == "full" {
			page.NextLink = fmt.Sprintf("full|%d|%d|%d", at, end, s.gen)
		} else {
			page.NextLink = fmt.Sprintf("changes|%s|%d|%d|%d", parts[1], at, end, s.gen)
		}
	} else {
		page.DeltaLink = fmt.Sprintf("delta|%d|%d", at, s.gen)
	}
	return page, nil
}

func (s *Source) GroupsDelta(ctx context.Context, req dirsync.GroupDeltaRequest) (dirsync.GroupPage, error) {
	return dirsync.GroupPage{DeltaLink: "groups"}, nil
}

func (s *Source) GroupTransitiveMembers(ctx context.Context, groupID, link string) (dirsync.MemberPage, error) {
	return dirsync.MemberPage{}, nil
}

func (s *Source) User(ctx context.Context, id string, sel []string) (dirsync.SourceUser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.users[id]
	if !ok {
		return dirsync.SourceUser{}, dirsync.Errorf(dirsync.ENOTFOUND, "user %s not found", id)
	}
	return dirsync.SourceUser{ID: id, Attributes: maps.Clone(a)}, nil
}

func (s *Source) UserPhoto(ctx context.Context, id string) (dirsync.PhotoInfo, error) {
	return dirsync.PhotoInfo{}, dirsync.Errorf(dirsync.ENOTFOUND, "no photo")
}

func (s *Source) UserPhotoData(ctx context.Context, id string) ([]byte, error) {
	return nil, dirsync.Errorf(dirsync.ENOTFOUND, "no photo")
}
