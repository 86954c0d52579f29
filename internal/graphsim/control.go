package graphsim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// controlRoutes documents the control API (GET /_sim/ lists them).
const controlRoutes = `graph simulator control API (no auth, loopback only)
GET    /_sim/users[?includeDeleted=true]   every existing user (ground truth), flat JSON objects
POST   /_sim/users                         add a user: {"id"?, "<property>": value, "manager": "<id>"}
GET    /_sim/users/{id}                    one user
PATCH  /_sim/users/{id}                    set attributes; null removes one
DELETE /_sim/users/{id}[?hard=true]        soft delete (hard=true: delete for good)
POST   /_sim/users/{id}/restore            restore a soft-deleted user
PUT    /_sim/users/{id}/photo              set the photo (body: image bytes; ?width=&height=)
DELETE /_sim/users/{id}/photo              remove the photo
GET    /_sim/groups                        every group with its direct members
POST   /_sim/groups                        add a group: {"id"?, "displayName", "members": [...]}
GET    /_sim/groups/{id}                   one group
PATCH  /_sim/groups/{id}                   rename: {"displayName": "..."}
DELETE /_sim/groups/{id}                   delete a group
GET    /_sim/groups/{id}/transitive        ground truth: {"users": [...], "groups": [...]} at any depth, sorted
POST   /_sim/groups/{id}/members/{member}  add a member (user or group)
DELETE /_sim/groups/{id}/members/{member}  remove a member
POST   /_sim/tokens/expire                 expire every delta and skip token issued so far
GET    /_sim/faults                        faults in force
POST   /_sim/faults                        add a fault: {"route","kind","status","retryAfter":"2s","delay":"1s","count","fraction"}
DELETE /_sim/faults                        clear every fault
GET    /_sim/quirks                        paging quirks
PUT    /_sim/quirks                        {"emptyPageEvery": N, "repeatEvery": N}
GET    /_sim/stats                         request counters
GET    /_sim/certificate                   the server certificate (PEM)
`

func controlError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, "application/json", ordered{{"error", ordered{{"code", code}, {"message", msg}}}})
}

func controlFail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		controlError(w, http.StatusNotFound, "notFound", err.Error())
	case errors.Is(err, ErrConflict):
		controlError(w, http.StatusConflict, "conflict", err.Error())
	default:
		controlError(w, http.StatusBadRequest, "invalidRequest", err.Error())
	}
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<20)
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		controlError(w, http.StatusBadRequest, "invalidRequest", "the body is not the JSON expected: "+err.Error())
		return false
	}
	return true
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	if !isLoopback(r.RemoteAddr) {
		controlError(w, http.StatusForbidden, "forbidden", "the control API answers loopback clients only")
		return
	}
	segs := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/_sim"), "/"), "/")
	t := s.tenant
	m := r.Method
	n := len(segs)
	route := segs[0]
	switch {
	case route == "" && m == http.MethodGet:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, controlRoutes)

	case route == "users" && n == 1 && m == http.MethodGet:
		users := t.Users()
		if r.URL.Query().Get("includeDeleted") == "true" {
			users = append(users, t.SoftDeletedUsers()...)
		}
		writeUserStream(w, users)
	case route == "users" && n == 1 && m == http.MethodPost:
		var u User
		if !decodeBody(w, r, &u) {
			return
		}
		added, err := t.AddUser(u)
		if err != nil {
			controlFail(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, "application/json", added)
	case route == "users" && n == 2 && m == http.MethodGet:
		u, ok := t.User(segs[1])
		if !ok {
			controlError(w, http.StatusNotFound, "notFound", fmt.Sprintf("no existing user %q (status: %q)", segs[1], t.UserStatus(segs[1])))
			return
		}
		writeJSON(w, http.StatusOK, "application/json", u)
	case route == "users" && n == 2 && m == http.MethodPatch:
		var set map[string]any
		if !decodeBody(w, r, &set) {
			return
		}
		if err := t.UpdateUser(segs[1], set); err != nil {
			controlFail(w, err)
			return
		}
		u, _ := t.User(segs[1])
		writeJSON(w, http.StatusOK, "application/json", u)
	case route == "users" && n == 2 && m == http.MethodDelete:
		var err error
		if r.URL.Query().Get("hard") == "true" {
			err = t.HardDeleteUser(segs[1])
		} else {
			err = t.SoftDeleteUser(segs[1])
		}
		if err != nil {
			controlFail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case route == "users" && n == 3 && segs[2] == "restore" && m == http.MethodPost:
		if err := t.RestoreUser(segs[1]); err != nil {
			controlFail(w, err)
			return
		}
		u, _ := t.User(segs[1])
		writeJSON(w, http.StatusOK, "application/json", u)
	case route == "users" && n == 3 && segs[2] == "photo" && m == http.MethodPut:
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlPhoto))
		if err != nil {
			controlError(w, http.StatusBadRequest, "invalidRequest", "cannot read the photo: "+err.Error())
			return
		}
		width, _ := strconv.Atoi(r.URL.Query().Get("width"))
		height, _ := strconv.Atoi(r.URL.Query().Get("height"))
		if width <= 0 {
			width = 96
		}
		if height <= 0 {
			height = width
		}
		if err := t.SetPhoto(segs[1], data, r.Header.Get("Content-Type"), width, height); err != nil {
			controlFail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case route == "users" && n == 3 && segs[2] == "photo" && m == http.MethodDelete:
		if err := t.DeletePhoto(segs[1]); err != nil {
			controlFail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)

	case route == "groups" && n == 1 && m == http.MethodGet:
		groups := t.Groups()
		if groups == nil {
			groups = []Group{}
		}
		writeJSON(w, http.StatusOK, "application/json", groups)
	case route == "groups" && n == 1 && m == http.MethodPost:
		var g Group
		if !decodeBody(w, r, &g) {
			return
		}
		added, err := t.AddGroup(g)
		if err != nil {
			controlFail(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, "application/json", added)
	case route == "groups" && n == 2 && m == http.MethodGet:
		g, ok := t.Group(segs[1])
		if !ok {
			controlError(w, http.StatusNotFound, "notFound", fmt.Sprintf("no group %q", segs[1]))
			return
		}
		writeJSON(w, http.StatusOK, "application/json", g)
	case route == "groups" && n == 2 && m == http.MethodPatch:
		var body struct {
			DisplayName string `json:"displayName"`
		}
		if !decodeBody(w, r, &body) {
			return
		}
		if err := t.UpdateGroup(segs[1], body.DisplayName); err != nil {
			controlFail(w, err)
			return
		}
		g, _ := t.Group(segs[1])
		writeJSON(w, http.StatusOK, "application/json", g)
	case route == "groups" && n == 2 && m == http.MethodDelete:
		if err := t.DeleteGroup(segs[1]); err != nil {
			controlFail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case route == "groups" && n == 3 && segs[2] == "transitive" && m == http.MethodGet:
		users, groups, ok := t.TransitiveMembers(segs[1])
		if !ok {
			controlError(w, http.StatusNotFound, "notFound", fmt.Sprintf("no group %q", segs[1]))
			return
		}
		writeJSON(w, http.StatusOK, "application/json", ordered{{"users", nonNil(users)}, {"groups", nonNil(groups)}})
	case route == "groups" && n == 4 && segs[2] == "members" && (m == http.MethodPost || m == http.MethodPut):
		if err := t.AddMember(segs[1], segs[3]); err != nil {
			controlFail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case route == "groups" && n == 4 && segs[2] == "members" && m == http.MethodDelete:
		if err := t.RemoveMember(segs[1], segs[3]); err != nil {
			controlFail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)

	case route == "tokens" && n == 2 && segs[1] == "expire" && m == http.MethodPost:
		t.ExpireTokens()
		w.WriteHeader(http.StatusNoContent)

	case route == "faults" && n == 1 && m == http.MethodGet:
		faults := t.Faults()
		if faults == nil {
			faults = []Fault{}
		}
		writeJSON(w, http.StatusOK, "application/json", faults)
	case route == "faults" && n == 1 && m == http.MethodPost:
		var f Fault
		if !decodeBody(w, r, &f) {
			return
		}
		if err := t.SetFault(f); err != nil {
			controlFail(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, "application/json", t.Faults())
	case route == "faults" && n == 1 && m == http.MethodDelete:
		t.ClearFaults()
		w.WriteHeader(http.StatusNoContent)

	case route == "quirks" && n == 1 && m == http.MethodGet:
		writeJSON(w, http.StatusOK, "application/json", t.currentQuirks())
	case route == "quirks" && n == 1 && m == http.MethodPut:
		var q Quirks
		if !decodeBody(w, r, &q) {
			return
		}
		if err := t.SetQuirks(q); err != nil {
			controlFail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, "application/json", q)

	case route == "stats" && n == 1 && m == http.MethodGet:
		writeJSON(w, http.StatusOK, "application/json", t.Stats())
	case route == "certificate" && n == 1 && m == http.MethodGet:
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(s.CertificatePEM())
	default:
		controlError(w, http.StatusNotFound, "notFound", fmt.Sprintf("no control route %s %s; GET /_sim/ lists them", m, r.URL.Path))
	}
}

// nonNil makes an empty list [] in JSON rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// writeUserStream writes a JSON array without building it all in memory
// first: the ground truth of a 200,000-user tenant is large.
func writeUserStream(w http.ResponseWriter, users []User) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	_ = bw.WriteByte('[')
	for i, u := range users {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		b, err := json.Marshal(u)
		if err != nil {
			break
		}
		_, _ = bw.Write(b)
	}
	_ = bw.WriteByte(']')
	_ = bw.Flush()
}
