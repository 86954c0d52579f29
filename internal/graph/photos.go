package graph

import (
	"context"
	"fmt"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// UserPhoto returns the metadata of a user's photo; ENOTFOUND when the user
// has none. Photo changes never appear in delta, so the engine compares ETag.
func (s *Source) UserPhoto(ctx context.Context, id string) (info dirsync.PhotoInfo, err error) {
	o := op{name: "read a user's photo", perm: permPhotos, notFound: fmt.Sprintf("user %s has no photo (or does not exist)", id)}
	defer s.guard(o, &err)
	if err := checkUserID(id); err != nil {
		return info, err
	}
	ri, buildErr := s.client.Users().ByUserId(id).Photo().ToGetRequestInformation(ctx, nil)
	body, err := s.send(ctx, o, ri, buildErr)
	if err != nil {
		return info, err
	}
	var p struct {
		ETag        string `json:"@odata.mediaEtag"`
		ContentType string `json:"@odata.mediaContentType"`
		Width       *int   `json:"width"`
		Height      *int   `json:"height"`
	}
	if err := strictUnmarshal(body, &p); err != nil {
		return info, unreadable(o, err)
	}
	info = dirsync.PhotoInfo{ETag: p.ETag, ContentType: p.ContentType}
	if p.Width != nil {
		info.Width = *p.Width
	}
	if p.Height != nil {
		info.Height = *p.Height
	}
	return info, nil
}

// UserPhotoData returns the bytes of a user's photo; ENOTFOUND when the user
// has none.
func (s *Source) UserPhotoData(ctx context.Context, id string) (data []byte, err error) {
	o := op{name: "download a user's photo", perm: permPhotos, notFound: fmt.Sprintf("user %s has no photo (or does not exist)", id)}
	defer s.guard(o, &err)
	if err := checkUserID(id); err != nil {
		return nil, err
	}
	ri, buildErr := s.client.Users().ByUserId(id).Photo().Content().ToGetRequestInformation(ctx, nil)
	data, err = s.send(ctx, o, ri, buildErr)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, dirsync.Errorf(dirsync.ENOTFOUND, "user %s has a photo record but Graph returned no image data", id)
	}
	return data, nil
}
