// Command localrun is `make run`: it starts Azurite, the Graph simulator with
// a generated tenant, and the handler under the local Functions host, runs a
// first sync, prints how to reach the console and the API, and keeps
// everything up until Ctrl-C, then stops what it started.
//
// It is quiet: the host's and the handler's logs go to files under bin/
// (host.log, handler.log), the first sync shows as a progress bar on a
// terminal (plain lines otherwise), and it ends with a short summary. Its
// lines starting "graph simulator:", "api:", "console:", "admin key:",
// "support key:" and "first sync:" are a contract: scripts and tests grep
// them.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/entrasync/entrasync/internal/devhost"
	"github.com/entrasync/entrasync/internal/graphsim"
	"github.com/entrasync/entrasync/internal/localstack"
)

type options struct {
	users    int
	seed     int64
	port     int
	pageSize int
}

func main() {
	var o options
	flag.IntVar(&o.users, "users", 2000, "users in the generated tenant")
	flag.Int64Var(&o.seed, "seed", 1, "generator seed (same seed, same tenant)")
	flag.IntVar(&o.port, "port", 7071, "port of the local Functions host")
	flag.IntVar(&o.pageSize, "page-size", 200, "users per Graph page the simulator serves by default")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, isTerminal(os.Stdout)); err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}

// isTerminal says whether f is a terminal that understands a redrawn line.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

func run(ctx context.Context, o options, out io.Writer, tty bool) error {
	root, bin, logs, err := localstack.Workspace("host.log", "handler.log")
	if err != nil {
		return err
	}
	hostLog, handlerLog := logs[0], logs[1]
	defer hostLog.Close()
	defer handlerLog.Close()
	rel := func(f *os.File) string {
		if r, err := filepath.Rel(root, f.Name()); err == nil {
			return r
		}
		return f.Name()
	}
	logger := slog.New(slog.NewTextHandler(hostLog, &slog.HandlerOptions{Level: slog.LevelInfo}))

	fmt.Fprintf(out, "starting: Azurite, Graph simulator (%d users), local Functions host on port %d ...\n", o.users, o.port)
	fmt.Fprintf(out, "logs: %s (local host, Azurite), %s (handler, JSON lines); follow them with tail -f\n", rel(hostLog), rel(handlerLog))
	startCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	stack, err := localstack.Start(startCtx, localstack.Options{
		AppDir: root, BinDir: bin, Addr: fmt.Sprintf("127.0.0.1:%d", o.port),
		Graph:  graphsim.Config{Users: o.users, Seed: o.seed, PageSize: o.pageSize, NullForClearedProperties: true},
		Host:   devhost.Options{HandlerOutput: handlerLog},
		Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("%w (details in %s and %s)", err, rel(hostLog), rel(handlerLog))
	}
	defer func() {
		fmt.Fprintln(out, "stopping ...")
		stack.Close()
	}()
	consoleURL := stack.APIURL() + "/console/"
	fmt.Fprintf(out, "console: %s (the first sync is running; sign in with a key printed below)\n", consoleURL)

	began := time.Now()
	id, err := stack.SyncNow(ctx, false)
	if err != nil {
		return fmt.Errorf("first sync: %w", err)
	}
	fmt.Fprintf(out, "first sync: run %s started\n", id)
	p := &progress{out: out, tty: tty, total: int64(o.users), now: time.Now}
	final, err := watch(ctx, stack, id, p)
	if err != nil {
		return fmt.Errorf("first sync: %w", err)
	}

	c := final.Counters
	fmt.Fprintln(out)
	fmt.Fprintf(out, "graph simulator: %s\n", stack.Graph.GraphBaseURL())
	fmt.Fprintf(out, "api: %s\n", stack.APIURL())
	fmt.Fprintf(out, "console: %s\n", consoleURL)
	fmt.Fprintf(out, "admin key: %s\n", stack.AdminKey)
	fmt.Fprintf(out, "support key: %s\n", stack.SupportKey)
	fmt.Fprintf(out, "first sync: %s in %s: %d seen, %d added, %d updated, %d deleted, %d duplicate, %d skipped\n",
		final.Status, time.Since(began).Round(time.Millisecond), c.Seen, c.Added, c.Updated, c.Deleted, c.Duplicate, c.Skipped)
	if final.Error != "" {
		fmt.Fprintf(out, "  %s\n  %s\n", final.Error, final.Hint)
	}
	fmt.Fprintf(out, "logs: %s, %s\n", rel(hostLog), rel(handlerLog))
	fmt.Fprintf(out, "\ntry next:\n")
	fmt.Fprintf(out, "  open the console, paste the admin key, press Sync now; the support key shows it read-only\n")
	fmt.Fprintf(out, "  change Entra: curl -sk -X PATCH -d '{\"jobTitle\":\"Captain\"}' %s/_sim/users/<id>, then Sync now and open the run's log\n", stack.Graph.URL())
	fmt.Fprintf(out, "  the API:      curl -s -H 'x-functions-key: %s' %s/status\n", stack.SupportKey, stack.APIURL())
	fmt.Fprintf(out, "  ground truth: curl -sk %s/_sim/users | head -c 600   (-k: the simulator's loopback certificate is self-signed)\n", stack.Graph.URL())
	fmt.Fprintln(out, "\neverything stays up; press Ctrl-C to stop it.")
	<-ctx.Done()
	return nil
}
