// Command vendortypes trims Azure's published resource type definitions
// (types.json files of github.com/Azure/bicep-types-az, generated/<rp>/<ns>/<api
// version>/types.json) to the resource types infra/ uses, and writes them as
// the schema internal/deploycheck checks the Bicep against.
//
// Only what a template may write is kept: read-only properties are dropped,
// so setting one is reported like a misspelled one. Enumerations are kept
// when closed (a union of string literals without a free string).
//
//	vendortypes -out internal/deploycheck/testdata/types.json -source <commit> \
//	    Microsoft.Web/sites@2024-11-01=path/to/web/types.json ...
//
// A type of the discriminated kind (Microsoft.Web/sites/config) is named with
// its discriminator value: Microsoft.Web/sites/config@2024-11-01#appsettings.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/entrasync/entrasync/internal/deploycheck"
)

func main() {
	out := flag.String("out", "internal/deploycheck/testdata/types.json", "schema file to write")
	source := flag.String("source", "", "where the types.json files came from (recorded in the output)")
	flag.Parse()
	if err := run(*out, *source, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "vendortypes:", err)
		os.Exit(1)
	}
}

func run(out, source string, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("name at least one <type>@<api version>[#<discriminator>]=<types.json>")
	}
	s := deploycheck.Schemas{Source: source, Types: map[string]*deploycheck.Node{}}
	files := map[string][]typ{}
	for _, a := range args {
		want, path, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("%q: want <type>@<api version>[#<discriminator>]=<types.json>", a)
		}
		ts, ok := files[path]
		if !ok {
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(raw, &ts); err != nil {
				return fmt.Errorf("%s: %v", path, err)
			}
			files[path] = ts
		}
		n, err := extract(ts, want)
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		s.Types[want] = n
	}
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(b, '\n'), 0o644)
}

// typ is one entry of a types.json: its kind and the fields the kinds use.
type typ struct {
	Kind          string              `json:"$type"`
	Name          string              `json:"name"`
	Body          *ref                `json:"body"`
	Properties    map[string]property `json:"properties"`
	Additional    *ref                `json:"additionalProperties"`
	ItemType      *ref                `json:"itemType"`
	Elements      json.RawMessage     `json:"elements"` // []ref (union) or map[string]ref (discriminated)
	BaseProps     map[string]property `json:"baseProperties"`
	Discriminator string              `json:"discriminator"`
	Value         json.RawMessage     `json:"value"`
}

type ref struct {
	Ref string `json:"$ref"`
}

type property struct {
	Type  ref `json:"type"`
	Flags int `json:"flags"`
}

// flagReadOnly marks a property the service sets and a template cannot.
const flagReadOnly = 2

func index(r ref) (int, error) {
	return strconv.Atoi(strings.TrimPrefix(r.Ref, "#/"))
}

func extract(ts []typ, want string) (*deploycheck.Node, error) {
	name, disc, _ := strings.Cut(want, "#")
	for _, t := range ts {
		if t.Kind != "ResourceType" || !strings.EqualFold(t.Name, name) {
			continue
		}
		i, err := index(*t.Body)
		if err != nil {
			return nil, err
		}
		body := ts[i]
		if body.Kind == "DiscriminatedObjectType" {
			if disc == "" {
				return nil, fmt.Errorf("%s is discriminated by %s: name one value after '#'", name, body.Discriminator)
			}
			var els map[string]ref
			if err := json.Unmarshal(body.Elements, &els); err != nil {
				return nil, err
			}
			el, ok := els[disc]
			if !ok {
				return nil, fmt.Errorf("%s has no %s %q", name, body.Discriminator, disc)
			}
			w := walker{ts: ts, path: map[int]bool{}}
			n, err := w.node(el)
			if err != nil {
				return nil, err
			}
			if err := w.addProps(n, body.BaseProps); err != nil {
				return nil, err
			}
			return n, nil
		}
		w := walker{ts: ts, path: map[int]bool{}}
		return w.node(*t.Body)
	}
	return nil, fmt.Errorf("no resource type %s", name)
}

type walker struct {
	ts   []typ
	path map[int]bool // types being expanded: a cycle ends in "anything"
}

func (w *walker) node(r ref) (*deploycheck.Node, error) {
	i, err := index(r)
	if err != nil {
		return nil, err
	}
	if w.path[i] {
		return &deploycheck.Node{Any: true}, nil
	}
	w.path[i] = true
	defer delete(w.path, i)
	t := w.ts[i]
	switch t.Kind {
	case "ObjectType":
		n := &deploycheck.Node{Props: map[string]*deploycheck.Node{}}
		if err := w.addProps(n, t.Properties); err != nil {
			return nil, err
		}
		if t.Additional != nil {
			if n.Extra, err = w.node(*t.Additional); err != nil {
				return nil, err
			}
		}
		return n, nil
	case "DiscriminatedObjectType":
		// Below the root: accept the properties of every variant.
		n := &deploycheck.Node{Props: map[string]*deploycheck.Node{}}
		if err := w.addProps(n, t.BaseProps); err != nil {
			return nil, err
		}
		var els map[string]ref
		if err := json.Unmarshal(t.Elements, &els); err != nil {
			return nil, err
		}
		for _, el := range els {
			v, err := w.node(el)
			if err != nil {
				return nil, err
			}
			for k, p := range v.Props {
				n.Props[k] = p
			}
		}
		return n, nil
	case "ArrayType":
		item, err := w.node(*t.ItemType)
		if err != nil {
			return nil, err
		}
		return &deploycheck.Node{Items: item}, nil
	case "UnionType":
		var els []ref
		if err := json.Unmarshal(t.Elements, &els); err != nil {
			return nil, err
		}
		var enum []string
		closed := true
		for _, el := range els {
			j, err := index(el)
			if err != nil {
				return nil, err
			}
			if w.ts[j].Kind != "StringLiteralType" {
				closed = false
				break
			}
			var v string
			json.Unmarshal(w.ts[j].Value, &v)
			enum = append(enum, v)
		}
		if closed {
			sort.Strings(enum)
			return &deploycheck.Node{Enum: enum}, nil
		}
		return &deploycheck.Node{}, nil // a scalar or a mix: not checked further
	case "StringLiteralType":
		var v string
		json.Unmarshal(t.Value, &v)
		return &deploycheck.Node{Enum: []string{v}}, nil
	case "AnyType":
		return &deploycheck.Node{Any: true}, nil
	}
	return &deploycheck.Node{}, nil // string, integer, boolean
}

func (w *walker) addProps(n *deploycheck.Node, props map[string]property) error {
	for name, p := range props {
		if p.Flags&flagReadOnly != 0 {
			continue
		}
		c, err := w.node(p.Type)
		if err != nil {
			return err
		}
		n.Props[name] = c
	}
	return nil
}
