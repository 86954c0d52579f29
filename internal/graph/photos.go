package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"

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
// has none. A photo larger than maxBytes is not read past the limit (its
// Content-Length is checked first): EINVALID wrapping
// *dirsync.PhotoTooLargeError.
func (s *Source) UserPhotoData(ctx context.Context, id string, maxBytes int64) (data []byte, err error) {
	o := op{name: "download a user's photo", perm: permPhotos, notFound: fmt.Sprintf("user %s has no photo (or does not exist)", id)}
	defer s.guard(o, &err)
	if err := checkUserID(id); err != nil {
		return nil, err
	}
	if maxBytes <= 0 || maxBytes > maxBodyBytes {
		maxBytes = maxBodyBytes
	}
	ri, buildErr := s.client.Users().ByUserId(id).Photo().Content().ToGetRequestInformation(ctx, nil)
	if buildErr != nil {
		return nil, fmt.Errorf("graph: %s: build request: %w", o.name, buildErr)
	}
	cctx, ex := withExchange(ctx)
	ex.limit = maxBytes
	res, err := s.adapter.SendPrimitive(cctx, ri, "[]byte", errorMapping)
	var tl *tooLargeError
	if errors.As(err, &tl) {
		return nil, dirsync.PhotoTooLarge(id, tl.size, maxBytes)
	}
	if err != nil {
		return nil, mapError(ctx, o, err, ex)
	}
	data, _ = res.([]byte)
	if len(data) == 0 {
		return nil, dirsync.Errorf(dirsync.ENOTFOUND, "user %s has a photo record but Graph returned no image data", id)
	}
	return data, nil
}

// UserPhotos reads the photo metadata of up to dirsync.MaxPhotoBatch users
// in one JSON batch (POST /$batch): one round trip, though each inner
// request still costs its resource unit. Inner answers are mapped like
// single requests: 404 is ENOTFOUND (no photo), 429 ETHROTTLED with the
// inner Retry-After, and so on. A failure of the batch itself is err.
func (s *Source) UserPhotos(ctx context.Context, ids []string) (infos map[string]dirsync.PhotoInfo, errs map[string]error, err error) {
	o := op{name: "read users' photos (batch)", perm: permPhotos}
	defer s.guard(o, &err)
	if len(ids) == 0 {
		return map[string]dirsync.PhotoInfo{}, map[string]error{}, nil
	}
	if len(ids) > dirsync.MaxPhotoBatch {
		return nil, nil, dirsync.Errorf(dirsync.EINVALID, "a photo batch holds at most %d users, got %d", dirsync.MaxPhotoBatch, len(ids))
	}
	type inner struct {
		ID     string `json:"id"`
		Method string `json:"method"`
		URL    string `json:"url"`
	}
	reqs := make([]inner, len(ids))
	for i, id := range ids {
		if err := checkUserID(id); err != nil {
			return nil, nil, err
		}
		reqs[i] = inner{ID: strconv.Itoa(i), Method: "GET", URL: "/users/" + id + "/photo"}
	}
	body, _ := json.Marshal(map[string]any{"requests": reqs})
	ri := abs.NewRequestInformation()
	ri.Method = abs.POST
	ri.UrlTemplate = "{+baseurl}/$batch"
	ri.PathParameters = map[string]string{"baseurl": s.adapter.GetBaseUrl()}
	ri.Headers.TryAdd("Accept", "application/json")
	ri.SetStreamContentAndContentType(body, "application/json")
	raw, err := s.send(ctx, o, ri, nil)
	if err != nil {
		return nil, nil, err
	}
	var ans struct {
		Responses []struct {
			ID      string            `json:"id"`
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
			Body    json.RawMessage   `json:"body"`
		} `json:"responses"`
	}
	if err := strictUnmarshal(raw, &ans); err != nil {
		return nil, nil, unreadable(o, err)
	}
	infos, errs = map[string]dirsync.PhotoInfo{}, map[string]error{}
	now := time.Now()
	for _, r := range ans.Responses {
		i, err := strconv.Atoi(r.ID)
		if err != nil || i < 0 || i >= len(ids) {
			continue
		}
		id := ids[i]
		one := op{name: "read a user's photo", perm: permPhotos, notFound: fmt.Sprintf("user %s has no photo (or does not exist)", id)}
		if r.Status != http.StatusOK {
			ge := &graphError{Op: one.name, Status: r.Status}
			var eb struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if json.Unmarshal(r.Body, &eb) == nil {
				ge.Code, ge.Message = eb.Error.Code, clip(eb.Error.Message, 300)
			}
			h := http.Header{}
			for k, v := range r.Headers {
				h.Set(k, v)
			}
			errs[id] = statusError(one, ge, h, nil, now)
			continue
		}
		info, err := parsePhotoInfo(r.Body)
		if err != nil {
			errs[id] = unreadable(one, err)
			continue
		}
		infos[id] = info
	}
	for _, id := range ids {
		_, ok1 := infos[id]
		_, ok2 := errs[id]
		if !ok1 && !ok2 {
			errs[id] = &dirsync.Error{Code: dirsync.EUNAVAILABLE, Message: "Graph's batch answer left out the photo of user " + id, Hint: "Retried automatically."}
		}
	}
	return infos, errs, nil
}

func parsePhotoInfo(body []byte) (dirsync.PhotoInfo, error) {
	var p struct {
		ETag        string `json:"@odata.mediaEtag"`
		ContentType string `json:"@odata.mediaContentType"`
		Width       *int   `json:"width"`
		Height      *int   `json:"height"`
	}
	if err := strictUnmarshal(body, &p); err != nil {
		return dirsync.PhotoInfo{}, err
	}
	info := dirsync.PhotoInfo{ETag: p.ETag, ContentType: p.ContentType}
	if p.Width != nil {
		info.Width = *p.Width
	}
	if p.Height != nil {
		info.Height = *p.Height
	}
	return info, nil
}
