package rules

import (
	"encoding/json"
	"strings"
	"sync"
)

// FromGraph returns a User backed by attributes as the engine holds them
// (dirsync.SourceUser.Attributes): by Graph name, booleans as "true" or
// "false", string collections joined with "; ", assignedPlans as its JSON
// array, a cleared or absent attribute as "" or missing. Each value is read
// with the kind the rule language gives its property, so an attribute that
// does not parse (an assignedPlans that is not JSON) is null, never a
// different kind.
func FromGraph(attrs map[string]string) User { return graphUser(attrs) }

type graphUser map[string]string

// graphKinds are the properties whose value is not a plain string, by the
// name User.Get is asked for.
// It is built on first use: userProperties is filled by init, after
// package-level variables.
var graphKinds = sync.OnceValue(func() map[string]propertyType {
	out := map[string]propertyType{}
	for _, p := range userProperties {
		if p.typ != stringProperty {
			out[p.graph] = p.typ
		}
	}
	out["businessPhones"] = stringsProperty
	return out
})

func (g graphUser) Get(name string) Value {
	s, ok := g[name]
	if !ok || s == "" {
		return Value{}
	}
	switch graphKinds()[name] {
	case boolProperty:
		switch strings.ToLower(s) {
		case "true":
			return BoolValue(true)
		case "false":
			return BoolValue(false)
		}
		return Value{}
	case stringsProperty:
		return StringsValue(strings.Split(s, "; ")...)
	case assignedPlansProperty:
		var raw []map[string]any
		if json.Unmarshal([]byte(s), &raw) != nil {
			return Value{}
		}
		objs := make([]map[string]string, 0, len(raw))
		for _, r := range raw {
			o := map[string]string{}
			for k, v := range r {
				if str, ok := v.(string); ok {
					o[k] = str
				}
			}
			objs = append(objs, o)
		}
		return ObjectsValue(objs...)
	}
	return StringValue(s)
}
