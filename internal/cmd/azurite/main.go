// Command azurite installs or runs the pinned Azurite storage emulator
// (see internal/azurite).
//
//	go run ./internal/cmd/azurite -install
//	go run ./internal/cmd/azurite [-env-file FILE] [-access-log]
//
// Without -install it starts one in-memory Azurite on free loopback ports,
// prints its endpoints, and runs until SIGINT or SIGTERM. The connection
// string is never printed: -env-file writes it (with the endpoints) as
// KEY='VALUE' lines that a shell can source (`set -a; . FILE; set +a`). The
// file is written atomically once Azurite answers, so its appearance means
// "ready", and it is removed again on exit.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/entrasync/entrasync/internal/azurite"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "azurite:", err)
		os.Exit(1)
	}
}

func run() error {
	install := flag.Bool("install", false, "install the pinned Azurite with `npm ci` (if needed) and exit")
	envFile := flag.String("env-file", "", "write ENTRASYNC_TEST_STORAGE and the endpoints to this file once Azurite is ready")
	accessLog := flag.Bool("access-log", false, "keep Azurite's per-request access log")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q; see -h", flag.Args())
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	began := time.Now()
	if err := azurite.Install(ctx); err != nil {
		return err
	}
	if *install {
		fmt.Printf("azurite: %s installed (%s)\n", azurite.Version, time.Since(began).Round(time.Millisecond))
		return nil
	}

	logDir, err := os.MkdirTemp("", "azurite-cli-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(logDir)
	inst, err := azurite.Start(ctx, azurite.Options{LogDir: logDir, AccessLog: *accessLog, Logger: logger})
	if err != nil {
		return err
	}
	defer inst.Close()

	if *envFile != "" {
		if err := writeEnvFile(*envFile, inst); err != nil {
			return err
		}
		defer os.Remove(*envFile)
	}
	fmt.Printf("azurite: blob=%s table=%s\n", inst.BlobURL, inst.TableURL)
	fmt.Printf("azurite: queue=%s log=%s\n", inst.QueueURL, inst.LogFile)

	<-ctx.Done()
	return nil
}

// writeEnvFile writes the settings atomically (temp file + rename), readable
// only by the owner, because a connection string is kept out of the terminal
// on principle even when it is the public development key.
func writeEnvFile(path string, inst *azurite.Instance) error {
	lines := []string{
		"ENTRASYNC_TEST_STORAGE=" + shellQuote(inst.ConnectionString()),
		"AZURITE_BLOB_URL=" + shellQuote(inst.BlobURL),
		"AZURITE_QUEUE_URL=" + shellQuote(inst.QueueURL),
		"AZURITE_TABLE_URL=" + shellQuote(inst.TableURL),
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".azurite-env-*")
	if err != nil {
		return fmt.Errorf("-env-file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("-env-file: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("-env-file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("-env-file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("-env-file: %w", err)
	}
	return nil
}

// shellQuote wraps s in single quotes for POSIX shells. A connection string
// holds ';' and '=', which would otherwise split or mangle the assignment.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
