// Command bench is `make bench`: it measures a sync through the real local
// chain (the local Functions host of internal/devhost, the handler binary,
// the in-process queue with Service Bus semantics, Azurite, and the Graph
// simulator over HTTPS) next to floors measured in the same run, for each
// tenant size:
//
//  1. floors: the storage floor (the rows a first sync writes, as batched
//     upserts through internal/table into the same Azurite) and the Graph
//     floor (the whole tenant paged through internal/graph alone);
//  2. a full sync: wall time, users/s, pages, storage transactions and
//     entities written by table, blob bytes, the handler's peak RSS, time
//     per phase, Graph requests;
//  3. an incremental sync after N changes (attribute changes, adds, soft and
//     hard deletes) made through the simulator's control API;
//  4. the run log of the full sync downloaded as CSV through the API.
//
// Then, once, a latency run: the simulator adds a delay to every page, and
// the full sync's wall time is set against pages x delay.
//
// Storage traffic is counted by a reverse proxy in front of Azurite
// (proxy.go); Graph traffic by the simulator's own request counters. Results
// go to bench/results/<date>.json and a summary table to stdout.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/entrasync/entrasync/internal/azurite"
	"github.com/entrasync/entrasync/internal/devhost"
	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/graphsim"
	"github.com/entrasync/entrasync/internal/localstack"
)

// options are the command's flags, validated by validate.
type options struct {
	sizes        []int
	seed         int64
	pageSize     int
	changes      int
	latency      time.Duration
	latencyUsers int
	floorWorkers int
	runTimeout   time.Duration
	out          string
	summarize    string
	cpuProfile   string
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.summarize != "" {
		if err := summarize(o.summarize, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	sizes := fs.String("sizes", "10000,100000", "comma-separated tenant sizes (users)")
	fs.Int64Var(&o.seed, "seed", 1, "generator seed (same seed, same tenant)")
	fs.IntVar(&o.pageSize, "page-size", 200, "users per Graph page (the simulator's default and the engine's setting)")
	fs.IntVar(&o.changes, "changes", 1000, "changes before the incremental run (60% attribute changes, 20% adds, 10% soft, 10% hard deletes)")
	fs.DurationVar(&o.latency, "latency", 300*time.Millisecond, "delay the simulator adds to every page in the latency run (0 skips it)")
	fs.IntVar(&o.latencyUsers, "latency-users", 0, "tenant size of the latency run (0: the smallest of -sizes)")
	fs.IntVar(&o.floorWorkers, "floor-workers", 4, "batches in flight at once in the storage floor")
	fs.DurationVar(&o.runTimeout, "run-timeout", 30*time.Minute, "longest one sync may take")
	fs.StringVar(&o.out, "out", "", "results file (default bench/results/<UTC date>.json)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "directory for Go CPU profiles of the handler, one per stack (handler-<users>.pprof, handler-latency.pprof; read with go tool pprof)")
	fs.StringVar(&o.summarize, "summarize", "", "print the summary table of this results file and run nothing (for a run that was interrupted)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("-sizes: %q is not a positive number of users", f))
			continue
		}
		o.sizes = append(o.sizes, n)
	}
	if len(o.sizes) == 0 {
		errs = append(errs, errors.New("-sizes: give at least one tenant size"))
	}
	if o.pageSize < 1 || o.pageSize > graphsim.MaxPageSize {
		errs = append(errs, fmt.Errorf("-page-size: %d is out of range 1..%d", o.pageSize, graphsim.MaxPageSize))
	}
	if o.changes < 0 {
		errs = append(errs, fmt.Errorf("-changes: %d must not be negative", o.changes))
	}
	if o.latency < 0 || o.latencyUsers < 0 {
		errs = append(errs, errors.New("-latency and -latency-users must not be negative"))
	}
	if o.floorWorkers < 1 {
		errs = append(errs, fmt.Errorf("-floor-workers: %d must be 1 or more", o.floorWorkers))
	}
	if o.latencyUsers == 0 && len(o.sizes) > 0 {
		o.latencyUsers = slicesMin(o.sizes)
	}
	return o, errors.Join(errs...)
}

func slicesMin(v []int) int {
	m := v[0]
	for _, x := range v[1:] {
		m = min(m, x)
	}
	return m
}

// results is the file bench/results/<date>.json.
type results struct {
	Date    string       `json:"date"`
	Command string       `json:"command"`
	Machine machine      `json:"machine"`
	Options any          `json:"options"`
	Sizes   []sizeResult `json:"sizes"`
	Latency *latencyRun  `json:"latency,omitempty"`
	Notes   []string     `json:"notes"`
	Total   float64      `json:"totalSeconds"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpuModel"`
	MemTotal  string `json:"memTotal"`
	GoVersion string `json:"goVersion"`
	OS        string `json:"os"`
}

type sizeResult struct {
	Users         int         `json:"users"`
	StorageFloor  floorResult `json:"storageFloor"`
	GraphFloor    floorResult `json:"graphFloor"`
	Full          runResult   `json:"full"`
	FullOverFloor float64     `json:"fullOverMaxFloor"`
	Incremental   *runResult  `json:"incremental,omitempty"`
	Changes       *changeSet  `json:"changes,omitempty"`
	RunLog        *download   `json:"runLog,omitempty"`
	// RequestCost is measured on the synced directory after the runs.
	RequestCost *requestCost `json:"requestCost,omitempty"`
}

type runResult struct {
	RunID       string             `json:"runId"`
	Status      string             `json:"status"`
	Mode        string             `json:"mode"`
	Seconds     float64            `json:"seconds"`
	UsersPerSec float64            `json:"usersPerSecond"`
	Counters    map[string]int64   `json:"counters"`
	Phases      []phase            `json:"phases"`
	Storage     storageCounts      `json:"storage"`
	Graph       graphCost          `json:"graph"`
	PeakRSSMiB  float64            `json:"handlerPeakRssMiB"`
	PeakReset   bool               `json:"peakResetBeforeRun"`
	PerChange   float64            `json:"entitiesWrittenPerChange,omitempty"`
	Extra       map[string]float64 `json:"extra,omitempty"`
}

// phase is how long the run reported this phase (GET /api/runs/{id},
// polled every pollEvery).
type phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// graphCost is what one run asked of Graph. Units follow Graph's
// throttling table for identity objects: a delta page (users or groups)
// costs 1; other reads of this product are counted 1 as well.
type graphCost struct {
	Requests    map[string]int `json:"requests"`
	Total       int            `json:"total"`
	Pages       int            `json:"deltaPages"`
	Units       int            `json:"units"`
	UnitsPer10s float64        `json:"unitsPer10s"`
	// BudgetShare is UnitsPer10s over the large-tenant budget (8,000 units
	// per 10 s for more than 500 users).
	BudgetShare float64 `json:"shareOfLargeTenantBudget"`
	// FetchSeconds is the simulator's time answering the run's Graph
	// requests (login endpoints excluded): the sync fetches one page at a
	// time, so this is its time fetching, and the rest of its wall time is
	// spent only applying. FetchShare is FetchSeconds over the wall time.
	FetchSeconds float64 `json:"fetchSeconds"`
	FetchShare   float64 `json:"fetchShareOfWallTime"`
}

type download struct {
	Bytes      int64   `json:"bytes"`
	Lines      int64   `json:"lines"`
	Seconds    float64 `json:"seconds"`
	MiBPerSec  float64 `json:"mibPerSecond"`
	LinesPerS  float64 `json:"linesPerSecond"`
	PeakRSSMiB float64 `json:"handlerPeakRssMiB"`
}

type latencyRun struct {
	Users      int     `json:"users"`
	PageDelay  float64 `json:"pageDelaySeconds"`
	Pages      int     `json:"deltaPages"`
	Seconds    float64 `json:"seconds"`
	PagesDelay float64 `json:"pagesTimesDelaySeconds"`
	Ratio      float64 `json:"ratio"`
	// FetchSeconds is the run's time fetching (graphCost.FetchSeconds):
	// about pages x latency plus the simulator's own time.
	FetchSeconds float64 `json:"fetchSeconds"`
	// BaseSeconds is the full sync of the same tenant without the delay,
	// when -sizes measured it: if fetching and applying overlap, the run
	// takes about max(base, pages x delay); if not, base + pages x delay.
	BaseSeconds float64 `json:"baseSeconds,omitempty"`
	Overlapped  float64 `json:"maxOfBaseAndDelay,omitempty"`
	Serial      float64 `json:"basePlusDelay,omitempty"`
	Status      string  `json:"status"`
}

const pollEvery = 100 * time.Millisecond

func run(ctx context.Context, o options, out io.Writer) error {
	if o.cpuProfile != "" {
		if err := os.MkdirAll(o.cpuProfile, 0o755); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
	}
	began := time.Now()
	root, bin, logs, err := localstack.Workspace("bench-host.log", "bench-handler.log")
	if err != nil {
		return err
	}
	logf, hlog := logs[0], logs[1]
	defer logf.Close()
	defer hlog.Close()
	logger := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo}))

	fmt.Fprintf(out, "bench: sizes %v, %d changes, latency run %s/page at %d users; logs in bin/bench-host.log, bin/bench-handler.log\n",
		o.sizes, o.changes, o.latency, o.latencyUsers)
	fmt.Fprintln(out, "building the handler ...")
	handler, err := localstack.BuildHandler(ctx, root, bin)
	if err != nil {
		return err
	}
	if err := azurite.Install(ctx); err != nil {
		return fmt.Errorf("install Azurite: %w", err)
	}

	res := results{
		Date: time.Now().UTC().Format(time.RFC3339), Command: "make bench SIZES=" + joinInts(o.sizes) + " (go run ./internal/cmd/bench " + strings.Join(os.Args[1:], " ") + ")",
		Machine: describeMachine(),
		Options: map[string]any{"sizes": o.sizes, "seed": o.seed, "pageSize": o.pageSize, "changes": o.changes,
			"latency": o.latency.String(), "latencyUsers": o.latencyUsers, "floorWorkers": o.floorWorkers},
		Notes: []string{
			"storage traffic passes a counting reverse proxy in front of Azurite, for the sync and the storage floor alike",
			"the storage floor writes one user row and one email claim per user (batched upserts, floor-workers batches in flight); the sync's own writes by table are in full.storage.written",
			"the Graph floor pages /users/delta only; the sync also reads groups (full.graph.requests)",
			"each size runs on a fresh stack (Azurite, simulator, host, handler)",
		},
	}
	path := o.out
	if path == "" {
		path = filepath.Join(root, "bench", "results", time.Now().UTC().Format("2006-01-02")+".json")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// The file is rewritten after every size, so an interrupted run (a
	// large size taking too long) keeps what it measured.
	save := func() error {
		res.Total = time.Since(began).Seconds()
		b, _ := json.MarshalIndent(res, "", "  ")
		return os.WriteFile(path, append(b, '\n'), 0o644)
	}
	for _, n := range o.sizes {
		fmt.Fprintf(out, "\n== %d users\n", n)
		sr, err := benchSize(ctx, o, n, handler, logger, hlog, out)
		if err != nil {
			return fmt.Errorf("%d users: %w", n, err)
		}
		res.Sizes = append(res.Sizes, sr)
		// The latency run follows the size it is compared with, so a long
		// run interrupted at a larger size still has it.
		if o.latency > 0 && n == o.latencyUsers {
			fmt.Fprintf(out, "\n== latency: %d users, %s per page\n", o.latencyUsers, o.latency)
			base := sr.Full.Seconds
			lr, err := benchLatency(ctx, o, base, handler, logger, hlog, out)
			if err != nil {
				return fmt.Errorf("latency run: %w", err)
			}
			res.Latency = &lr
		}
		if err := save(); err != nil {
			return err
		}
	}
	if err := save(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	printSummary(out, res)
	fmt.Fprintf(out, "\nresults: %s (%s in all)\n", path, time.Since(began).Round(time.Second))
	return nil
}

// benchStack is a localstack.Stack whose storage goes through counters.
type benchStack struct {
	*localstack.Stack
	azurite *azurite.Instance
	tables  *storageCounter
	blobs   *storageCounter
	handler string
	conn    string
	tls     *http.Client
}

func startStack(ctx context.Context, o options, users int, latency time.Duration, handler string, logger *slog.Logger, hlog io.Writer) (*benchStack, error) {
	inst, err := azurite.Start(ctx, azurite.Options{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("start Azurite: %w", err)
	}
	bs := &benchStack{azurite: inst, handler: handler}
	ok := false
	defer func() {
		if !ok {
			bs.Close()
		}
	}()
	if bs.tables, err = newStorageCounter(inst.TableURL, false); err != nil {
		return nil, err
	}
	if bs.blobs, err = newStorageCounter(inst.BlobURL, true); err != nil {
		return nil, err
	}
	bs.conn = azurite.ConnectionString(bs.blobs.URL(), inst.QueueURL, bs.tables.URL())
	bs.Stack, err = localstack.Start(ctx, localstack.Options{
		Handler: handler, StorageConnectionString: bs.conn,
		Graph: graphsim.Config{Users: users, Seed: o.seed, PageSize: o.pageSize, PageLatency: latency, NullForClearedProperties: true},
		// The schedule's timer (every 5 minutes here) would start syncs of
		// its own, racing the measured ones: only the API starts runs here.
		Host:     devhost.Options{HandlerOutput: hlog, DisableTimers: true},
		Settings: profileSetting(o, users, latency),
		Logger:   logger,
	})
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bs.Graph.CertificatePEM())
	bs.tls = &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ok = true
	return bs, nil
}

// profileSetting asks the handler of one stack for a CPU profile (-cpuprofile).
func profileSetting(o options, users int, latency time.Duration) map[string]string {
	if o.cpuProfile == "" {
		return nil
	}
	name := fmt.Sprintf("handler-%d.pprof", users)
	if latency > 0 {
		name = "handler-latency.pprof"
	}
	abs, err := filepath.Abs(filepath.Join(o.cpuProfile, name))
	if err != nil {
		abs = filepath.Join(o.cpuProfile, name)
	}
	return map[string]string{"ENTRASYNC_CPU_PROFILE": abs}
}

func (bs *benchStack) Close() {
	if bs.Stack != nil {
		bs.Stack.Close()
	}
	if bs.tables != nil {
		bs.tables.Close()
	}
	if bs.blobs != nil {
		bs.blobs.Close()
	}
	bs.azurite.Close()
}

func benchSize(ctx context.Context, o options, users int, handler string, logger *slog.Logger, hlog io.Writer, out io.Writer) (sizeResult, error) {
	sr := sizeResult{Users: users}
	fmt.Fprintln(out, "starting the stack ...")
	bs, err := startStack(ctx, o, users, 0, handler, logger, hlog)
	if err != nil {
		return sr, err
	}
	defer bs.Close()
	settings := dirsync.DefaultSettings()
	settings.PageSize = o.pageSize

	fmt.Fprintln(out, "1. floors ...")
	if sr.StorageFloor, err = storageFloor(ctx, bs.conn, bs.Graph.Tenant().Users(), settings, o.floorWorkers, out); err != nil {
		return sr, err
	}
	fmt.Fprintf(out, "   storage: %d entities in %.1fs (%.0f/s, %d batches, %d in flight)\n",
		sr.StorageFloor.Entities, sr.StorageFloor.Seconds, sr.StorageFloor.PerSec, sr.StorageFloor.Batches, sr.StorageFloor.Workers)
	if sr.GraphFloor, err = graphFloor(ctx, bs.Graph, settings); err != nil {
		return sr, err
	}
	fmt.Fprintf(out, "   graph: %d users, %d pages in %.1fs (%.0f users/s)\n",
		sr.GraphFloor.Users, sr.GraphFloor.Pages, sr.GraphFloor.Seconds, sr.GraphFloor.PerSec)

	fmt.Fprintln(out, "2. full sync ...")
	if sr.Full, err = bs.measureRun(ctx, o, true, int64(users)); err != nil {
		return sr, err
	}
	floor := max(sr.StorageFloor.Seconds, sr.GraphFloor.Seconds)
	sr.FullOverFloor = sr.Full.Seconds / floor
	fmt.Fprintf(out, "   %s in %.1fs (%.0f users/s, %.1fx max(floors)), %d entities written, %d MiB peak RSS\n",
		sr.Full.Status, sr.Full.Seconds, sr.Full.UsersPerSec, sr.FullOverFloor, sr.Full.Storage.totalWritten(), int(sr.Full.PeakRSSMiB))

	if o.changes > 0 {
		fmt.Fprintf(out, "3. %d changes, then an incremental sync ...\n", o.changes)
		cs, err := bs.makeChanges(ctx, o.changes)
		if err != nil {
			return sr, fmt.Errorf("changes: %w", err)
		}
		sr.Changes = &cs
		inc, err := bs.measureRun(ctx, o, false, int64(o.changes))
		if err != nil {
			return sr, err
		}
		inc.PerChange = float64(inc.Storage.totalWritten()) / float64(cs.Total)
		// Rows of unchanged users written: user-row writes beyond one per
		// changed user (an upper bound of 0 is the target).
		inc.Extra = map[string]float64{"userRowWritesBeyondChanged": float64(max(0, inc.Storage.Written[dirsync.TableUsers]-int64(cs.Total)))}
		sr.Incremental = &inc
		fmt.Fprintf(out, "   %s in %.1fs, %d entities written (%.1f per change), %d table reads\n",
			inc.Status, inc.Seconds, inc.Storage.totalWritten(), inc.PerChange, inc.Storage.totalReads())
	}

	rc, err := probeRequestCost(ctx, bs.conn, bs.Graph.Tenant().Users())
	if err != nil {
		return sr, err
	}
	sr.RequestCost = &rc
	fmt.Fprintf(out, "   Azurite request cost on this directory: %.2f ms per user-row read (%.2f ms for a missing row)\n", rc.PointReadMs, rc.MissingReadMs)

	fmt.Fprintln(out, "4. run log of the full sync as CSV ...")
	dl, err := bs.downloadLog(ctx, sr.Full.RunID)
	if err != nil {
		return sr, err
	}
	sr.RunLog = &dl
	fmt.Fprintf(out, "   %d lines, %.1f MiB in %.2fs (%.0f lines/s), %d MiB peak RSS\n", dl.Lines, float64(dl.Bytes)/(1<<20), dl.Seconds, dl.LinesPerS, int(dl.PeakRSSMiB))
	return sr, nil
}

func benchLatency(ctx context.Context, o options, base float64, handler string, logger *slog.Logger, hlog io.Writer, out io.Writer) (latencyRun, error) {
	bs, err := startStack(ctx, o, o.latencyUsers, o.latency, handler, logger, hlog)
	if err != nil {
		return latencyRun{}, err
	}
	defer bs.Close()
	r, err := bs.measureRun(ctx, o, true, int64(o.latencyUsers))
	if err != nil {
		return latencyRun{}, err
	}
	lr := latencyRun{Users: o.latencyUsers, PageDelay: o.latency.Seconds(), Pages: r.Graph.Pages, Seconds: r.Seconds, Status: r.Status}
	lr.PagesDelay = float64(lr.Pages) * lr.PageDelay
	lr.FetchSeconds = r.Graph.FetchSeconds
	lr.Ratio = lr.Seconds / lr.PagesDelay
	if base > 0 {
		lr.BaseSeconds, lr.Overlapped, lr.Serial = base, max(base, lr.PagesDelay), base+lr.PagesDelay
	}
	fmt.Fprintf(out, "   %s in %.1fs; %d pages x %s = %.1fs; ratio %.2f\n", r.Status, r.Seconds, lr.Pages, o.latency, lr.PagesDelay, lr.Ratio)
	return lr, nil
}

// measureRun starts a sync through the API and follows it to its end,
// recording its phases, its storage and Graph traffic and the handler's
// peak RSS.
func (bs *benchStack) measureRun(ctx context.Context, o options, full bool, users int64) (runResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.runTimeout)
	defer cancel()
	pid := handlerPID(bs.handler)
	reset := resetPeakRSS(pid)
	st0, gs0 := bs.tables.snapshot(), bs.Graph.Tenant().Stats()
	bl0 := bs.blobs.snapshot()

	began := time.Now()
	id, err := bs.SyncNow(ctx, full)
	if err != nil {
		return runResult{}, fmt.Errorf("start the sync: %w", err)
	}
	var phases []phase
	cur, curAt := "", began
	var info localstack.RunInfo
	for {
		var env struct {
			Run localstack.RunInfo `json:"run"`
			localstack.RunInfo
		}
		code, err := bs.Call(ctx, bs.AdminKey, http.MethodGet, "/runs/"+id, nil, &env)
		if err != nil {
			return runResult{}, fmt.Errorf("follow run %s: %w", id, err)
		}
		if code != http.StatusOK {
			return runResult{}, fmt.Errorf("GET /api/runs/%s: %d", id, code)
		}
		info = env.Run
		if info.ID == "" {
			info = env.RunInfo
		}
		now := time.Now()
		if info.Phase != cur {
			if cur != "" {
				phases = append(phases, phase{cur, now.Sub(curAt).Seconds()})
			}
			cur, curAt = info.Phase, now
		}
		if info.Status != "running" {
			break
		}
		select {
		case <-ctx.Done():
			return runResult{}, fmt.Errorf("run %s: %w", id, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
	secs := time.Since(began).Seconds()
	if cur != "" {
		phases = append(phases, phase{cur, time.Since(curAt).Seconds()})
	}
	if pid2 := handlerPID(bs.handler); pid2 != pid {
		reset = false // the handler restarted: its peak covers less than the run
		pid = pid2
	}
	r := runResult{
		RunID: id, Status: string(info.Status), Mode: info.Mode, Seconds: secs, UsersPerSec: float64(users) / secs,
		Counters: info.Counters, Phases: phases, Storage: bs.tables.snapshot().sub(st0),
		Graph: graphDiff(bs.Graph.Tenant().Stats(), gs0, secs), PeakRSSMiB: float64(peakRSSKiB(pid)) / 1024, PeakReset: reset,
	}
	r.Storage.BlobBytes = bs.blobs.snapshot().sub(bl0).BlobBytes
	if info.Status != dirsync.RunSucceeded {
		return r, fmt.Errorf("run %s ended %s: %s %s", id, info.Status, info.Error, info.Hint)
	}
	return r, nil
}

// fetchSplit says how much of a run's wall time went to fetching from
// Graph and how much was left for applying alone.
func fetchSplit(wall float64, g graphCost) string {
	return fmt.Sprintf("%.1f s (%.0f%%) / %.1f s", g.FetchSeconds, 100*g.FetchShare, wall-g.FetchSeconds)
}

func graphDiff(after, before graphsim.Stats, secs float64) graphCost {
	g := graphCost{Requests: map[string]int{}}
	for k, v := range after.Requests {
		n := v - before.Requests[k]
		if n == 0 || k == "_sim" {
			continue
		}
		g.Requests[k] = n
		if k == graphsim.RouteToken || k == graphsim.RouteDiscovery {
			continue // the login endpoint has no Graph cost
		}
		g.Total += n
		g.Units += n
		g.FetchSeconds += after.BusySeconds[k] - before.BusySeconds[k]
		if k == graphsim.RouteUsersDelta || k == graphsim.RouteGroupsDelta {
			g.Pages += n
		}
	}
	g.UnitsPer10s = float64(g.Units) / secs * 10
	g.FetchShare = g.FetchSeconds / secs
	g.BudgetShare = g.UnitsPer10s / 8000
	return g
}

// downloadLog fetches a run's log as CSV through the API, as a support
// engineer would, and times it.
func (bs *benchStack) downloadLog(ctx context.Context, id string) (download, error) {
	pid := handlerPID(bs.handler)
	resetPeakRSS(pid)
	began := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, bs.APIURL()+"/runs/"+id+"/log?format=csv", nil)
	if err != nil {
		return download{}, err
	}
	req.Header.Set("x-functions-key", bs.SupportKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return download{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		return download{}, fmt.Errorf("GET /api/runs/%s/log?format=csv: %d %s", id, resp.StatusCode, b)
	}
	// Count while streaming: the bench must not hold the log either.
	var d download
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		d.Bytes += int64(n)
		for _, c := range buf[:n] {
			if c == '\n' {
				d.Lines++
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return download{}, err
		}
	}
	d.Seconds = time.Since(began).Seconds()
	d.MiBPerSec = float64(d.Bytes) / (1 << 20) / d.Seconds
	d.LinesPerS = float64(d.Lines) / d.Seconds
	d.PeakRSSMiB = float64(peakRSSKiB(pid)) / 1024
	return d, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return m
}

func summarize(path string, out io.Writer) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	printSummary(out, r)
	return nil
}

// printSummary prints one Markdown table per size (it reads on a terminal
// and pastes into docs/benchmarks.md).
func printSummary(out io.Writer, r results) {
	fmt.Fprintf(out, "machine: %d CPUs, %s, %s RAM, %s\n\n", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemTotal, r.Machine.GoVersion)
	fmt.Fprint(out, "| measure |")
	for _, s := range r.Sizes {
		fmt.Fprintf(out, " %d users |", s.Users)
	}
	fmt.Fprint(out, "\n|---|")
	for range r.Sizes {
		fmt.Fprint(out, "---|")
	}
	fmt.Fprintln(out)
	row := func(name string, f func(s sizeResult) string) {
		fmt.Fprintf(out, "| %s |", name)
		for _, s := range r.Sizes {
			fmt.Fprintf(out, " %s |", f(s))
		}
		fmt.Fprintln(out)
	}
	row("storage floor", func(s sizeResult) string {
		return fmt.Sprintf("%.1f s (%d entities, %.0f/s)", s.StorageFloor.Seconds, s.StorageFloor.Entities, s.StorageFloor.PerSec)
	})
	row("Graph floor", func(s sizeResult) string {
		return fmt.Sprintf("%.1f s (%d pages, %.0f users/s)", s.GraphFloor.Seconds, s.GraphFloor.Pages, s.GraphFloor.PerSec)
	})
	row("full sync", func(s sizeResult) string {
		return fmt.Sprintf("%.1f s (%.0f users/s)", s.Full.Seconds, s.Full.UsersPerSec)
	})
	row("full / max(floors)", func(s sizeResult) string { return fmt.Sprintf("%.1fx", s.FullOverFloor) })
	row("full: phases", func(s sizeResult) string { return phaseList(s.Full.Phases) })
	row("full: entities written", func(s sizeResult) string { return writtenList(s.Full.Storage) })
	row("full: table transactions (batches) / reads", func(s sizeResult) string {
		return fmt.Sprintf("%d (%d) / %d", s.Full.Storage.Transactions, s.Full.Storage.Batches, s.Full.Storage.totalReads())
	})
	row("full: blob bytes", func(s sizeResult) string { return fmt.Sprintf("%.1f MiB", float64(s.Full.Storage.BlobBytes)/(1<<20)) })
	row("full: Graph requests (delta pages), units/10 s", func(s sizeResult) string {
		return fmt.Sprintf("%d (%d), %.0f (%.0f%% of 8,000)", s.Full.Graph.Total, s.Full.Graph.Pages, s.Full.Graph.UnitsPer10s, 100*s.Full.Graph.BudgetShare)
	})
	row("full: fetching (Graph's answers) / only applying", func(s sizeResult) string {
		return fetchSplit(s.Full.Seconds, s.Full.Graph)
	})
	row("full: handler peak RSS", func(s sizeResult) string { return fmt.Sprintf("%.0f MiB", s.Full.PeakRSSMiB) })
	row("incremental: changes", func(s sizeResult) string {
		if s.Changes == nil {
			return "-"
		}
		c := s.Changes
		return fmt.Sprintf("%d (%d attr, %d add, %d soft, %d hard)", c.Total, c.Attributes, c.Adds, c.SoftDeletes, c.HardDeletes)
	})
	inc := func(f func(i *runResult) string) func(s sizeResult) string {
		return func(s sizeResult) string {
			if s.Incremental == nil {
				return "-"
			}
			return f(s.Incremental)
		}
	}
	row("incremental: wall time", inc(func(i *runResult) string { return fmt.Sprintf("%.1f s", i.Seconds) }))
	row("incremental: phases", inc(func(i *runResult) string { return phaseList(i.Phases) }))
	row("incremental: entities written (per change)", inc(func(i *runResult) string {
		return fmt.Sprintf("%d (%.2f): %s", i.Storage.totalWritten(), i.PerChange, writtenList(i.Storage))
	}))
	row("incremental: user-row writes beyond changed users", inc(func(i *runResult) string { return fmt.Sprintf("%.0f", i.Extra["userRowWritesBeyondChanged"]) }))
	row("incremental: table reads", inc(func(i *runResult) string { return fmt.Sprintf("%d: %s", i.Storage.totalReads(), readList(i.Storage)) }))
	row("incremental: Graph requests", inc(func(i *runResult) string { return fmt.Sprintf("%d (%d delta pages)", i.Graph.Total, i.Graph.Pages) }))
	row("incremental: handler peak RSS", inc(func(i *runResult) string { return fmt.Sprintf("%.0f MiB", i.PeakRSSMiB) }))
	row("Azurite user-row read on the synced directory", func(s sizeResult) string {
		if s.RequestCost == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f ms (missing row %.2f ms)", s.RequestCost.PointReadMs, s.RequestCost.MissingReadMs)
	})
	// The incremental run's time in units of this Azurite's request cost:
	// equal at two sizes when the run makes the same requests at both.
	row("incremental wall time / user-row read", func(s sizeResult) string {
		if s.Incremental == nil || s.RequestCost == nil || s.RequestCost.PointReadMs == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f reads", s.Incremental.Seconds*1000/s.RequestCost.PointReadMs)
	})
	row("run log CSV download", func(s sizeResult) string {
		if s.RunLog == nil {
			return "-"
		}
		d := s.RunLog
		return fmt.Sprintf("%d lines, %.1f MiB in %.2f s (%.0f lines/s), peak RSS %.0f MiB", d.Lines, float64(d.Bytes)/(1<<20), d.Seconds, d.LinesPerS, d.PeakRSSMiB)
	})
	if l := r.Latency; l != nil {
		fmt.Fprintf(out, "\nlatency run (%d users, %.0f ms per page): %.1f s for %d pages x %.0f ms = %.1f s: ratio %.2f\n",
			l.Users, l.PageDelay*1000, l.Seconds, l.Pages, l.PageDelay*1000, l.PagesDelay, l.Ratio)
		if l.FetchSeconds > 0 {
			fmt.Fprintf(out, "  fetching (Graph's answers) took %.1f s of it, applying alone the other %.1f s\n", l.FetchSeconds, l.Seconds-l.FetchSeconds)
		}
		if l.BaseSeconds > 0 {
			fmt.Fprintf(out, "  without the delay the sync took %.1f s: overlapped it would take ~%.1f s, serial ~%.1f s\n", l.BaseSeconds, l.Overlapped, l.Serial)
		}
	}
}

func phaseList(ps []phase) string {
	var b []string
	for _, p := range ps {
		b = append(b, fmt.Sprintf("%s %.1f s", p.Name, p.Seconds))
	}
	return strings.Join(b, ", ")
}

func writtenList(c storageCounts) string { return kv(c.Written) }
func readList(c storageCounts) string    { return kv(c.Reads) }

func kv(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b []string
	for _, k := range keys {
		b = append(b, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(b, ", ")
}
