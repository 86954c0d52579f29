package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/deploycheck"
)

// settingsSources are the four places app settings appear, read from the
// repository: the loader (by the names LoadConfig asks for), README.md's
// tables, local.settings.sample.json and the Bicep's app settings.
type settingsSources struct {
	loader []string
	// readme are the handler's settings (first table) with their default
	// column; host are the Functions host's (second table).
	readme map[string]string
	host   map[string]bool
	sample []string
	bicep  *deploycheck.Object
	bicepF *deploycheck.File
	// percent are the %NAME% settings of functions/*/function.json.
	percent map[string]bool
}

func readSettingsSources(t *testing.T, readme, bicep string) settingsSources {
	t.Helper()
	var s settingsSources
	seen := map[string]bool{}
	LoadConfig(func(name string) string {
		if !seen[name] {
			seen[name] = true
			s.loader = append(s.loader, name)
		}
		return ""
	})
	s.readme, s.host = readmeSettings(t, readme)

	var sample struct{ Values map[string]string }
	must(t, json.Unmarshal(readRepoFile(t, "local.settings.sample.json"), &sample))
	for k := range sample.Values {
		s.sample = append(s.sample, k)
	}
	sort.Strings(s.sample)

	f, err := deploycheck.Parse("infra/main.bicep", bicep)
	must(t, err)
	s.bicepF = f
	s.bicep, err = deploycheck.AppSettings(f)
	must(t, err)

	s.percent = map[string]bool{}
	fns, err := filepath.Glob(filepath.Join(repoRoot(t), "functions", "*", "function.json"))
	must(t, err)
	for _, fn := range fns {
		b, err := os.ReadFile(fn)
		must(t, err)
		for _, m := range regexp.MustCompile(`%([A-Za-z0-9_]+)%`).FindAllStringSubmatch(string(b), -1) {
			s.percent[m[1]] = true
		}
	}
	return s
}

// readmeSettings reads the tables of README.md's Configuration section:
// every setting name in a code span of a row's first cell, with the row's
// default cell (the first table) or as a host setting (the second).
func readmeSettings(t *testing.T, readme string) (handler map[string]string, host map[string]bool) {
	t.Helper()
	start := strings.Index(readme, "## Configuration")
	if start < 0 {
		t.Fatal(`README.md has no "## Configuration" section`)
	}
	section := readme[start+3:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	handler, host = map[string]string{}, map[string]bool{}
	table := 0
	code := regexp.MustCompile("`([A-Za-z][A-Za-z0-9_]*)`")
	inTable := false
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			inTable = false
			continue
		}
		if !inTable {
			inTable = true
			table++
			continue // the header row
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if strings.HasPrefix(strings.TrimSpace(cells[0]), "---") {
			continue
		}
		for _, m := range code.FindAllStringSubmatch(cells[0], -1) {
			switch table {
			case 1:
				handler[m[1]] = strings.TrimSpace(cells[1])
			case 2:
				host[m[1]] = true
			}
		}
	}
	if len(handler) == 0 || len(host) == 0 {
		t.Fatalf("README.md's Configuration section: want the handler's and the host's settings tables, found %d and %d settings", len(handler), len(host))
	}
	return handler, host
}

// problems holds the sources against each other.
func (s settingsSources) problems() []string {
	var probs []string
	inBicep := func(n string) bool { return s.bicep.Fields[n] != nil }
	readLoader := map[string]bool{}
	for _, n := range s.loader {
		readLoader[n] = true
		if _, ok := s.readme[n]; !ok && !s.host[n] {
			probs = append(probs, n+": read by handler/config.go, missing from README.md's settings table")
		}
		// Set in Azure, or the README says what happens without it.
		if d, ok := s.readme[n]; ok && !inBicep(n) && d == "" {
			probs = append(probs, n+": read by the handler, not set by infra/main.bicep, and README.md gives no default")
		}
	}
	for n := range s.readme {
		if !readLoader[n] && !s.percent[n] {
			probs = append(probs, n+": in README.md's settings table, but neither handler/config.go nor a function.json reads it")
		}
	}
	for n := range s.percent {
		if _, ok := s.readme[n]; !ok {
			probs = append(probs, n+": used as %"+n+"% in a function.json, missing from README.md")
		}
	}
	documented := func(n string) bool { _, ok := s.readme[n]; return ok || s.host[n] }
	for _, n := range s.sample {
		if !documented(n) {
			probs = append(probs, n+": in local.settings.sample.json, missing from README.md")
		}
	}
	for _, n := range s.bicep.Keys {
		if !documented(n) {
			probs = append(probs, n+": set by infra/main.bicep, missing from README.md")
		}
	}
	sort.Strings(probs)
	return probs
}

// bicepEnv is the environment the Bicep's app settings give the handler,
// with each expression replaced by a value of its kind (a parameter by its
// default), so LoadConfig can be run on it.
func (s settingsSources) bicepEnv() map[string]string {
	env := map[string]string{}
	for _, n := range s.bicep.Keys {
		v := s.bicep.Fields[n]
		if lit, ok := deploycheck.Literal(v); ok {
			env[n] = lit
			continue
		}
		text := strings.TrimSuffix(strings.TrimPrefix(deploycheck.Text(v), "string("), ")")
		switch p := s.bicepF.Params[text]; {
		case p != nil && p.Default != nil:
			lit, ok := deploycheck.Literal(p.Default)
			if !ok {
				lit = deploycheck.Text(p.Default)
			}
			env[n] = lit
		case strings.HasSuffix(text, ".properties.clientId"):
			env[n] = "00000000-0000-0000-0000-000000000001"
		case strings.HasSuffix(n, "__fullyQualifiedNamespace"):
			env[n] = "sb-entrasync-test.servicebus.windows.net"
		case strings.HasSuffix(text, "ContainerName"): // a container per variable: logContainerName -> "log"
			env[n] = strings.ToLower(strings.TrimSuffix(text, "ContainerName"))
		default:
			env[n] = "placeholder"
		}
	}
	return env
}

func readRepoFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(path)))
	must(t, err)
	return b
}

// TestSettingsAgree holds README.md's settings tables, the config loader,
// local.settings.sample.json and the Bicep's app settings against each
// other: a setting is read, documented and set (or given a documented
// default) everywhere or nowhere.
func TestSettingsAgree(t *testing.T) {
	s := readSettingsSources(t, string(readRepoFile(t, "README.md")), string(readRepoFile(t, "infra/main.bicep")))
	for _, p := range s.problems() {
		t.Error(p)
	}

	// The loader accepts what the Bicep sets, and it means the identity.
	c, err := LoadConfig(env(s.bicepEnv()))
	if err != nil {
		t.Fatalf("LoadConfig on the Bicep's app settings: %v", err)
	}
	got := []any{c.StorageAccountName != "", c.StorageIdentityClientID != "", c.StorageConnectionString,
		c.ServiceBusNamespace != "", c.ServiceBusUseManagedIdentity, c.ServiceBusIdentityClientID != "", c.ServiceBusConnection,
		c.GraphUseManagedIdentity, c.GraphIdentityClientID != "", c.GraphClientSecret, c.MaxDeliveries}
	want := []any{true, true, "", true, true, true, "", true, true, "", 10}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config from the Bicep's settings (-want +got):\n%s", diff)
	}
}

// TestSettingsAgreeFailsOnSeededMistakes shows the check catches each kind
// of drift.
func TestSettingsAgreeFailsOnSeededMistakes(t *testing.T) {
	readme, bicep := string(readRepoFile(t, "README.md")), string(readRepoFile(t, "infra/main.bicep"))
	for _, tc := range []struct {
		name, file, old, new, want string
	}{
		{"README row dropped", "README.md", "| `GRAPH_PAGE_SIZE` | Graph's choice | users per delta page asked of Graph (1 to 999) |\n", "", "GRAPH_PAGE_SIZE: read by handler/config.go, missing from README.md"},
		{"README documents a setting nobody reads", "README.md", "| `LOG_LEVEL` |", "| `LOG_VERBOSITY` | `info` | x |\n| `LOG_LEVEL` |", "LOG_VERBOSITY: in README.md's settings table, but neither"},
		{"Bicep sets an undocumented setting", "infra/main.bicep", "    LOG_LEVEL: logLevel\n", "    LOG_LEVEL: logLevel\n    GRAPH_TRUSTED_CA: 'x'\n", "GRAPH_TRUSTED_CA: set by infra/main.bicep, missing from README.md"},
		{"no default and not set", "README.md", "| `SYNC_MAX_DELIVERIES` | `10` |", "| `SYNC_MAX_DELIVERIES` | |", "SYNC_MAX_DELIVERIES: read by the handler, not set by infra/main.bicep, and README.md gives no default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, b := readme, bicep
			target := &r
			if tc.file == "infra/main.bicep" {
				target = &b
			}
			if !strings.Contains(*target, tc.old) {
				t.Fatalf("seeded mistake: %q is not in %s", tc.old, tc.file)
			}
			*target = strings.Replace(*target, tc.old, tc.new, 1)
			if tc.name == "no default and not set" {
				b = strings.Replace(b, "    SYNC_MAX_DELIVERIES: string(maxDeliveries)\n", "", 1)
			}
			probs := readSettingsSources(t, r, b).problems()
			for _, p := range probs {
				if strings.Contains(p, tc.want) {
					return
				}
			}
			t.Errorf("no problem mentions %q; got %q", tc.want, probs)
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..")
}
