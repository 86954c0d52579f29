package dirsynctest

import (
	"bytes"
	"context"
	"io"
	"sync"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Photos is an in-memory PhotoStore that keeps the port's contract.
type Photos struct {
	mu sync.Mutex
	m  map[string]StoredPhoto
	// Puts and Deletes count the calls.
	Puts, Deletes int
}

// StoredPhoto is one photo as stored.
type StoredPhoto struct {
	Data        []byte
	ContentType string
}

var _ dirsync.PhotoStore = (*Photos)(nil)

func NewPhotos() *Photos { return &Photos{m: map[string]StoredPhoto{}} }

func (p *Photos) PutPhoto(ctx context.Context, userID, contentType string, r io.Reader, size int64) error {
	data, err := io.ReadAll(io.LimitReader(r, size+1))
	if err != nil {
		return err
	}
	if int64(len(data)) != size {
		return dirsync.Errorf(dirsync.EINVALID, "photo of %s: %d bytes announced, %d read", userID, size, len(data))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Puts++
	p.m[userID] = StoredPhoto{Data: data, ContentType: contentType}
	return nil
}

func (p *Photos) DeletePhoto(ctx context.Context, userID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Deletes++
	delete(p.m, userID)
	return nil
}

func (p *Photos) OpenPhoto(ctx context.Context, userID string) (io.ReadCloser, string, int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.m[userID]
	if !ok {
		return nil, "", 0, dirsync.Errorf(dirsync.ENOTFOUND, "user %s has no stored photo", userID)
	}
	return io.NopCloser(bytes.NewReader(s.Data)), s.ContentType, int64(len(s.Data)), nil
}

// All returns every stored photo by user id.
func (p *Photos) All() map[string]StoredPhoto {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]StoredPhoto, len(p.m))
	for k, v := range p.m {
		out[k] = v
	}
	return out
}
