package main

import (
	"bytes"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// storageCounter is a reverse proxy in front of one Azurite endpoint that
// counts what passes through it. Azurite keeps no request statistics, and
// the issue asks for table transactions and entities written by kind, so the
// handler's storage traffic is routed through here (its connection string
// names the proxy). The storage floor goes through the same proxy, so both
// sides of `full sync / storage floor` pay its small cost.
type storageCounter struct {
	target *url.URL
	blob   bool // a Blob endpoint: count bytes written, not entities
	proxy  *httputil.ReverseProxy
	ln     net.Listener
	srv    *http.Server

	mu sync.Mutex
	c  storageCounts
}

// storageCounts is a snapshot of the counters; sub gives the traffic of
// one phase.
type storageCounts struct {
	// Requests is every HTTP request (reads, writes, batches).
	Requests int64 `json:"requests"`
	// Transactions are write requests: one per single-entity write and one
	// per entity group transaction ($batch).
	Transactions int64 `json:"transactions"`
	// Batches are the $batch transactions among them.
	Batches int64 `json:"batches"`
	// Reads are GET requests (point reads and query pages) by table kind.
	Reads map[string]int64 `json:"reads"`
	// Written counts entities written (inserted, replaced, merged, deleted)
	// by table kind, batched or not.
	Written map[string]int64 `json:"written"`
	// BlobBytes are the bytes appended or put to blobs (the run logs).
	BlobBytes int64 `json:"blobBytes"`
}

func newStorageCounter(target string, blob bool) (*storageCounter, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &storageCounter{target: u, blob: blob, ln: ln, c: storageCounts{Reads: map[string]int64{}, Written: map[string]int64{}}}
	origin := &url.URL{Scheme: u.Scheme, Host: u.Host}
	s.proxy = httputil.NewSingleHostReverseProxy(origin)
	// Many concurrent batches from the handler and the floor: keep enough
	// idle connections to Azurite that the proxy does not redial per request.
	// IdleConnTimeout stays under Node's 5 s keep-alive timeout: Azurite
	// closes an idle connection then, and a batch sent on it in that
	// instant is reset (a 502 here, retried by the SDK, but noise).
	s.proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true, IdleConnTimeout: 4 * time.Second}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve)}
	go s.srv.Serve(ln)
	return s, nil
}

// URL is the proxied endpoint, with the same account path as the target.
func (s *storageCounter) URL() string {
	return "http://" + s.ln.Addr().String() + s.target.Path
}

func (s *storageCounter) Close() error { return s.srv.Close() }

// batchOp matches one operation line inside a $batch body, e.g.
// "PUT http://127.0.0.1:1/devstoreaccount1/entrasyncUsers(PartitionKey='b01',RowKey='x') HTTP/1.1".
// The counts row of a users partition (dirsync.CountsRowKey, written in the
// same batch as the user rows it counts) is counted as "users counts", so
// "users" stays the number of user rows written.
var batchOp = regexp.MustCompile(`(?m)^(POST|PUT|PATCH|MERGE|DELETE) \S*/([A-Za-z][A-Za-z0-9]*)(?:\(|\?| )([^\r\n]*)`)

func (s *storageCounter) serve(w http.ResponseWriter, r *http.Request) {
	kind, isTable := tableKind(r.URL.Path, s.target.Path)
	var body []byte
	if r.Body != nil && !s.blob && isBatch(r) {
		// A batch is at most 4 MiB: reading it to count its operations is
		// cheap next to Azurite's own parsing.
		body, _ = io.ReadAll(r.Body)
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	s.mu.Lock()
	s.c.Requests++
	switch {
	case s.blob:
		// Blob writes: Content-Length is the payload (append block or put).
		if r.Method == http.MethodPut {
			s.c.Transactions++
			if r.ContentLength > 0 {
				s.c.BlobBytes += r.ContentLength
			}
		}
	case isBatch(r):
		s.c.Transactions++
		s.c.Batches++
		for _, m := range batchOp.FindAllSubmatch(body, -1) {
			if k, ok := tableKind("/"+string(m[2]), ""); ok {
				if bytes.Contains(m[3], []byte("counts'")) || bytes.Contains(m[3], []byte("%7Ecounts")) {
					k += " counts"
				}
				s.c.Written[k]++
			}
		}
	case !isTable:
		// Table creation and service calls: neither a read nor an entity.
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		s.c.Reads[kind]++
	default:
		s.c.Transactions++
		s.c.Written[kind]++
	}
	s.mu.Unlock()
	s.proxy.ServeHTTP(w, r)
}

func isBatch(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/$batch")
}

// tableKind turns a table request path into the table's kind: the logical
// name without the prefix ("entrasyncUsers(...)" -> "users",
// "benchfloorEmails" -> "emails"). ok is false for paths that are no table.
func tableKind(path, accountPath string) (string, bool) {
	p := strings.TrimPrefix(path, accountPath)
	p = strings.TrimPrefix(p, "/")
	if i := strings.IndexAny(p, "(/?"); i >= 0 {
		p = p[:i]
	}
	if p == "" || p == "$batch" || p == "Tables" {
		return "", false
	}
	// Real names are prefix + CamelCase logical name (internal/table):
	// the kind starts at the first upper-case letter.
	for i, r := range p {
		if 'A' <= r && r <= 'Z' {
			return strings.ToLower(p[i:]), true
		}
	}
	return strings.ToLower(p), true
}

func (s *storageCounter) snapshot() storageCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.c
	c.Reads, c.Written = maps.Clone(s.c.Reads), maps.Clone(s.c.Written)
	return c
}

// sub is the traffic between an earlier snapshot and c.
func (c storageCounts) sub(before storageCounts) storageCounts {
	d := storageCounts{
		Requests: c.Requests - before.Requests, Transactions: c.Transactions - before.Transactions,
		Batches: c.Batches - before.Batches, BlobBytes: c.BlobBytes - before.BlobBytes,
		Reads: map[string]int64{}, Written: map[string]int64{},
	}
	for k, v := range c.Reads {
		if n := v - before.Reads[k]; n != 0 {
			d.Reads[k] = n
		}
	}
	for k, v := range c.Written {
		if n := v - before.Written[k]; n != 0 {
			d.Written[k] = n
		}
	}
	return d
}

func (c storageCounts) totalWritten() int64 {
	var n int64
	for _, v := range c.Written {
		n += v
	}
	return n
}

func (c storageCounts) totalReads() int64 {
	var n int64
	for _, v := range c.Reads {
		n += v
	}
	return n
}
