package dirsync_test

import (
	"context"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

// failSecondUserBatch fails the second batch written to the users table,
// once: the page has written one partition when the worker "dies".
type failSecondUserBatch struct {
	*dirsynctest.Store
	batches int
}

func (f *failSecondUserBatch) Batch(ctx context.Context, table string, ops []dirsync.BatchOp) error {
	if table == dirsync.TableUsers {
		f.batches++
		if f.batches == 2 {
			return &dirsync.Error{Code: dirsync.EUNAVAILABLE, Message: "injected crash after the first partition"}
		}
	}
	return f.Store.Batch(ctx, table, ops)
}

// Finding 10: a page retried after some of its partitions were written
// loses no log line: every user it added is in the log.
func TestRetriedPageLosesNoLogLine(t *testing.T) {
	e := newEnv(t)
	e.Source.PageSize = 20
	e.Engine.Store = &failSecondUserBatch{Store: e.Store}
	e.Seed(12)
	run := e.Sync(dirsynctest.DrainOptions{})
	if run.Status != dirsync.RunSucceeded || run.Counters.Added != 12 {
		t.Fatalf("run = %s, added %d", run.Status, run.Counters.Added)
	}
	log := e.Logs.Text(run.LogName)
	for i := 1; i <= 12; i++ {
		if !strings.Contains(log, `"event":"added","userId":"`+uid(i)+`"`) {
			t.Errorf("log has no added line for user %d", i)
		}
	}
}
