package api_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
)

type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Info    struct {
		Version string `json:"version"`
	} `json:"info"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas    map[string]schemaDoc       `json:"schemas"`
		Parameters map[string]json.RawMessage `json:"parameters"`
		Responses  map[string]json.RawMessage `json:"responses"`
	} `json:"components"`
}

type schemaDoc struct {
	Properties map[string]json.RawMessage `json:"properties"`
	Required   []string                   `json:"required"`
}

type operationDoc struct {
	Role       string                     `json:"x-entrasync-role"`
	Summary    string                     `json:"summary"`
	Parameters []map[string]any           `json:"parameters"`
	Responses  map[string]json.RawMessage `json:"responses"`
}

// TestOpenAPIMatchesRoutes walks the route table and the served document:
// the same paths, methods and roles, each documented, each path parameter
// declared, every $ref resolvable.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	res := e.call("GET", "/api/openapi.json", supportKey, "").want(http.StatusOK)
	var doc openAPIDoc
	res.decode(&doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.0") || doc.Info.Version != version {
		t.Errorf("openapi %q, version %q", doc.OpenAPI, doc.Info.Version)
	}

	var fromRoutes, fromDoc []string
	for _, rt := range e.api.Routes() {
		fromRoutes = append(fromRoutes, rt.Method+" "+rt.Pattern+" "+rt.Role)
	}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			var op operationDoc
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			fromDoc = append(fromDoc, strings.ToUpper(method)+" "+path+" "+op.Role)
			if op.Summary == "" || len(op.Responses) == 0 {
				t.Errorf("%s %s lacks a summary or responses", method, path)
			}
			if op.Role != "anonymous" && (op.Responses["401"] == nil || op.Responses["403"] == nil) {
				t.Errorf("%s %s does not document 401 and 403", method, path)
			}
			declared := map[string]bool{}
			for _, p := range op.Parameters {
				if ref, ok := p["$ref"].(string); ok {
					var param struct{ Name, In string }
					json.Unmarshal(doc.Components.Parameters[strings.TrimPrefix(ref, "#/components/parameters/")], &param)
					p = map[string]any{"name": param.Name, "in": param.In}
				}
				if p["in"] == "path" {
					declared[p["name"].(string)] = true
				}
			}
			for _, seg := range strings.Split(path, "/") {
				if strings.HasPrefix(seg, "{") && !declared[strings.Trim(seg, "{}")] {
					t.Errorf("%s %s does not declare the path parameter %s", method, path, seg)
				}
			}
		}
	}
	sort.Strings(fromRoutes)
	sort.Strings(fromDoc)
	if diff := cmp.Diff(fromRoutes, fromDoc); diff != "" {
		t.Errorf("route table vs OpenAPI document, \"METHOD path role\" (-routes +document):\n%s", diff)
	}

	// Every $ref points at something that exists.
	var whole map[string]any
	json.Unmarshal(res.body, &whole)
	walkRefs(whole, func(ref string) {
		parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
		var cur any = whole
		for _, p := range parts {
			m, ok := cur.(map[string]any)
			if !ok || m[p] == nil {
				t.Errorf("$ref %s does not resolve", ref)
				return
			}
			cur = m[p]
		}
	})
}

func walkRefs(v any, f func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				f(s)
			}
			walkRefs(x, f)
		}
	case []any:
		for _, x := range v {
			walkRefs(x, f)
		}
	}
}

// TestOpenAPISchemasMatchTypes compares the documented properties of the
// main schemas with the JSON the Go types produce.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	e := newEnv(t)
	var doc openAPIDoc
	e.call("GET", "/api/openapi.json", adminKey, "").want(http.StatusOK).decode(&doc)
	for name, typ := range map[string]reflect.Type{
		"Run":               reflect.TypeOf(dirsync.Run{}),
		"Counters":          reflect.TypeOf(dirsync.Counters{}),
		"User":              reflect.TypeOf(dirsync.User{}),
		"Settings":          reflect.TypeOf(dirsync.Settings{}),
		"Schedule":          reflect.TypeOf(dirsync.Schedule{}),
		"FieldMapping":      reflect.TypeOf(dirsync.FieldMapping{}),
		"DeletionThreshold": reflect.TypeOf(dirsync.DeletionThreshold{}),
		"AuditEntry":        reflect.TypeOf(dirsync.AuditEntry{}),
		"PendingDeletion":   reflect.TypeOf(dirsync.PendingDeletion{}),
		"Group":             reflect.TypeOf(dirsync.Group{}),
		"RuleCheck":         reflect.TypeOf(dirsync.RulePreview{}),
		"RuleProblem":       reflect.TypeOf(dirsync.RuleProblem{}),
	} {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s is missing", name)
			continue
		}
		var documented, fromGo, required []string
		for p := range s.Properties {
			documented = append(documented, p)
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag == "-" || !f.IsExported() {
				continue
			}
			fromGo = append(fromGo, tag)
			if name == "Settings" && !strings.Contains(opts, "omitempty") {
				required = append(required, tag)
			}
		}
		sort.Strings(documented)
		sort.Strings(fromGo)
		if diff := cmp.Diff(fromGo, documented); diff != "" {
			t.Errorf("schema %s properties (-Go type +document):\n%s", name, diff)
		}
		if name == "Settings" {
			sort.Strings(required)
			got := append([]string{}, s.Required...)
			sort.Strings(got)
			if diff := cmp.Diff(required, got); diff != "" {
				t.Errorf("Settings required fields (-what PUT requires +document):\n%s", diff)
			}
		}
	}
	// The status document adds fields to dirsync.Status.
	status := doc.Components.Schemas["Status"]
	for i := range reflect.TypeOf(dirsync.Status{}).NumField() {
		tag, _, _ := strings.Cut(reflect.TypeOf(dirsync.Status{}).Field(i).Tag.Get("json"), ",")
		if _, ok := status.Properties[tag]; !ok && tag != "-" {
			t.Errorf("Status schema lacks %q", tag)
		}
	}
}
