package dirsync

import (
	"context"
	"fmt"
)

// Removal reasons Graph gives in "@removed" for users and group members.
const (
	RemovedChanged = "changed" // soft-deleted: restorable for 30 days
	RemovedDeleted = "deleted" // hard-deleted
)

// DeltaRequest asks for one page of /users/delta.
type DeltaRequest struct {
	// Link is a stored @odata.nextLink or @odata.deltaLink, used verbatim.
	// Empty starts a fresh full enumeration.
	Link string
	// Select lists the Graph user attributes to ask for ($select) when Link is
	// empty; the links Graph returns carry their own selection.
	Select []string
	// PageSize asks for at most this many users per page (Prefer:
	// odata.maxpagesize). Zero leaves it to Graph.
	PageSize int
}

// SourceUser is a user as Graph returned it. In the first round of a delta
// query every selected property that is set is present. In later rounds
// Graph returns "at least the properties that have been updated" (Graph's
// delta query overview): an absent attribute is then unchanged, and a cleared
// one arrives as null (Cleared).
type SourceUser struct {
	ID string
	// Attributes holds every attribute Graph returned, by its Graph name.
	// A property Graph omitted is absent, never "". Multi-valued attributes
	// (businessPhones, otherMails...) are joined with "; ". "manager" holds the
	// manager's object id.
	Attributes map[string]string
	// Cleared lists attributes Graph sent as null: cleared since the delta
	// token was issued.
	Cleared []string
	// Removed is "" for a present user, RemovedChanged or RemovedDeleted.
	Removed string
}

// UserPage is one page of a users delta round. Exactly one of NextLink and
// DeltaLink is set: NextLink while the round goes on, DeltaLink at its end.
type UserPage struct {
	Users     []SourceUser
	NextLink  string
	DeltaLink string
}

// GroupDeltaRequest asks for one page of /groups/delta with members.
type GroupDeltaRequest struct {
	// Link is a link returned by a previous GroupsDelta call (possibly an
	// adapter-made composite link); empty starts a fresh round.
	Link string
	// GroupIDs limits the round to these groups when Link is empty. Any number
	// is accepted: the adapter splits them into filters of at most 50 ids.
	// Empty means every group.
	GroupIDs []string
}

// SourceGroup is a group as a groups delta page returned it.
type SourceGroup struct {
	ID          string
	DisplayName string
	Removed     string
	// MembersAdded and MembersRemoved are the user member object ids
	// reported in members@delta (in the first round every member is "added").
	MembersAdded   []string
	MembersRemoved []string
	// GroupsAdded and GroupsRemoved are the nested group members
	// (#microsoft.graph.group) reported in members@delta.
	GroupsAdded   []string
	GroupsRemoved []string
}

// GroupPage is one page of a groups delta round; links as in UserPage.
type GroupPage struct {
	Groups    []SourceGroup
	NextLink  string
	DeltaLink string
}

// MemberPage is one page of a group's transitive members.
type MemberPage struct {
	UserIDs []string
	// GroupIDs are the nested groups found on this page (at any depth).
	GroupIDs []string
	NextLink string // "" on the last page
}

// PhotoInfo describes a user's photo. ETag changes when the photo does.
type PhotoInfo struct {
	ETag        string
	ContentType string
	Width       int
	Height      int
}

// Source reads users and groups from Microsoft Graph. It never writes.
//
// Error contract, for every method: ETOKENEXPIRED when a stored link is no
// longer valid (400 syncStateNotFound, resyncRequired, 410 Gone, in any form);
// ETHROTTLED with RetryAfter when Graph asked us to wait longer than the
// adapter is willing to wait in-call; EUNAVAILABLE for transient failures that
// remained after the adapter's bounded in-call retries; EFORBIDDEN naming the
// missing Graph permission and how to grant it; EUNAUTHORIZED when the
// credentials are rejected; ENOTFOUND for a missing user, group or photo;
// EINVALID for a malformed answer or request (the message says which).
type Source interface {
	// UsersDelta fetches exactly one page of users.
	UsersDelta(ctx context.Context, req DeltaRequest) (UserPage, error)
	// GroupsDelta fetches exactly one page of groups with member changes.
	GroupsDelta(ctx context.Context, req GroupDeltaRequest) (GroupPage, error)
	// GroupTransitiveMembers fetches one page of a group's user members,
	// nested groups expanded. link "" starts at the first page.
	GroupTransitiveMembers(ctx context.Context, groupID, link string) (MemberPage, error)
	// Group fetches one group's id and displayName (ENOTFOUND when it does
	// not exist, or was deleted).
	Group(ctx context.Context, id string) (SourceGroup, error)
	// User fetches one user with the given attributes.
	User(ctx context.Context, id string, selectAttrs []string) (SourceUser, error)
	// UserPhoto returns the photo's metadata (ENOTFOUND when there is none).
	UserPhoto(ctx context.Context, id string) (PhotoInfo, error)
	// UserPhotos returns the photo metadata of up to MaxPhotoBatch users in
	// one round trip (Graph's JSON batching: each inner request still costs
	// its resource unit). infos holds the users that have a photo; errs holds
	// a per-user error (ENOTFOUND: no photo; ETHROTTLED with RetryAfter: that
	// request was throttled inside the batch; any code of the contract);
	// every id is in exactly one of them unless err, the failure of the
	// whole batch, is set.
	UserPhotos(ctx context.Context, ids []string) (infos map[string]PhotoInfo, errs map[string]error, err error)
	// UserPhotoData returns the photo's bytes (ENOTFOUND when there is none).
	// A photo larger than maxBytes is not read past the limit: the error is
	// EINVALID wrapping *PhotoTooLargeError (its Size is -1 when Graph did
	// not say).
	UserPhotoData(ctx context.Context, id string, maxBytes int64) ([]byte, error)
}

// MaxPhotoBatch is the most users one Source.UserPhotos call takes (Graph's
// JSON batching limit, 20 requests).
const MaxPhotoBatch = 20

// PhotoTooLargeError says a photo exceeds the size limit it was read with.
type PhotoTooLargeError struct {
	Size  int64 // the photo's size, -1 when unknown
	Limit int64
}

func (e *PhotoTooLargeError) Error() string {
	if e.Size < 0 {
		return fmt.Sprintf("the photo is larger than the limit of %d bytes", e.Limit)
	}
	return fmt.Sprintf("the photo has %d bytes, more than the limit of %d bytes", e.Size, e.Limit)
}

// PhotoTooLarge returns the error UserPhotoData implementations return for
// a photo over the limit.
func PhotoTooLarge(id string, size, limit int64) error {
	tl := &PhotoTooLargeError{Size: size, Limit: limit}
	return &Error{Code: EINVALID, Message: fmt.Sprintf("the photo of user %s is too large: %s", id, tl.Error()),
		Hint: "Raise photoMaxBytes in the settings (at most 20 MiB) or ask the user for a smaller photo.", Err: tl}
}
