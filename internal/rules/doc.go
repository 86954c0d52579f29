// Package rules parses and evaluates Microsoft Entra ID's dynamic membership
// rules for users, so an admin can paste a rule they already use in Entra to
// define a dynamic group or a sync scope.
//
// It imports only the standard library. The language is the one documented in
// MicrosoftDocs/entra-docs docs/identity/users/groups-dynamic-membership.md,
// groups-dynamic-rule-more-efficient.md and groups-troubleshooting.md (and the
// older azure-docs versions); every example in them is in the conformance
// table (conformance_test.go).
//
// # Using it
//
//	rule, err := rules.Parse(`user.department -eq "Sales" -and user.accountEnabled -eq true`)
//	// err is a *rules.Error: "position 17: expected ..."
//	selectFields := rule.Properties() // ["accountEnabled", "department"]
//	ok, err := rule.Match(rules.Attributes{"department": rules.StringValue("sales")}, rules.Env{Now: runStart})
//
// A User gives attribute values by the names Properties returns, which are
// Graph's names: see Rule.Properties for the two the engine maps itself
// (extensionAttributeN, manager).
//
// # The language as supported
//
// A rule is one or more conditions joined by -and, -or and -not, with
// parentheses; or the single rule Direct Reports for "<manager object id>".
// A condition is user.<property> <operator> <value>, or
// user.<collection> -any (...) / -all (...).
//
//   - Properties (user.<name>): accountEnabled, dirSyncEnabled (booleans);
//     employeeHireDate (a date); city, country, companyName, department,
//     displayName, employeeId, facsimileTelephoneNumber, givenName, jobTitle,
//     mail, mailNickName, mobile, objectId, onPremisesDistinguishedName,
//     onPremisesSecurityIdentifier, passwordPolicies,
//     physicalDeliveryOfficeName, postalCode, preferredLanguage, state,
//     streetAddress, surname, telephoneNumber, usageLocation,
//     userPrincipalName, userType, extensionAttribute1 to extensionAttribute15
//     and custom extension properties extension_<app id>_<name> (strings);
//     otherMails, proxyAddresses (string collections); assignedPlans
//     (objects with capabilityStatus, service and servicePlanId).
//   - Operators: -eq -ne -startsWith -notStartsWith -endsWith -notEndsWith
//     -contains -notContains -match -notMatch -in -notIn on strings; -eq -ne on
//     booleans; -eq -ne -le -ge on employeeHireDate. Booleans and dates refuse
//     the other operators, as Entra's "Operator isn't supported on attribute".
//   - Values: "double-quoted" or 'single-quoted' strings, unquoted words
//     (numbers, true/false, dates: "double quotes are optional unless the
//     value is a string"), null or $null, lists ["a", "b"] after -in/-notIn,
//     and system.now, optionally -plus or -minus an ISO 8601 duration (P1D,
//     P2W, PT12H, P1Y2M), for employeeHireDate.
//   - Collections: user.proxyAddresses -any (_ -startsWith "smtp:") tests each
//     value as _; user.assignedPlans -any (assignedPlan.service -eq "SCO" -and
//     assignedPlan.capabilityStatus -eq "Enabled") tests each plan.
//   - The rule is at most 3,072 characters (MaxLength), counted as written.
//     Its normal form (String) quotes every value and hyphenates every
//     operator, so it can be longer than the rule as written, and over the
//     limit (Rule.TooLong): such a rule is kept as written.
//
// Operator names, and/or/not, -any/-all, null, true/false, system.now and
// "Direct Reports for" are case-insensitive, with the hyphen optional (eq or
// -eq). String comparisons, -in and -match ignore case.
//
// Precedence, highest first, as documented: comparisons, then -not, then
// -and, then -or. So -not user.a -eq "x" -and user.b -eq "y" -or user.c -eq "z"
// is ((-not (a)) -and b) -or c.
//
// # Choices where the docs are ambiguous or silent
//
//   - Property names are case-insensitive. The docs say they are
//     case-sensitive, yet their own examples write user.employeehiredate and
//     user.mailNickname for employeeHireDate and mailNickName; String()
//     writes the documented spelling.
//   - An en dash or em dash counts as the hyphen: the docs' own examples
//     (user.mail –ne null) were typeset with en dashes and are pasted as such.
//   - Quoting: in a double-quoted string a backtick escapes a double quote
//     (backtick, quote) or a backtick (two backticks); any other backtick is
//     itself, and a backslash is always itself (so regular expressions are
//     written plainly). A single-quoted string escapes a single quote by
//     doubling it, as the docs say; inside double quotes two single quotes
//     stay two, as in PowerShell, whose quoting the docs describe. The docs'
//     example user.department -eq `"Sales`" (escaped quotes outside any
//     string) is the value "Sales" with its quotes.
//   - Null and the empty string are the same value, for every string
//     comparison (the docs' "no service plan" example was once -eq "" and is
//     now -eq null). So null -notStartsWith "x" is true, null -startsWith "x"
//     false; every negated operator is exactly the negation of its positive.
//     null is compared only with -eq and -ne; "null" in quotes is the word.
//   - A missing date is neither before nor after any date: -le and -ge are
//     false, -ne is true.
//   - A string collection compared without -any/-all, as in the docs'
//     user.otherMails -startsWith "alias@" and user.proxyAddresses
//     -notEndsWith "@outlook.com": a positive operator holds when some value
//     satisfies it; a negated one when no value satisfies its positive form.
//     -eq null holds for an empty collection, and -ne null for a non-empty one.
//     So -contains is a partial match within each value, never "the
//     collection has this item" ("Contains does partial string matches but
//     not item in a collection matches").
//   - -all over an empty collection is true (the docs' "users who have no
//     assigned service plan" example relies on it); -any over one is false.
//   - The condition after -any/-all is in parentheses in every user example;
//     the device examples also write one condition without them
//     (-any _ -eq "x"), which is accepted only when no -and/-or follows it,
//     because the docs' precedence list puts -any/-all lowest and it would be
//     unclear where the condition ends. Inside -any/-all, conditions test the
//     item only (_ or assignedPlan.<field>), not other user properties, and
//     -any/-all do not nest.
//   - -match searches anywhere in the value (the docs' "^Da.*" matches David,
//     ".*vid" matches David), ignoring case.
//   - Dates: RFC 3339 with or without fractional seconds, or without a zone
//     (UTC), or a date alone (midnight UTC); -eq compares instants. system.now
//     is Env.Now, one instant for a whole run. -le and -ge include the
//     instant itself (the docs call them "less than" and "greater than", but
//     their names, as in PowerShell, mean or-equal). -lt and -gt are not
//     documented, so they are errors.
//   - -in needs a non-empty list without null (write -or user.x -eq null).
//   - Direct Reports for needs the manager's object id as a quoted GUID, and
//     can't be combined with anything, parentheses included, as documented.
//
// # Not supported by entrasync
//
// These parse in Entra but not here; the *Error has NotSupported set, its
// message starts with "not supported by entrasync:", and
// errors.Is(err, ErrNotSupported) is true:
//
//   - device.<property> rules: entrasync syncs users.
//   - user.memberOf -any (group.objectId -in [...]): the rule reads user
//     attributes only, not group memberships.
//   - user.sipProxyAddress: Graph's user resource does not return it.
//   - -match patterns using .NET features RE2 lacks: lookaround ((?=, (?!,
//     (?<=, (?<!), atomic groups ((?>) and backreferences (\1). Any other
//     invalid pattern is an ordinary error, as Entra's "Query compilation
//     error".
//
// # Errors
//
// Parse returns a *Error with the byte offset (Pos), the line and column
// (1-based, characters), what was wrong (Msg) and what was expected there
// (Expected). Error() reads "position 17: expected an operator such as -eq,
// found \"foo\"" for a rule's first line and "line 2, column 5: ..." after it.
// Match returns an error only when a user's value has the wrong kind for its
// property, which is a bug in how the engine reads users.
package rules
