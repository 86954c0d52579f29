// Package localstack runs the whole product on one machine with no Azure:
// Azurite for Table and Blob Storage, the Graph simulator, and the handler
// under the local Functions host (internal/devhost) with its in-process
// Service Bus queue. `make run` (internal/cmd/localrun) and the end-to-end
// tests both start it, so what a developer sees is what the tests check.
package localstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/entrasync/entrasync/internal/azurite"
	"github.com/entrasync/entrasync/internal/devhost"
	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/graphsim"
)

// Options configure a Stack. Zero values pick the defaults in the comments.
type Options struct {
	// AppDir is the repository root (host.json, functions/); default: found
	// by walking up from the working directory to go.mod.
	AppDir string
	// Handler is a prebuilt handler binary; "" builds one (go build) into
	// BinDir.
	Handler string
	// BinDir receives the built handler; default a temporary directory.
	BinDir string
	// Addr is the local host's listen address; default 127.0.0.1:0.
	Addr string
	// Graph configures the simulator (users, seed, page size, faults...).
	Graph graphsim.Config
	// StorageConnectionString reuses a running Azurite (tests share one);
	// "" starts a private one.
	StorageConnectionString string
	// TablePrefix keeps stacks sharing one Azurite apart; default "entrasync".
	TablePrefix string
	// LogContainer default "sync-logs".
	LogContainer string
	// Settings add to the handler's app settings.
	Settings map[string]string
	// Host tunes the local host (timers, delivery counts...); its AppDir,
	// Executable, Addr, Keys and Settings are set by Start.
	Host devhost.Options
	// Logger receives the stack's own logs; nil discards.
	Logger *slog.Logger
}

// Stack is a running local deployment.
type Stack struct {
	Host    *devhost.Host
	Graph   *graphsim.Server
	Azurite *azurite.Instance // nil when Options.StorageConnectionString was given
	// AdminKey and SupportKey are the API's keys: the Api function is
	// anonymous to the host, and the handler maps these keys to the admin
	// and support roles by their SHA-256 (ADMIN_KEY_SHA256,
	// SUPPORT_KEY_SHA256), as in Azure.
	AdminKey, SupportKey string
	// MasterKey is the local host's master key, which is no API key.
	MasterKey string

	tmp    string
	client *http.Client
}

// Start builds and starts everything. On error, what was started is stopped.
func Start(ctx context.Context, opt Options) (s *Stack, err error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	s = &Stack{client: &http.Client{Timeout: 2 * time.Minute}}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	if s.tmp, err = os.MkdirTemp("", "entrasync-local-"); err != nil {
		return nil, err
	}
	if opt.AppDir == "" {
		if opt.AppDir, err = ModuleRoot(); err != nil {
			return nil, err
		}
	}
	if opt.Handler == "" {
		bin := opt.BinDir
		if bin == "" {
			bin = s.tmp
		}
		if opt.Handler, err = BuildHandler(ctx, opt.AppDir, bin); err != nil {
			return nil, err
		}
	}

	conn := opt.StorageConnectionString
	if conn == "" {
		if err := azurite.Install(ctx); err != nil {
			return nil, fmt.Errorf("install Azurite: %w", err)
		}
		if s.Azurite, err = azurite.Start(ctx, azurite.Options{Logger: opt.Logger}); err != nil {
			return nil, fmt.Errorf("start Azurite: %w", err)
		}
		conn = s.Azurite.ConnectionString()
	}

	if s.Graph, err = graphsim.New(opt.Graph); err != nil {
		return nil, fmt.Errorf("graph simulator: %w", err)
	}
	if err := s.Graph.Start("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("graph simulator: %w", err)
	}
	caFile := filepath.Join(s.tmp, "graphsim-ca.pem")
	if err := os.WriteFile(caFile, s.Graph.CertificatePEM(), 0o600); err != nil {
		return nil, err
	}

	keys, err := devhost.GenerateKeys()
	if err != nil {
		return nil, err
	}
	s.AdminKey, s.SupportKey, s.MasterKey = randomKey(), randomKey(), keys.Master

	gc := s.Graph.Config()
	settings := map[string]string{
		"STORAGE_CONNECTION_STRING": conn,
		"TABLE_PREFIX":              orDefault(opt.TablePrefix, "entrasync"),
		"LOG_CONTAINER":             orDefault(opt.LogContainer, "sync-logs"),
		"GRAPH_TENANT_ID":           gc.TenantID,
		"GRAPH_CLIENT_ID":           gc.ClientID,
		"GRAPH_CLIENT_SECRET":       gc.ClientSecret,
		"GRAPH_AUTHORITY_HOST":      s.Graph.AuthorityHost(),
		"GRAPH_BASE_URL":            s.Graph.GraphBaseURL(),
		"GRAPH_TRUSTED_CA_FILE":     caFile,
		"ADMIN_KEY_SHA256":          hashKey(s.AdminKey),
		"SUPPORT_KEY_SHA256":        hashKey(s.SupportKey),
	}
	for k, v := range opt.Settings {
		settings[k] = v
	}
	ho := opt.Host
	ho.AppDir, ho.Executable, ho.Keys, ho.Settings = opt.AppDir, opt.Handler, keys, settings
	ho.Addr = orDefault(opt.Addr, "127.0.0.1:0")
	if ho.Logger == nil {
		ho.Logger = opt.Logger
	}
	if s.Host, err = devhost.New(ho); err != nil {
		return nil, fmt.Errorf("local host: %w", err)
	}
	if err := s.Host.Start(ctx); err != nil {
		return nil, fmt.Errorf("local host: %w", err)
	}
	return s, nil
}

// Close stops everything that was started.
func (s *Stack) Close() error {
	var errs []error
	if s.Host != nil {
		errs = append(errs, s.Host.Close())
	}
	if s.Graph != nil {
		errs = append(errs, s.Graph.Close())
	}
	if s.Azurite != nil {
		errs = append(errs, s.Azurite.Close())
	}
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
	}
	return errors.Join(errs...)
}

// APIURL is the base of the admin API, e.g. http://127.0.0.1:7071/api.
func (s *Stack) APIURL() string { return s.Host.URL() + "/api" }

// Do sends an API request with key (AdminKey, SupportKey or "") and extra
// headers, and returns the response with its body read.
func (s *Stack) Do(ctx context.Context, key, method, path string, body any, header http.Header) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.APIURL()+path, rd)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if key != "" {
		req.Header.Set("x-functions-key", key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, data, err
}

// Call is Do for JSON: it decodes the answer into out (if not nil) and
// returns the status code.
func (s *Stack) Call(ctx context.Context, key, method, path string, body any, out any) (int, error) {
	resp, data, err := s.Do(ctx, key, method, path, body, nil)
	if err != nil {
		return 0, err
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %d: %v: %.200s", method, path, resp.StatusCode, err, data)
		}
	}
	return resp.StatusCode, nil
}

// RunInfo is the part of a run the stack's helpers look at.
type RunInfo struct {
	ID       string            `json:"id"`
	Status   dirsync.RunStatus `json:"status"`
	Mode     string            `json:"mode"`
	Phase    string            `json:"phase"`
	Error    string            `json:"error"`
	Hint     string            `json:"hint"`
	Counters Counters          `json:"counters"`
}

// Counters are a run's numeric counters by name (seen, added, ...).
type Counters map[string]int64

// UnmarshalJSON keeps the numeric counters and ignores nested ones
// (skippedBy).
func (c *Counters) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*c = Counters{}
	for k, v := range raw {
		var n int64
		if json.Unmarshal(v, &n) == nil {
			(*c)[k] = n
		}
	}
	return nil
}

type runEnvelope struct {
	Run RunInfo `json:"run"`
	RunInfo
}

func (e runEnvelope) get() RunInfo {
	if e.Run.ID != "" {
		return e.Run
	}
	return e.RunInfo
}

// SyncNow starts a sync through the API (POST /api/sync) and returns its id.
func (s *Stack) SyncNow(ctx context.Context, full bool) (string, error) {
	var body any
	if full {
		body = map[string]string{"mode": "full"}
	}
	var env runEnvelope
	code, err := s.Call(ctx, s.AdminKey, http.MethodPost, "/sync", body, &env)
	if err != nil {
		return "", err
	}
	if code != http.StatusAccepted {
		return "", fmt.Errorf("POST /api/sync: %d", code)
	}
	return env.get().ID, nil
}

// WaitRun polls GET /api/runs/{id} until the run leaves "running". While
// the handler restarts (it may have been killed) the host answers 5xx or
// not at all: those polls are retried for up to a minute.
func (s *Stack) WaitRun(ctx context.Context, id string) (RunInfo, error) {
	var lastErr error
	var failingSince time.Time
	for {
		var env runEnvelope
		code, err := s.Call(ctx, s.AdminKey, http.MethodGet, "/runs/"+id, nil, &env)
		switch {
		case err == nil && code == http.StatusOK:
			failingSince = time.Time{}
			if r := env.get(); r.Status != "running" {
				return r, nil
			}
		case err == nil && code < 500:
			return RunInfo{}, fmt.Errorf("GET /api/runs/%s: %d", id, code)
		default:
			if err == nil {
				err = fmt.Errorf("GET /api/runs/%s: %d", id, code)
			}
			lastErr = err
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			if time.Since(failingSince) > time.Minute {
				return RunInfo{}, lastErr
			}
		}
		select {
		case <-ctx.Done():
			return env.get(), ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// BuildHandler builds the handler binary into dir and returns its path.
func BuildHandler(ctx context.Context, appDir, dir string) (string, error) {
	out := filepath.Join(dir, "handler")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./handler")
	cmd.Dir = appDir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build handler: %v\n%s", err, b)
	}
	return out, nil
}

// ModuleRoot finds the directory holding go.mod, walking up from the
// working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory: run from inside the repository")
		}
		dir = parent
	}
}

// Workspace returns the module root and its bin/ directory (created), where
// the local programs build the handler, and creates (or truncates) the named
// log files in bin/. The caller closes the files.
func Workspace(logs ...string) (root, bin string, files []*os.File, err error) {
	if root, err = ModuleRoot(); err != nil {
		return "", "", nil, err
	}
	bin = filepath.Join(root, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", "", nil, err
	}
	for _, name := range logs {
		f, err := os.Create(filepath.Join(bin, name))
		if err != nil {
			for _, open := range files {
				open.Close()
			}
			return "", "", nil, err
		}
		files = append(files, f)
	}
	return root, bin, files, nil
}

func randomKey() string {
	b := make([]byte, 24)
	rand.Read(b)
	return strings.TrimRight(hex.EncodeToString(b), "=")
}

func hashKey(k string) string {
	sum := sha256.Sum256([]byte(k))
	return hex.EncodeToString(sum[:])
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
