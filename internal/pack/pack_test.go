package pack_test

import (
	"archive/zip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/pack"
)

// TestZipLayoutMatchesFunctions builds the real deployment zip (a linux/amd64
// static handler) and checks that its root holds host.json, one folder per
// function of functions/ with its function.json, and an executable handler.
func TestZipLayoutMatchesFunctions(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "app.zip")
	if err := pack.Build(context.Background(), pack.Options{AppDir: root, Out: out, Version: "test"}); err != nil {
		t.Fatal(err)
	}
	names, err := pack.Functions(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 4 {
		t.Fatalf("functions/ lists %v; want at least SyncTimer, SyncWorker, Health, Api", names)
	}
	want := map[string]os.FileMode{"host.json": 0o644, "handler": 0o755}
	for _, n := range names {
		want[n+"/function.json"] = 0o644
	}
	got, err := pack.Layout(out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("zip layout (-want +got):\n%s", diff)
	}

	// The binary is a linux/amd64 ELF executable.
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	f, err := zr.Open("handler")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	magic := make([]byte, 20)
	if _, err := io.ReadFull(f, magic); err != nil {
		t.Fatal(err)
	}
	// ELF magic, 64-bit, e_machine 0x3e (x86-64) at offset 18.
	if string(magic[1:4]) != "ELF" || magic[4] != 2 || magic[18] != 0x3e {
		t.Errorf("handler is not a linux/amd64 ELF binary: % x", magic)
	}
}
