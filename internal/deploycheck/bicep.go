package deploycheck

import (
	"fmt"
	"strings"
)

// File is a parsed Bicep file: its declarations, in order.
type File struct {
	Name        string
	TargetScope string
	Params      map[string]*Param
	Vars        map[string]Value
	Resources   []*Resource
	Outputs     map[string]Value
}

// Param is a parameter declaration.
type Param struct {
	Name, Type string
	Default    Value // nil: none
	Decorators []string
	Line       int
}

// Resource is a resource declaration.
type Resource struct {
	Symbol     string
	Type       string // "Microsoft.Web/sites"
	APIVersion string // "2024-11-01"
	Existing   bool
	// Condition is the text of `if (...)`, Loop of `for ... in ...:`; "" if none.
	Condition, Loop string
	Body            *Object
	Line            int
}

// Value is an object literal, an array literal or an expression.
type Value interface{ isValue() }

// Object is an object literal; Keys keeps the order of its properties.
type Object struct {
	Keys   []string
	Fields map[string]Value
	Line   int
}

// Array is an array literal.
type Array struct {
	Items []Value
	Line  int
}

// Expr is any other value, kept as its source text. A plain string literal
// (no interpolation) also has Str set.
type Expr struct {
	Text string
	Str  *string
	Line int
}

func (*Object) isValue() {}
func (*Array) isValue()  {}
func (*Expr) isValue()   {}

// Get returns the value at a dotted path of object keys, or nil.
func (o *Object) Get(path string) Value {
	var v Value = o
	for _, k := range strings.Split(path, ".") {
		obj, ok := v.(*Object)
		if !ok || obj == nil {
			return nil
		}
		if v, ok = obj.Fields[k]; !ok {
			return nil
		}
	}
	return v
}

// Text is the source text of v if it is an expression, "" otherwise.
func Text(v Value) string {
	if e, ok := v.(*Expr); ok {
		return e.Text
	}
	return ""
}

// Literal is the string v holds if it is a plain string literal.
func Literal(v Value) (string, bool) {
	if e, ok := v.(*Expr); ok && e.Str != nil {
		return *e.Str, true
	}
	return "", false
}

// Resource returns the resource declared with symbol sym, or nil.
func (f *File) Resource(sym string) *Resource {
	for _, r := range f.Resources {
		if r.Symbol == sym {
			return r
		}
	}
	return nil
}

// ResourcesOf returns the resources of a type ("Microsoft.Web/sites").
func (f *File) ResourcesOf(typ string) []*Resource {
	var out []*Resource
	for _, r := range f.Resources {
		if strings.EqualFold(r.Type, typ) {
			out = append(out, r)
		}
	}
	return out
}

// Parse reads the subset of Bicep that infra/ is written in: targetScope,
// param, var, resource (top level, `existing`, `if (...)`, `[for ...: {...}]`)
// and output declarations, with decorators and comments. Values are object
// and array literals, recursively, and anything else is kept as expression
// text. What it does not understand is an error naming the line, so a
// construct the checks cannot see is never skipped silently.
func Parse(name, src string) (*File, error) {
	p := &bicepParser{name: name, src: src, toks: lex(src)}
	f := &File{Name: name, Params: map[string]*Param{}, Vars: map[string]Value{}, Outputs: map[string]Value{}}
	var decorators []string
	for {
		p.skipNewlines()
		t := p.peek()
		if t.kind == tokEOF {
			return f, p.err
		}
		if p.err != nil {
			return nil, p.err
		}
		switch {
		case t.kind == tokPunct && t.text == "@":
			p.next()
			decorators = append(decorators, p.exprText())
			continue
		case t.kind == tokIdent && t.text == "targetScope":
			p.next()
			p.expect("=")
			v := p.value()
			f.TargetScope, _ = Literal(v)
		case t.kind == tokIdent && t.text == "param":
			p.next()
			prm := &Param{Name: p.ident(), Line: t.line, Decorators: decorators}
			prm.Type = p.ident()
			if p.peek().text == "=" {
				p.next()
				prm.Default = p.value()
			}
			f.Params[prm.Name] = prm
		case t.kind == tokIdent && t.text == "var":
			p.next()
			n := p.ident()
			p.expect("=")
			f.Vars[n] = p.value()
		case t.kind == tokIdent && t.text == "output":
			p.next()
			n := p.ident()
			p.ident() // type
			p.expect("=")
			f.Outputs[n] = p.value()
		case t.kind == tokIdent && t.text == "resource":
			p.next()
			f.Resources = append(f.Resources, p.resource(t.line))
		default:
			p.fail(t, "unexpected %q at the top level", t.text)
		}
		decorators = nil
		if p.err != nil {
			return nil, p.err
		}
	}
}

func (p *bicepParser) resource(line int) *Resource {
	r := &Resource{Symbol: p.ident(), Line: line}
	t := p.next()
	if t.kind != tokString || t.str == nil {
		p.fail(t, "resource %s: want its type as a plain string", r.Symbol)
		return r
	}
	var ok bool
	r.Type, r.APIVersion, ok = strings.Cut(*t.str, "@")
	if !ok {
		p.fail(t, "resource %s: type %q has no @<api version>", r.Symbol, *t.str)
	}
	if p.peek().text == "existing" {
		p.next()
		r.Existing = true
	}
	p.expect("=")
	switch p.peek().text {
	case "if":
		p.next()
		r.Condition = p.balanced("(", ")")
	case "[":
		p.next()
		if p.ident() != "for" {
			p.fail(p.peek(), "resource %s: want [for ...: {...}]", r.Symbol)
			return r
		}
		from := p.peek().off
		for p.err == nil && p.peek().text != ":" && p.peek().kind != tokEOF {
			p.next()
		}
		r.Loop = collapse(p.src[from:p.peek().off])
		p.expect(":")
		defer p.expect("]")
	}
	p.skipNewlines()
	if p.peek().text != "{" {
		p.fail(p.peek(), "resource %s: want its body {...}", r.Symbol)
		return r
	}
	p.next()
	r.Body = p.object(p.peek().line)
	return r
}

// value parses one value: an object, an array, or an expression running to
// the end of the line (or to a comma or closing bracket) outside brackets.
func (p *bicepParser) value() Value {
	t := p.peek()
	switch t.text {
	case "{":
		if t.kind == tokPunct {
			p.next()
			return p.object(t.line)
		}
	case "[":
		if t.kind == tokPunct && !p.isForLoop() {
			p.next()
			return p.array(t.line)
		}
	}
	if t.kind == tokString && p.endsAfter(1) {
		p.next()
		return &Expr{Text: t.text, Str: t.str, Line: t.line}
	}
	return &Expr{Text: p.exprText(), Line: t.line}
}

func (p *bicepParser) isForLoop() bool {
	return p.pos+1 < len(p.toks) && p.toks[p.pos+1].text == "for"
}

// endsAfter reports whether the value ends n tokens from here.
func (p *bicepParser) endsAfter(n int) bool {
	if p.pos+n >= len(p.toks) {
		return true
	}
	t := p.toks[p.pos+n]
	return t.kind == tokNewline || t.kind == tokEOF || t.text == "," || t.text == "}" || t.text == "]"
}

func (p *bicepParser) object(line int) *Object {
	o := &Object{Fields: map[string]Value{}, Line: line}
	for p.err == nil {
		p.skipSeparators()
		t := p.next()
		switch {
		case t.text == "}" && t.kind == tokPunct:
			return o
		case t.kind == tokIdent || t.kind == tokString:
			key := t.text
			if t.kind == tokString {
				key = strings.Trim(t.text, "'") // '${id}' keys stay as written, unquoted
			}
			p.expect(":")
			if _, dup := o.Fields[key]; dup {
				p.fail(t, "property %s is set twice", key)
			}
			o.Keys = append(o.Keys, key)
			o.Fields[key] = p.value()
		default:
			p.fail(t, "want a property name or }, got %q", t.text)
		}
	}
	return o
}

func (p *bicepParser) array(line int) *Array {
	a := &Array{Line: line}
	for p.err == nil {
		p.skipSeparators()
		if t := p.peek(); t.text == "]" && t.kind == tokPunct {
			p.next()
			return a
		}
		if p.peek().kind == tokEOF {
			p.fail(p.peek(), "unclosed array")
			return a
		}
		a.Items = append(a.Items, p.value())
	}
	return a
}

// exprText collects an expression's tokens up to the end of the value and
// returns its source text, whitespace collapsed.
func (p *bicepParser) exprText() string {
	depth := 0
	first, last := -1, -1
	for p.err == nil {
		t := p.peek()
		if t.kind == tokEOF {
			break
		}
		if depth == 0 && (t.kind == tokNewline || t.text == "," || (t.kind == tokPunct && (t.text == "}" || t.text == "]" || t.text == ")"))) {
			break
		}
		p.next()
		if t.kind == tokPunct {
			switch t.text {
			case "(", "[", "{":
				depth++
			case ")", "]", "}":
				depth--
			}
		}
		if t.kind == tokNewline {
			continue
		}
		if first < 0 {
			first = t.off
		}
		last = t.end
	}
	if first < 0 {
		return ""
	}
	return collapse(p.src[first:last])
}

// collapse drops comments and turns each run of white space into one space.
func collapse(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, "//"); i >= 0 && !strings.Contains(line[:i], "'") {
			line = line[:i]
		}
		b.WriteString(line + " ")
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// balanced returns the source text between open and its matching close.
func (p *bicepParser) balanced(open, close string) string {
	o := p.next()
	if o.text != open {
		p.fail(o, "want %q, got %q", open, o.text)
		return ""
	}
	depth := 1
	for p.err == nil {
		t := p.next()
		switch {
		case t.kind == tokEOF:
			p.fail(o, "unclosed %s", open)
		case t.text == open:
			depth++
		case t.text == close:
			if depth--; depth == 0 {
				return collapse(p.src[o.end:t.off])
			}
		}
	}
	return ""
}

type bicepParser struct {
	name string
	src  string
	toks []tok
	pos  int
	err  error
}

func (p *bicepParser) peek() tok { return p.toks[p.pos] }

func (p *bicepParser) next() tok {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *bicepParser) skipNewlines() {
	for p.peek().kind == tokNewline {
		p.next()
	}
}

func (p *bicepParser) skipSeparators() {
	for p.peek().kind == tokNewline || p.peek().text == "," {
		p.next()
	}
}

func (p *bicepParser) ident() string {
	t := p.next()
	if t.kind != tokIdent {
		p.fail(t, "want a name, got %q", t.text)
	}
	return t.text
}

func (p *bicepParser) expect(s string) {
	if t := p.next(); t.text != s {
		p.fail(t, "want %q, got %q", s, t.text)
	}
}

func (p *bicepParser) fail(t tok, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%s:%d: %s", p.name, t.line, fmt.Sprintf(format, args...))
	}
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokNewline
	tokIdent
	tokString
	tokNumber
	tokPunct
)

type tok struct {
	kind     tokKind
	text     string  // source text (a string with its quotes)
	str      *string // a string without interpolation: its value
	line     int
	off, end int // byte offsets in the source
}

// lex splits Bicep source into tokens. Comments are dropped; a newline
// inside brackets ( ) is dropped too, since there it separates nothing.
func lex(src string) []tok {
	var toks []tok
	line, parens := 1, 0
	for i := 0; i < len(src); {
		start, n := i, len(toks)
		c := src[i]
		switch {
		case c == '\n':
			if parens == 0 {
				toks = append(toks, tok{kind: tokNewline, text: "\n", line: line})
			}
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				end = len(src) - i - 2
			}
			line += strings.Count(src[i:i+2+end], "\n")
			i += end + 4
		case strings.HasPrefix(src[i:], "'''"):
			end := strings.Index(src[i+3:], "'''")
			if end < 0 {
				end = len(src) - i - 3
			}
			text := src[i : i+6+end]
			v := src[i+3 : i+3+end]
			toks = append(toks, tok{kind: tokString, text: text, str: &v, line: line})
			line += strings.Count(text, "\n")
			i += 6 + end
		case c == '\'':
			j, depth := i+1, 0
			for j < len(src) {
				if src[j] == '\\' {
					j += 2
					continue
				}
				if depth == 0 && src[j] == '\'' {
					break
				}
				if strings.HasPrefix(src[j:], "${") {
					depth++
					j += 2
					continue
				}
				if depth > 0 && src[j] == '}' {
					depth--
				}
				j++
			}
			text := src[i:min(j+1, len(src))]
			t := tok{kind: tokString, text: text, line: line}
			if !strings.Contains(text, "${") {
				v := strings.NewReplacer(`\'`, `'`, `\\`, `\`, `\n`, "\n").Replace(strings.Trim(text, "'"))
				t.str = &v
			}
			toks = append(toks, t)
			i = j + 1
		case isIdentStart(c):
			j := i
			for j < len(src) && (isIdentStart(src[j]) || src[j] >= '0' && src[j] <= '9') {
				j++
			}
			toks = append(toks, tok{kind: tokIdent, text: src[i:j], line: line})
			i = j
		case c >= '0' && c <= '9':
			j := i
			for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '.') {
				j++
			}
			toks = append(toks, tok{kind: tokNumber, text: src[i:j], line: line})
			i = j
		default:
			w := 1
			for _, op := range []string{"==", "!=", "<=", ">=", "&&", "||", "??", ".?", "=~", "!~"} {
				if strings.HasPrefix(src[i:], op) {
					w = 2
					break
				}
			}
			text := src[i : i+w]
			switch text {
			case "(":
				parens++
			case ")":
				parens--
			}
			toks = append(toks, tok{kind: tokPunct, text: text, line: line})
			i += len(text)
		}
		if len(toks) > n {
			toks[n].off, toks[n].end = start, i
		}
	}
	return append(toks, tok{kind: tokEOF, line: line, off: len(src), end: len(src)})
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
