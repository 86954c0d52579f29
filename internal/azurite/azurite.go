package azurite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Version is the Azurite release pinned in package.json.
const Version = "3.35.0"

// The development account every Azurite instance accepts. Both values are
// published in Azurite's README; they grant nothing outside an emulator.
const (
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// DirEnv names the environment variable that overrides where the pinned
// package (package.json, package-lock.json, node_modules) lives.
const DirEnv = "ENTRASYNC_AZURITE_DIR"

// installStamp records, inside node_modules, the hash of the package-lock.json
// that node_modules was installed from, so a changed lock file triggers a
// fresh `npm ci`.
const installStamp = ".entrasync-lock-sha256"

// Dir returns the directory holding the pinned package.json: $ENTRASYNC_AZURITE_DIR
// when set, otherwise internal/azurite under the module root.
func Dir() (string, error) {
	if d := os.Getenv(DirEnv); d != "" {
		if _, err := os.Stat(filepath.Join(d, "package.json")); err != nil {
			return "", fmt.Errorf("azurite: %s=%q has no package.json: point it at the repository's internal/azurite directory", DirEnv, d)
		}
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("azurite: find the module root: %w", err)
	}
	for d := wd; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			dir := filepath.Join(d, "internal", "azurite")
			if _, err := os.Stat(filepath.Join(dir, "package.json")); err != nil {
				return "", fmt.Errorf("azurite: %s has no package.json; run from inside the entrasync repository or set %s", dir, DirEnv)
			}
			return dir, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("azurite: no go.mod above %s; run from inside the entrasync repository or set %s", wd, DirEnv)
		}
		d = parent
	}
}

// binPath is the Azurite launcher npm installs. It is a node script with a
// shebang, so starting it runs the server in that one process.
func binPath(dir string) string { return filepath.Join(dir, "node_modules", ".bin", "azurite") }

// Installed reports whether node_modules in dir matches the pinned lock file.
func Installed(dir string) bool {
	if _, err := os.Stat(binPath(dir)); err != nil {
		return false
	}
	want, err := lockHash(dir)
	if err != nil {
		return false
	}
	got, err := os.ReadFile(filepath.Join(dir, "node_modules", installStamp))
	return err == nil && strings.TrimSpace(string(got)) == want
}

func lockHash(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Install makes sure the pinned Azurite is installed: it runs
// `npm ci --no-audit --no-fund` in Dir() when node_modules/.bin/azurite is
// missing or package-lock.json changed since the last install. Concurrent
// callers (parallel test binaries) are serialised with a file lock, so only one
// of them runs npm.
func Install(ctx context.Context) error {
	dir, err := Dir()
	if err != nil {
		return err
	}
	return InstallIn(ctx, dir)
}

// InstallIn is Install for an explicit package directory.
func InstallIn(ctx context.Context, dir string) error {
	if Installed(dir) {
		return nil
	}
	unlock, err := lockFile(filepath.Join(dir, ".install.lock"))
	if err != nil {
		return fmt.Errorf("azurite: install: %w", err)
	}
	defer unlock()
	if Installed(dir) { // someone else installed it while we waited
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return errors.New("azurite: install: npm is not on PATH; install Node.js 20 or newer with npm, then run `go run ./internal/cmd/azurite -install`")
	}
	hash, err := lockHash(dir)
	if err != nil {
		return fmt.Errorf("azurite: install: read package-lock.json: %w", err)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("azurite: `npm ci` in %s failed (%v); it needs the npm registry to be reachable. Output:\n%s", dir, err, tail(out.Bytes(), 4000))
	}
	if _, err := os.Stat(binPath(dir)); err != nil {
		return fmt.Errorf("azurite: `npm ci` in %s succeeded but %s is missing; check package.json", dir, binPath(dir))
	}
	if err := os.WriteFile(filepath.Join(dir, "node_modules", installStamp), []byte(hash+"\n"), 0o644); err != nil {
		return fmt.Errorf("azurite: install: %w", err)
	}
	return nil
}

// Options configure Start. The zero value is ready to use.
type Options struct {
	// Dir is the package directory; "" means Dir().
	Dir string
	// LogDir receives azurite.log. "" means a new temporary directory that
	// Close removes.
	LogDir string
	// AccessLog keeps Azurite's one-line-per-request access log in the log file
	// (it is off by default to keep long test runs' logs small).
	AccessLog bool
	// Loose makes Azurite ignore headers and parameters it does not support
	// instead of failing the request.
	Loose bool
	// StartTimeout bounds the wait for the ports to answer (default 60s; a
	// cold start on a loaded 2-core machine takes a few seconds).
	StartTimeout time.Duration
	// Logger receives start and stop events; nil discards them.
	Logger *slog.Logger
}

// Instance is one running Azurite.
type Instance struct {
	// Service endpoints including the account path, e.g.
	// http://127.0.0.1:41234/devstoreaccount1.
	BlobURL, QueueURL, TableURL string
	// LogFile holds Azurite's output.
	LogFile string

	proc      *exec.Cmd
	exited    chan struct{}
	waitErr   error
	removeDir string
	logger    *slog.Logger
	closeOnce sync.Once
}

// ConnectionString returns the development-account connection string for this
// instance. Never log it: code that handles connection strings must not learn
// to log them.
func (i *Instance) ConnectionString() string {
	return ConnectionString(i.BlobURL, i.QueueURL, i.TableURL)
}

// ConnectionString builds the development-account connection string for the
// given endpoints (each including the account path).
func ConnectionString(blobURL, queueURL, tableURL string) string {
	return "DefaultEndpointsProtocol=http;AccountName=" + AccountName +
		";AccountKey=" + AccountKey +
		";BlobEndpoint=" + blobURL +
		";QueueEndpoint=" + queueURL +
		";TableEndpoint=" + tableURL + ";"
}

// Start runs the pinned Azurite (installed beforehand with Install) with
// in-memory storage on three free loopback ports, and returns once all three
// accept connections. Close stops it.
func Start(ctx context.Context, opts Options) (*Instance, error) {
	dir := opts.Dir
	if dir == "" {
		var err error
		if dir, err = Dir(); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(binPath(dir)); err != nil {
		return nil, fmt.Errorf("azurite: %s is not installed; run `go run ./internal/cmd/azurite -install` (or `make test`, which installs it)", binPath(dir))
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 60 * time.Second
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// A free port found by listening on :0 can be taken by someone else before
	// Azurite binds it; Azurite then exits at once, and we retry on new ports.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		inst, err := start(ctx, dir, opts, logger)
		if err == nil {
			return inst, nil
		}
		lastErr = err
		if !errors.Is(err, errExitedEarly) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

var errExitedEarly = errors.New("azurite exited during start")

func start(ctx context.Context, dir string, opts Options, logger *slog.Logger) (*Instance, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, fmt.Errorf("azurite: find free ports: %w", err)
	}
	logDir, removeDir := opts.LogDir, ""
	if logDir == "" {
		if logDir, err = os.MkdirTemp("", "azurite-"); err != nil {
			return nil, fmt.Errorf("azurite: %w", err)
		}
		removeDir = logDir
	}
	logPath := filepath.Join(logDir, "azurite.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("azurite: create log file: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor

	const host = "127.0.0.1"
	args := []string{
		"--inMemoryPersistence",
		"--skipApiVersionCheck",
		"--disableTelemetry",
		"--blobHost", host, "--blobPort", strconv.Itoa(ports[0]),
		"--queueHost", host, "--queuePort", strconv.Itoa(ports[1]),
		"--tableHost", host, "--tablePort", strconv.Itoa(ports[2]),
	}
	if !opts.AccessLog {
		args = append(args, "--silent")
	}
	if opts.Loose {
		args = append(args, "--loose")
	}
	// Not CommandContext: the instance outlives ctx, which only bounds the start.
	cmd := exec.Command(binPath(dir), args...)
	// In-memory Azurite writes nothing to disk, but run it in the log directory
	// anyway so a stray file never lands in the repository.
	cmd.Dir = logDir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = environWithout("AZURITE_DB")
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		cleanup(removeDir)
		return nil, fmt.Errorf("azurite: start %s: %w", binPath(dir), err)
	}
	inst := &Instance{
		BlobURL:   fmt.Sprintf("http://%s:%d/%s", host, ports[0], AccountName),
		QueueURL:  fmt.Sprintf("http://%s:%d/%s", host, ports[1], AccountName),
		TableURL:  fmt.Sprintf("http://%s:%d/%s", host, ports[2], AccountName),
		LogFile:   logPath,
		proc:      cmd,
		exited:    make(chan struct{}),
		removeDir: removeDir,
		logger:    logger,
	}
	go func() {
		inst.waitErr = cmd.Wait()
		close(inst.exited)
	}()

	startCtx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	began := time.Now()
	for _, p := range ports {
		if err := waitPort(startCtx, inst.exited, host, p); err != nil {
			log := readTail(logPath, 4000)
			inst.stop()
			cleanup(removeDir)
			if errors.Is(err, errExitedEarly) {
				return nil, fmt.Errorf("azurite: %w (%v). Log:\n%s", errExitedEarly, inst.waitErr, log)
			}
			return nil, fmt.Errorf("azurite: not answering on port %d after %s: %w. Log:\n%s", p, time.Since(began).Round(time.Millisecond), err, log)
		}
	}
	logger.Info("azurite started", "pid", cmd.Process.Pid, "blob", inst.BlobURL, "table", inst.TableURL,
		"log", logPath, "took", time.Since(began).Round(time.Millisecond))
	return inst, nil
}

// Close stops Azurite (its whole process group) and waits for it to exit.
// Close is idempotent.
func (i *Instance) Close() error {
	if i == nil {
		return nil
	}
	i.closeOnce.Do(func() {
		i.stop()
		cleanup(i.removeDir)
		i.logger.Info("azurite stopped", "pid", i.proc.Process.Pid)
	})
	return nil
}

// stop sends SIGTERM to the process group, then SIGKILL if it lingers.
func (i *Instance) stop() {
	select {
	case <-i.exited:
		return
	default:
	}
	terminate(i.proc)
	select {
	case <-i.exited:
	case <-time.After(5 * time.Second):
		kill(i.proc)
		<-i.exited
	}
}

func cleanup(dir string) {
	if dir != "" {
		os.RemoveAll(dir)
	}
}

func waitPort(ctx context.Context, exited <-chan struct{}, host string, port int) error {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	for {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errExitedEarly
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// freePorts asks the kernel for n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func readTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	return tail(b, n)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = append([]byte("..."), b[len(b)-n:]...)
	}
	return strings.TrimSpace(string(b))
}

// environWithout returns the environment minus the named variable. Azurite
// switches to a SQL metadata store (and refuses --inMemoryPersistence) when
// AZURITE_DB is present at all, even empty.
func environWithout(name string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, name+"=") {
			env = append(env, kv)
		}
	}
	return env
}
