package rules

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokLParen
	tokRParen
	tokLBracket
	tokRBracket
	tokComma
	tokString // a quoted string; text is its value with escapes undone
	tokWord   // anything else up to a space, bracket, comma or quote
)

type token struct {
	kind tokenKind
	text string // a word as written (escapes undone), or a string's value
	raw  string // the token as written in the rule, for error messages
	pos  int    // byte offset
	// escaped is true for a word holding a backtick escape: the docs' own
	// example user.department -eq `"Sales`" is such a word, and it can only
	// be a value, never a property or an operator.
	escaped bool
}

var punctuation = map[rune]tokenKind{'(': tokLParen, ')': tokRParen, '[': tokLBracket, ']': tokRBracket, ',': tokComma}

// lex splits a rule into tokens, or returns the *Error of the first bad one.
func lex(rule string) ([]token, error) {
	var tokens []token
	i := 0
	for i < len(rule) {
		r, size := utf8.DecodeRuneInString(rule[i:])
		if unicode.IsSpace(r) {
			i += size
			continue
		}
		start := i
		if kind, ok := punctuation[r]; ok {
			tokens = append(tokens, token{kind: kind, text: string(r), raw: string(r), pos: start})
			i += size
			continue
		}
		if r == '"' || r == '\'' {
			value, end, err := lexString(rule, start)
			if err != nil {
				return nil, err
			}
			tokens = append(tokens, token{kind: tokString, text: value, raw: rule[start:end], pos: start})
			i = end
			continue
		}
		var text strings.Builder
		escaped := false
		for i < len(rule) {
			r, size := utf8.DecodeRuneInString(rule[i:])
			if r == '`' && strings.HasPrefix(rule[i+1:], `"`) {
				text.WriteByte('"')
				escaped = true
				i += 2
				continue
			}
			if unicode.IsSpace(r) || strings.ContainsRune(`()[],"'`, r) {
				break
			}
			text.WriteRune(r)
			i += size
		}
		tokens = append(tokens, token{kind: tokWord, text: text.String(), raw: rule[start:i], pos: start, escaped: escaped})
	}
	tokens = append(tokens, token{kind: tokEOF, raw: "the end of the rule", pos: len(rule)})
	return tokens, nil
}

// lexString reads the quoted string starting at rule[start] and returns its
// value and the offset after its closing quote.
//
// A double-quoted string escapes a double quote with a backtick (`") and a
// backtick with another backtick; any other backtick is itself. A single-quoted
// string, as in the docs' memberOf example ['value'], escapes a single quote by
// doubling it. Backslashes are ordinary characters, so regular
// expressions are written as they are.
func lexString(rule string, start int) (string, int, error) {
	quote := rule[start]
	var value strings.Builder
	i := start + 1
	for i < len(rule) {
		c := rule[i]
		switch {
		case quote == '"' && c == '`' && i+1 < len(rule) && (rule[i+1] == '"' || rule[i+1] == '`'):
			value.WriteByte(rule[i+1])
			i += 2
		case quote == '\'' && c == '\'' && i+1 < len(rule) && rule[i+1] == '\'':
			value.WriteByte('\'')
			i += 2
		case c == quote:
			return value.String(), i + 1, nil
		default:
			value.WriteByte(c)
			i++
		}
	}
	hint := ""
	if quote == '"' {
		hint = "; a backtick before a quote (`\") makes the quote part of the string"
	}
	return "", 0, newError(rule, start, "a closing "+string(quote), "the string starting here has no closing %c%s", quote, hint)
}
