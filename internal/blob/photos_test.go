package blob_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/blob"
	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/testenv"
)

const photoUser = "0f8fad5b-d9cb-469f-a165-70867728950e"

func newPhotos(t *testing.T) *blob.PhotoStore {
	t.Helper()
	p, err := blob.NewPhotos(blob.Config{ConnectionString: testenv.Storage(t), Container: testenv.UniqueName(t, "photos")})
	if err != nil {
		t.Fatalf("NewPhotos: %v", err)
	}
	return p
}

func TestPhotoPutOpenReplaceDelete(t *testing.T) {
	p := newPhotos(t)
	ctx := context.Background()
	if _, _, _, err := p.OpenPhoto(ctx, photoUser); dirsync.ErrorCode(err) != dirsync.ENOTFOUND {
		t.Fatalf("OpenPhoto before any put: %v, want ENOTFOUND", err)
	}
	if err := p.DeletePhoto(ctx, photoUser); err != nil {
		t.Fatalf("DeletePhoto of a missing photo: %v, want nil", err)
	}
	for _, tc := range []struct {
		data  []byte
		ctype string
	}{
		{[]byte("\xff\xd8\xff\xe0 a jpeg"), "image/jpeg"},
		{bytes.Repeat([]byte("png!"), 700_000), "image/png"}, // 2.8 MB: three blocks
	} {
		if err := p.PutPhoto(ctx, photoUser, tc.ctype, bytes.NewReader(tc.data), int64(len(tc.data))); err != nil {
			t.Fatalf("PutPhoto: %v", err)
		}
		rc, ctype, size, err := p.OpenPhoto(ctx, photoUser)
		if err != nil {
			t.Fatalf("OpenPhoto: %v", err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]any{tc.ctype, int64(len(tc.data)), len(tc.data)}, []any{ctype, size, len(got)}); diff != "" || !bytes.Equal(got, tc.data) {
			t.Errorf("photo read back (-want +got):\n%s", diff)
		}
	}
	if err := p.DeletePhoto(ctx, photoUser); err != nil {
		t.Fatalf("DeletePhoto: %v", err)
	}
	if _, _, _, err := p.OpenPhoto(ctx, photoUser); dirsync.ErrorCode(err) != dirsync.ENOTFOUND {
		t.Fatalf("OpenPhoto after delete: %v, want ENOTFOUND", err)
	}
}

func TestPhotoBadInput(t *testing.T) {
	p := newPhotos(t)
	ctx := context.Background()
	err := p.PutPhoto(ctx, "../etc/passwd", "image/jpeg", strings.NewReader("x"), 1)
	if dirsync.ErrorCode(err) != dirsync.EINVALID || !strings.Contains(err.Error(), "not a user object id") {
		t.Errorf("bad id: %v", err)
	}
	err = p.PutPhoto(ctx, photoUser, "image/jpeg", strings.NewReader("short"), 10)
	if dirsync.ErrorCode(err) != dirsync.EINVALID || !strings.Contains(err.Error(), "fewer") {
		t.Errorf("short data: %v", err)
	}
	if _, _, _, err := p.OpenPhoto(ctx, photoUser); dirsync.ErrorCode(err) != dirsync.ENOTFOUND {
		t.Errorf("a refused put left a photo: %v", err)
	}
	err = p.PutPhoto(ctx, photoUser, "image/jpeg", strings.NewReader("too long"), 3)
	if dirsync.ErrorCode(err) != dirsync.EINVALID || !strings.Contains(err.Error(), "more") {
		t.Errorf("long data: %v", err)
	}
}
