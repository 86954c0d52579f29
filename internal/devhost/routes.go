package devhost

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// segKind orders segment kinds by precedence, as ASP.NET Core routing does:
// a literal beats a constrained parameter, which beats a parameter, which
// beats an optional one, which beats a catch-all.
type segKind int

const (
	segLiteral segKind = iota + 1
	segConstrained
	segParam
	segOptional
	segCatchAll
)

type segment struct {
	kind        segKind
	literal     string // segLiteral: compared case-insensitively
	name        string // parameter name
	constraints []string
}

// routeTemplate is a parsed HTTP trigger route, e.g. "runs/{id:int}/log" or
// "{*path}".
type routeTemplate struct {
	text     string
	segments []segment
}

var paramSegment = regexp.MustCompile(`^\{(\*{1,2})?([A-Za-z_][A-Za-z0-9_]*)((?::[^{}?=]+)*)(\?)?(?:=[^{}]*)?\}$`)

// parseRoute parses a route template (without the route prefix).
func parseRoute(text string) (*routeTemplate, error) {
	t := &routeTemplate{text: text}
	text = strings.Trim(text, "/")
	if text == "" {
		return t, nil
	}
	parts := strings.Split(text, "/")
	names := map[string]bool{}
	for i, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("route %q has an empty segment", t.text)
		}
		if !strings.ContainsAny(p, "{}") {
			t.segments = append(t.segments, segment{kind: segLiteral, literal: p})
			continue
		}
		m := paramSegment.FindStringSubmatch(p)
		if m == nil {
			return nil, fmt.Errorf("route %q: segment %q is not supported: use a literal, {name}, {name?}, {name:constraint} or a final {*name}", t.text, p)
		}
		s := segment{name: m[2]}
		if names[strings.ToLower(s.name)] {
			return nil, fmt.Errorf("route %q uses parameter %q twice", t.text, s.name)
		}
		names[strings.ToLower(s.name)] = true
		if m[3] != "" {
			s.constraints = strings.Split(strings.TrimPrefix(m[3], ":"), ":")
			for _, c := range s.constraints {
				if _, ok := constraintCheck(c); !ok {
					return nil, fmt.Errorf("route %q: constraint %q is not supported (int, long, bool, guid, alpha, min(n), max(n), minlength(n), maxlength(n), length(n))", t.text, c)
				}
			}
		}
		switch {
		case m[1] != "":
			if i != len(parts)-1 {
				return nil, fmt.Errorf("route %q: the catch-all {%s%s} must be the last segment", t.text, m[1], s.name)
			}
			s.kind = segCatchAll
		case m[4] == "?":
			if i != len(parts)-1 {
				return nil, fmt.Errorf("route %q: the optional parameter {%s?} must be the last segment", t.text, s.name)
			}
			s.kind = segOptional
		case len(s.constraints) > 0:
			s.kind = segConstrained
		default:
			s.kind = segParam
		}
		t.segments = append(t.segments, s)
	}
	return t, nil
}

// match matches a request path (after the route prefix, without leading
// slash) and returns the route values.
func (t *routeTemplate) match(path string) (map[string]string, bool) {
	path = strings.Trim(path, "/")
	var parts []string
	if path != "" {
		parts = strings.Split(path, "/")
	}
	values := map[string]string{}
	for i, s := range t.segments {
		if s.kind == segCatchAll {
			if i < len(parts) {
				values[s.name] = strings.Join(parts[i:], "/")
			} else {
				values[s.name] = ""
			}
			return values, true
		}
		if i >= len(parts) {
			if s.kind == segOptional {
				return values, true
			}
			return nil, false
		}
		p := parts[i]
		switch s.kind {
		case segLiteral:
			if !strings.EqualFold(p, s.literal) {
				return nil, false
			}
		default:
			for _, c := range s.constraints {
				check, _ := constraintCheck(c)
				if !check(p) {
					return nil, false
				}
			}
			values[s.name] = p
		}
	}
	if len(parts) != len(t.segments) {
		return nil, false
	}
	return values, true
}

// compareRoutes orders templates for matching: the more specific first,
// segment by segment; then the longer; then by text for determinism.
func compareRoutes(a, b *routeTemplate) int {
	for i := 0; i < len(a.segments) && i < len(b.segments); i++ {
		if d := int(a.segments[i].kind) - int(b.segments[i].kind); d != 0 {
			return d
		}
	}
	if d := len(b.segments) - len(a.segments); d != 0 {
		return d
	}
	return strings.Compare(strings.ToLower(a.text), strings.ToLower(b.text))
}

var (
	guidPattern  = regexp.MustCompile(`^(?i)\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?$`)
	alphaPattern = regexp.MustCompile(`^[A-Za-z]+$`)
	argPattern   = regexp.MustCompile(`^([a-z]+)\((-?\d+)\)$`)
)

// constraintCheck returns the check of an inline route constraint.
func constraintCheck(c string) (func(string) bool, bool) {
	switch strings.ToLower(c) {
	case "int":
		return func(s string) bool { _, err := strconv.ParseInt(s, 10, 32); return err == nil }, true
	case "long":
		return func(s string) bool { _, err := strconv.ParseInt(s, 10, 64); return err == nil }, true
	case "bool":
		return func(s string) bool { _, err := strconv.ParseBool(s); return err == nil }, true
	case "guid":
		return guidPattern.MatchString, true
	case "alpha":
		return alphaPattern.MatchString, true
	}
	m := argPattern.FindStringSubmatch(strings.ToLower(c))
	if m == nil {
		return nil, false
	}
	n, _ := strconv.Atoi(m[2])
	switch m[1] {
	case "min":
		return func(s string) bool { v, err := strconv.Atoi(s); return err == nil && v >= n }, true
	case "max":
		return func(s string) bool { v, err := strconv.Atoi(s); return err == nil && v <= n }, true
	case "minlength":
		return func(s string) bool { return len(s) >= n }, true
	case "maxlength":
		return func(s string) bool { return len(s) <= n }, true
	case "length":
		return func(s string) bool { return len(s) == n }, true
	}
	return nil, false
}

// httpRoute is one HTTP function in the route table.
type httpRoute struct {
	fn       *Function
	template *routeTemplate
}

// routeTable matches requests to HTTP functions.
type routeTable struct {
	prefix string // e.g. "api"; "" for none
	routes []httpRoute
}

func newRouteTable(prefix string, fns []*Function) (*routeTable, error) {
	rt := &routeTable{prefix: strings.Trim(prefix, "/")}
	for _, fn := range fns {
		if fn.Kind != KindHTTP {
			continue
		}
		t, err := parseRoute(fn.Route)
		if err != nil {
			return nil, fmt.Errorf("function %s: %v", fn.Name, err)
		}
		rt.routes = append(rt.routes, httpRoute{fn: fn, template: t})
	}
	slices.SortStableFunc(rt.routes, func(a, b httpRoute) int { return compareRoutes(a.template, b.template) })
	return rt, nil
}

// match finds the function for a request path and method. ok is false when
// the path is outside the route prefix or no route matches.
func (rt *routeTable) match(path, method string) (*Function, map[string]string, bool) {
	rest := strings.TrimPrefix(path, "/")
	if rt.prefix != "" {
		switch {
		case strings.EqualFold(rest, rt.prefix):
			rest = ""
		case len(rest) > len(rt.prefix) && strings.EqualFold(rest[:len(rt.prefix)], rt.prefix) && rest[len(rt.prefix)] == '/':
			rest = rest[len(rt.prefix)+1:]
		default:
			return nil, nil, false
		}
	}
	for _, r := range rt.routes {
		if len(r.fn.Methods) > 0 && !slices.Contains(r.fn.Methods, method) {
			continue
		}
		if values, ok := r.template.match(rest); ok {
			return r.fn, values, true
		}
	}
	return nil, nil, false
}
