package deploycheck

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func loadRepo(t *testing.T) *Repo {
	t.Helper()
	r, err := Load(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func loadSchemas(t *testing.T) *Schemas {
	t.Helper()
	s, err := LoadSchemas(filepath.Join("testdata", "types.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRepositoryDeployment runs every check on the repository's own infra/
// and functions/: the deployment matches the code.
func TestRepositoryDeployment(t *testing.T) {
	r := loadRepo(t)
	probs, err := Check(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Error(p)
	}
	f, err := Parse("infra/main.bicep", r.Bicep)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range CheckSchemas(f, loadSchemas(t)) {
		t.Error(p)
	}
	// The parser saw the whole file: a resource it dropped would be a
	// check skipped in silence.
	if got, want := len(f.Resources), strings.Count(r.Bicep, "\nresource "); got != want {
		t.Errorf("parsed %d resources, the file declares %d", got, want)
	}
}

// mutate returns a copy of r with old replaced by new in the Bicep (or in a
// function.json when file names one), failing if old is not there.
func mutate(t *testing.T, r *Repo, file, old, new string) *Repo {
	t.Helper()
	c := *r
	c.Functions = map[string][]byte{}
	for k, v := range r.Functions {
		c.Functions[k] = v
	}
	c.Infra = map[string]string{}
	for k, v := range r.Infra {
		c.Infra[k] = v
	}
	replace := func(s string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("seeded mistake: %q is not in %s", old, orBicep(file))
		}
		return strings.Replace(s, old, new, 1)
	}
	switch {
	case file == "":
		c.Bicep = replace(c.Bicep)
	case strings.HasPrefix(file, "functions/"):
		name := strings.Split(file, "/")[1]
		c.Functions[name] = []byte(replace(string(c.Functions[name])))
	default:
		c.Infra[file] = replace(c.Infra[file])
	}
	return &c
}

func orBicep(file string) string {
	if file == "" {
		return "infra/main.bicep"
	}
	return file
}

// TestSeededMistakes shows that each check fails: one mistake at a time is
// seeded into a copy of the repository, and the problems must name it.
func TestSeededMistakes(t *testing.T) {
	r := loadRepo(t)
	for _, tc := range []struct {
		name, file, old, new string
		want                 string // in one problem
	}{
		{"queue renamed in Bicep", "", "var queueName = 'sync-work'", "var queueName = 'sync-works'", `no Service Bus queue "sync-work"`},
		{"queue renamed in function.json", "functions/SyncWorker/function.json", `"sync-work"`, `"sync-jobs"`, `handler sends to "sync-work"`},
		{"connection renamed", "functions/SyncWorker/function.json", `"connection": "ServiceBusConnection"`, `"connection": "WorkQueue"`, "WorkQueue__fullyQualifiedNamespace is missing"},
		{"timer setting not set", "", "    SYNC_TIMER_SCHEDULE: syncTimerSchedule\n", "", "%SYNC_TIMER_SCHEDULE%"},
		{"Service Bus client id dropped", "", "    ServiceBusConnection__clientId: identity.properties.clientId\n", "", "ServiceBusConnection__clientId is missing"},
		{"a connection string", "", "    LOG_LEVEL: logLevel\n", "    LOG_LEVEL: logLevel\n    ServiceBusConnection: 'Endpoint=sb://x/;SharedAccessKey=abc'\n", "ServiceBusConnection is a connection string"},
		{"a secret setting", "", "    LOG_LEVEL: logLevel\n", "    LOG_LEVEL: logLevel\n    GRAPH_CLIENT_SECRET: 'hunter2'\n", "GRAPH_CLIENT_SECRET looks like a secret"},
		{"listKeys", "", "    LOG_LEVEL: logLevel\n", "    LOG_LEVEL: logLevel\n    STATE_KEY: stateStorage.listKeys().keys[0].value\n", "listKeys"},
		{"listKeys in a hook", "infra/hooks/deploy-package.sh", "set -eu", "set -eu\naz storage account keys list # listKeys(", "listKeys"},
		{"log container differs from the code", "", "var logContainerName = 'sync-logs'", "var logContainerName = 'run-logs'", `LOG_CONTAINER is "run-logs", the code's default "sync-logs"`},
		{"lifecycle days not a parameter", "", "daysAfterModificationGreaterThan: logRetentionDays", "daysAfterModificationGreaterThan: 30", "must be a parameter"},
		{"lifecycle rule skips append blobs", "", "                'appendBlob'\n", "", "run logs are append blobs"},
		{"no Easy Auth", "", "  name: 'authsettingsV2'", "  name: 'authsettings'", "want one App Service Authentication config"},
		{"a table missing", "", "  'Audit'\n", "", "is not the tables of internal/dirsync"},
		{"shared keys allowed", "", "allowSharedKeyAccess: false", "allowSharedKeyAccess: true", "allowSharedKeyAccess must be false"},
		{"SAS on Service Bus", "", "disableLocalAuth: true", "disableLocalAuth: false", "disableLocalAuth must be true"},
		{"no duplicate detection", "", "requiresDuplicateDetection: true", "requiresDuplicateDetection: false", "requiresDuplicateDetection must be true"},
		{"deliveries out of step", "", "SYNC_MAX_DELIVERIES: string(maxDeliveries)", "SYNC_MAX_DELIVERIES: '5'", "must be the same number"},
		{"lock too long", "", "lockDuration: 'PT1M'", "lockDuration: 'PT10M'", "lockDuration"},
		{"a needed role missing", "", "scope: workQueue\n  properties: {\n    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataSender)",
			"scope: workQueue\n  properties: {\n    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataReceiver)", "role serviceBusDataSender is not assigned on workQueue"},
		{"a broader role", "", "  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'\n", "  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'\n  contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c'\n", "role contributor"},
		{"a wrong role id", "", "serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'", "serviceBusDataSender: '090c5cfd-751d-490a-894a-3ce6f1109419'", "that built-in role's id is 69a216fc"},
		{"a role on the resource group", "", "  scope: stateStorage\n  properties: {\n    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)",
			"  scope: resourceGroup()\n  properties: {\n    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)", "wider than needed"},
		{"a role on the wrong account", "", "  scope: stateStorage\n  properties: {\n    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)",
			"  scope: hostStorage\n  properties: {\n    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)", "storageBlobDataContributor on hostStorage is not needed"},
		{"Api back to authLevel function", "functions/Api/function.json", `"authLevel": "anonymous"`, `"authLevel": "function"`, "it must be anonymous"},
		{"Easy Auth refusing anonymous", "", "unauthenticatedClientAction: 'AllowAnonymous'", "unauthenticatedClientAction: 'Return401'", "AllowAnonymous"},
		{"not a custom handler", "", "name: 'custom'", "name: 'node'", "'custom'"},
		{"an output missing", "", "output API_BASE_URL string", "output API_URL string", "output API_BASE_URL is missing"},
		{"an app role renamed", "infra/app-roles.json", `"value": "EntraSync.Support"`, `"value": "EntraSync.Reader"`, "the API checks"},
		{"a hook missing", "azure.yaml", "./infra/hooks/postprovision.sh", "./infra/hooks/post-provision.sh", "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probs, err := Check(mutate(t, r, tc.file, tc.old, tc.new))
			if err != nil {
				t.Fatal(err)
			}
			var all []string
			for _, p := range probs {
				if strings.Contains(p.String(), tc.want) {
					return
				}
				all = append(all, p.String())
			}
			t.Errorf("no problem mentions %q; got:\n%s", tc.want, strings.Join(all, "\n"))
		})
	}
}

// TestSeededSchemaMistakes shows that the type definitions catch a
// misspelled property, a read-only one, a wrong enumeration value and an API
// version that does not exist.
func TestSeededSchemaMistakes(t *testing.T) {
	r, s := loadRepo(t), loadSchemas(t)
	for _, tc := range []struct{ name, old, new, want string }{
		{"misspelled property", "maxDeliveryCount: maxDeliveries", "maxDeliveryCnt: maxDeliveries", "properties.maxDeliveryCnt is not a property"},
		{"misspelled nested property", "userAssignedIdentityResourceId: identity.id", "userAssignedIdentityId: identity.id", "authentication.userAssignedIdentityId is not a property"},
		{"read-only property", "    retentionInDays: 30\n", "    retentionInDays: 30\n    customerId: 'x'\n", "properties.customerId is not a property"},
		{"wrong enum value", "publicAccess: 'None'", "publicAccess: 'Private'", `publicAccess = "Private" is not one of`},
		{"unknown API version", "'Microsoft.ServiceBus/namespaces@2024-01-01'", "'Microsoft.ServiceBus/namespaces@2099-01-01'", "Microsoft.ServiceBus/namespaces@2099-01-01 is not among the vendored"},
		{"misspelled type", "'Microsoft.Insights/components@2020-02-02'", "'Microsoft.Insights/component@2020-02-02'", "Microsoft.Insights/component@2020-02-02 is not among"},
		{"misspelled Easy Auth property", "unauthenticatedClientAction: 'AllowAnonymous'", "unauthenticatedAction: 'AllowAnonymous'", "globalValidation.unauthenticatedAction is not a property"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("infra/main.bicep", mutate(t, r, "", tc.old, tc.new).Bicep)
			if err != nil {
				t.Fatal(err)
			}
			var all []string
			for _, p := range CheckSchemas(f, s) {
				if strings.Contains(p.String(), tc.want) {
					return
				}
				all = append(all, p.String())
			}
			t.Errorf("no problem mentions %q; got:\n%s", tc.want, strings.Join(all, "\n"))
		})
	}
}

func TestParse(t *testing.T) {
	src := `targetScope = 'resourceGroup'
@description('a, b')
param p int = 3
var v = {
  'a-b': 'x' // comment
  c: [
    1
    'two'
  ]
  d: union(a, {
    e: 1
  })
}
/* block
comment */
resource r 'Microsoft.X/ys@2020-01-01' = if (!empty(p)) {
  name: 'n${p}'
  properties: { k: true, l: 'm' }
}
resource s 'Microsoft.X/zs@2020-01-01' = [for i in v.c: {
  name: i
}]
output o string = r.name
`
	f, err := Parse("t.bicep", src)
	if err != nil {
		t.Fatal(err)
	}
	type res struct{ Sym, Type, Version, Cond, Loop string }
	var got []res
	for _, r := range f.Resources {
		got = append(got, res{r.Symbol, r.Type, r.APIVersion, r.Condition, r.Loop})
	}
	want := []res{{"r", "Microsoft.X/ys", "2020-01-01", "!empty(p)", ""}, {"s", "Microsoft.X/zs", "2020-01-01", "", "i in v.c"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resources (-want +got):\n%s", diff)
	}
	v := f.Vars["v"].(*Object)
	if diff := cmp.Diff([]string{"a-b", "c", "d"}, v.Keys); diff != "" {
		t.Errorf("var keys (-want +got):\n%s", diff)
	}
	if s, _ := Literal(v.Get("a-b")); s != "x" {
		t.Errorf("a-b = %q", s)
	}
	if n := len(v.Fields["c"].(*Array).Items); n != 2 {
		t.Errorf("c has %d items", n)
	}
	if l, _ := Literal(f.Resources[0].Body.Get("properties.l")); l != "m" || Text(f.Resources[0].Body.Get("properties.k")) != "true" {
		t.Errorf("one-line object: %#v", f.Resources[0].Body.Get("properties"))
	}
	if f.TargetScope != "resourceGroup" || f.Params["p"].Type != "int" || Text(f.Outputs["o"]) != "r.name" {
		t.Errorf("declarations: %q %#v %#v", f.TargetScope, f.Params["p"], f.Outputs["o"])
	}
	if _, err := Parse("bad.bicep", "resource r 'Microsoft.X/ys@1' = {\n  name: 'n'\n"); err == nil {
		t.Error("an unclosed resource parsed")
	}
	if _, err := Parse("bad.bicep", "module m './m.bicep' = {}\n"); err == nil || !strings.Contains(err.Error(), "bad.bicep:1") {
		t.Errorf("a module (not understood) gave %v, want an error naming the line", err)
	}
}
