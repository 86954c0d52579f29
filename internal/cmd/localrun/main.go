// Command localrun is `make run`: it starts Azurite, the Graph simulator with
// a generated tenant, and the handler under the local Functions host, runs a
// first sync, prints how to reach the API, and keeps everything up until
// Ctrl-C, then stops what it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/entrasync/entrasync/internal/graphsim"
	"github.com/entrasync/entrasync/internal/localstack"
)

func main() {
	users := flag.Int("users", 2000, "users in the generated tenant")
	seed := flag.Int64("seed", 1, "generator seed (same seed, same tenant)")
	port := flag.Int("port", 7071, "port of the local Functions host")
	pageSize := flag.Int("page-size", 200, "users per Graph page the simulator serves by default")
	flag.Parse()
	if err := run(*users, *seed, *port, *pageSize); err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}

func run(users int, seed int64, port, pageSize int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	root, err := localstack.ModuleRoot()
	if err != nil {
		return err
	}
	fmt.Printf("starting: Azurite, Graph simulator (%d users), local Functions host on port %d ...\n", users, port)
	startCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	stack, err := localstack.Start(startCtx, localstack.Options{
		AppDir: root, BinDir: filepath.Join(root, "bin"), Addr: fmt.Sprintf("127.0.0.1:%d", port),
		Graph:  graphsim.Config{Users: users, Seed: seed, PageSize: pageSize, NullForClearedProperties: true},
		Logger: logger,
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("stopping ...")
		stack.Close()
	}()
	if stack.Azurite != nil {
		fmt.Printf("azurite: blob=%s table=%s\n", stack.Azurite.BlobURL, stack.Azurite.TableURL)
	}
	fmt.Printf("graph simulator: %s\n", stack.Graph.GraphBaseURL())
	fmt.Printf("api: %s\n", stack.APIURL())
	fmt.Printf("admin key: %s\n", stack.AdminKey)
	fmt.Printf("support key: %s\n", stack.SupportKey)

	began := time.Now()
	id, err := stack.SyncNow(ctx, false)
	if err != nil {
		return fmt.Errorf("first sync: %w", err)
	}
	fmt.Printf("first sync: run %s started\n", id)
	runInfo, err := stack.WaitRun(ctx, id)
	if err != nil {
		return fmt.Errorf("first sync: %w", err)
	}
	c := runInfo.Counters
	fmt.Printf("first sync: %s in %s: %d seen, %d added, %d updated, %d deleted, %d duplicate, %d skipped\n",
		runInfo.Status, time.Since(began).Round(time.Millisecond), c["seen"], c["added"], c["updated"], c["deleted"], c["duplicate"], c["skipped"])
	if runInfo.Error != "" {
		fmt.Printf("  %s\n  %s\n", runInfo.Error, runInfo.Hint)
	}
	fmt.Printf("\ntry:\n  curl -s -H 'x-functions-key: %s' %s/status\n", stack.AdminKey, stack.APIURL())
	fmt.Printf("  curl -s -H 'x-functions-key: %s' '%s/users?limit=5'\n", stack.SupportKey, stack.APIURL())
	fmt.Printf("  curl -sk %s/_sim/users | head -c 600   # ground truth (-k: the simulator's loopback certificate is self-signed)\n", stack.Graph.URL())
	fmt.Println("\nthe API stays up; press Ctrl-C to stop everything.")
	<-ctx.Done()
	return nil
}
