// Package pack builds the deployment zip of the function app: host.json,
// one folder per function with its function.json (the Functions host wants
// them beside host.json, so functions/<Name>/ is flattened to <Name>/), and
// the handler binary, all at the zip's root.
package pack

import (
	"archive/zip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Options says what to pack.
type Options struct {
	// AppDir is the repository root (holding host.json and functions/).
	AppDir string
	// Out is the zip file to write.
	Out string
	// HandlerBinary is a prebuilt handler; empty builds one for linux/amd64
	// with CGO_ENABLED=0 (a static binary that runs on the Functions image).
	HandlerBinary string
	// Version is stamped into the binary (main.version).
	Version string
}

// Functions lists the function folders under dir/functions that hold a
// function.json, sorted.
func Functions(appDir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(appDir, "functions"))
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			if _, err := os.Stat(filepath.Join(appDir, "functions", e.Name(), "function.json")); err == nil {
				names = append(names, e.Name())
			}
		}
	}
	sort.Strings(names)
	return names, nil
}

// Build writes the zip.
func Build(ctx context.Context, opt Options) error {
	bin := opt.HandlerBinary
	if bin == "" {
		tmp, err := os.MkdirTemp("", "entrasync-pack-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		bin = filepath.Join(tmp, "handler")
		version := opt.Version
		if version == "" {
			version = "dev"
		}
		// No -trimpath: it would change every package's cache key and
		// recompile the Graph SDK (minutes) instead of reusing the cache.
		cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-s -w -X main.version="+version, "-o", bin, "./handler")
		cmd.Dir = opt.AppDir
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build handler: %v\n%s", err, out)
		}
	}
	names, err := Functions(opt.AppDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(opt.Out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(opt.Out)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	add := func(name, src string, mode os.FileMode) error {
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		h := &zip.FileHeader{Name: name, Method: zip.Deflate}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		_, err = io.Copy(w, in)
		return err
	}
	if err := add("host.json", filepath.Join(opt.AppDir, "host.json"), 0o644); err != nil {
		return err
	}
	for _, n := range names {
		if err := add(n+"/function.json", filepath.Join(opt.AppDir, "functions", n, "function.json"), 0o644); err != nil {
			return err
		}
	}
	// The executable bit matters: the host starts the handler directly.
	if err := add("handler", bin, 0o755); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// Layout lists a zip's entries, for checks.
func Layout(path string) (map[string]os.FileMode, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out := map[string]os.FileMode{}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		out[f.Name] = f.Mode()
	}
	return out, nil
}
