package dirsync

import (
	"sort"

	"github.com/entrasync/entrasync/internal/rules"
)

// ruleProperties returns the Graph attributes the scope rule and the
// dynamic groups' rules read, sorted. A rule that does not parse reads
// nothing (it was validated when saved; the engine reports it when used).
func ruleProperties(s Settings, groups []Group) []string {
	set := map[string]bool{}
	add := func(text string) {
		if text == "" {
			return
		}
		if r, err := rules.Parse(text); err == nil {
			for _, p := range r.Properties() {
				set[p] = true
			}
		}
	}
	add(s.ScopeRule)
	for _, g := range groups {
		if g.Kind == GroupDynamic {
			add(g.Rule)
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// HeldAttributes returns the Graph attributes a directory row holds under
// these settings and groups: the sources of mappings without a fallback
// (as the mapped field), the raw attributes kept for fallbacks and rules,
// id and userPrincipalName. A rule reading anything else cannot be
// evaluated against the directory until a sync has read it.
func HeldAttributes(s Settings, groups []Group) map[string]bool {
	held := map[string]bool{"id": true, "userPrincipalName": true}
	for _, m := range s.Mapping {
		if m.Source != "" && m.Fallback == "" {
			held[m.Source] = true
		}
	}
	for _, a := range s.rawAttributes() {
		held[a] = true
	}
	for _, a := range ruleProperties(s, groups) {
		held[a] = true
	}
	return held
}

// UserAttributes returns the Graph attributes the directory holds for u, by
// Graph name, as a rule reads them (rules.FromGraph).
func (s Settings) UserAttributes(u User) map[string]string {
	attrs := s.currentAttributes(SourceUser{}, &u)
	attrs["id"] = u.ID
	if u.UPN != "" {
		attrs["userPrincipalName"] = u.UPN
	}
	return attrs
}
