package deploycheck

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Repo is what the checks read, loaded from a checkout by Load. Tests
// change a copy to show that each check fails on a seeded mistake.
type Repo struct {
	// Bicep is infra/main.bicep.
	Bicep string
	// Infra is every other file under infra/ and azure.yaml, by path.
	Infra map[string]string
	// Functions is functions/<Name>/function.json by function name.
	Functions map[string][]byte
	// Go sources the checks take names from, by repository path.
	Go map[string]string
}

// The Go files whose names the deployment must match. They are only read.
var goSources = []string{
	"handler/config.go",                 // LOG_CONTAINER and TABLE_PREFIX defaults
	"internal/servicebus/servicebus.go", // the queue the handler sends to
	"internal/dirsync/rows.go",          // the logical tables
	"internal/api/auth.go",              // the app roles the API knows
}

// Load reads a repository checkout rooted at root.
func Load(root string) (*Repo, error) {
	r := &Repo{Infra: map[string]string{}, Functions: map[string][]byte{}, Go: map[string]string{}}
	b, err := os.ReadFile(filepath.Join(root, "infra", "main.bicep"))
	if err != nil {
		return nil, err
	}
	r.Bicep = string(b)
	err = filepath.WalkDir(filepath.Join(root, "infra"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, "main.bicep") {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(root, path)
		r.Infra[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		return nil, err
	}
	if b, err = os.ReadFile(filepath.Join(root, "azure.yaml")); err != nil {
		return nil, err
	}
	r.Infra["azure.yaml"] = string(b)
	dirs, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(root, "functions", d.Name(), "function.json"))
		if err != nil {
			return nil, err
		}
		r.Functions[d.Name()] = b
	}
	for _, p := range goSources {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(p)))
		if err != nil {
			return nil, err
		}
		r.Go[p] = string(b)
	}
	return r, nil
}

// Check parses the Bicep and runs every cross-check; the problems come
// sorted by line.
func Check(r *Repo) ([]Problem, error) {
	f, err := Parse("infra/main.bicep", r.Bicep)
	if err != nil {
		return nil, err
	}
	c := &checker{r: r, f: f}
	c.functionApp()
	c.settings()
	c.queue()
	c.storage()
	c.roles()
	c.noSecrets()
	c.outputs()
	c.appRoles()
	sort.SliceStable(c.probs, func(i, j int) bool { return c.probs[i].Line < c.probs[j].Line })
	return c.probs, nil
}

// AppSettings returns the app settings the Bicep gives the function app: the
// properties of its Microsoft.Web/sites/config "appsettings" resource.
func AppSettings(f *File) (*Object, error) {
	for _, r := range f.ResourcesOf("Microsoft.Web/sites/config") {
		if name, _ := Literal(r.Body.Fields["name"]); name == "appsettings" {
			props, ok := r.Body.Fields["properties"].(*Object)
			if !ok {
				return nil, fmt.Errorf("infra/main.bicep:%d: the app settings must be one object literal, so they can be checked", r.Line)
			}
			return props, nil
		}
	}
	return nil, fmt.Errorf("infra/main.bicep sets no app settings (Microsoft.Web/sites/config named appsettings)")
}

type checker struct {
	r     *Repo
	f     *File
	probs []Problem
	// app is the function app's settings.
	app *Object
}

func (c *checker) fail(line int, format string, args ...any) {
	c.probs = append(c.probs, Problem{Line: line, What: fmt.Sprintf(format, args...)})
}

// binding is the part of a function.json binding the checks read.
type binding struct {
	Type       string   `json:"type"`
	QueueName  string   `json:"queueName"`
	Connection string   `json:"connection"`
	AuthLevel  string   `json:"authLevel"`
	Route      string   `json:"route"`
	Methods    []string `json:"methods"`
}

func (c *checker) bindings() map[string][]binding {
	out := map[string][]binding{}
	for name, raw := range c.r.Functions {
		var fj struct {
			Bindings []binding `json:"bindings"`
		}
		if err := json.Unmarshal(raw, &fj); err != nil {
			c.fail(0, "functions/%s/function.json: %v", name, err)
			continue
		}
		out[name] = fj.Bindings
	}
	return out
}

// resolve follows a value that names a var or a param to its literal.
func (c *checker) resolve(v Value) (string, bool) {
	if s, ok := Literal(v); ok {
		return s, true
	}
	t := Text(v)
	if vv, ok := c.f.Vars[t]; ok {
		return c.resolve(vv)
	}
	if p, ok := c.f.Params[t]; ok && p.Default != nil {
		return c.resolve(p.Default)
	}
	return "", false
}

// resourceNamed finds a resource by the symbol an expression starts with
// ("stateStorage.name" -> stateStorage).
func (c *checker) resourceNamed(expr string) *Resource {
	sym, _, _ := strings.Cut(expr, ".")
	return c.f.Resource(sym)
}

// functionApp: one Linux Flex Consumption app running the custom handler
// with the user-assigned identity, and the API's authentication as decided
// in docs/architecture.md.
func (c *checker) functionApp() {
	sites := c.f.ResourcesOf("Microsoft.Web/sites")
	if len(sites) != 1 {
		c.fail(0, "want exactly one Microsoft.Web/sites, found %d", len(sites))
		return
	}
	app := sites[0]
	if kind, _ := Literal(app.Body.Fields["kind"]); kind != "functionapp,linux" {
		c.fail(app.Line, "function app kind %q: a custom handler on Flex Consumption runs on Linux (functionapp,linux)", kind)
	}
	if name, _ := Literal(app.Body.Get("properties.functionAppConfig.runtime.name")); name != "custom" {
		c.fail(app.Line, "functionAppConfig.runtime.name must be 'custom' for a custom handler (host.json customHandler)")
	}
	if t, _ := Literal(app.Body.Get("identity.type")); t != "UserAssigned" {
		c.fail(app.Line, "the function app's identity must be UserAssigned: every connection names its client id")
	}
	if auth, _ := Literal(app.Body.Get("properties.functionAppConfig.deployment.storage.authentication.type")); auth != "UserAssignedIdentity" {
		c.fail(app.Line, "the deployment storage must be reached with the user-assigned identity, not %q", auth)
	}
	plans := c.f.ResourcesOf("Microsoft.Web/serverfarms")
	if len(plans) != 1 {
		c.fail(0, "want one Microsoft.Web/serverfarms, found %d", len(plans))
	} else if tier, _ := Literal(plans[0].Body.Get("sku.tier")); tier != "FlexConsumption" {
		c.fail(plans[0].Line, "the plan's tier is %q, want FlexConsumption", tier)
	}

	// The Api function is anonymous to the host and the API is the gate;
	// so Easy Auth must let unauthenticated requests through to it, and
	// nothing else may be anonymous but Health and Console (the console's
	// static files, GET and HEAD only: internal/console serves nothing else).
	for name, bs := range c.bindings() {
		for _, b := range bs {
			if b.Type != "httpTrigger" {
				continue
			}
			switch {
			case name == "Api" && b.AuthLevel != "anonymous":
				c.fail(0, "functions/Api/function.json: authLevel %q; it must be anonymous, the API checks callers itself (with function, an Easy Auth caller would need a key too)", b.AuthLevel)
			case name == "Console" && (b.AuthLevel != "anonymous" || !readOnlyMethods(b.Methods)):
				c.fail(0, "functions/Console/function.json: the console's static files must be anonymous and GET/HEAD only (authLevel %q, methods %v)", b.AuthLevel, b.Methods)
			case name != "Api" && name != "Health" && name != "Console" && b.AuthLevel == "anonymous":
				c.fail(0, "functions/%s/function.json: anonymous, but only Health, Console (static files) and Api (which checks callers itself) may be", name)
			}
		}
	}
	easyAuth := 0
	for _, r := range c.f.ResourcesOf("Microsoft.Web/sites/config") {
		if name, _ := Literal(r.Body.Fields["name"]); name != "authsettingsV2" {
			continue
		}
		easyAuth++
		if id := Text(r.Body.Get("properties.identityProviders.azureActiveDirectory.registration.clientId")); c.f.Params[id] == nil {
			c.fail(r.Line, "Easy Auth's app registration (clientId %s) must be a parameter: the tenant brings an existing registration", id)
		}
		if a, _ := Literal(r.Body.Get("properties.globalValidation.unauthenticatedClientAction")); a != "AllowAnonymous" {
			c.fail(r.Line, "Easy Auth unauthenticatedClientAction %q: it must be AllowAnonymous so API keys and /api/health reach the API, which refuses callers without credentials", a)
		}
		if Text(r.Body.Get("properties.identityProviders.azureActiveDirectory.registration.clientSecretSettingName")) != "" {
			c.fail(r.Line, "Easy Auth needs no client secret here: it only validates tokens")
		}
	}
	if easyAuth != 1 {
		c.fail(0, "want one App Service Authentication config (Microsoft.Web/sites/config authsettingsV2), found %d: the API's admin and support roles come from it", easyAuth)
	}
}

// settings: the host's connections in their identity-based forms, every
// %SETTING% of a binding set, and the names the code uses.
func (c *checker) settings() {
	app, err := AppSettings(c.f)
	if err != nil {
		c.fail(0, "%v", err)
		return
	}
	c.app = app
	identityClientID := func(name string) {
		v := app.Fields[name]
		if v == nil {
			c.fail(app.Line, "app setting %s is missing: with a user-assigned identity the host and the SDKs must be told its client id", name)
			return
		}
		if !strings.HasSuffix(Text(v), ".properties.clientId") {
			c.fail(lineOf(v, app.Line), "app setting %s = %s: want the identity's client id (<identity>.properties.clientId)", name, Text(v))
		}
	}
	identityConnection := func(conn, service string) {
		if v := app.Fields[conn]; v != nil {
			c.fail(lineOf(v, app.Line), "app setting %s is a connection string; use %s__%s with the managed identity", conn, conn, service)
		}
		if app.Fields[conn+"__"+service] == nil {
			c.fail(app.Line, "app setting %s__%s is missing (the identity-based form of connection %s)", conn, service, conn)
		}
		if v, _ := Literal(app.Fields[conn+"__credential"]); v != "managedidentity" {
			c.fail(app.Line, "app setting %s__credential must be 'managedidentity'", conn)
		}
		identityClientID(conn + "__clientId")
	}
	identityConnection("AzureWebJobsStorage", "accountName")

	percent := regexp.MustCompile(`%([A-Za-z0-9_]+)%`)
	for name, bs := range c.bindings() {
		for _, s := range percent.FindAllStringSubmatch(string(c.r.Functions[name]), -1) {
			if app.Fields[s[1]] == nil {
				c.fail(app.Line, "functions/%s/function.json uses %%%s%%, which no app setting sets (the host would not start the function)", name, s[1])
			}
		}
		for _, b := range bs {
			if b.Type == "serviceBusTrigger" {
				identityConnection(b.Connection, "fullyQualifiedNamespace")
			}
		}
	}
	// The handler's own identity-based settings (handler/config.go).
	if acct := app.Fields["STORAGE_ACCOUNT_NAME"]; acct == nil {
		c.fail(app.Line, "app setting STORAGE_ACCOUNT_NAME is missing: the handler reaches the state account with the managed identity")
	}
	identityClientID("STORAGE_MANAGED_IDENTITY_CLIENT_ID")
	if v, _ := Literal(app.Fields["GRAPH_USE_MANAGED_IDENTITY"]); v != "true" {
		c.fail(app.Line, "app setting GRAPH_USE_MANAGED_IDENTITY must be 'true': Graph is read with the managed identity, not a secret")
	}
	identityClientID("GRAPH_MANAGED_IDENTITY_CLIENT_ID")

	// Names shared with the code.
	if want := goDefault(c.r.Go["handler/config.go"], "LOG_CONTAINER"); want == "" {
		c.fail(0, "handler/config.go: no default for LOG_CONTAINER found (orDefault(get(\"LOG_CONTAINER\"), ...))")
	} else if got, ok := c.resolve(app.Fields["LOG_CONTAINER"]); !ok || got != want {
		c.fail(app.Line, "app setting LOG_CONTAINER is %q, the code's default %q: keep them one name", got, want)
	}
}

// queue: the queue SyncWorker listens on exists, is the one the handler
// sends to, and is configured as the code and host.json expect.
func (c *checker) queue() {
	var want, conn string
	for _, bs := range c.bindings() {
		for _, b := range bs {
			if b.Type == "serviceBusTrigger" {
				want, conn = b.QueueName, b.Connection
			}
		}
	}
	if code := goConst(c.r.Go["internal/servicebus/servicebus.go"], "DefaultQueue"); code != want {
		c.fail(0, "functions/SyncWorker listens on %q but the handler sends to %q (internal/servicebus DefaultQueue)", want, code)
	}
	var q *Resource
	for _, r := range c.f.ResourcesOf("Microsoft.ServiceBus/namespaces/queues") {
		if name, _ := c.resolve(r.Body.Fields["name"]); name == want {
			q = r
		}
	}
	if q == nil {
		c.fail(0, "no Service Bus queue %q (the SyncWorker trigger's queueName)", want)
		return
	}
	ns := c.f.Resource(Text(q.Body.Fields["parent"]))
	if ns == nil {
		c.fail(q.Line, "queue %s: parent namespace not found", want)
		return
	}
	if tier, _ := Literal(ns.Body.Get("sku.name")); tier != "Standard" && tier != "Premium" {
		c.fail(ns.Line, "Service Bus sku %q: duplicate detection and scheduled messages need Standard or Premium", tier)
	}
	if c.app != nil {
		fq := Text(c.app.Fields[conn+"__fullyQualifiedNamespace"])
		if !strings.Contains(fq, ns.Symbol+".name") {
			c.fail(c.app.Line, "app setting %s__fullyQualifiedNamespace (%s) does not name the namespace %s that holds queue %s", conn, fq, ns.Symbol, want)
		}
		// The handler fails a run on the queue's last delivery, so it must
		// know the same max delivery count.
		mdc := Text(q.Body.Get("properties.maxDeliveryCount"))
		if got := Text(c.app.Fields["SYNC_MAX_DELIVERIES"]); got != "string("+mdc+")" && got != "'"+mdc+"'" {
			c.fail(q.Line, "queue maxDeliveryCount (%s) and app setting SYNC_MAX_DELIVERIES (%s) must be the same number", mdc, got)
		}
	}
	props, _ := q.Body.Get("properties").(*Object)
	if props == nil {
		c.fail(q.Line, "queue %s has no properties", want)
		return
	}
	for _, want := range []struct{ prop, value, why string }{
		{"requiresDuplicateDetection", "true", "work items are sent with their MessageId, and a re-sent item must be dropped"},
		{"deadLetteringOnMessageExpiration", "true", "an expired item must be kept where an admin can see it"},
	} {
		if got := Text(props.Get(want.prop)); got != want.value {
			c.fail(q.Line, "queue %s must be %s: %s", want.prop, want.value, want.why)
		}
	}
	if props.Get("duplicateDetectionHistoryTimeWindow") == nil {
		c.fail(q.Line, "queue duplicateDetectionHistoryTimeWindow is not set")
	}
	// host.json renews the lock up to maxAutoLockRenewalDuration; Service
	// Bus allows a lock of at most 5 minutes.
	if lock, ok := Literal(props.Get("lockDuration")); !ok || !regexp.MustCompile(`^PT([1-5]M|[1-9][0-9]?S)$`).MatchString(lock) {
		c.fail(q.Line, "queue lockDuration %q: want a literal ISO 8601 duration of at most PT5M", lock)
	}
}

// storage: shared keys off, the log container and its lifecycle rule, the
// tables the code uses.
func (c *checker) storage() {
	for _, r := range c.f.ResourcesOf("Microsoft.Storage/storageAccounts") {
		if Text(r.Body.Get("properties.allowSharedKeyAccess")) != "false" {
			c.fail(r.Line, "storage account %s: allowSharedKeyAccess must be false (identity-based access only)", r.Symbol)
		}
		if Text(r.Body.Get("properties.allowBlobPublicAccess")) != "false" {
			c.fail(r.Line, "storage account %s: allowBlobPublicAccess must be false", r.Symbol)
		}
	}
	for _, r := range c.f.ResourcesOf("Microsoft.ServiceBus/namespaces") {
		if Text(r.Body.Get("properties.disableLocalAuth")) != "true" {
			c.fail(r.Line, "Service Bus %s: disableLocalAuth must be true (no SAS keys)", r.Symbol)
		}
	}
	for _, r := range c.f.ResourcesOf("Microsoft.Insights/components") {
		if Text(r.Body.Get("properties.DisableLocalAuth")) != "true" {
			c.fail(r.Line, "Application Insights %s: DisableLocalAuth must be true, so its connection string grants nothing", r.Symbol)
		}
	}
	if c.app == nil {
		return
	}
	state := c.resourceNamed(Text(c.app.Fields["STORAGE_ACCOUNT_NAME"]))
	if state == nil || state.Type != "Microsoft.Storage/storageAccounts" {
		c.fail(c.app.Line, "app setting STORAGE_ACCOUNT_NAME does not name a storage account of this deployment")
		return
	}
	logName, _ := c.resolve(c.app.Fields["LOG_CONTAINER"])
	var container *Resource
	for _, r := range c.f.ResourcesOf("Microsoft.Storage/storageAccounts/blobServices/containers") {
		svc := c.f.Resource(Text(r.Body.Fields["parent"]))
		if name, _ := c.resolve(r.Body.Fields["name"]); name == logName && svc != nil && Text(svc.Body.Fields["parent"]) == state.Symbol {
			container = r
		}
	}
	if container == nil {
		c.fail(0, "no blob container %q (LOG_CONTAINER) in the state account %s", logName, state.Symbol)
	}
	var rule bool
	for _, r := range c.f.ResourcesOf("Microsoft.Storage/storageAccounts/managementPolicies") {
		if Text(r.Body.Fields["parent"]) != state.Symbol {
			continue
		}
		rules, _ := r.Body.Get("properties.policy.rules").(*Array)
		for _, it := range itemsOf(rules) {
			o, _ := it.(*Object)
			prefixes, _ := o.Get("definition.filters.prefixMatch").(*Array)
			days := Text(o.Get("definition.actions.baseBlob.delete.daysAfterModificationGreaterThan"))
			var types []string
			for _, bt := range itemsOf(asArray(o.Get("definition.filters.blobTypes"))) {
				s, _ := Literal(bt)
				types = append(types, s)
			}
			for _, p := range itemsOf(prefixes) {
				if strings.Contains(Text(p), "${logContainerName}/") || Text(p) == "'"+logName+"/'" {
					if _, isParam := c.f.Params[days]; !isParam {
						c.fail(o.Line, "the run log lifecycle rule's days (%s) must be a parameter", days)
					}
					if !slices.Contains(types, "appendBlob") {
						c.fail(o.Line, "the run log lifecycle rule's blobTypes %v: run logs are append blobs", types)
					}
					rule = true
				}
			}
		}
	}
	if !rule {
		c.fail(0, "no lifecycle rule deletes old run logs (prefix %s/ in the state account's managementPolicies)", logName)
	}

	// Tables: internal/dirsync's logical tables, named as internal/table
	// names them (TABLE_PREFIX + CamelCase).
	var want []string
	for _, n := range goConstsWithPrefix(c.r.Go["internal/dirsync/rows.go"], "Table") {
		want = append(want, strings.ToUpper(n[:1])+n[1:])
	}
	sort.Strings(want)
	var got []string
	for _, it := range itemsOf(asArray(c.f.Vars["stateTables"])) {
		s, _ := Literal(it)
		got = append(got, s)
	}
	sort.Strings(got)
	if strings.Join(want, ",") != strings.Join(got, ",") {
		c.fail(0, "var stateTables %v is not the tables of internal/dirsync %v", got, want)
	}
}

func asArray(v Value) *Array {
	a, _ := v.(*Array)
	return a
}

func itemsOf(a *Array) []Value {
	if a == nil {
		return nil
	}
	return a.Items
}

// need is a role the code needs on a resource; which resource is given by
// the app setting naming it.
type need struct {
	role, why string
	// scope finds the resource symbol the role must be assigned on.
	scope func(c *checker) string
}

// Role definition ids of Azure's built-in roles, by the names the Bicep
// gives them in `var roles`. Only these may be assigned.
var roleIDs = map[string]string{
	"storageBlobDataOwner":        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
	"storageBlobDataContributor":  "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
	"storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
	"serviceBusDataSender":        "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
	"serviceBusDataReceiver":      "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
	"monitoringMetricsPublisher":  "3913510d-42f4-4e42-8a64-420c390055eb",
}

func (c *checker) settingResource(name string) func(c *checker) string {
	return func(c *checker) string {
		if c.app == nil {
			return ""
		}
		t := Text(c.app.Fields[name])
		t = strings.TrimPrefix(strings.TrimPrefix(t, "'${"), "${")
		sym, _, _ := strings.Cut(t, ".")
		return sym
	}
}

func (c *checker) needs() []need {
	queue := func(c *checker) string {
		for _, r := range c.f.ResourcesOf("Microsoft.ServiceBus/namespaces/queues") {
			return r.Symbol
		}
		return ""
	}
	insights := func(c *checker) string {
		for _, r := range c.f.ResourcesOf("Microsoft.Insights/components") {
			return r.Symbol
		}
		return ""
	}
	return []need{
		{"storageBlobDataOwner", "the Functions host's storage (AzureWebJobsStorage: timer leases) and the deployment container", c.settingResource("AzureWebJobsStorage__accountName")},
		{"storageTableDataContributor", "the handler's state tables (internal/table)", c.settingResource("STORAGE_ACCOUNT_NAME")},
		{"storageBlobDataContributor", "the handler's run logs and their user-delegation links (internal/blob)", c.settingResource("STORAGE_ACCOUNT_NAME")},
		{"serviceBusDataSender", "the handler sends work items (internal/servicebus)", queue},
		{"serviceBusDataReceiver", "the SyncWorker trigger receives them", queue},
		{"monitoringMetricsPublisher", "the host sends telemetry with the identity (local auth off)", insights},
	}
}

// roles: every role the code needs is assigned to the identity on the exact
// resource, and no other role is assigned.
func (c *checker) roles() {
	roleVar, _ := c.f.Vars["roles"].(*Object)
	if roleVar == nil {
		c.fail(0, "var roles (the role definition ids by name) is missing")
		return
	}
	for name, v := range roleVar.Fields {
		id, _ := Literal(v)
		if want, ok := roleIDs[name]; !ok {
			c.fail(v.(*Expr).Line, "role %s (%s) is none the code needs: the identity gets only %s", name, id, strings.Join(sortedStrings(roleIDs), ", "))
		} else if id != want {
			c.fail(v.(*Expr).Line, "role %s has id %s, but that built-in role's id is %s", name, id, want)
		}
	}
	type assignment struct{ role, scope string }
	have := map[assignment]int{}
	roleRef := regexp.MustCompile(`^subscriptionResourceId\('Microsoft\.Authorization/roleDefinitions', *roles\.([A-Za-z]+)\)$`)
	for _, r := range c.f.ResourcesOf("Microsoft.Authorization/roleAssignments") {
		def := Text(r.Body.Get("properties.roleDefinitionId"))
		m := roleRef.FindStringSubmatch(def)
		if m == nil {
			c.fail(r.Line, "role assignment %s: roleDefinitionId %s must be subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.<name>)", r.Symbol, def)
			continue
		}
		scope := Text(r.Body.Fields["scope"])
		if c.f.Resource(scope) == nil {
			c.fail(r.Line, "role assignment %s: scope %q is not a resource of this deployment (a resource group or subscription would be wider than needed)", r.Symbol, scope)
			continue
		}
		if p := Text(r.Body.Get("properties.principalId")); !strings.HasSuffix(p, ".properties.principalId") || c.resourceNamed(p) == nil || c.resourceNamed(p).Type != "Microsoft.ManagedIdentity/userAssignedIdentities" {
			c.fail(r.Line, "role assignment %s: principalId %s is not the app's managed identity", r.Symbol, p)
		}
		have[assignment{m[1], scope}] = r.Line
	}
	wanted := map[assignment]bool{}
	for _, n := range c.needs() {
		a := assignment{n.role, n.scope(c)}
		wanted[a] = true
		if _, ok := have[a]; !ok {
			c.fail(0, "role %s is not assigned on %s: %s", n.role, orNone(a.scope), n.why)
		}
	}
	for a, line := range have {
		if !wanted[a] {
			c.fail(line, "role %s on %s is not needed by the code (least privilege: remove it, or scope it where it is needed)", a.role, a.scope)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "(no such resource)"
	}
	return s
}

// secretWords in an app setting name or value point at a secret. Hashes of
// keys (*_KEY_SHA256) are not secrets; Application Insights' connection
// string is checked separately.
var secretName = regexp.MustCompile(`(?i)(secret|password|pwd|connectionstring|connection_string|accountkey|sas|token)`)
var secretValue = regexp.MustCompile(`(?i)(AccountKey=|SharedAccessKey|SharedAccessSignature|listKeys\(|listConnectionStrings\(|@secure|secret)`)

// noSecrets: no key, connection string or secret in any app setting, and
// listKeys( nowhere in infra/ or azure.yaml.
func (c *checker) noSecrets() {
	for path, text := range c.r.Infra {
		if strings.Contains(text, "listKeys(") {
			c.fail(0, "%s calls listKeys(: keys must not be read or passed", path)
		}
	}
	if strings.Contains(c.r.Bicep, "listKeys(") || strings.Contains(c.r.Bicep, "listConnectionStrings(") {
		c.fail(0, "infra/main.bicep reads keys (listKeys/listConnectionStrings)")
	}
	if c.app == nil {
		return
	}
	for _, name := range c.app.Keys {
		v := c.app.Fields[name]
		line := lineOf(v, c.app.Line)
		if name == "APPLICATIONINSIGHTS_CONNECTION_STRING" {
			// It holds an instrumentation key, which only identifies the
			// resource: with DisableLocalAuth it cannot send telemetry.
			if !strings.HasSuffix(Text(v), ".properties.ConnectionString") {
				c.fail(line, "APPLICATIONINSIGHTS_CONNECTION_STRING must come from the component (<appInsights>.properties.ConnectionString)")
			}
			continue
		}
		if strings.HasSuffix(name, "_KEY_SHA256") {
			if p, ok := c.f.Params[Text(v)]; !ok || p.Type != "string" {
				c.fail(line, "app setting %s must be a parameter holding hashes", name)
			}
			continue
		}
		if secretName.MatchString(name) {
			c.fail(line, "app setting %s looks like a secret: use the managed identity, or a Key Vault reference", name)
		}
		if t := Text(v); secretValue.MatchString(t) {
			c.fail(line, "app setting %s = %s looks like a key or secret", name, t)
		}
		if p, ok := c.f.Params[Text(v)]; ok && containsDecorator(p.Decorators, "secure") {
			c.fail(line, "app setting %s is the secure parameter %s: a secret must not be an app setting", name, p.Name)
		}
	}
}

func containsDecorator(ds []string, name string) bool {
	for _, d := range ds {
		if strings.HasPrefix(d, name+"(") {
			return true
		}
	}
	return false
}

// outputs: what a support engineer and the grant script need.
func (c *checker) outputs() {
	for _, o := range []string{"API_BASE_URL", "STATE_STORAGE_ACCOUNT", "LOG_CONTAINER", "SERVICE_BUS_QUEUE", "GRAPH_GRANT_COMMAND", "MANAGED_IDENTITY_PRINCIPAL_ID", "AZURE_FUNCTION_APP_NAME"} {
		if c.f.Outputs[o] == nil {
			c.fail(0, "output %s is missing", o)
		}
	}
	for _, hook := range regexp.MustCompile(`run: *(\S+)`).FindAllStringSubmatch(c.r.Infra["azure.yaml"], -1) {
		if _, ok := c.r.Infra[strings.TrimPrefix(hook[1], "./")]; !ok {
			c.fail(0, "azure.yaml runs %s, which does not exist", hook[1])
		}
	}
}

func sortedStrings(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// goConst returns the value of the string constant name in a Go source.
func goConst(src, name string) string {
	for n, v := range goConsts(src) {
		if n == name {
			return v
		}
	}
	return ""
}

// goConstsWithPrefix returns the values of the string constants whose names
// start with prefix and an upper-case letter (TableUsers, not Tables).
func goConstsWithPrefix(src, prefix string) []string {
	var out []string
	for n, v := range goConsts(src) {
		if strings.HasPrefix(n, prefix) && len(n) > len(prefix) && n[len(prefix)] >= 'A' && n[len(prefix)] <= 'Z' {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

func goConsts(src string) map[string]string {
	out := map[string]string{}
	f, err := parser.ParseFile(token.NewFileSet(), "", src, 0)
	if err != nil {
		return out
	}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						out[n.Name], _ = strconv.Unquote(lit.Value)
					}
				}
			}
		}
	}
	return out
}

// goDefault finds orDefault(get("NAME"), "default") in a Go source.
func goDefault(src, name string) string {
	m := regexp.MustCompile(`orDefault\(get\("` + regexp.QuoteMeta(name) + `"\), "([^"]*)"\)`).FindStringSubmatch(src)
	if m == nil {
		return ""
	}
	return m[1]
}

// appRoles: infra/app-roles.json, which docs/deploy.md creates the API's app
// registration with, holds exactly the app roles the API checks.
func (c *checker) appRoles() {
	var roles []struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal([]byte(c.r.Infra["infra/app-roles.json"]), &roles); err != nil {
		c.fail(0, "infra/app-roles.json: %v", err)
		return
	}
	var got []string
	for _, r := range roles {
		got = append(got, r.Value)
	}
	sort.Strings(got)
	src := c.r.Go["internal/api/auth.go"]
	want := []string{goConst(src, "AppRoleAdmin"), goConst(src, "AppRoleSupport")}
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		c.fail(0, "infra/app-roles.json has the app roles %v, the API checks %v (internal/api AppRoleAdmin, AppRoleSupport)", got, want)
	}
}

// readOnlyMethods reports whether methods allow only GET and HEAD (and are
// given: none means every method).
func readOnlyMethods(methods []string) bool {
	if len(methods) == 0 {
		return false
	}
	for _, m := range methods {
		if m != "get" && m != "head" && m != "GET" && m != "HEAD" {
			return false
		}
	}
	return true
}
