package devhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/entrasync/entrasync/internal/funcproto"
)

// The end-to-end tests run the test binary itself as the custom handler:
// with DEVHOST_TEST_HANDLER=1 in its environment, TestMain serves the test
// app below instead of running tests. The handler appends one JSON record per
// request it receives to the file named by TESTHANDLER_RECORDS, which the
// tests read.

// record is one request the test handler received.
type record struct {
	Kind         string          `json:"kind"` // "payload" or "proxied"
	Function     string          `json:"function,omitempty"`
	InvocationID string          `json:"invocationId"`
	Path         string          `json:"path"`
	Method       string          `json:"method"`
	Headers      http.Header     `json:"headers"`
	Raw          json.RawMessage `json:"raw,omitempty"` // payload requests: the body as received
	Body         string          `json:"body,omitempty"`
	At           time.Time       `json:"at"`

	// Decoded by funcproto, for queue and timer functions.
	MessageID     string               `json:"messageId,omitempty"`
	DeliveryCount int                  `json:"deliveryCount,omitempty"`
	MessageBody   string               `json:"messageBody,omitempty"`
	Timer         *funcproto.TimerInfo `json:"timer,omitempty"`
	MaxInFlight   int64                `json:"maxInFlight,omitempty"`
}

type recorder struct {
	mu sync.Mutex
	f  *os.File
}

func (r *recorder) add(rec record) {
	rec.At = time.Now()
	b, _ := json.Marshal(rec)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.f.Write(append(b, '\n'))
}

// workOrder is a queue message body of the test app: it says how the Work
// function behaves.
type workOrder struct {
	Fail       int             `json:"fail"`       // fail while DeliveryCount <= Fail
	FailAlways bool            `json:"failAlways"` // never succeed
	SleepMS    int             `json:"sleepMs"`
	SleepFirst int             `json:"sleepFirstMs"` // sleep on the first delivery only
	Send       json.RawMessage `json:"send"`         // a message to send to the "work" queue first
}

func runTestHandler() {
	addr, err := funcproto.ListenAddr()
	if err != nil {
		log.Fatal(err)
	}
	f, err := os.OpenFile(os.Getenv("TESTHANDLER_RECORDS"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	rec := &recorder{f: f}
	devhostURL := os.Getenv("ENTRASYNC_DEVHOST_URL")

	router := funcproto.NewRouter(nil)
	router.Timer("Tick", "timer", func(ctx context.Context, inv *funcproto.Invocation, t funcproto.TimerInfo) error {
		rec.add(record{Kind: "decoded", Function: inv.FunctionName, InvocationID: inv.InvocationID, Timer: &t})
		return nil
	})
	var inFlight, maxInFlight atomic.Int64
	router.Queue("Work", "message", func(ctx context.Context, inv *funcproto.Invocation, m funcproto.ServiceBusMessage) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			old := maxInFlight.Load()
			if n <= old || maxInFlight.CompareAndSwap(old, n) {
				break
			}
		}
		var order workOrder
		json.Unmarshal(m.Body, &order)
		if order.SleepFirst > 0 && m.DeliveryCount == 1 {
			time.Sleep(time.Duration(order.SleepFirst) * time.Millisecond)
		}
		if order.SleepMS > 0 {
			time.Sleep(time.Duration(order.SleepMS) * time.Millisecond)
		}
		rec.add(record{Kind: "decoded", Function: inv.FunctionName, InvocationID: inv.InvocationID,
			MessageID: m.MessageID, DeliveryCount: m.DeliveryCount, MessageBody: string(m.Body), MaxInFlight: maxInFlight.Load()})
		if len(order.Send) > 0 {
			resp, err := http.Post(devhostURL+"/_devhost/queues/work/messages", "application/json", bytes.NewReader(order.Send))
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				return fmt.Errorf("sending: %s", resp.Status)
			}
		}
		if order.FailAlways || m.DeliveryCount <= order.Fail {
			return errors.New("work order says fail")
		}
		return nil
	})

	api := http.NewServeMux()
	api.HandleFunc("/api/hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		inv := funcproto.FromContext(r.Context())
		w.Header().Set("X-Seen-Invocation", inv.InvocationID)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "hello %s q=%s", r.PathValue("name"), r.URL.Query().Get("q"))
	})
	api.HandleFunc("/api/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusAccepted)
		io.Copy(w, r.Body)
	})
	api.HandleFunc("/api/stream", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		// Hold the response open until the client hangs up: the client must
		// have seen "first" by then, which only streaming allows.
		select {
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
		io.WriteString(w, "last\n")
	})
	api.HandleFunc("/api/secure/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secure") })
	api.HandleFunc("/api/admin-only", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "admin") })
	api.HandleFunc("/api/open", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "open") })
	api.HandleFunc("/api/crash", func(w http.ResponseWriter, r *http.Request) { os.Exit(3) })
	for _, name := range []string{"Hello", "Echo", "Secure", "AdminOnly", "Open", "Crash", "Stream"} {
		router.HTTP(name, api)
	}
	router.Proxy(api)

	recording := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			router.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rc := record{Path: r.URL.RequestURI(), Method: r.Method, Headers: r.Header, InvocationID: r.Header.Get(funcproto.InvocationIDHeader)}
		if strings.HasPrefix(r.URL.Path, "/api/") {
			rc.Kind = "proxied"
			if len(body) < 4096 {
				rc.Body = string(body)
			}
		} else {
			rc.Kind, rc.Function, rc.Raw = "payload", strings.TrimPrefix(r.URL.Path, "/"), body
		}
		rec.add(rc)
		router.ServeHTTP(w, r)
	})
	log.Fatal(http.ListenAndServe(addr, recording))
}
