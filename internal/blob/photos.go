package blob

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	azblobpkg "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/entrasync/entrasync/internal/dirsync"
)

var _ dirsync.PhotoStore = (*PhotoStore)(nil)

// DefaultPhotoContainer holds the photos when Config.Container is empty.
const DefaultPhotoContainer = "photos"

// photoPrefix starts every photo blob's name: photos/<user object id>.
const photoPrefix = "photos/"

// PhotoStore is a dirsync.PhotoStore: one block blob per user, named
// photos/<object id>, with the photo's content type, in one container that
// the first PutPhoto creates. Uploads stream in blocks of 1 MiB (one block
// buffered at a time).
type PhotoStore struct {
	s     *LogStore
	ready atomic.Bool // the container is known to exist
}

// NewPhotos validates cfg and returns a PhotoStore (Container defaults to
// "photos"). It does not contact the service.
func NewPhotos(cfg Config) (*PhotoStore, error) {
	if cfg.Container == "" {
		cfg.Container = DefaultPhotoContainer
	}
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return &PhotoStore{s: s}, nil
}

func (p *PhotoStore) blob(userID string) (*blockblob.Client, error) {
	if !validUserID(userID) {
		return nil, dirsync.Errorf(dirsync.EINVALID, "%q is not a user object id (a GUID)", truncateName(userID))
	}
	return p.s.cont.NewBlockBlobClient(photoPrefix + userID), nil
}

func validUserID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, c := range id {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

func truncateName(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// countingReader counts what was read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// PutPhoto uploads exactly size bytes from r as the user's photo, replacing
// any earlier one. A reader holding fewer or more bytes than size is
// EINVALID, and nothing is left stored.
func (p *PhotoStore) PutPhoto(ctx context.Context, userID, contentType string, r io.Reader, size int64) error {
	b, err := p.blob(userID)
	if err != nil {
		return err
	}
	if size < 0 {
		return dirsync.Errorf(dirsync.EINVALID, "photo of %s: size %d is negative", userID, size)
	}
	if !p.ready.Load() {
		if err := p.s.createContainer(ctx); err != nil {
			return err
		}
		p.ready.Store(true)
	}
	cr := &countingReader{r: io.LimitReader(r, size+1)}
	_, err = b.UploadStream(ctx, cr, &blockblob.UploadStreamOptions{
		BlockSize: 1 << 20, Concurrency: 1,
		HTTPHeaders: &azblobpkg.HTTPHeaders{BlobContentType: to.Ptr(contentType)},
	})
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		p.ready.Store(false) // deleted meanwhile: created again by the retry
	}
	if err != nil {
		return translate("store photo of "+userID, err)
	}
	if cr.n != size {
		_, _ = b.Delete(ctx, nil)
		return dirsync.Errorf(dirsync.EINVALID, "photo of %s: %d bytes announced but the data held %s; nothing was stored", userID, size, moreOrLess(cr.n, size))
	}
	return nil
}

func moreOrLess(n, size int64) string {
	if n > size {
		return "more"
	}
	return "fewer"
}

// DeletePhoto removes the user's photo; a missing photo (or container) is
// not an error.
func (p *PhotoStore) DeletePhoto(ctx context.Context, userID string) error {
	b, err := p.blob(userID)
	if err != nil {
		return err
	}
	_, err = b.Delete(ctx, nil)
	if err == nil || bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) || isStatus(err, 404) {
		return nil
	}
	return translate("delete photo of "+userID, err)
}

// OpenPhoto streams the user's photo with its content type and size
// (ENOTFOUND when there is none). The caller closes the reader.
func (p *PhotoStore) OpenPhoto(ctx context.Context, userID string) (io.ReadCloser, string, int64, error) {
	b, err := p.blob(userID)
	if err != nil {
		return nil, "", 0, err
	}
	resp, err := b.DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) || isStatus(err, 404) {
		return nil, "", 0, dirsync.Errorf(dirsync.ENOTFOUND, "user %s has no stored photo", userID)
	}
	if err != nil {
		return nil, "", 0, translate("open photo of "+userID, err)
	}
	ctype, size := "application/octet-stream", int64(0)
	if resp.ContentType != nil && *resp.ContentType != "" {
		ctype = *resp.ContentType
	}
	if resp.ContentLength != nil {
		size = *resp.ContentLength
	}
	rc := resp.NewRetryReader(ctx, &azblobpkg.RetryReaderOptions{MaxRetries: 3})
	return &logReader{rc: rc, name: photoPrefix + userID}, ctype, size, nil
}

// Ping reads the container's properties (see LogStore.Ping).
func (p *PhotoStore) Ping(ctx context.Context) error { return p.s.Ping(ctx) }
