package funcproto

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// logCollector keeps the lines an invocation logged, for the response's
// "Logs", which the host writes to the function's own log stream.
type logCollector struct {
	mu    sync.Mutex
	lines []string
}

func (c *logCollector) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	c.mu.Lock()
	c.lines = append(c.lines, line)
	c.mu.Unlock()
	return len(p), nil
}

func (c *logCollector) add(line string) {
	c.mu.Lock()
	c.lines = append(c.lines, line)
	c.mu.Unlock()
}

func (c *logCollector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string{}, c.lines...)
}

// newCollectingHandler returns a handler that writes each record at Info or
// above as one text line (without the time: the host stamps its own) into c.
func newCollectingHandler(c *logCollector) slog.Handler {
	return slog.NewTextHandler(c, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
}

// teeHandler sends each record to the process logger and to the
// invocation's collector.
type teeHandler struct {
	base, col slog.Handler
}

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t.base.Enabled(ctx, l) || t.col.Enabled(ctx, l)
}

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if t.base.Enabled(ctx, r.Level) {
		err = t.base.Handle(ctx, r.Clone())
	}
	if t.col.Enabled(ctx, r.Level) {
		if e := t.col.Handle(ctx, r); err == nil {
			err = e
		}
	}
	return err
}

func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{base: t.base.WithAttrs(as), col: t.col.WithAttrs(as)}
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{base: t.base.WithGroup(name), col: t.col.WithGroup(name)}
}
