package rules

import (
	"regexp"
	"strconv"
	"strings"
)

// propertyType is how a rule compares a property, from the docs' property tables.
type propertyType int

const (
	stringProperty        propertyType = iota // every string operator
	boolProperty                              // -eq, -ne with true/false
	dateProperty                              // -eq, -ne, -le, -ge with dates and system.now
	stringsProperty                           // string collection: -any/-all with _, or a string operator on every item
	assignedPlansProperty                     // objects: only -any/-all with assignedPlan.<field>
)

// property is a user property a rule can name.
type property struct {
	rule  string // the spelling String() writes after "user."
	graph string // the name User.Get is asked for (Graph's name)
	typ   propertyType
}

// userProperties are the user properties of Entra's rule language
// (groups-dynamic-membership.md, "Supported properties" and "Multi-value
// properties"), keyed by lower-case rule name because rules in the docs' own
// examples spell them in several cases (mailNickname, employeehiredate).
var userProperties = map[string]property{}

func init() {
	for _, p := range []property{
		{"accountEnabled", "accountEnabled", boolProperty},
		// dirSyncEnabled is Graph's onPremisesSyncEnabled.
		{"dirSyncEnabled", "onPremisesSyncEnabled", boolProperty},
		{"employeeHireDate", "employeeHireDate", dateProperty},
		{"city", "city", stringProperty},
		{"country", "country", stringProperty},
		{"companyName", "companyName", stringProperty},
		{"department", "department", stringProperty},
		{"displayName", "displayName", stringProperty},
		{"employeeId", "employeeId", stringProperty},
		// Graph renamed several directory attributes; User.Get is asked for
		// Graph's name so the engine reads them as it reads every other.
		{"facsimileTelephoneNumber", "faxNumber", stringProperty},
		{"givenName", "givenName", stringProperty},
		{"jobTitle", "jobTitle", stringProperty},
		{"mail", "mail", stringProperty},
		{"mailNickName", "mailNickname", stringProperty},
		{"mobile", "mobilePhone", stringProperty},
		{"objectId", "id", stringProperty},
		{"onPremisesDistinguishedName", "onPremisesDistinguishedName", stringProperty},
		{"onPremisesSecurityIdentifier", "onPremisesSecurityIdentifier", stringProperty},
		{"passwordPolicies", "passwordPolicies", stringProperty},
		{"physicalDeliveryOfficeName", "officeLocation", stringProperty},
		{"postalCode", "postalCode", stringProperty},
		{"preferredLanguage", "preferredLanguage", stringProperty},
		{"state", "state", stringProperty},
		{"streetAddress", "streetAddress", stringProperty},
		{"surname", "surname", stringProperty},
		// Graph holds the telephone number in businessPhones, a collection of
		// at most one; a Strings value is compared by its first item.
		{"telephoneNumber", "businessPhones", stringProperty},
		{"usageLocation", "usageLocation", stringProperty},
		{"userPrincipalName", "userPrincipalName", stringProperty},
		{"userType", "userType", stringProperty},
		{"otherMails", "otherMails", stringsProperty},
		{"proxyAddresses", "proxyAddresses", stringsProperty},
		{"assignedPlans", "assignedPlans", assignedPlansProperty},
	} {
		userProperties[strings.ToLower(p.rule)] = p
	}
	// extensionAttribute1..15 are Graph's onPremisesExtensionAttributes; User.Get
	// is asked for "extensionAttributeN" (the engine selects
	// onPremisesExtensionAttributes and flattens it).
	for i := 1; i <= 15; i++ {
		name := "extensionAttribute" + strconv.Itoa(i)
		userProperties[strings.ToLower(name)] = property{name, name, stringProperty}
	}
}

// unsupportedProperties are documented for users but not evaluated here; the
// value is why, for the error.
var unsupportedProperties = map[string]string{
	"memberof":        "user.memberOf (Entra's preview rule on group membership); entrasync evaluates rules on user attributes only",
	"sipproxyaddress": "user.sipProxyAddress: Microsoft Graph's user resource does not return it",
}

// assignedPlanFields are the string properties of each assignedPlans object.
var assignedPlanFields = map[string]string{
	"capabilitystatus": "capabilityStatus",
	"service":          "service",
	"serviceplanid":    "servicePlanId",
}

// customExtension is a directory extension property: extension_<app id without
// hyphens>_<name>. Graph names it the same way, so it is read as written.
var customExtension = regexp.MustCompile(`^(?i:extension)_[0-9A-Za-z]+_[0-9A-Za-z_]+$`)

// lookupUserProperty finds the property named after "user.", or says why not.
func lookupUserProperty(name string) (p property, unsupported string, ok bool) {
	if p, ok := userProperties[strings.ToLower(name)]; ok {
		return p, "", true
	}
	if why, ok := unsupportedProperties[strings.ToLower(name)]; ok {
		return property{}, why, false
	}
	if customExtension.MatchString(name) {
		return property{rule: "extension" + name[len("extension"):], graph: "extension" + name[len("extension"):], typ: stringProperty}, "", true
	}
	return property{}, "", false
}
