package devhost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Trigger kinds the devhost runs.
const (
	KindHTTP  = "httpTrigger"
	KindTimer = "timerTrigger"
	KindQueue = "serviceBusTrigger"
)

// Function is one function of the app as the devhost understood it.
type Function struct {
	Name    string
	Kind    string // KindHTTP, KindTimer or KindQueue
	Binding string // the trigger binding's name ("req", "timer", "message")
	Dir     string // the folder holding function.json

	// HTTP triggers.
	AuthLevel string   // "anonymous", "function" or "admin"
	Methods   []string // upper case; empty means every method
	Route     string   // the template after the route prefix
	// Proxied is true when requests reach the handler as the original
	// request (enableProxyingHttpRequest and an HTTP-only function).
	Proxied bool

	// Timer triggers.
	Schedule     string
	RunOnStartup bool

	// Service Bus triggers.
	QueueName  string
	Connection string
	DataType   string

	outputs []binding
}

// binding is one entry of function.json "bindings". Field names match
// case-insensitively, as the Functions host reads them.
type binding struct {
	Name              string   `json:"name"`
	Type              string   `json:"type"`
	Direction         string   `json:"direction"`
	AuthLevel         string   `json:"authLevel"`
	Methods           []string `json:"methods"`
	Route             string   `json:"route"`
	Schedule          string   `json:"schedule"`
	RunOnStartup      bool     `json:"runOnStartup"`
	QueueName         string   `json:"queueName"`
	TopicName         string   `json:"topicName"`
	SubscriptionName  string   `json:"subscriptionName"`
	Connection        string   `json:"connection"`
	DataType          string   `json:"dataType"`
	Cardinality       string   `json:"cardinality"`
	IsSessionsEnabled bool     `json:"isSessionsEnabled"`
}

// appConfig is host.json, local settings and function.json files, resolved.
type appConfig struct {
	dir             string
	executable      string
	args            []string
	workingDir      string
	proxying        bool
	routePrefix     string
	functionTimeout time.Duration // 0: none
	maxConcurrent   int
	lockRenewal     time.Duration
	values          map[string]string // local.settings.json Values merged with Options.Settings
	settingsFile    string            // which file Values came from ("" if none)
	functions       []*Function
	warnings        []string
}

type hostJSON struct {
	Version         string `json:"version"`
	FunctionTimeout string `json:"functionTimeout"`
	Extensions      struct {
		HTTP struct {
			RoutePrefix *string `json:"routePrefix"`
		} `json:"http"`
		ServiceBus struct {
			MaxConcurrentCalls         int    `json:"maxConcurrentCalls"`
			MaxAutoLockRenewalDuration string `json:"maxAutoLockRenewalDuration"`
			AutoCompleteMessages       *bool  `json:"autoCompleteMessages"`
			// Extension 4.x and older nest the settings here.
			MessageHandlerOptions struct {
				MaxConcurrentCalls   int    `json:"maxConcurrentCalls"`
				MaxAutoRenewDuration string `json:"maxAutoRenewDuration"`
				AutoComplete         *bool  `json:"autoComplete"`
			} `json:"messageHandlerOptions"`
		} `json:"serviceBus"`
	} `json:"extensions"`
	CustomHandler *struct {
		Description struct {
			DefaultExecutablePath string   `json:"defaultExecutablePath"`
			WorkingDirectory      string   `json:"workingDirectory"`
			Arguments             []string `json:"arguments"`
		} `json:"description"`
		EnableProxyingHttpRequest   bool `json:"enableProxyingHttpRequest"`
		EnableForwardingHttpRequest bool `json:"enableForwardingHttpRequest"`
	} `json:"customHandler"`
}

// loadConfig reads the app in dir. overrides are Options.Settings; env looks
// up process environment variables (os.LookupEnv outside tests).
func loadConfig(dir, executable string, overrides map[string]string, env func(string) (string, bool)) (*appConfig, error) {
	cfg := &appConfig{dir: dir, values: map[string]string{}}

	hostPath := filepath.Join(dir, "host.json")
	raw, err := os.ReadFile(hostPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s not found: the app directory must hold host.json (set the app directory to the repository root or the unpacked deployment)", hostPath)
		}
		return nil, fmt.Errorf("reading host.json: %w", err)
	}
	var hj hostJSON
	if err := json.Unmarshal(raw, &hj); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %v", hostPath, err)
	}
	if hj.Version != "2.0" {
		return nil, fmt.Errorf("%s: version is %q; Functions v4 reads only host.json \"version\": \"2.0\"", hostPath, hj.Version)
	}
	if hj.CustomHandler == nil {
		return nil, fmt.Errorf("%s has no customHandler section: the devhost runs custom handler apps only", hostPath)
	}
	desc := hj.CustomHandler.Description
	cfg.proxying = hj.CustomHandler.EnableProxyingHttpRequest || hj.CustomHandler.EnableForwardingHttpRequest
	cfg.args = desc.Arguments
	cfg.workingDir = dir
	if desc.WorkingDirectory != "" {
		cfg.workingDir = desc.WorkingDirectory
		if !filepath.IsAbs(cfg.workingDir) {
			cfg.workingDir = filepath.Join(dir, cfg.workingDir)
		}
	}
	switch {
	case executable != "":
		cfg.executable = executable
	case desc.DefaultExecutablePath == "":
		return nil, fmt.Errorf("%s: customHandler.description.defaultExecutablePath is empty: name the handler executable", hostPath)
	default:
		cfg.executable = desc.DefaultExecutablePath
		// Like the host: a relative path is taken from the working directory
		// when the file exists there; otherwise it is a program on PATH.
		if !filepath.IsAbs(cfg.executable) {
			if p := filepath.Join(cfg.workingDir, cfg.executable); fileExists(p) {
				cfg.executable = p
			}
		}
	}

	cfg.routePrefix = "api"
	if p := hj.Extensions.HTTP.RoutePrefix; p != nil {
		cfg.routePrefix = strings.Trim(*p, "/")
	}
	if hj.FunctionTimeout != "" && hj.FunctionTimeout != "-1" {
		if cfg.functionTimeout, err = parseTimeSpan(hj.FunctionTimeout); err != nil {
			return nil, fmt.Errorf("%s: functionTimeout: %v", hostPath, err)
		}
	}
	sb := hj.Extensions.ServiceBus
	cfg.maxConcurrent = sb.MaxConcurrentCalls
	if cfg.maxConcurrent == 0 {
		cfg.maxConcurrent = sb.MessageHandlerOptions.MaxConcurrentCalls
	}
	if cfg.maxConcurrent == 0 {
		cfg.maxConcurrent = 16 * runtime.NumCPU() // the extension's default
	}
	if cfg.maxConcurrent < 0 {
		return nil, fmt.Errorf("%s: extensions.serviceBus.maxConcurrentCalls must be at least 1", hostPath)
	}
	cfg.lockRenewal = 5 * time.Minute
	for _, s := range []string{sb.MaxAutoLockRenewalDuration, sb.MessageHandlerOptions.MaxAutoRenewDuration} {
		if s == "" {
			continue
		}
		if cfg.lockRenewal, err = parseTimeSpan(s); err != nil {
			return nil, fmt.Errorf("%s: extensions.serviceBus.maxAutoLockRenewalDuration: %v", hostPath, err)
		}
		break
	}
	for _, ac := range []*bool{sb.AutoCompleteMessages, sb.MessageHandlerOptions.AutoComplete} {
		if ac != nil && !*ac {
			cfg.warnings = append(cfg.warnings, "host.json sets autoCompleteMessages false; a custom handler cannot settle messages itself, so the devhost completes them on success as if it were true")
		}
	}

	if err := cfg.loadSettings(overrides); err != nil {
		return nil, err
	}
	lookup := func(name string) (string, bool) {
		if v, ok := cfg.values[name]; ok {
			return v, true
		}
		return env(name)
	}
	if err := cfg.loadFunctions(lookup); err != nil {
		return nil, err
	}
	return cfg, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// loadSettings reads "Values" of local.settings.json, or of
// local.settings.sample.json when there is none, then applies overrides.
func (cfg *appConfig) loadSettings(overrides map[string]string) error {
	for _, name := range []string{"local.settings.json", "local.settings.sample.json"} {
		p := filepath.Join(cfg.dir, name)
		raw, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		var ls struct {
			IsEncrypted bool                       `json:"IsEncrypted"`
			Values      map[string]json.RawMessage `json:"Values"`
		}
		if err := json.Unmarshal(raw, &ls); err != nil {
			return fmt.Errorf("%s is not valid JSON: %v", p, err)
		}
		if ls.IsEncrypted {
			return fmt.Errorf("%s is encrypted (IsEncrypted true); the devhost reads plain values only: decrypt it with `func settings decrypt` or set IsEncrypted to false", p)
		}
		for k, v := range ls.Values {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				// Core Tools accepts numbers and booleans; keep their text.
				s = string(bytes.TrimSpace(v))
			}
			cfg.values[k] = s
		}
		cfg.settingsFile = p
		break
	}
	for k, v := range overrides {
		cfg.values[k] = v
	}
	if rt := cfg.values["FUNCTIONS_WORKER_RUNTIME"]; rt != "" && !strings.EqualFold(rt, "custom") {
		cfg.warnings = append(cfg.warnings, fmt.Sprintf("FUNCTIONS_WORKER_RUNTIME is %q; a custom handler app needs \"custom\"", rt))
	}
	return nil
}

// loadFunctions reads functions/<Name>/function.json (the repository layout)
// and <Name>/function.json beside host.json (the deployment layout).
func (cfg *appConfig) loadFunctions(lookup func(string) (string, bool)) error {
	seen := map[string]string{}
	for _, pattern := range []string{filepath.Join(cfg.dir, "functions", "*", "function.json"), filepath.Join(cfg.dir, "*", "function.json")} {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return err
		}
		slices.Sort(matches)
		for _, p := range matches {
			fdir := filepath.Dir(p)
			name := filepath.Base(fdir)
			if prev, dup := seen[strings.ToLower(name)]; dup {
				return fmt.Errorf("function %s is defined twice: %s and %s; keep one", name, prev, p)
			}
			seen[strings.ToLower(name)] = p
			fn, err := readFunction(p, name, lookup)
			if err != nil {
				return err
			}
			if fn == nil {
				continue
			}
			if fn.Kind == KindHTTP {
				fn.Proxied = cfg.proxying && fn.httpOnly()
			}
			cfg.functions = append(cfg.functions, fn)
		}
	}
	if len(cfg.functions) == 0 {
		cfg.warnings = append(cfg.warnings, fmt.Sprintf("no functions found in %s (looked for functions/<Name>/function.json and <Name>/function.json)", cfg.dir))
	}
	return nil
}

var validFunctionName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,127}$`)

func readFunction(path, name string, lookup func(string) (string, bool)) (*Function, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var fj struct {
		Disabled json.RawMessage `json:"disabled"`
		Bindings []binding       `json:"bindings"`
	}
	if err := json.Unmarshal(raw, &fj); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %v", path, err)
	}
	if !validFunctionName.MatchString(name) {
		return nil, fmt.Errorf("%s: %q is not a valid function name (letters, digits, - and _, starting with a letter)", path, name)
	}
	// Disabled like the host: "disabled": true in function.json or the app
	// setting AzureWebJobs.<Name>.Disabled.
	if d := strings.Trim(string(bytes.TrimSpace(fj.Disabled)), `"`); strings.EqualFold(d, "true") {
		return nil, nil
	}
	if v, ok := lookup("AzureWebJobs." + name + ".Disabled"); ok && strings.EqualFold(v, "true") {
		return nil, nil
	}
	fn := &Function{Name: name, Dir: filepath.Dir(path)}
	var trigger *binding
	names := map[string]bool{}
	for i := range fj.Bindings {
		b := &fj.Bindings[i]
		where := fmt.Sprintf("%s: bindings[%d]", path, i)
		if b.Name == "" {
			return nil, fmt.Errorf("%s has no name", where)
		}
		if names[strings.ToLower(b.Name)] {
			return nil, fmt.Errorf("%s: binding name %q is used twice", where, b.Name)
		}
		names[strings.ToLower(b.Name)] = true
		switch strings.ToLower(b.Direction) {
		case "in", "inout":
			if strings.HasSuffix(strings.ToLower(b.Type), "trigger") {
				if trigger != nil {
					return nil, fmt.Errorf("%s: a function has exactly one trigger, and %s already has %q", where, name, trigger.Name)
				}
				trigger = b
			} else {
				return nil, fmt.Errorf("%s: input binding type %q is not supported by the devhost (it runs triggers and outputs only)", where, b.Type)
			}
		case "out":
			fn.outputs = append(fn.outputs, *b)
		default:
			return nil, fmt.Errorf("%s: direction %q must be \"in\" or \"out\"", where, b.Direction)
		}
	}
	if trigger == nil {
		return nil, fmt.Errorf("%s has no trigger binding", path)
	}
	fn.Binding = trigger.Name
	resolve := func(field, v string) (string, error) {
		out, err := resolveSettings(v, lookup)
		if err != nil {
			return "", fmt.Errorf("%s: binding %q: %s: %v", path, trigger.Name, field, err)
		}
		return out, nil
	}
	switch strings.ToLower(trigger.Type) {
	case strings.ToLower(KindHTTP):
		fn.Kind = KindHTTP
		fn.AuthLevel = strings.ToLower(trigger.AuthLevel)
		if fn.AuthLevel == "" {
			fn.AuthLevel = "function" // the host's default
		}
		switch fn.AuthLevel {
		case "anonymous", "function", "admin":
		default:
			return nil, fmt.Errorf("%s: authLevel %q must be anonymous, function or admin", path, trigger.AuthLevel)
		}
		for _, m := range trigger.Methods {
			fn.Methods = append(fn.Methods, strings.ToUpper(m))
		}
		if fn.Route, err = resolve("route", trigger.Route); err != nil {
			return nil, err
		}
		fn.Route = strings.Trim(strings.TrimPrefix(fn.Route, "~"), "/")
		if fn.Route == "" {
			fn.Route = name // the host's default route is the function name
		}
	case strings.ToLower(KindTimer):
		fn.Kind = KindTimer
		if fn.Schedule, err = resolve("schedule", trigger.Schedule); err != nil {
			return nil, err
		}
		if fn.Schedule == "" {
			return nil, fmt.Errorf("%s: timer trigger %q has no schedule", path, trigger.Name)
		}
		fn.RunOnStartup = trigger.RunOnStartup
	case strings.ToLower(KindQueue):
		fn.Kind = KindQueue
		if trigger.TopicName != "" || trigger.SubscriptionName != "" {
			return nil, fmt.Errorf("%s: topic subscriptions are not supported by the devhost; use queueName", path)
		}
		if trigger.IsSessionsEnabled {
			return nil, fmt.Errorf("%s: session-enabled queues are not supported by the devhost", path)
		}
		if strings.EqualFold(trigger.Cardinality, "many") {
			return nil, fmt.Errorf("%s: cardinality \"many\" (batches) is not supported by the devhost", path)
		}
		if fn.QueueName, err = resolve("queueName", trigger.QueueName); err != nil {
			return nil, err
		}
		if fn.QueueName == "" {
			return nil, fmt.Errorf("%s: Service Bus trigger %q has no queueName", path, trigger.Name)
		}
		if fn.Connection, err = resolve("connection", trigger.Connection); err != nil {
			return nil, err
		}
		fn.DataType = strings.ToLower(trigger.DataType)
	default:
		return nil, fmt.Errorf("%s: trigger type %q is not supported by the devhost (it runs httpTrigger, timerTrigger and serviceBusTrigger)", path, trigger.Type)
	}
	return fn, nil
}

// httpOnly reports whether the function has an HTTP trigger and a single
// "http" output: only those are proxied under enableProxyingHttpRequest.
func (fn *Function) httpOnly() bool {
	return fn.Kind == KindHTTP && len(fn.outputs) == 1 && strings.EqualFold(fn.outputs[0].Type, "http")
}

// httpOutput is the name of the function's "http" output binding, or "".
func (fn *Function) httpOutput() string {
	for _, o := range fn.outputs {
		if strings.EqualFold(o.Type, "http") {
			return o.Name
		}
	}
	return ""
}

var settingRef = regexp.MustCompile(`%([^%]+)%`)

// resolveSettings replaces %NAME% with the app setting NAME, like the host
// resolves binding expressions.
func resolveSettings(v string, lookup func(string) (string, bool)) (string, error) {
	var missing []string
	out := settingRef.ReplaceAllStringFunc(v, func(ref string) string {
		name := strings.Trim(ref, "%")
		val, ok := lookup(name)
		if !ok {
			missing = append(missing, name)
			return ref
		}
		return val
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%s refers to app setting %s, which is not defined: add it to Values in local.settings.json or to the environment", v, strings.Join(missing, ", "))
	}
	return out, nil
}

// parseTimeSpan reads a .NET TimeSpan as host.json writes one:
// "hh:mm:ss", "hh:mm:ss.fff" or "d.hh:mm:ss".
func parseTimeSpan(s string) (time.Duration, error) {
	orig := s
	bad := fmt.Errorf("%q is not a time span; write hh:mm:ss, e.g. 00:05:00", orig)
	var days int64
	if i := strings.Index(s, "."); i >= 0 && i < strings.Index(s, ":") {
		d, err := strconv.ParseInt(s[:i], 10, 32)
		if err != nil || d < 0 {
			return 0, bad
		}
		days, s = d, s[i+1:]
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, bad
	}
	h, err1 := strconv.ParseInt(parts[0], 10, 32)
	m, err2 := strconv.ParseInt(parts[1], 10, 32)
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec >= 60 {
		return 0, bad
	}
	return time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec*float64(time.Second)), nil
}
