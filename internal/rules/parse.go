package rules

import (
	"regexp"
	"regexp/syntax"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxLength is Entra's limit on a rule's length, in characters.
const MaxLength = 3072

// Rule is a parsed membership rule. It is immutable and safe for concurrent use.
type Rule struct {
	root node
}

// Parse parses a dynamic membership rule for users.
//
// Every error it returns is an *Error giving the position of the problem and
// what was expected there. When the rule is valid in Entra but uses something
// entrasync does not evaluate (device rules, memberOf, .NET-only regular
// expression syntax), the *Error has NotSupported set, its message starts with
// "not supported by entrasync:", and errors.Is(err, ErrNotSupported) is true.
func Parse(rule string) (*Rule, error) {
	if n := utf8.RuneCountInString(rule); n > MaxLength {
		return nil, newError(rule, runeOffset(rule, MaxLength), "", "the rule is %d characters long; Entra allows at most 3,072", n)
	}
	return parse(rule)
}

// parse is Parse without the length limit: String() of a rule near the
// limit can be longer than the rule as written (quotes, hyphens,
// parentheses), and the fuzz test checks that it still means the same.
func parse(rule string) (*Rule, error) {
	tokens, err := lex(rule)
	if err != nil {
		return nil, err
	}
	p := &parser{rule: rule, tokens: tokens}
	if p.peek().kind == tokEOF {
		return nil, p.errorf(p.peek(), "a condition such as user.department -eq \"Sales\"", "the rule is empty; expected a condition such as user.department -eq \"Sales\"")
	}
	var root node
	if p.peekWord("direct") {
		root, err = p.parseDirectReports()
	} else {
		root, err = p.parseOr()
	}
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		if t.kind == tokRParen {
			return nil, p.errorf(t, "-and or -or", "this closing parenthesis has no opening one")
		}
		// Entra calls this a "Query compilation error": two conditions with
		// nothing joining them.
		return nil, p.errorf(t, "-and or -or", "expected -and or -or to join another condition, found %s", describe(t))
	}
	return &Rule{root: root}, nil
}

// runeOffset is the byte offset of the n-th (0-based) character of s.
func runeOffset(s string, n int) int {
	for i := range s {
		if n == 0 {
			return i
		}
		n--
	}
	return len(s)
}

// itemScope says what the conditions inside -any/-all test.
type itemScope int

const (
	scopeUser         itemScope = iota // outside -any/-all: user.<property>
	scopeStringItem                    // inside -any/-all over a string collection: _
	scopeAssignedPlan                  // inside user.assignedPlans -any/-all: assignedPlan.<field>
)

type parser struct {
	rule   string
	tokens []token
	next   int
	scope  itemScope
}

func (p *parser) peek() token { return p.tokens[p.next] }

func (p *parser) advance() token {
	t := p.tokens[p.next]
	if t.kind != tokEOF {
		p.next++
	}
	return t
}

func (p *parser) errorf(t token, expected, format string, args ...any) *Error {
	return newError(p.rule, t.pos, expected, format, args...)
}

// describe names a token in an error message.
func describe(t token) string {
	if t.kind == tokEOF {
		return t.raw
	}
	return strconv.Quote(t.raw)
}

// keyword returns a word's operator name: lower case, without the optional
// leading hyphen. The docs' own examples write the hyphen as an en dash
// (user.mail –ne null), so en and em dashes count as hyphens.
func keyword(t token) (name string, hyphen bool) {
	if t.kind != tokWord || t.escaped {
		return "", false
	}
	w := t.text
	for _, dash := range []string{"-", "\u2013", "\u2014"} {
		if strings.HasPrefix(w, dash) {
			return strings.ToLower(w[len(dash):]), true
		}
	}
	return strings.ToLower(w), false
}

func (p *parser) peekWord(name string) bool {
	k, _ := keyword(p.peek())
	return k == name
}

func (p *parser) parseOr() (node, error) { return p.parseLogical(false) }

// parseLogical parses terms joined by -or (and == false) or -and (and == true).
// -not binds tighter than -and, and -and tighter than -or, as documented.
func (p *parser) parseLogical(and bool) (node, error) {
	parseTerm, joiner := func() (node, error) { return p.parseLogical(true) }, "or"
	if and {
		parseTerm, joiner = p.parseNot, "and"
	}
	first, err := parseTerm()
	if err != nil {
		return nil, err
	}
	terms := []node{first}
	for p.peekWord(joiner) {
		p.advance()
		term, err := parseTerm()
		if err != nil {
			return nil, err
		}
		terms = append(terms, term)
	}
	if len(terms) == 1 {
		return first, nil
	}
	return logical{and: and, terms: terms}, nil
}

func (p *parser) parseNot() (node, error) {
	if p.peekWord("not") {
		p.advance()
		term, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return not{term: term}, nil
	}
	if p.peek().kind == tokLParen {
		p.advance()
		inner, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if t := p.advance(); t.kind != tokRParen {
			return nil, p.errorf(t, "a closing parenthesis", "expected -and, -or or a closing parenthesis, found %s", describe(t))
		}
		return inner, nil
	}
	return p.parseCondition()
}

// parseDirectReports parses Direct Reports for "<manager object id>", which
// Entra allows only as a whole rule.
var guidPattern = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

func (p *parser) parseDirectReports() (node, error) {
	p.advance()
	for _, word := range []string{"reports", "for"} {
		if t := p.advance(); !strings.EqualFold(t.text, word) || t.kind != tokWord {
			return nil, p.errorf(t, `Direct Reports for "<manager object id>"`, "expected Direct Reports for \"<manager object id>\", found %s", describe(t))
		}
	}
	t := p.advance()
	if t.kind != tokString || !guidPattern.MatchString(t.text) {
		return nil, p.errorf(t, "the manager's object id in quotes", "expected the manager's object id in quotes, such as \"aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb\", found %s", describe(t))
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errorf(t, "the end of the rule", "Direct Reports for can't be combined with other conditions; Entra allows it only as the whole rule")
	}
	return directReports{managerID: strings.ToLower(t.text)}, nil
}

// subjectType is the type a comparison's subject is compared as.
func (s subject) typ() propertyType {
	if s.item || s.field != "" {
		return stringProperty
	}
	return s.prop.typ
}

// parseCondition parses <subject> <operator> <value> or <collection> -any/-all (...).
func (p *parser) parseCondition() (node, error) {
	t := p.advance()
	subj, err := p.parseSubject(t)
	if err != nil {
		return nil, err
	}
	opToken := p.advance()
	name, hyphen := keyword(opToken)
	if name == "any" || name == "all" {
		return p.parseQuantifier(t, subj, name == "all")
	}
	op, ok := comparisonOperators[name]
	if !ok {
		return nil, p.operatorError(opToken, subj, name, hyphen)
	}
	if err := p.checkOperator(opToken, subj, op); err != nil {
		return nil, err
	}
	value, err := p.parseValue(subj, op)
	if err != nil {
		return nil, err
	}
	return comparison{subject: subj, op: op, value: value}, nil
}

var comparisonOperators = map[string]operator{
	"eq": opEq, "ne": opNe,
	"startswith": opStartsWith, "notstartswith": opNotStartsWith,
	"endswith": opEndsWith, "notendswith": opNotEndsWith,
	"contains": opContains, "notcontains": opNotContains,
	"match": opMatch, "notmatch": opNotMatch,
	"in": opIn, "notin": opNotIn,
	"le": opLe, "ge": opGe,
}

const operatorList = "-eq, -ne, -startsWith, -notStartsWith, -endsWith, -notEndsWith, -contains, -notContains, -match, -notMatch, -in, -notIn (and -le, -ge for dates)"

func (p *parser) operatorError(t token, subj subject, name string, hyphen bool) error {
	const expected = "an operator such as -eq"
	switch {
	case name == "not":
		return p.errorf(t, expected, "-not negates a whole condition and can't compare a value: write %s -ne ... (or -notContains, -notIn, ...), or put -not before the condition", subjectText(subj))
	case name == "and" || name == "or":
		return p.errorf(t, expected, "expected an operator such as -eq after %s, found %s", subjectText(subj), describe(t))
	case hyphen:
		return p.errorf(t, expected, "%s is not an operator of Entra's membership rules; use one of %s", describe(t), operatorList)
	}
	return p.errorf(t, expected, "expected an operator such as -eq, found %s", describe(t))
}

// parseSubject parses what a comparison reads, in the parser's scope.
func (p *parser) parseSubject(t token) (subject, error) {
	const expected = "a property such as user.department"
	name, _ := keyword(t)
	_, isOperator := comparisonOperators[name]
	if t.kind != tokWord || t.escaped || isOperator || name == "and" || name == "or" || name == "any" || name == "all" {
		return subject{}, p.errorf(t, expected, "expected a property such as user.department, found %s", describe(t))
	}
	lower := strings.ToLower(t.text)
	switch {
	case lower == "direct":
		return subject{}, p.errorf(t, "", "Direct Reports for can't be combined with other conditions; Entra allows it only as the whole rule")
	case strings.HasPrefix(lower, "device."):
		return subject{}, notSupported(p.rule, t.pos, "device rules (%s); entrasync syncs users, so a rule reads user.<property>", t.text)
	case lower == "_" && p.scope == scopeAssignedPlan:
		return subject{}, p.errorf(t, "assignedPlan.<property>", "inside user.assignedPlans -any or -all a condition reads assignedPlan.capabilityStatus, assignedPlan.service or assignedPlan.servicePlanId, not _")
	case lower == "_":
		if p.scope != scopeStringItem {
			return subject{}, p.errorf(t, expected, "_ stands for each value of a multi-value property and is only valid inside -any or -all, as in user.proxyAddresses -any (_ -startsWith \"smtp:\")")
		}
		return subject{item: true}, nil
	case strings.HasPrefix(lower, "assignedplan."):
		if p.scope != scopeAssignedPlan {
			return subject{}, p.errorf(t, expected, "%s is only valid inside user.assignedPlans -any (...) or -all (...)", t.text)
		}
		field, ok := assignedPlanFields[lower[len("assignedplan."):]]
		if !ok {
			return subject{}, p.errorf(t, "assignedPlan.capabilityStatus, assignedPlan.service or assignedPlan.servicePlanId", "%s is not a property of an assigned plan; use capabilityStatus, service or servicePlanId", t.text)
		}
		return subject{field: field}, nil
	case strings.HasPrefix(lower, "user."):
		if p.scope != scopeUser {
			return subject{}, p.errorf(t, expected, "inside -any or -all a condition tests each item (%s), not %s", map[itemScope]string{scopeStringItem: "_", scopeAssignedPlan: "assignedPlan.<property>"}[p.scope], t.text)
		}
		prop, why, ok := lookupUserProperty(t.text[len("user."):])
		if why != "" {
			return subject{}, notSupported(p.rule, t.pos, "%s", why)
		}
		if !ok {
			// Entra's validation says "Attribute not supported".
			return subject{}, p.errorf(t, expected, "%s is not a user property Entra's membership rules support; see the supported properties in the package documentation", t.text)
		}
		return subject{prop: prop}, nil
	}
	return subject{}, p.errorf(t, expected, "expected a property such as user.department, found %s", describe(t))
}

func subjectText(s subject) string {
	switch {
	case s.item:
		return "_"
	case s.field != "":
		return "assignedPlan." + s.field
	}
	return "user." + s.prop.rule
}

// checkOperator rejects an operator the subject's type has no meaning for,
// as Entra's "Operator isn't supported on attribute" does.
func (p *parser) checkOperator(t token, subj subject, op operator) error {
	name := subjectText(subj)
	switch subj.typ() {
	case boolProperty:
		if op != opEq && op != opNe {
			return p.errorf(t, "-eq or -ne", "%s is true or false: compare it with -eq or -ne, not %s", name, operatorNames[op])
		}
	case dateProperty:
		if op != opEq && op != opNe && op != opLe && op != opGe {
			return p.errorf(t, "-eq, -ne, -le or -ge", "%s is a date: compare it with -eq, -ne, -le or -ge, not %s", name, operatorNames[op])
		}
	case assignedPlansProperty:
		if op != opEq && op != opNe {
			return p.errorf(t, "-any or -all", "%s holds objects: test them with -any or -all, as in user.assignedPlans -any (assignedPlan.capabilityStatus -eq \"Enabled\")", name)
		}
	default:
		if op == opLe || op == opGe {
			return p.errorf(t, "an operator such as -eq", "%s compares dates, and %s is not a date (only user.employeeHireDate is)", operatorNames[op], name)
		}
	}
	return nil
}

// parseQuantifier parses the rest of <collection> -any (...) or -all (...).
// Its condition is in parentheses, as in every example of the docs; the
// device examples also write one condition without them (-any _ -eq "x"),
// which is accepted when nothing follows it that could belong to it.
func (p *parser) parseQuantifier(subjectToken token, subj subject, all bool) (node, error) {
	opName := map[bool]string{false: "-any", true: "-all"}[all]
	if p.scope != scopeUser {
		return nil, p.errorf(subjectToken, "", "%s can't be used inside another -any or -all", opName)
	}
	scope := map[propertyType]itemScope{stringsProperty: scopeStringItem, assignedPlansProperty: scopeAssignedPlan}[subj.prop.typ]
	if scope == scopeUser {
		return nil, p.errorf(subjectToken, "a multi-value property", "%s applies to multi-value properties (user.otherMails, user.proxyAddresses, user.assignedPlans); %s holds one value, so compare it directly", opName, subjectText(subj))
	}
	p.scope = scope
	defer func() { p.scope = scopeUser }()
	var body node
	var err error
	if p.peek().kind == tokLParen {
		body, err = p.parseNot()
	} else {
		body, err = p.parseCondition()
		if err == nil && (p.peekWord("and") || p.peekWord("or")) {
			err = p.errorf(p.peek(), "a closing parenthesis", "put the condition after %s in parentheses, as in %s %s (_ -startsWith \"smtp:\"), so it is clear where it ends", opName, subjectText(subj), opName)
		}
	}
	if err != nil {
		return nil, err
	}
	return quantifier{prop: subj.prop, all: all, body: body}, nil
}

// parseValue parses the value side of a comparison and checks it suits the
// subject and the operator.
func (p *parser) parseValue(subj subject, op operator) (literal, error) {
	typ := subj.typ()
	name := subjectText(subj)
	if op == opIn || op == opNotIn {
		return p.parseList(subj)
	}
	t := p.advance()
	word, hyphen := keyword(t)
	switch {
	case t.kind == tokLBracket:
		return literal{}, p.errorf(t, "a value", "a list of values is compared with -in or -notIn, not %s", operatorNames[op])
	case t.kind == tokWord && (word == "null" || word == "$null"):
		if op != opEq && op != opNe {
			return literal{}, p.errorf(t, "a value", "null is compared with -eq or -ne only (write \"null\" in quotes for the word null)")
		}
		return literal{kind: litNull}, nil
	case t.kind == tokWord && word == "system.now":
		if typ != dateProperty {
			return literal{}, p.errorf(t, "a value", "system.now is a date, and %s is not a date (only user.employeeHireDate is)", name)
		}
		return p.parseNow()
	case t.kind != tokString && t.kind != tokWord, hyphen && isKeyword(word):
		return literal{}, p.errorf(t, "a value such as \"Sales\"", "expected a value such as \"Sales\" after %s, found %s", operatorNames[op], describe(t))
	case t.kind == tokWord && looksLikeProperty(t.text):
		return literal{}, p.errorf(t, "a value such as \"Sales\"", "a condition compares a property with a value, not with %s", t.text)
	}
	// A word without quotes is its own text: the docs allow numbers, booleans
	// and dates without quotes ("double quotes are optional unless the value
	// is a string").
	switch typ {
	case boolProperty:
		switch strings.ToLower(t.text) {
		case "true":
			return literal{kind: litBool, b: true}, nil
		case "false":
			return literal{kind: litBool, b: false}, nil
		}
		return literal{}, p.errorf(t, "true or false", "%s is true or false, found %s", name, describe(t))
	case dateProperty:
		when, ok := parseTime(t.text)
		if !ok {
			return literal{}, p.errorf(t, "a date such as 2020-06-10T18:13:20Z, or system.now", "%s is a date: expected a date such as 2020-06-10T18:13:20Z or system.now, found %s", name, describe(t))
		}
		return literal{kind: litTime, t: when}, nil
	case assignedPlansProperty:
		return literal{}, p.errorf(t, "null", "%s holds objects: compare it only with null, or test its objects with -any or -all", name)
	}
	lit := literal{kind: litString, str: t.text}
	if op == opMatch || op == opNotMatch {
		re, err := compileMatch(t.text)
		if err != nil {
			e := p.errorf(t, "a regular expression", "%s", err.Error())
			if strings.HasPrefix(err.Error(), "not supported") {
				e.NotSupported = true
			}
			return literal{}, e
		}
		lit.re = re
	}
	return lit, nil
}

// isKeyword is true for an operator's name: after a hyphen it can't be a value.
func isKeyword(name string) bool {
	_, isOperator := comparisonOperators[name]
	switch name {
	case "and", "or", "not", "any", "all", "plus", "minus":
		return true
	}
	return isOperator
}

// looksLikeProperty is true for a word that names a property rather than a value.
func looksLikeProperty(w string) bool {
	lower := strings.ToLower(w)
	return lower == "_" || strings.HasPrefix(lower, "user.") || strings.HasPrefix(lower, "assignedplan.") || strings.HasPrefix(lower, "device.")
}

// parseList parses ["a", "b"] after -in or -notIn.
func (p *parser) parseList(subj subject) (literal, error) {
	const expected = `a list such as ["a", "b"]`
	// checkOperator has already refused -in for booleans, dates and objects.
	if t := p.advance(); t.kind != tokLBracket {
		return literal{}, p.errorf(t, expected, "expected a list such as [\"a\", \"b\"] after -in or -notIn, found %s", describe(t))
	}
	var items []string
	for {
		t := p.advance()
		word, hyphen := keyword(t)
		switch {
		case t.kind == tokRBracket && len(items) == 0:
			return literal{}, p.errorf(t, "a value", "the list is empty; a condition with an empty list would never be true")
		case t.kind == tokWord && (word == "null" || word == "$null"):
			return literal{}, p.errorf(t, "a value", "null can't be in a list: join a separate condition %s -eq null with -or", subjectText(subj))
		case t.kind != tokString && t.kind != tokWord, hyphen && isKeyword(word), t.kind == tokWord && looksLikeProperty(t.text):
			return literal{}, p.errorf(t, "a value", "expected a value in the list, found %s", describe(t))
		}
		items = append(items, t.text)
		t = p.advance()
		if t.kind == tokRBracket {
			return literal{kind: litList, list: items}, nil
		}
		if t.kind != tokComma {
			return literal{}, p.errorf(t, "a comma or ]", "expected a comma or ] in the list, found %s", describe(t))
		}
	}
}

// parseNow parses what follows system.now: nothing, or -plus/-minus and an
// ISO 8601 duration such as P1D.
func (p *parser) parseNow() (literal, error) {
	lit := literal{kind: litNow}
	word, _ := keyword(p.peek())
	if word != "plus" && word != "minus" {
		return lit, nil
	}
	p.advance()
	t := p.advance()
	d, ok := parseDuration(t.text)
	if t.kind != tokWord || t.escaped || !ok {
		return literal{}, p.errorf(t, "a duration such as P1D", "expected an ISO 8601 duration such as P1D, P2W or PT12H after -%s, found %s", word, describe(t))
	}
	d.minus = word == "minus"
	lit.shift = d
	return lit, nil
}

var durationPattern = regexp.MustCompile(`^(?i)P(?:(\d{1,6})Y)?(?:(\d{1,6})M)?(?:(\d{1,6})W)?(?:(\d{1,6})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,6})M)?(?:(\d{1,6})S)?)?$`)

func parseDuration(s string) (duration, bool) {
	m := durationPattern.FindStringSubmatch(s)
	if m == nil || strings.EqualFold(s, "P") || strings.HasSuffix(strings.ToUpper(s), "T") {
		return duration{}, false
	}
	n := make([]int, 8)
	for i := 1; i < len(m); i++ {
		n[i], _ = strconv.Atoi(m[i]) // at most 6 digits, so no overflow
	}
	return duration{text: strings.ToUpper(s), years: n[1], months: n[2], days: 7*n[3] + n[4], hours: n[5], minutes: n[6], seconds: n[7]}, true
}

// timeLayouts are the date forms a rule and a user's employeeHireDate may use;
// a date without a zone is UTC.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"}

func parseTime(s string) (time.Time, bool) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// compileMatch compiles a -match pattern case-insensitively, as Entra compares.
// Entra uses .NET regular expressions; Go's RE2 has no lookaround, atomic
// groups or backreferences, and a pattern using them is reported as not
// supported rather than as wrong.
func compileMatch(pattern string) (*regexp.Regexp, error) {
	re, err := regexp.Compile("(?i)" + pattern)
	if err == nil {
		return re, nil
	}
	for _, dotnet := range []string{"(?=", "(?!", "(?<=", "(?<!", "(?>"} {
		if strings.Contains(pattern, dotnet) {
			return nil, &syntaxError{"not supported by entrasync: the regular expression " + strconv.Quote(pattern) + " uses " + dotnet + "...), .NET syntax that Go's RE2 regular expressions lack (no lookaround or atomic groups)"}
		}
	}
	if se, ok := err.(*syntax.Error); ok && se.Code == syntax.ErrInvalidEscape && regexp.MustCompile(`\\[1-9k]`).MatchString(pattern) {
		return nil, &syntaxError{"not supported by entrasync: the regular expression " + strconv.Quote(pattern) + " uses a backreference, which Go's RE2 regular expressions lack"}
	}
	// Entra's validation calls this a "Query compilation error".
	return nil, &syntaxError{"the regular expression " + strconv.Quote(pattern) + " is not valid: " + strings.TrimPrefix(err.Error(), "error parsing regexp: ")}
}

type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return e.msg }

// Properties returns the names, sorted, of the user properties the rule reads:
// the names Match asks User.Get for, so the engine can read them from Graph.
// They are Graph's names (objectId is "id", mobile is "mobilePhone"), with two
// exceptions the engine maps: "extensionAttribute1".."extensionAttribute15"
// are inside Graph's onPremisesExtensionAttributes, and "manager" (read by
// Direct Reports for) is the manager's object id, from $expand=manager($select=id).
func (r *Rule) Properties() []string {
	seen := map[string]bool{}
	var walk func(n node)
	walk = func(n node) {
		switch n := n.(type) {
		case logical:
			for _, t := range n.terms {
				walk(t)
			}
		case not:
			walk(n.term)
		case quantifier:
			seen[n.prop.graph] = true
		case directReports:
			seen["manager"] = true
		case comparison:
			if n.subject.prop.graph != "" {
				seen[n.subject.prop.graph] = true
			}
		}
	}
	walk(r.root)
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
