package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/entrasync/entrasync/internal/dirsync"
)

// GroupLookup finds Entra groups, so a settings PUT can refuse a groupScope
// id that names no group. dirsync.Source implements it.
//
// Error contract: ENOTFOUND when no group has the id (or it was deleted);
// any other error is reported as it comes (the settings are then not saved).
type GroupLookup interface {
	Group(ctx context.Context, id string) (dirsync.SourceGroup, error)
}

var _ GroupLookup = dirsync.Source(nil)

// groupLookupConcurrency bounds the lookups of one settings PUT.
const groupLookupConcurrency = 8

// groupID returns the {id} path parameter as a group id.
func (c *call) groupID() (string, error) {
	id := c.params["id"]
	if !dirsync.ValidObjectID(id) {
		return "", invalid("Group ids are GUIDs such as 0f8fad5b-d9cb-469f-a165-70867728950e; list the groups with GET /api/groups.",
			"%s is not a group id", quoteShort(id))
	}
	return strings.ToLower(id), nil
}

// groupETag turns a group row's ETag into an opaque strong HTTP ETag;
// storedETag undoes it.
func groupETag(stored string) string {
	return `"` + base64.RawURLEncoding.EncodeToString([]byte(stored)) + `"`
}

// groupRequest is the body of POST /api/groups and PUT /api/groups/{id}.
type groupRequest struct {
	DisplayName string `json:"displayName"`
	Description string `json:"description"`
	Rule        string `json:"rule"`
	// Kind may be sent back as read; only "dynamic" groups can be written.
	Kind dirsync.GroupKind `json:"kind,omitempty"`
}

type groupResponse struct {
	Group dirsync.Group `json:"group"`
}

type groupsResponse struct {
	Groups []dirsync.Group `json:"groups"`
}

// runRef names the run a group change started.
type runRef struct {
	ID string `json:"id"`
}

// groupWriteResponse answers a group write: the group (not after a
// delete), the run that evaluates membership if one was started, and what
// happens next in words.
type groupWriteResponse struct {
	Group   *dirsync.Group `json:"group,omitempty"`
	Run     *runRef        `json:"run,omitempty"`
	Message string         `json:"message"`
}

func (h *Handler) listGroups(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	groups, err := h.svc.ListGroups(c.ctx)
	if err != nil {
		return nil, err
	}
	if groups == nil {
		groups = []dirsync.Group{}
	}
	return jsonResponse(http.StatusOK, groupsResponse{Groups: groups}), nil
}

func (h *Handler) getGroup(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	id, err := c.groupID()
	if err != nil {
		return nil, err
	}
	g, err := h.svc.GetGroup(c.ctx, id)
	if err != nil {
		return nil, err
	}
	res := jsonResponse(http.StatusOK, groupResponse{Group: g})
	res.header.Set("ETag", groupETag(g.ETag))
	return res, nil
}

func (c *call) groupBody() (dirsync.Group, error) {
	body, err := c.readBody()
	if err != nil {
		return dirsync.Group{}, err
	}
	if body == nil {
		return dirsync.Group{}, invalid(`Send {"displayName": "...", "description": "...", "rule": "user.department -eq \"Finance\""}.`,
			"group: the body is empty")
	}
	var req groupRequest
	if err := decodeJSON(body, &req, "group"); err != nil {
		return dirsync.Group{}, err
	}
	return dirsync.Group{DisplayName: req.DisplayName, Description: req.Description, Rule: req.Rule, Kind: req.Kind}, nil
}

func ifMatchRequired(what, get string) error {
	return &dirsync.Error{Code: codePreconditionRequired,
		Message: what + " needs an If-Match header with the ETag of the group you read",
		Hint:    "GET " + get + " and send its ETag header back in If-Match (or * to overwrite whatever is there)."}
}

func (h *Handler) createGroup(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	g, err := c.groupBody()
	if err != nil {
		return nil, err
	}
	g, err = h.svc.CreateGroup(c.ctx, g, c.caller.Name)
	if err != nil {
		return nil, err
	}
	run, msg := h.evaluateGroups(c)
	res := jsonResponse(http.StatusCreated, groupWriteResponse{Group: &g, Run: run, Message: msg})
	res.header.Set("Location", "/api/groups/"+g.ID)
	res.header.Set("ETag", groupETag(g.ETag))
	return res, nil
}

func (h *Handler) putGroup(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	id, err := c.groupID()
	if err != nil {
		return nil, err
	}
	ifMatch := c.r.Header.Get("If-Match")
	if ifMatch == "" {
		return nil, ifMatchRequired("changing a group", "/api/groups/"+id)
	}
	g, err := c.groupBody()
	if err != nil {
		return nil, err
	}
	g.ID = id
	g, err = h.svc.UpdateGroup(c.ctx, g, storedETag(ifMatch), c.caller.Name)
	if err != nil {
		return nil, err
	}
	run, msg := h.evaluateGroups(c)
	res := jsonResponse(http.StatusOK, groupWriteResponse{Group: &g, Run: run, Message: msg})
	res.header.Set("ETag", groupETag(g.ETag))
	return res, nil
}

func (h *Handler) deleteGroup(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	id, err := c.groupID()
	if err != nil {
		return nil, err
	}
	ifMatch := c.r.Header.Get("If-Match")
	if ifMatch == "" {
		return nil, ifMatchRequired("deleting a group", "/api/groups/"+id)
	}
	if err := h.svc.DeleteGroup(c.ctx, id, storedETag(ifMatch), c.caller.Name); err != nil {
		return nil, err
	}
	run, msg := h.evaluateGroups(c)
	return jsonResponse(http.StatusOK, groupWriteResponse{Run: run, Message: "The group is deleted; " + msg}), nil
}

// evaluateGroups starts a run after a group write, so that membership is
// evaluated soon: when sync is enabled and no run is going. It never fails
// the write: what happens instead is said in the message.
func (h *Handler) evaluateGroups(c *call) (*runRef, string) {
	const next = "membership will be evaluated by the next sync"
	running := next + "; a sync is running now"
	if s, _, err := h.svc.Settings(c.ctx); err == nil && !s.Enabled {
		return nil, next + "; sync is disabled, so that waits until it is enabled again"
	}
	if active, err := h.svc.ActiveRun(c.ctx); err == nil && active != nil {
		return nil, running
	}
	run, err := h.svc.StartRun(c.ctx, dirsync.StartRequest{Trigger: dirsync.TriggerGroups, RequestedBy: c.caller.Name})
	if err != nil {
		if active, aerr := h.svc.ActiveRun(c.ctx); aerr == nil && active != nil {
			return nil, running
		}
		h.log.WarnContext(c.ctx, "a group changed and no sync could be started to evaluate it", "requestId", c.requestID,
			"code", string(dirsync.ErrorCode(err)), "err", err.Error())
		return nil, next
	}
	return &runRef{ID: run.ID}, "membership will be evaluated by the sync started now (run " + run.ID + ")"
}

// memberView is a group member as GET /api/groups/{id}/members lists it.
// Only id is set when the member's directory row is gone (deleted since the
// index was written).
type memberView struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName,omitempty"`
	UPN         string `json:"upn,omitempty"`
	Email       string `json:"email,omitempty"`
	Status      string `json:"status,omitempty"`
}

type membersResponse struct {
	Members []memberView `json:"members"`
	// Next is the cursor of the next page; absent on the last one.
	Next string `json:"next,omitempty"`
}

func (h *Handler) listMembers(c *call) (*response, error) {
	if err := c.checkQuery("top", "cursor"); err != nil {
		return nil, err
	}
	id, err := c.groupID()
	if err != nil {
		return nil, err
	}
	top := dirsync.DefaultMembersTop
	if s := c.query("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > dirsync.MaxMembersTop {
			return nil, invalid(fmt.Sprintf("Use a whole number from 1 to %d, or leave top out for %d.", dirsync.MaxMembersTop, dirsync.DefaultMembersTop),
				"top %s is not a whole number from 1 to %d", quoteShort(s), dirsync.MaxMembersTop)
		}
		top = n
	}
	cursor := c.query("cursor")
	if len(cursor) > maxTokenLen {
		return nil, invalid("Pass back next exactly as it was given, or start again without cursor.", "the members cursor is not valid (too long)")
	}
	// Tell "no such group" from "no members".
	if _, err := h.svc.GetGroup(c.ctx, id); err != nil {
		return nil, err
	}
	ids, next, err := h.svc.GroupMembersPage(c.ctx, id, cursor, top)
	if err != nil {
		return nil, err
	}
	users, err := h.svc.Users(c.ctx, ids)
	if err != nil {
		return nil, err
	}
	members := make([]memberView, 0, len(ids))
	for _, uid := range ids {
		m := memberView{ID: uid}
		if u, ok := users[uid]; ok {
			m.DisplayName, m.UPN, m.Email, m.Status = u.Fields["displayName"], u.UPN, u.Email, u.Status
		}
		members = append(members, m)
	}
	return jsonResponse(http.StatusOK, membersResponse{Members: members, Next: next}), nil
}

type validateRuleRequest struct {
	Rule string `json:"rule"`
}

// validateRule answers whether a rule is valid and whom it would match. An
// invalid rule is an answer (200, valid false), not a bad request.
func (h *Handler) validateRule(c *call) (*response, error) {
	if err := c.checkQuery(); err != nil {
		return nil, err
	}
	body, err := c.readBody()
	if err != nil {
		return nil, err
	}
	if body == nil {
		return nil, invalid(`Send {"rule": "user.department -eq \"Finance\""}.`, "rule check: the body is empty")
	}
	var req validateRuleRequest
	if err := decodeJSON(body, &req, "rule check"); err != nil {
		return nil, err
	}
	preview, err := h.svc.PreviewRule(c.ctx, req.Rule, h.previewLimits)
	if err != nil {
		return nil, err
	}
	return jsonResponse(http.StatusOK, preview), nil
}

// checkGroupScope looks every groupScope id up in Entra (at most
// groupLookupConcurrency at a time) and refuses ids that name no group.
func (h *Handler) checkGroupScope(ctx context.Context, ids []string) error {
	if h.groups == nil || len(ids) == 0 {
		return nil
	}
	errs := make([]error, len(ids))
	sem := make(chan struct{}, groupLookupConcurrency)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, errs[i] = h.groups.Group(ctx, id)
		}()
	}
	wg.Wait()
	var missing []string
	for i, err := range errs {
		switch {
		case err == nil:
		case dirsync.IsCode(err, dirsync.ENOTFOUND):
			missing = append(missing, fmt.Sprintf("groupScope[%d]: no group %s exists in Entra (deleted, or a wrong id); remove it or pick an existing group", i, ids[i]))
		default:
			return &dirsync.Error{Code: dirsync.ErrorCode(err),
				Message: fmt.Sprintf("settings: groupScope[%d]: group %s could not be checked in Entra: %s", i, ids[i], dirsync.ErrorMessage(err)),
				Hint:    dirsync.ErrorHint(err), RetryAfter: dirsync.RetryAfter(err), Err: err}
		}
	}
	if len(missing) > 0 {
		return invalid("Find the group's object id in the Entra admin center (Groups > the group > Object ID). Nothing was saved.",
			"settings: %s", strings.Join(missing, "; "))
	}
	return nil
}

// groupRef is one of a user's groups in GET /api/users/{id}.
type groupRef struct {
	ID          string            `json:"id"`
	DisplayName string            `json:"displayName"`
	Kind        dirsync.GroupKind `json:"kind"`
}

// userGroupRefs names the groups of a user. Groups deleted since the last
// run (still on the user's row until it re-evaluates them) are left out.
func (h *Handler) userGroupRefs(ctx context.Context, userID string) ([]groupRef, error) {
	ids, err := h.svc.UserGroups(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := []groupRef{}
	if len(ids) == 0 {
		return out, nil
	}
	groups, err := h.svc.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]dirsync.Group, len(groups))
	for _, g := range groups {
		byID[g.ID] = g
	}
	for _, id := range ids {
		if g, ok := byID[id]; ok {
			out = append(out, groupRef{ID: g.ID, DisplayName: g.DisplayName, Kind: g.Kind})
		}
	}
	return out, nil
}
