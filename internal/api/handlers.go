package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// ---- health, openapi ----

type healthResponse struct {
	Status  string            `json:"status"` // "ok" or "unhealthy"
	Version string            `json:"version"`
	Checks  map[string]string `json:"checks"`
}

// getHealth is anonymous, so it shows only "ok" or the error code per
// check; the messages go to the log.
// Probes may add query parameters of their own (cache busters), so none
// are checked.
func (h *Handler) getHealth(c *call) (*response, error) {
	res := healthResponse{Status: "ok", Version: h.version, Checks: map[string]string{}}
	if h.health != nil {
		ctx, cancel := context.WithTimeout(c.ctx, 15*time.Second)
		defer cancel()
		for name, err := range h.health(ctx) {
			if err == nil {
				res.Checks[name] = "ok"
				continue
			}
			res.Status = "unhealthy"
			res.Checks[name] = string(dirsync.ErrorCode(err))
			h.log.WarnContext(c.ctx, "health check failed", "check", name, "code", string(dirsync.ErrorCode(err)),
				"message", dirsync.ErrorMessage(err), "hint", dirsync.ErrorHint(err))
		}
	}
	status := http.StatusOK
	if res.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	return jsonResponse(status, res), nil
}

func (h *Handler) getOpenAPI(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	return &response{status: http.StatusOK, header: http.Header{}, stream: nil, body: rawJSON(h.openapi)}, nil
}

// rawJSON is already-encoded JSON.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

// ---- me ----

// meResponse says who the caller is, so the console shows or hides its
// write controls. The API still checks every request itself.
type meResponse struct {
	Name string `json:"name"`
	// Role is "admin" or "support".
	Role string `json:"role"`
	// Via is "easyauth" (App Service Authentication) or "key".
	Via string `json:"via"`
}

func (h *Handler) getMe(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	return jsonResponse(http.StatusOK, meResponse{Name: c.caller.Name, Role: c.caller.Role.String(), Via: c.caller.How}), nil
}

// ---- status ----

// statusResponse is dirsync.Status with what the API adds: progress rates,
// ages, and the requests that carry out each action.
type statusResponse struct {
	dirsync.Status
	ActiveRun *runProgress `json:"activeRun,omitempty"`
	// DeltaTokenAgeSeconds is how old the saved delta token is.
	DeltaTokenAgeSeconds *int64 `json:"deltaTokenAgeSeconds,omitempty"`
	// DirectoryUsersNote explains the count: it is what the last successful
	// run counted at its end, by status in userCounts.
	DirectoryUsersNote string         `json:"directoryUsersNote"`
	Actions            []statusAction `json:"actions"`
}

type runProgress struct {
	dirsync.Run
	// RateUsersPerSecond is users seen per second since the run started.
	RateUsersPerSecond float64 `json:"rateUsersPerSecond"`
	ElapsedSeconds     int64   `json:"elapsedSeconds"`
	// EstimatedSecondsLeft is how long reading the rest of a full
	// enumeration should take at the measured rate, against the directory's
	// last known size; absent when there is nothing to estimate from (a
	// delta run reads only changes; a first sync knows no size).
	EstimatedSecondsLeft *int64 `json:"estimatedSecondsLeft,omitempty"`
}

type statusAction struct {
	dirsync.Action
	// Requests are the API calls that carry out the action.
	Requests []actionRequest `json:"requests,omitempty"`
}

type actionRequest struct {
	Description string `json:"description"`
	Method      string `json:"method"`
	Path        string `json:"path"`
	Body        string `json:"body,omitempty"`
}

func (h *Handler) getStatus(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	st, err := h.svc.Status(c.ctx)
	if err != nil {
		return nil, err
	}
	now := h.now()
	res := statusResponse{Status: st, Actions: []statusAction{},
		DirectoryUsersNote: "Users in the directory as counted at the end of the last successful run (active, duplicate and skipped rows alike); userCounts breaks them down by status. A run in progress is not counted yet."}
	if a := st.ActiveRun; a != nil {
		p := &runProgress{Run: *a}
		if el := now.Sub(a.StartedAt); el > 0 {
			p.ElapsedSeconds = int64(el.Seconds())
			if el >= time.Second {
				p.RateUsersPerSecond = float64(int64(float64(a.Counters.Seen)/el.Seconds()*10)) / 10
			}
		}
		if rate := p.RateUsersPerSecond; a.Mode == dirsync.ModeFull && a.Phase == dirsync.PhaseEnumerating && rate > 0 && st.DirectoryUsers > a.Counters.Seen {
			left := int64(math.Ceil(float64(st.DirectoryUsers-a.Counters.Seen) / rate))
			p.EstimatedSecondsLeft = &left
		}
		res.ActiveRun = p
	}
	if t := st.DeltaTokenIssuedAt; t != nil {
		age := int64(now.Sub(*t).Seconds())
		res.DeltaTokenAgeSeconds = &age
	}
	for _, a := range st.Actions {
		sa := statusAction{Action: a}
		switch a.Code {
		case dirsync.ActionDeletionsBlocked:
			if st.ActiveRun != nil {
				id := st.ActiveRun.ID
				sa.Requests = []actionRequest{
					{Description: "review the pending deletions", Method: "GET", Path: "/api/runs/" + id + "/deletions"},
					{Description: "apply them", Method: "POST", Path: "/api/runs/" + id + "/deletions/approve"},
					{Description: "keep those users and finish the run", Method: "POST", Path: "/api/runs/" + id + "/deletions/reject"},
				}
			}
		case dirsync.ActionRunStalled:
			if st.ActiveRun != nil {
				sa.Requests = []actionRequest{
					{Description: "replace it with a new sync now", Method: "POST", Path: "/api/sync"},
					{Description: "or cancel it", Method: "POST", Path: "/api/runs/" + st.ActiveRun.ID + "/cancel"},
				}
			}
		case dirsync.ActionSyncDisabled:
			sa.Requests = []actionRequest{{Description: "read the settings, set enabled to true, and save them with the ETag", Method: "PUT", Path: "/api/settings"}}
		case dirsync.ActionLastRunFailed, dirsync.ActionGraphPermissionMissing, dirsync.ActionCredentialsRejected:
			if st.LastRun != nil {
				sa.Requests = []actionRequest{
					{Description: "read what went wrong", Method: "GET", Path: "/api/runs/" + st.LastRun.ID + "/log?level=warn,error"},
					{Description: "start a new sync once the cause is fixed", Method: "POST", Path: "/api/sync"},
				}
			}
		}
		res.Actions = append(res.Actions, sa)
	}
	if st.ActiveRun == nil && st.LastRun == nil && st.Enabled {
		res.Actions = append(res.Actions, statusAction{
			Action: dirsync.Action{Code: dirsync.ActionNeverSynced, Message: "No sync has run yet: the directory is empty.",
				Hint: "Start the first (full) sync now, or wait for the schedule."},
			Requests: []actionRequest{{Description: "start a sync now", Method: "POST", Path: "/api/sync"}},
		})
	}
	if st.Enabled && st.NextRun == nil && st.ActiveRun == nil {
		res.Actions = append(res.Actions, statusAction{
			Action: dirsync.Action{Code: dirsync.ActionNothingScheduled, Message: "No sync is scheduled (" + describeSchedule(st.Schedule) + ").",
				Hint: "Start one with POST /api/sync, or set a daily, hourly or minutes schedule in the settings."},
		})
	}
	return jsonResponse(http.StatusOK, res), nil
}

func describeSchedule(s dirsync.Schedule) string {
	switch s.Frequency {
	case dirsync.FrequencyManual:
		return "the schedule is manual"
	case dirsync.FrequencyOnce:
		return "the one-time sync is past"
	}
	return "frequency " + string(s.Frequency)
}

// ---- sync, reset ----

type syncRequest struct {
	// Mode "full" reads every user and removes those no longer in Entra;
	// left out, the engine runs incrementally when it can.
	Mode string `json:"mode"`
}

type runResponse struct {
	Run dirsync.Run `json:"run"`
}

func (h *Handler) postSync(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	body, err := c.readBody()
	if err != nil {
		return nil, err
	}
	var req syncRequest
	if body != nil {
		if err := decodeJSON(body, &req, "sync request"); err != nil {
			return nil, err
		}
	}
	start := dirsync.StartRequest{Trigger: dirsync.TriggerManual, Mode: req.Mode, RequestedBy: c.caller.Name}
	switch req.Mode {
	case "", dirsync.ModeFull:
	case modePreview:
		start.Trigger, start.Mode, start.Preview = dirsync.TriggerPreview, "", true
	case modeFullPreview:
		start.Trigger, start.Mode, start.Preview = dirsync.TriggerPreview, dirsync.ModeFull, true
	default:
		return nil, invalid(`Send {"mode":"full"} for a full sync, {"mode":"preview"} or {"mode":"full-preview"} to see what a sync would change, or no body to let the engine choose.`,
			"sync request: mode %s is not one of full, preview, full-preview", quoteShort(req.Mode))
	}
	run, err := h.svc.StartRun(c.ctx, start)
	if err != nil {
		return nil, h.conflict(c, err)
	}
	return accepted(run), nil
}

// runHeader names, on a settings save, the run it started.
const runHeader = "Entrasync-Run"

// scopeChanged reports whether who is synced changed.
func scopeChanged(a, b dirsync.Settings) bool {
	return !slices.Equal(a.GroupScope, b.GroupScope) || !slices.Equal(a.UserScope, b.UserScope) || a.ScopeRule != b.ScopeRule || a.MirrorGroups != b.MirrorGroups
}

// Sync request modes besides "full": a preview computes every change a
// sync would make, and makes none.
const (
	modePreview     = "preview"
	modeFullPreview = "full-preview"
)

// previewSettings starts a full preview under a candidate settings
// document: what would this change do? Nothing is saved.
func (h *Handler) previewSettings(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	body, err := c.readBody()
	if err != nil {
		return nil, err
	}
	if body == nil {
		return nil, invalid("Send the candidate settings document (GET /api/settings gives the current one to edit).", "settings preview: the body is empty")
	}
	var s dirsync.Settings
	if err := decodeJSON(body, &s, "settings"); err != nil {
		return nil, err
	}
	if err := requireFields(body, &s, "settings"); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := h.checkGroupScope(c.ctx, s.GroupScope); err != nil {
		return nil, err
	}
	run, err := h.svc.StartRun(c.ctx, dirsync.StartRequest{Trigger: dirsync.TriggerPreview, Mode: dirsync.ModeFull, Preview: true, Settings: &s, RequestedBy: c.caller.Name})
	if err != nil {
		return nil, h.conflict(c, err)
	}
	return accepted(run), nil
}

// provisionUser syncs one user now and answers with the steps.
func (h *Handler) provisionUser(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	if body, err := c.readBody(); err != nil {
		return nil, err
	} else if body != nil {
		if err := decodeJSON(body, &struct{}{}, "provision request"); err != nil {
			return nil, err
		}
	}
	res, err := h.svc.ProvisionUser(c.ctx, c.params["id"], c.caller.Name)
	if err != nil {
		return nil, err
	}
	return jsonResponse(http.StatusOK, res), nil
}

func (h *Handler) postReset(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	if body, err := c.readBody(); err != nil {
		return nil, err
	} else if body != nil {
		if err := decodeJSON(body, &struct{}{}, "reset request"); err != nil {
			return nil, err
		}
	}
	res, err := h.svc.Reset(c.ctx, c.caller.Name)
	if err != nil {
		return nil, h.conflict(c, err)
	}
	if res.Run == nil {
		// Sync is disabled: the state was cleared and nothing started.
		return jsonResponse(http.StatusOK, res), nil
	}
	r := accepted(*res.Run)
	r.body = res
	return r, nil
}

func accepted(run dirsync.Run) *response {
	res := jsonResponse(http.StatusAccepted, runResponse{Run: run})
	res.header.Set("Location", "/api/runs/"+run.ID)
	return res
}

// conflict adds the id of the run in the way to a 409.
func (h *Handler) conflict(c *call, err error) error {
	if !dirsync.IsCode(err, dirsync.ECONFLICT) {
		return err
	}
	active, aerr := h.svc.ActiveRun(c.ctx)
	if aerr != nil || active == nil {
		return err
	}
	hdr := http.Header{}
	hdr.Set("Location", "/api/runs/"+active.ID)
	return &httpError{err: err, runID: active.ID, header: hdr}
}

// ---- runs ----

func runStatuses() []string {
	out := make([]string, len(dirsync.RunStatuses))
	for i, s := range dirsync.RunStatuses {
		out[i] = string(s)
	}
	return out
}

func (h *Handler) listRuns(c *call) (*response, error) {
	if err := c.checkQuery("status", "limit", "token"); err != nil {
		return nil, err
	}
	status := c.query("status")
	if err := oneOf("status", status, runStatuses()...); err != nil {
		return nil, err
	}
	p, err := c.paging(20, "status="+status)
	if err != nil {
		return nil, err
	}
	runs, next, err := h.svc.ListRuns(c.ctx, dirsync.RunStatus(status), p.limit, p.token)
	if err != nil {
		return nil, err
	}
	if runs == nil {
		runs = []dirsync.Run{}
	}
	params := url.Values{}
	if status != "" {
		params.Set("status", status)
	}
	return c.listResponse("runs", runs, p, next, params), nil
}

func (h *Handler) getRun(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	id, err := c.runID()
	if err != nil {
		return nil, err
	}
	run, err := h.svc.GetRun(c.ctx, id)
	if err != nil {
		return nil, err
	}
	return jsonResponse(http.StatusOK, runResponse{Run: run}), nil
}

// runAction runs one of the POST /api/runs/{id}/... actions.
func (h *Handler) runAction(c *call, status int, do func(ctx context.Context, id, who string) (dirsync.Run, error)) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	id, err := c.runID()
	if err != nil {
		return nil, err
	}
	if body, err := c.readBody(); err != nil {
		return nil, err
	} else if body != nil {
		if err := decodeJSON(body, &struct{}{}, "request"); err != nil {
			return nil, err
		}
	}
	run, err := do(c.ctx, id, c.caller.Name)
	if err != nil {
		return nil, err
	}
	return jsonResponse(status, runResponse{Run: run}), nil
}

func (h *Handler) cancelRun(c *call) (*response, error) {
	return h.runAction(c, http.StatusOK, h.svc.CancelRun)
}

// Approve and reject answer 202: the run goes on in the background.
func (h *Handler) approveDeletions(c *call) (*response, error) {
	return h.runAction(c, http.StatusAccepted, h.svc.ApproveDeletions)
}

func (h *Handler) rejectDeletions(c *call) (*response, error) {
	return h.runAction(c, http.StatusAccepted, h.svc.RejectDeletions)
}

func (h *Handler) listDeletions(c *call) (*response, error) {
	if err := c.checkQuery("limit", "token"); err != nil {
		return nil, err
	}
	id, err := c.runID()
	if err != nil {
		return nil, err
	}
	p, err := c.paging(50)
	if err != nil {
		return nil, err
	}
	// Distinguish "no such run" from "no deletions".
	if _, err := h.svc.GetRun(c.ctx, id); err != nil {
		return nil, err
	}
	dels, next, err := h.svc.PendingDeletions(c.ctx, id, p.limit, p.token)
	if err != nil {
		return nil, err
	}
	if dels == nil {
		dels = []dirsync.PendingDeletion{}
	}
	return c.listResponse("deletions", dels, p, next, url.Values{}), nil
}

const (
	defaultLinkTTL = time.Hour
	maxLinkTTL     = 24 * time.Hour
)

type logLinkResponse struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expiresAt"`
}

func (h *Handler) getRunLogLink(c *call) (*response, error) {
	if err := c.checkQuery("ttl"); err != nil {
		return nil, err
	}
	id, err := c.runID()
	if err != nil {
		return nil, err
	}
	ttl := defaultLinkTTL
	if s := c.query("ttl"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Minute || d > maxLinkTTL {
			return nil, invalid("Use a duration from 1m to 24h such as 30m or 2h, or leave ttl out for 1h.",
				"ttl %s is not a duration from 1m to 24h", quoteShort(s))
		}
		ttl = d
	}
	u, err := h.svc.RunLogURL(c.ctx, id, ttl)
	if err != nil {
		return nil, err
	}
	return jsonResponse(http.StatusOK, logLinkResponse{URL: u, ExpiresAt: h.now().Add(ttl).UTC().Truncate(time.Second)}), nil
}

// ---- settings, audit ----

// settingsETag turns the store's ETag into an opaque strong HTTP ETag.
// Before any save there is no stored ETag; "defaults" stands for it.
func settingsETag(stored string) string {
	if stored == "" {
		return `"defaults"`
	}
	return `"` + base64.RawURLEncoding.EncodeToString([]byte(stored)) + `"`
}

// storedETag undoes settingsETag. A malformed value cannot match anything,
// which the engine reports as stale (412).
func storedETag(header string) string {
	v := strings.TrimSpace(header)
	if v == "*" {
		return "*"
	}
	v = strings.TrimPrefix(v, "W/")
	v = strings.Trim(v, `"`)
	if v == "defaults" {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) == 0 {
		return "\x00malformed"
	}
	return string(b)
}

func (h *Handler) getSettings(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	s, etag, err := h.svc.Settings(c.ctx)
	if err != nil {
		return nil, err
	}
	res := jsonResponse(http.StatusOK, s)
	res.header.Set("ETag", settingsETag(etag))
	return res, nil
}

func (h *Handler) putSettings(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	ifMatch := c.r.Header.Get("If-Match")
	if ifMatch == "" {
		return nil, &dirsync.Error{Code: codePreconditionRequired,
			Message: "saving settings needs an If-Match header with the ETag of the settings you edited",
			Hint:    "GET /api/settings, edit the document, and send it back with If-Match set to the ETag header that GET returned."}
	}
	body, err := c.readBody()
	if err != nil {
		return nil, err
	}
	if body == nil {
		return nil, invalid("Send the whole settings document (GET /api/settings gives it).", "settings: the body is empty")
	}
	var s dirsync.Settings
	if err := decodeJSON(body, &s, "settings"); err != nil {
		return nil, err
	}
	if err := requireFields(body, &s, "settings"); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := h.checkGroupScope(c.ctx, s.GroupScope); err != nil {
		return nil, err
	}
	before, _, beforeErr := h.svc.Settings(c.ctx)
	etag, err := h.svc.PutSettings(c.ctx, s, storedETag(ifMatch), c.caller.Name)
	if err != nil {
		return nil, err
	}
	saved, _, err := h.svc.Settings(c.ctx)
	if err != nil {
		saved = s
	}
	res := jsonResponse(http.StatusOK, saved)
	res.header.Set("ETag", settingsETag(etag))
	// A scope change starts the full run that reconciles the directory
	// with the new scope (when sync is on and no run is going; otherwise
	// the next run is full anyway). It never fails the save.
	if beforeErr == nil && saved.Enabled && scopeChanged(before, saved) {
		if run, err := h.svc.StartRun(c.ctx, dirsync.StartRequest{Trigger: dirsync.TriggerSettings, Mode: dirsync.ModeFull, RequestedBy: c.caller.Name}); err == nil {
			res.header.Set(runHeader, run.ID)
		}
	}
	return res, nil
}

func (h *Handler) listAudit(c *call) (*response, error) {
	if err := c.checkQuery("limit", "token"); err != nil {
		return nil, err
	}
	p, err := c.paging(20)
	if err != nil {
		return nil, err
	}
	entries, next, err := h.svc.ListAudit(c.ctx, p.limit, p.token)
	if err != nil {
		return nil, err
	}
	if entries == nil {
		entries = []dirsync.AuditEntry{}
	}
	return c.listResponse("entries", entries, p, next, url.Values{}), nil
}

// ---- users ----

var userStatuses = []string{dirsync.StatusActive, dirsync.StatusDuplicate, dirsync.StatusSkipped}

func (h *Handler) listUsers(c *call) (*response, error) {
	if err := c.checkQuery("status", "prefix", "limit", "token"); err != nil {
		return nil, err
	}
	status, prefix := c.query("status"), c.query("prefix")
	if err := oneOf("status", status, userStatuses...); err != nil {
		return nil, err
	}
	if len(prefix) > 256 || strings.ContainsFunc(prefix, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, invalid("Search with the start of a display name or email, at most 256 characters.",
			"prefix must be at most 256 printable characters")
	}
	p, err := c.paging(50, "status="+status, "prefix="+prefix)
	if err != nil {
		return nil, err
	}
	users, next, err := h.svc.ListUsers(c.ctx, dirsync.UserQuery{Status: status, Prefix: prefix, Limit: p.limit, Token: p.token})
	if err != nil {
		return nil, err
	}
	if users == nil {
		users = []dirsync.User{}
	}
	params := url.Values{}
	if status != "" {
		params.Set("status", status)
	}
	if prefix != "" {
		params.Set("prefix", prefix)
	}
	return c.listResponse("users", users, p, next, params), nil
}

type userDetail struct {
	dirsync.User
	// Groups are the directory groups the user is a member of.
	Groups []groupRef `json:"groups"`
}

type userResponse struct {
	User userDetail `json:"user"`
}

func (h *Handler) getUser(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	id, err := c.objectID()
	if err != nil {
		return nil, err
	}
	u, err := h.svc.GetUser(c.ctx, id)
	if err != nil {
		return nil, err
	}
	groups, err := h.userGroupRefs(c.ctx, id)
	if err != nil {
		return nil, fmt.Errorf("groups of user %s: %w", id, err)
	}
	return jsonResponse(http.StatusOK, userResponse{User: userDetail{User: u, Groups: groups}}), nil
}

// getUserPhoto streams a user's stored photo with its content type and
// length; 404 with the reason when there is none.
func (h *Handler) getUserPhoto(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	id, err := c.objectID()
	if err != nil {
		return nil, err
	}
	rc, ctype, size, err := h.svc.OpenUserPhoto(c.ctx, id)
	if err != nil {
		return nil, err
	}
	res := &response{status: http.StatusOK, header: http.Header{}}
	res.header.Set("Content-Type", ctype)
	res.header.Set("Content-Length", strconv.FormatInt(size, 10))
	res.header.Set("Cache-Control", "private, max-age=300")
	res.header.Set("X-Content-Type-Options", "nosniff")
	res.header.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	res.stream = func(w io.Writer) error {
		defer rc.Close()
		_, err := io.CopyN(w, rc, size)
		return err
	}
	return res, nil
}
