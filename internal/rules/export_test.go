package rules

// ParseUnlimited is parse, Parse without the length limit, for the fuzz
// test's check of normal forms longer than the rule as written.
var ParseUnlimited = parse
