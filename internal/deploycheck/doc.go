// Package deploycheck checks the deployment (infra/main.bicep, azure.yaml)
// against the code it deploys, where neither Azure nor a Bicep compiler can
// be reached: the app settings the Bicep sets against the bindings in
// functions/*/function.json and the names the code uses, the role
// assignments against what the code does (every role needed, none broader),
// no key or secret anywhere, and every resource type, API version and
// property name against Azure's published type definitions, vendored in
// testdata/types.json (internal/cmd/vendortypes).
//
// It reads a subset of Bicep (Parse) that infra/main.bicep keeps to; anything
// else is a parse error, never a silently skipped check. It imports only the
// standard library: handler's tests use it to hold the README's settings
// table, the config loader, local.settings.sample.json and the Bicep app
// settings against each other.
package deploycheck

import "fmt"

// Problem is one mismatch, with the Bicep line it is about (0: none).
type Problem struct {
	Line int
	What string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("infra/main.bicep:%d: %s", p.Line, p.What)
	}
	return p.What
}
