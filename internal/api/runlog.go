package api

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// Run logs can be large (a line per changed user), so they are streamed from
// the log store to the response a line at a time: memory stays bounded by
// the buffers below and one line, however long the log.
const (
	logReadBuffer  = 64 << 10
	logWriteBuffer = 32 << 10
	// maxLogLine bounds one line held in memory; longer lines (none are
	// written by the engine) are left out and noted.
	maxLogLine = 1 << 20
	// csvCellLimit keeps each CSV cell under Excel's 32,767 characters.
	csvCellLimit = 32000
)

var (
	eventNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// logFilter keeps lines whose event and level are in the sets (an empty set
// keeps all).
type logFilter struct {
	events, levels map[string]bool
}

func (f logFilter) active() bool { return len(f.events) > 0 || len(f.levels) > 0 }

func (f logFilter) keep(event, level string) bool {
	return (len(f.events) == 0 || f.events[event]) && (len(f.levels) == 0 || f.levels[level])
}

func parseLogFilter(c *call) (logFilter, error) {
	f := logFilter{}
	if s := c.query("event"); s != "" {
		f.events = map[string]bool{}
		for _, e := range strings.Split(s, ",") {
			e = strings.TrimSpace(e)
			if !eventNameRE.MatchString(e) {
				return f, invalid("List event names separated by commas, e.g. event=added,updated,deleted,skipped,duplicate.",
					"event %s is not an event name", quoteShort(e))
			}
			f.events[e] = true
		}
	}
	if s := c.query("level"); s != "" {
		f.levels = map[string]bool{}
		for _, l := range strings.Split(s, ",") {
			l = strings.TrimSpace(l)
			if l != dirsync.LevelInfo && l != dirsync.LevelWarn && l != dirsync.LevelError {
				return f, invalid("List levels separated by commas, from info, warn, error (e.g. level=warn,error).",
					"level %s is not one of info, warn, error", quoteShort(l))
			}
			f.levels[l] = true
		}
	}
	return f, nil
}

func (h *Handler) getRunLog(c *call) (*response, error) {
	if err := c.checkQuery("format", "event", "level"); err != nil {
		return nil, err
	}
	id, err := c.runID()
	if err != nil {
		return nil, err
	}
	format := c.query("format")
	if format == "" {
		format = "jsonl"
	}
	if err := oneOf("format", format, "jsonl", "csv"); err != nil {
		return nil, err
	}
	filter, err := parseLogFilter(c)
	if err != nil {
		return nil, err
	}
	rc, _, err := h.svc.OpenRunLog(c.ctx, id)
	if err != nil {
		return nil, err
	}
	res := &response{status: http.StatusOK, header: http.Header{}}
	lw := &logWriter{h: h, c: c, filter: filter}
	if format == "csv" {
		res.header.Set("Content-Type", "text/csv; charset=utf-8")
		res.header.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.csv"`, id))
		res.stream = func(w io.Writer) error { defer rc.Close(); return lw.csv(w, rc) }
	} else {
		res.header.Set("Content-Type", "application/x-ndjson; charset=utf-8")
		res.header.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.jsonl"`, id))
		res.stream = func(w io.Writer) error { defer rc.Close(); return lw.jsonl(w, rc) }
	}
	return res, nil
}

type logWriter struct {
	h       *Handler
	c       *call
	filter  logFilter
	skipped int // lines too long to hold
}

// lineHead is what filtering needs of a line.
type lineHead struct {
	Event string `json:"event"`
	Level string `json:"level"`
}

func (lw *logWriter) jsonl(w io.Writer, r io.Reader) error {
	out := bufio.NewWriterSize(w, logWriteBuffer)
	if !lw.filter.active() {
		// Nothing to look at: copy through a fixed buffer.
		if _, err := io.CopyBuffer(onlyWriter{out}, onlyReader{r}, make([]byte, logReadBuffer)); err != nil {
			return err
		}
		return out.Flush()
	}
	err := lw.eachLine(r, func(line []byte) error {
		var head lineHead
		if json.Unmarshal(line, &head) != nil || !lw.filter.keep(head.Event, head.Level) {
			return nil
		}
		out.Write(line)
		return out.WriteByte('\n')
	})
	if err != nil {
		return err
	}
	return out.Flush()
}

var csvHeader = []string{"time", "level", "event", "page", "userId", "upn", "reason", "message", "changes"}

func (lw *logWriter) csv(w io.Writer, r io.Reader) error {
	out := bufio.NewWriterSize(w, logWriteBuffer)
	// A byte order mark makes Excel read the file as UTF-8, so names with
	// accents and non-Latin scripts show right.
	out.WriteString("\uFEFF")
	cw := csv.NewWriter(out)
	cw.UseCRLF = true // what Excel writes and expects
	cw.Write(csvHeader)
	row := make([]string, len(csvHeader))
	err := lw.eachLine(r, func(line []byte) error {
		var ev dirsync.LogEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			if lw.filter.active() {
				return nil
			}
			clear(row)
			row[1], row[2], row[7] = dirsync.LevelError, "unreadable_line", "this log line is not valid JSON: "+string(line)
		} else {
			if !lw.filter.keep(ev.Event, ev.Level) {
				return nil
			}
			csvRow(row, ev)
		}
		for i := range row {
			row[i] = csvCell(row[i])
		}
		return cw.Write(row)
	})
	if err != nil {
		return err
	}
	if lw.skipped > 0 && !lw.filter.active() {
		clear(row)
		row[1], row[2], row[7] = dirsync.LevelWarn, "line_too_long", fmt.Sprintf("%d log lines longer than %s were left out", lw.skipped, byteSize(maxLogLine))
		cw.Write(row)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return out.Flush()
}

func csvRow(row []string, ev dirsync.LogEvent) {
	clear(row)
	if !ev.Time.IsZero() {
		// Fixed width, so the column sorts as text too.
		row[0] = ev.Time.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	row[1], row[2] = ev.Level, ev.Event
	if ev.Page != nil {
		row[3] = strconv.FormatInt(*ev.Page, 10)
	}
	row[4], row[5], row[6], row[7] = ev.UserID, ev.UPN, ev.Reason, ev.Message
	if ev.Counters != nil {
		c := ev.Counters
		counts := fmt.Sprintf("seen %d, added %d, updated %d, unchanged %d, deleted %d, duplicate %d, skipped %d, failed %d",
			c.Seen, c.Added, c.Updated, c.Unchanged, c.Deleted, c.Duplicate, c.Skipped, c.Failed)
		if row[7] == "" {
			row[7] = counts
		} else {
			row[7] += " (" + counts + ")"
		}
	}
	row[8] = renderChanges(ev.Changes)
}

// renderChanges writes changes as "field: old -> new; ...". Sensitive
// fields carry no values in the log; they show as changed.
func renderChanges(changes []dirsync.FieldChange) string {
	var b strings.Builder
	for i, ch := range changes {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(ch.Field)
		if ch.Old == "" && ch.New == "" {
			b.WriteString(": changed (value not logged)")
			continue
		}
		fmt.Fprintf(&b, ": %s -> %s", orEmpty(ch.Old), orEmpty(ch.New))
	}
	return b.String()
}

func orEmpty(s string) string {
	if s == "" {
		return "(empty)"
	}
	return s
}

// csvCell guards against formula injection (a display name "=HYPERLINK(...)"
// from Entra must stay text in Excel) and keeps cells within Excel's limit.
func csvCell(s string) string {
	if len(s) > csvCellLimit {
		s = strings.ToValidUTF8(s[:csvCellLimit], "") + "..."
	}
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// eachLine calls f with every non-empty line of r (without its newline),
// holding at most one line in memory. f must not keep the slice.
func (lw *logWriter) eachLine(r io.Reader, f func([]byte) error) error {
	br := bufio.NewReaderSize(r, logReadBuffer)
	var long []byte // a line longer than the reader's buffer
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !tooLong && len(long)+len(chunk) <= maxLogLine {
				long = append(long, chunk...)
			} else {
				tooLong, long = true, long[:0]
			}
			continue
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("read run log: %w", err)
		}
		line := chunk
		if len(long) > 0 || tooLong {
			if !tooLong && len(long)+len(chunk) <= maxLogLine {
				long = append(long, chunk...)
				line = long
			} else {
				tooLong = true
			}
		}
		if tooLong {
			lw.skipped++
			lw.h.log.WarnContext(lw.c.ctx, "run log line too long; left out of the download", "requestId", lw.c.requestID)
		} else if line = bytes.TrimRight(line, "\r\n"); len(bytes.TrimSpace(line)) > 0 {
			if ferr := f(line); ferr != nil {
				return ferr
			}
		}
		long, tooLong = long[:0], false
		if err == io.EOF {
			return nil
		}
	}
}

// onlyWriter and onlyReader hide ReadFrom/WriteTo, so io.CopyBuffer really
// uses the bounded buffer instead of whatever the underlying types do.
type onlyWriter struct{ io.Writer }
type onlyReader struct{ io.Reader }
