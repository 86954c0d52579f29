package dirsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/entrasync/entrasync/internal/rules"
)

// Bounds of a rule preview's scan of the directory.
const (
	DefaultPreviewMaxRows     = 200_000
	DefaultPreviewMaxDuration = 20 * time.Second
	// PreviewSampleSize is how many matching users a preview lists.
	PreviewSampleSize = 10
)

// PreviewLimits bound PreviewRule's scan; zero fields take the defaults.
type PreviewLimits struct {
	MaxRows     int64
	MaxDuration time.Duration
}

// RuleProblem says why a rule does not parse (from rules.Error).
type RuleProblem struct {
	Message string `json:"message"`
	// Position is the 1-based character of the rule where the problem
	// starts; Line and Column place it in a rule of several lines.
	Position int `json:"position"`
	Line     int `json:"line"`
	Column   int `json:"column"`
	// Expected names what was expected there ("" when nothing in
	// particular was).
	Expected string `json:"expected,omitempty"`
	// NotSupported is true for a rule Entra accepts and entrasync does not
	// evaluate.
	NotSupported bool `json:"notSupported"`
}

// PreviewUser is a matching user as a preview lists it.
type PreviewUser struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName,omitempty"`
	UPN         string `json:"upn,omitempty"`
}

// RulePreview is what PreviewRule found.
type RulePreview struct {
	Valid bool         `json:"valid"`
	Error *RuleProblem `json:"error,omitempty"`
	// Rule is the rule in canonical form (valid rules only).
	Rule string `json:"rule,omitempty"`
	// Properties are the user properties the rule reads (Graph names).
	Properties []string `json:"properties"`
	// UnreadProperties are those the directory does not hold yet: the
	// count treats them as empty until a sync has read them.
	UnreadProperties []string `json:"unreadProperties"`
	Note             string   `json:"note,omitempty"`
	// MatchCount is the number of active directory users the rule matches
	// among the Scanned ones; Sample lists up to PreviewSampleSize of them.
	MatchCount int64         `json:"matchCount"`
	Sample     []PreviewUser `json:"sample"`
	Scanned    int64         `json:"scanned"`
	// Partial says the scan stopped at its bound before the end of the
	// directory: MatchCount is then a lower bound.
	Partial bool `json:"partial"`
}

// PreviewRule parses a membership rule and, when it is valid, evaluates it
// against the active users of the directory as the engine would (the
// attributes the directory holds, under the current settings, at the
// engine's now), scanning at most limits.MaxRows rows for at most
// limits.MaxDuration. A rule that does not parse is an answer (Valid false,
// Error with its position), not an error. Properties the directory does not
// hold (HeldAttributes of the settings and groups) are listed as unread:
// saving the rule in a group makes the next run read them.
//
// Errors: EINVALID when the stored settings cannot be read; store errors
// as they come.
func (e *Engine) PreviewRule(ctx context.Context, text string, limits PreviewLimits) (RulePreview, error) {
	res := RulePreview{Properties: []string{}, UnreadProperties: []string{}, Sample: []PreviewUser{}}
	r, err := rules.Parse(text)
	if err != nil {
		var re *rules.Error
		if !errors.As(err, &re) {
			return RulePreview{}, fmt.Errorf("parse rule: %w", err)
		}
		res.Error = &RuleProblem{Message: re.Error(), Position: re.Column, Line: re.Line, Column: re.Column,
			Expected: re.Expected, NotSupported: re.NotSupported}
		if re.Line > 1 {
			res.Error.Position = len([]rune(text[:re.Pos])) + 1
		}
		return res, nil
	}
	res.Valid, res.Rule = true, r.String()
	settings, _, err := e.Settings(ctx)
	if err != nil {
		return RulePreview{}, err
	}
	groups, err := e.ListGroups(ctx)
	if err != nil {
		return RulePreview{}, err
	}
	held := HeldAttributes(settings, groups)
	res.Properties = append(res.Properties, r.Properties()...)
	for _, p := range res.Properties {
		if !held[p] {
			res.UnreadProperties = append(res.UnreadProperties, p)
		}
	}
	var notes []string
	if len(res.UnreadProperties) > 0 {
		notes = append(notes, "The directory does not hold every property this rule reads yet: the count treats those as empty until a sync has read them. Saving the rule in a group makes the next run read them.")
	}
	if r.TooLong() {
		notes = append(notes, fmt.Sprintf("The rule's normal form (rule) is longer than Entra's limit of %d characters, although the rule as written is not: save the rule as written, not the normal form.", rules.MaxLength))
	}
	res.Note = strings.Join(notes, " ")
	if limits.MaxRows <= 0 {
		limits.MaxRows = DefaultPreviewMaxRows
	}
	if limits.MaxDuration <= 0 {
		limits.MaxDuration = DefaultPreviewMaxDuration
	}
	// The bound is on wall time, whatever the engine's clock says.
	deadline := time.Now().Add(limits.MaxDuration)
	env := rules.Env{Now: e.now()}
	for b := 0; b < UserBuckets; b++ {
		q := Query{PartitionKey: bucketKey(b), RowKeyBefore: countsRowKey}
		for {
			if res.Scanned >= limits.MaxRows || time.Now().After(deadline) {
				res.Partial = true
				return res, nil
			}
			q.Top = int(min(1000, limits.MaxRows-res.Scanned))
			page, err := e.Store.Query(ctx, TableUsers, q)
			if err != nil {
				return RulePreview{}, fmt.Errorf("preview rule: read the directory: %w", err)
			}
			for _, ent := range page.Entities {
				res.Scanned++
				u := userFromEntity(ent)
				if u.Status != StatusActive {
					continue
				}
				ok, err := r.Match(rules.FromGraph(settings.UserAttributes(u)), env)
				if err != nil {
					e.log().WarnContext(ctx, "rule preview: a user's value has the wrong kind", "user", u.ID, "err", err)
					continue
				}
				if ok {
					res.MatchCount++
					if len(res.Sample) < PreviewSampleSize {
						res.Sample = append(res.Sample, PreviewUser{ID: u.ID, DisplayName: u.Fields["displayName"], UPN: u.UPN})
					}
				}
			}
			if page.Continuation == "" {
				break
			}
			q.Continuation = page.Continuation
		}
	}
	return res, nil
}
