package deploycheck

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
)

// Schemas are resource type definitions trimmed from Azure's published ones
// (github.com/Azure/bicep-types-az, by internal/cmd/vendortypes): what a
// template may write under each resource type and API version.
type Schemas struct {
	// Source says where the definitions came from (repository and commit).
	Source string `json:"source"`
	// Types by "<type>@<api version>", and for a type discriminated by its
	// name (Microsoft.Web/sites/config) "<type>@<api version>#<name>".
	Types map[string]*Node `json:"types"`
}

// Node is what a value may be: an object with Props (and Extra for any other
// key, like a dictionary's), an array of Items, a closed Enum of strings, Any
// value at all, or else a scalar.
type Node struct {
	Props map[string]*Node `json:"props,omitempty"`
	Extra *Node            `json:"extra,omitempty"`
	Items *Node            `json:"items,omitempty"`
	Enum  []string         `json:"enum,omitempty"`
	Any   bool             `json:"any,omitempty"`
}

// LoadSchemas reads a file written by internal/cmd/vendortypes.
func LoadSchemas(path string) (*Schemas, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Schemas
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &s, nil
}

// bicepOnly are resource body keys that Bicep handles itself: they are not
// part of the resource's type.
var bicepOnly = []string{"parent", "scope", "dependsOn"}

// CheckSchemas checks every resource of f against s: its type and API
// version exist, every property it sets is one the type has (and not a
// read-only one), and a plain string set where the type allows only certain
// strings is one of them.
func CheckSchemas(f *File, s *Schemas) []Problem {
	var probs []Problem
	for _, r := range f.Resources {
		key := r.Type + "@" + r.APIVersion
		if r.Type == "Microsoft.Web/sites/config" {
			name, _ := Literal(r.Body.Fields["name"])
			key += "#" + name
		}
		n := s.Types[key]
		if n == nil {
			probs = append(probs, Problem{Line: r.Line, What: fmt.Sprintf("resource %s: %s is not among the vendored type definitions (a misspelled type or API version, or one to vendor: see internal/cmd/vendortypes)", r.Symbol, key)})
			continue
		}
		probs = append(probs, checkNode(r.Symbol+" ("+key+")", "", r.Body, n, true)...)
	}
	return probs
}

func checkNode(res, path string, v Value, n *Node, root bool) []Problem {
	if n.Any || v == nil {
		return nil
	}
	var probs []Problem
	switch v := v.(type) {
	case *Object:
		if len(v.Keys) == 0 {
			return nil // {} is a valid value of any object (and of one whose properties are all read-only)
		}
		if n.Props == nil && n.Extra == nil {
			return []Problem{{Line: v.Line, What: fmt.Sprintf("resource %s: %s is not an object in the type definition", res, orRoot(path))}}
		}
		for _, k := range v.Keys {
			if root && slices.Contains(bicepOnly, k) {
				continue
			}
			child := n.Props[k]
			if child == nil {
				child = n.Extra
			}
			if child == nil {
				probs = append(probs, Problem{Line: lineOf(v.Fields[k], v.Line), What: fmt.Sprintf("resource %s: %s is not a property of the type (misspelled, or read-only); it has: %s",
					res, join(path, k), strings.Join(sortedKeys(n.Props), ", "))})
				continue
			}
			probs = append(probs, checkNode(res, join(path, k), v.Fields[k], child, false)...)
		}
	case *Array:
		if n.Items == nil {
			return []Problem{{Line: v.Line, What: fmt.Sprintf("resource %s: %s is not an array in the type definition", res, orRoot(path))}}
		}
		for _, it := range v.Items {
			probs = append(probs, checkNode(res, path+"[]", it, n.Items, false)...)
		}
	case *Expr:
		if s, ok := Literal(v); ok && len(n.Enum) > 0 && !slices.Contains(n.Enum, s) {
			probs = append(probs, Problem{Line: v.Line, What: fmt.Sprintf("resource %s: %s = %q is not one of %s", res, path, s, strings.Join(n.Enum, ", "))})
		}
	}
	return probs
}

func lineOf(v Value, def int) int {
	switch v := v.(type) {
	case *Object:
		return v.Line
	case *Array:
		return v.Line
	case *Expr:
		return v.Line
	}
	return def
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func orRoot(path string) string {
	if path == "" {
		return "the body"
	}
	return path
}

func sortedKeys(m map[string]*Node) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
