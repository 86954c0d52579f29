package api_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
)

const utf8BOM = "\uFEFF"

// logLines parses a JSONL body into its events.
func logLines(t *testing.T, body []byte) []dirsync.LogEvent {
	t.Helper()
	var out []dirsync.LogEvent
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev dirsync.LogEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", len(out)+1, err, sc.Text())
		}
		out = append(out, ev)
	}
	return out
}

// csvRecords checks the BOM and parses a CSV body.
func csvRecords(t *testing.T, body []byte) [][]string {
	t.Helper()
	if !bytes.HasPrefix(body, []byte(utf8BOM)) {
		t.Fatalf("CSV does not start with a UTF-8 byte order mark: %q", body[:min(len(body), 20)])
	}
	recs, err := csv.NewReader(bytes.NewReader(body[len(utf8BOM):])).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v", err)
	}
	if diff := cmp.Diff([]string{"time", "level", "event", "page", "userId", "upn", "reason", "message", "changes"}, recs[0]); diff != "" {
		t.Fatalf("CSV header (-want +got):\n%s", diff)
	}
	return recs[1:]
}

func countEvents(evs []dirsync.LogEvent, keep func(dirsync.LogEvent) bool) int {
	n := 0
	for _, ev := range evs {
		if keep(ev) {
			n++
		}
	}
	return n
}

// TestRunLogDownload syncs 10,000 users (a log of over 10,000 lines) and
// downloads the log in both formats, whole and filtered.
func TestRunLogDownload(t *testing.T) {
	e := newEnv(t)
	e.Source.PageSize = 500
	e.Seed(10000)
	for i := 1; i <= 10; i++ { // skipped: no display name
		p := person(i)
		delete(p, "displayName")
		e.Source.Put(uid(i), p)
	}
	for i := 11; i <= 15; i++ { // duplicates of user 100's email
		p := person(i)
		p["mail"] = "user100@contoso.example"
		e.Source.Put(uid(i), p)
	}
	run := e.syncNow()
	if run.Status != dirsync.RunSucceeded {
		t.Fatalf("run %s: %s", run.Status, run.Error)
	}
	stored := e.logs.Text(run.LogName)
	all := logLines(t, []byte(stored))
	if len(all) < 10000 {
		t.Fatalf("the run logged %d lines; the test needs 10,000", len(all))
	}
	logPath := "/api/runs/" + run.ID + "/log"

	t.Run("jsonl whole", func(t *testing.T) {
		res := e.call("GET", logPath, supportKey, "").want(http.StatusOK)
		if ct := res.header.Get("Content-Type"); ct != "application/x-ndjson; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		if string(res.body) != stored {
			t.Errorf("the JSONL download differs from the stored log (%d bytes vs %d)", len(res.body), len(stored))
		}
	})
	filters := []struct {
		query string
		keep  func(dirsync.LogEvent) bool
		want  int
	}{
		{"event=added", func(ev dirsync.LogEvent) bool { return ev.Event == "added" }, 10000 - 15},
		{"level=warn,error", func(ev dirsync.LogEvent) bool { return ev.Level == "warn" || ev.Level == "error" }, 15},
		{"event=skipped,added&level=warn", func(ev dirsync.LogEvent) bool { return ev.Event == "skipped" }, 10},
		{"event=duplicate", func(ev dirsync.LogEvent) bool { return ev.Event == "duplicate" }, 5},
		{"event=page,run_started,run_finished", func(ev dirsync.LogEvent) bool {
			return ev.Event == "page" || ev.Event == "run_started" || ev.Event == "run_finished"
		}, -1},
		{"event=no_such_event", func(dirsync.LogEvent) bool { return false }, 0},
	}
	for _, f := range filters {
		want := f.want
		if want < 0 {
			want = countEvents(all, f.keep)
		}
		if got := countEvents(all, f.keep); got != want {
			t.Fatalf("the stored log has %d lines for %s, the test expects %d", got, f.query, want)
		}
		t.Run("jsonl "+f.query, func(t *testing.T) {
			got := logLines(t, e.call("GET", logPath+"?"+f.query, supportKey, "").want(http.StatusOK).body)
			if len(got) != want || countEvents(got, f.keep) != want {
				t.Errorf("%d lines, %d matching; want %d", len(got), countEvents(got, f.keep), want)
			}
		})
		t.Run("csv "+f.query, func(t *testing.T) {
			recs := csvRecords(t, e.call("GET", logPath+"?format=csv&"+f.query, supportKey, "").want(http.StatusOK).body)
			if len(recs) != want {
				t.Errorf("%d rows, want %d", len(recs), want)
			}
		})
	}
	t.Run("csv whole", func(t *testing.T) {
		res := e.call("GET", logPath+"?format=csv", supportKey, "").want(http.StatusOK)
		if ct, cd := res.header.Get("Content-Type"), res.header.Get("Content-Disposition"); ct != "text/csv; charset=utf-8" || cd != `attachment; filename="`+run.ID+`.csv"` {
			t.Errorf("Content-Type %q, Content-Disposition %q", ct, cd)
		}
		recs := csvRecords(t, res.body)
		if len(recs) != len(all) {
			t.Fatalf("%d rows for %d log lines", len(recs), len(all))
		}
		for i, rec := range recs {
			ev := all[i]
			if rec[0] != ev.Time.UTC().Format("2006-01-02T15:04:05.000Z") || rec[1] != ev.Level || rec[2] != ev.Event || rec[4] != ev.UserID || rec[5] != ev.UPN || rec[6] != ev.Reason {
				t.Fatalf("row %d = %q, log line %+v", i, rec, ev)
			}
			if ev.Page != nil && rec[3] != fmt.Sprint(*ev.Page) {
				t.Fatalf("row %d page %q, want %d", i, rec[3], *ev.Page)
			}
		}
		last := recs[len(recs)-1]
		if last[2] != "run_finished" || !strings.Contains(last[7], "added 9985") {
			t.Errorf("summary row = %q", last)
		}
	})
}

// TestRunLogCSVCells checks how changes, unicode and formula-like values
// appear in the CSV.
func TestRunLogCSVCells(t *testing.T) {
	e := newEnv(t)
	e.Seed(3)
	e.syncNow()
	p1 := person(1)
	p1["jobTitle"] = "=HYPERLINK(\"http://evil.example\",\"click\")"
	p1["department"] = ""
	e.Source.Put(uid(1), p1)
	p2 := person(2)
	p2["displayName"] = "Zoë Ångström 李雷"
	p2["mobilePhone"] = "+49 170 1234567"
	e.Source.Put(uid(2), p2)
	p3 := person(3)
	p3["userPrincipalName"] = "=1+2@contoso.example"
	e.Source.Put(uid(3), p3)
	run := e.syncNow()
	recs := csvRecords(t, e.call("GET", "/api/runs/"+run.ID+"/log?format=csv&event=updated", supportKey, "").want(http.StatusOK).body)
	got := map[string][]string{}
	for _, r := range recs {
		got[r[4]] = []string{r[5], r[8]}
	}
	// Excel runs a formula only at the start of a cell: those cells get a
	// leading quote; the rest stay as they are.
	want := map[string][]string{
		uid(1): {"user1@contoso.example", `department: Engineering -> (empty); jobTitle: Engineer -> =HYPERLINK("http://evil.example","click")`},
		uid(2): {"user2@contoso.example", "displayName: User 2 -> Zoë Ångström 李雷; mobile: changed (value not logged)"},
		uid(3): {"'=1+2@contoso.example", "upn: user3@contoso.example -> =1+2@contoso.example"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("changes column (-want +got):\n%s", diff)
	}
	if strings.Contains(e.call("GET", "/api/runs/"+run.ID+"/log?format=csv", supportKey, "").want(http.StatusOK).String(), "1234567") {
		t.Errorf("a sensitive value reached the CSV")
	}
}

func (r result) String() string { return string(r.body) }

// generatedLog streams a synthetic run log of size bytes without holding it,
// and watches how the API reads it.
type generatedLog struct {
	run      string
	size     int64
	sink     *countingSink
	failAt   int64 // return an error after this many bytes (0 = never)
	produced int64
	pending  []byte
	n        int
	// readAhead is the most bytes read between two writes to the response.
	readAhead   int64
	sinceWrite  int64
	beforeStart int64 // bytes read before the response started
	maxHeap     uint64
	sampledAt   int64
}

func (g *generatedLog) line() []byte {
	g.n++
	level, event := "info", "updated"
	if g.n%10 == 0 {
		level, event = "warn", "skipped"
	}
	return fmt.Appendf(nil, `{"time":"2026-11-23T10:00:%02d.%03dZ","level":%q,"run":%q,"page":%d,"event":%q,"userId":"00000000-0000-4000-8000-%012d","upn":"user%d@contoso.example","changes":[{"field":"jobTitle","old":"Engineer %d","new":"Senior Engineer %d"}],"reason":"padding to make the line about 300 bytes long"}`+"\n",
		g.n%60, g.n%1000, level, g.run, g.n/200, event, g.n, g.n, g.n, g.n)
}

func (g *generatedLog) Read(p []byte) (int, error) {
	if g.failAt > 0 && g.produced >= g.failAt {
		return 0, errors.New("blob read failed: connection reset")
	}
	if len(g.pending) == 0 {
		if g.produced >= g.size {
			return 0, io.EOF
		}
		g.pending = g.line()
	}
	n := copy(p, g.pending)
	g.pending = g.pending[n:]
	g.produced += int64(n)
	if g.sink != nil {
		if !g.sink.started {
			g.beforeStart += int64(n)
		}
		g.sinceWrite += int64(n)
		g.readAhead = max(g.readAhead, g.sinceWrite)
	}
	if g.produced-g.sampledAt >= 256<<10 {
		g.sampledAt = g.produced
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		g.maxHeap = max(g.maxHeap, ms.HeapAlloc)
	}
	return n, nil
}

func (g *generatedLog) Close() error { return nil }

// countingSink is a ResponseWriter that keeps nothing but counts.
type countingSink struct {
	header  http.Header
	status  int
	started bool
	written int64
	lines   int
	gen     *generatedLog
}

func (s *countingSink) Header() http.Header { return s.header }
func (s *countingSink) WriteHeader(code int) {
	s.status, s.started = code, true
}
func (s *countingSink) Write(p []byte) (int, error) {
	if !s.started {
		s.WriteHeader(http.StatusOK)
	}
	s.written += int64(len(p))
	s.lines += bytes.Count(p, []byte("\n"))
	s.gen.sinceWrite = 0
	return len(p), nil
}

// TestRunLogStreamsWithBoundedMemory serves a 5 MB log in each format and
// checks that the API streams it: the response starts before much is read,
// it never reads far ahead of what it wrote, and the heap never grows by
// anything near the log's size.
func TestRunLogStreamsWithBoundedMemory(t *testing.T) {
	e := newEnv(t)
	e.Seed(2)
	run := e.syncNow()
	const size = 5 << 20
	// Collect garbage eagerly, so the heap follows live memory closely.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	for _, tc := range []struct {
		query     string
		unfiltred bool
		minLines  int
	}{
		{"", true, size / 400},
		{"?format=csv", true, size / 400},
		{"?level=warn", false, size / 4000},
		{"?format=csv&event=skipped", false, size / 4000},
		{"?event=none", false, 0},
	} {
		t.Run(tc.query, func(t *testing.T) {
			gen := &generatedLog{run: run.ID, size: size}
			sink := &countingSink{header: http.Header{}, gen: gen}
			gen.sink = sink
			e.logs.generate(run.LogName, func() io.ReadCloser { return gen })
			req := httptest.NewRequest("GET", "/api/runs/"+run.ID+"/log"+tc.query, nil)
			req.Header.Set("x-functions-key", supportKey)

			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			e.api.ServeHTTP(sink, req)

			if sink.status != http.StatusOK || gen.produced < size {
				t.Fatalf("status %d, read %d of %d bytes", sink.status, gen.produced, size)
			}
			if sink.lines < tc.minLines {
				t.Errorf("response has %d lines, want at least %d", sink.lines, tc.minLines)
			}
			if gen.beforeStart > 0 {
				t.Errorf("%d bytes of the log were read before the response started", gen.beforeStart)
			}
			if tc.unfiltred && gen.readAhead > 256<<10 {
				t.Errorf("read %d bytes ahead of the response; a stream stays within its buffers (~100 KiB)", gen.readAhead)
			}
			growth := int64(gen.maxHeap) - int64(before.HeapAlloc)
			if growth > 2<<20 {
				t.Errorf("the heap grew by %.1f MiB while serving a %d MiB log", float64(growth)/(1<<20), size>>20)
			}
			t.Logf("read %d bytes, wrote %d (%d lines), heap growth %.2f MiB, read-ahead %d KiB",
				gen.produced, sink.written, sink.lines, float64(growth)/(1<<20), gen.readAhead>>10)
		})
	}
}

// TestRunLogReadFailureBreaksTheResponse: when the log store fails after
// the status line went out, the client must see a broken transfer, never a
// complete-looking file.
func TestRunLogReadFailureBreaksTheResponse(t *testing.T) {
	e := newEnv(t)
	e.Seed(2)
	run := e.syncNow()
	for _, format := range []string{"jsonl", "csv"} {
		e.logs.generate(run.LogName, func() io.ReadCloser { return &generatedLog{run: run.ID, size: 1 << 20, failAt: 200 << 10} })
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/runs/"+run.ID+"/log?format="+format, nil)
		req.Header.Set("x-functions-key", supportKey)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("%s: the client read a complete response from a failed log read", format)
		}
	}
	if !strings.Contains(e.logOut.String(), "connection reset") {
		t.Errorf("the read failure was not logged")
	}
}

// TestRunLogOverlongLine: a line over 1 MiB is left out (and said so in
// CSV), the lines around it are served.
func TestRunLogOverlongLine(t *testing.T) {
	e := newEnv(t)
	e.Seed(2)
	run := e.syncNow()
	long := `{"level":"info","event":"added","message":"` + strings.Repeat("x", 2<<20) + `"}`
	content := `{"level":"warn","event":"skipped","userId":"a"}` + "\n" + long + "\n" + `not json` + "\n" + `{"level":"warn","event":"skipped","userId":"b"}`
	e.logs.generate(run.LogName, func() io.ReadCloser { return io.NopCloser(strings.NewReader(content)) })
	recs := csvRecords(t, e.call("GET", "/api/runs/"+run.ID+"/log?format=csv", supportKey, "").want(http.StatusOK).body)
	var got []string
	for _, r := range recs {
		got = append(got, r[2]+"/"+r[4])
	}
	if diff := cmp.Diff([]string{"skipped/a", "unreadable_line/", "skipped/b", "line_too_long/"}, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	lines := logLines(t, e.call("GET", "/api/runs/"+run.ID+"/log?level=warn", supportKey, "").want(http.StatusOK).body)
	if len(lines) != 2 {
		t.Errorf("filtered JSONL has %d lines, want the 2 skipped ones", len(lines))
	}
	if whole := e.call("GET", "/api/runs/"+run.ID+"/log", supportKey, "").want(http.StatusOK); string(whole.body) != content {
		t.Errorf("the unfiltered JSONL must be the log as stored")
	}
}
