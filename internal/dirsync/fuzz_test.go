package dirsync_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/dirsync/dirsynctest"
)

// The decoders the engine reads from outside: queue messages, settings
// documents, and Graph values that become fields and keys. None may panic,
// and what they accept must be usable.

func FuzzDecodeWorkItem(f *testing.F) {
	f.Add([]byte(`{"kind":"page","run":"20261123-112233-a1b2c3","seq":3,"link":"https://graph/x","epoch":1}`))
	f.Add([]byte(`{"kind":"sweep","run":"20261123-112233-a1b2c3","bucket":15,"cursor":"abc"}`))
	f.Add([]byte(`{"kind":"nope"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		w, err := dirsync.DecodeWorkItem(body)
		if err != nil {
			if !dirsync.IsCode(err, dirsync.EINVALID) {
				t.Fatalf("error %v is not invalid", err)
			}
			return
		}
		if !dirsync.ValidRunID(w.RunID) || w.Bucket < 0 || w.Bucket >= dirsync.UserBuckets || w.Seq < 0 {
			t.Fatalf("accepted a bad item: %+v", w)
		}
		if id := w.MessageID(); len(id) > 128 {
			t.Fatalf("message id %q longer than Service Bus allows", id)
		}
	})
}

func FuzzDecodeSettings(f *testing.F) {
	f.Add([]byte(`{"enabled":false}`))
	f.Add([]byte(`{"mapping":[{"field":"company","constant":"Contoso"}],"required":[],"emailField":""}`))
	f.Add([]byte(`{"mapping":[{"field":"email","source":"mail"}],"required":["EMAIL"]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := dirsync.DecodeSettings(doc)
		if err != nil {
			if !dirsync.IsCode(err, dirsync.EINVALID) {
				t.Fatalf("error %v is not invalid", err)
			}
			return
		}
		if s.Validate() == nil {
			// A valid document reads back as itself.
			again, err := dirsync.DecodeSettings(mustJSON(t, s))
			if err != nil || again.ShapeHash() != s.ShapeHash() {
				t.Fatalf("round trip changed the settings: %v", err)
			}
		}
	})
}

func FuzzEscapeKey(f *testing.F) {
	for _, s := range []string{"user@contoso.example", "a/b#c?d\\e|f%g", "\u0085\u009f", "\xff\xfe", "é😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := dirsync.EscapeKey(s)
		if len(s) > 0 && len(s) <= 100 {
			if why := dirsync.ValidKey(k); why != "" {
				t.Fatalf("EscapeKey(%q) = %q, which %s", s, k, why)
			}
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzUserAttributes feeds arbitrary Graph values through the mapping into a
// directory row: the run must succeed, and every user is either stored (cut
// where too long) or skipped with a reason, never failing the page.
func FuzzUserAttributes(f *testing.F) {
	f.Add("User 1", "user1@contoso.example", "Engineer")
	f.Add("", "a\u0085b@x", "\x00\xff")
	f.Add("x", "a/b#c?d\\e%f|g@example.com", "")
	f.Fuzz(func(t *testing.T, name, mail, title string) {
		e := dirsynctest.NewEngine(t)
		p := dirsynctest.Person(1)
		p["displayName"], p["mail"], p["jobTitle"] = name, mail, title
		e.Source.Put(dirsynctest.UserID(1), p)
		run := e.Sync(dirsynctest.DrainOptions{})
		if run.Status != dirsync.RunSucceeded && !(run.Status == dirsync.RunFailed && run.Counters.Skipped == 1) {
			t.Fatalf("run %s: %s", run.Status, run.Error)
		}
		u, err := e.Engine.GetUser(context.Background(), dirsynctest.UserID(1))
		if err != nil {
			t.Fatalf("user not stored: %v", err)
		}
		if u.Status == dirsync.StatusSkipped && u.Reason == "" {
			t.Fatalf("skipped without a reason")
		}
	})
}
