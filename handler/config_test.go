package main

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/dirsync"
	"github.com/entrasync/entrasync/internal/graph"
	"github.com/entrasync/entrasync/internal/servicebus"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func validEnv() map[string]string {
	sum := sha256.Sum256([]byte("admin-key"))
	return map[string]string{
		"STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=secret-account-key;TableEndpoint=http://127.0.0.1:1/devstoreaccount1;",
		"ServiceBusConnection":      "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=secret-sas",
		"GRAPH_TENANT_ID":           "t", "GRAPH_CLIENT_ID": "c", "GRAPH_CLIENT_SECRET": "graph-secret",
		"ADMIN_KEY_SHA256": hex.EncodeToString(sum[:]),
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(env(validEnv()))
	if err != nil {
		t.Fatal(err)
	}
	got := []any{c.TablePrefix, c.LogContainer, c.MaxDeliveries, c.LogLevel, len(c.AdminKeyHashes), c.TrustEasyAuth}
	want := []any{"entrasync", "sync-logs", 10, slog.LevelInfo, 1, false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestLoadConfigFallsBackToAzureWebJobsStorage(t *testing.T) {
	e := validEnv()
	delete(e, "STORAGE_CONNECTION_STRING")
	e["AzureWebJobsStorage"] = "UseThis"
	c, err := LoadConfig(env(e))
	if err != nil || c.StorageConnectionString != "UseThis" {
		t.Errorf("got %q, %v", c.StorageConnectionString, err)
	}
}

func TestLoadConfigErrorsNameTheSetting(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  map[string]string
		setting string
	}{
		{"no storage", map[string]string{"STORAGE_CONNECTION_STRING": ""}, "STORAGE_CONNECTION_STRING"},
		{"both storage kinds", map[string]string{"STORAGE_ACCOUNT_NAME": "acct"}, "STORAGE_ACCOUNT_NAME"},
		{"no queue", map[string]string{"ServiceBusConnection": ""}, "ServiceBusConnection"},
		{"bad deliveries", map[string]string{"SYNC_MAX_DELIVERIES": "lots"}, "SYNC_MAX_DELIVERIES"},
		{"bad bool", map[string]string{"GRAPH_USE_MANAGED_IDENTITY": "sometimes"}, "GRAPH_USE_MANAGED_IDENTITY"},
		{"key, not hash", map[string]string{"ADMIN_KEY_SHA256": "my-plain-key"}, "ADMIN_KEY_SHA256"},
		{"bad support hash", map[string]string{"SUPPORT_KEY_SHA256": "abc"}, "SUPPORT_KEY_SHA256"},
		{"bad level", map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{"missing CA file", map[string]string{"GRAPH_TRUSTED_CA_FILE": "/nonexistent/ca.pem"}, "GRAPH_TRUSTED_CA_FILE"},
		{"page size", map[string]string{"GRAPH_PAGE_SIZE": "5000"}, "GRAPH_PAGE_SIZE"},
		{"in-call wait", map[string]string{"GRAPH_MAX_INCALL_WAIT": "10"}, "GRAPH_MAX_INCALL_WAIT"},
		{"request timeout", map[string]string{"GRAPH_REQUEST_TIMEOUT": "-1s"}, "GRAPH_REQUEST_TIMEOUT"},
		{"queue credential", map[string]string{"ServiceBusConnection__credential": "key"}, "ServiceBusConnection__credential"},
		{"queue identity without namespace", map[string]string{"ServiceBusConnection__clientId": "c"}, "ServiceBusConnection__fullyQualifiedNamespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := validEnv()
			for k, v := range tc.change {
				e[k] = v
			}
			_, err := LoadConfig(env(e))
			if err == nil || !strings.Contains(err.Error(), "app setting "+tc.setting+":") {
				t.Fatalf("error %v does not name %s", err, tc.setting)
			}
			for _, secret := range []string{"secret-account-key", "secret-sas", "graph-secret", "my-plain-key"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks a secret: %v", err)
				}
			}
		})
	}
}

func TestLoadConfigReportsEveryErrorAtOnce(t *testing.T) {
	_, err := LoadConfig(env(map[string]string{"LOG_LEVEL": "loud"}))
	for _, s := range []string{"STORAGE_CONNECTION_STRING", "ServiceBusConnection", "LOG_LEVEL"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error %v does not mention %s", err, s)
		}
	}
}

func TestLoadConfigReadsGraphTuningAndQueueIdentity(t *testing.T) {
	e := validEnv()
	delete(e, "ServiceBusConnection")
	e["ServiceBusConnection__fullyQualifiedNamespace"] = "ns.servicebus.windows.net"
	e["ServiceBusConnection__credential"] = "managedidentity"
	e["ServiceBusConnection__clientId"] = "client-1"
	e["GRAPH_PAGE_SIZE"] = "250"
	e["GRAPH_MAX_INCALL_WAIT"] = "30s"
	e["GRAPH_REQUEST_TIMEOUT"] = "2m"
	c, err := LoadConfig(env(e))
	if err != nil {
		t.Fatal(err)
	}
	got := []any{c.ServiceBusUseManagedIdentity, c.ServiceBusIdentityClientID, c.GraphPageSize, c.GraphMaxInCallWait, c.GraphRequestTimeout}
	want := []any{true, "client-1", 250, 30 * time.Second, 2 * time.Minute}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

// TestAdapterErrorsNameTheSettings: the adapters name their Config fields,
// and the handler turns them into the app settings to fix.
func TestAdapterErrorsNameTheSettings(t *testing.T) {
	_, err := graph.New(graph.Config{ClientSecret: "s3cret", ManagedIdentityClientID: "x"})
	got := graphSettings.name(err).Error()
	for _, want := range []string{"GRAPH_TENANT_ID is required", "GRAPH_CLIENT_ID is required", "GRAPH_MANAGED_IDENTITY_CLIENT_ID is set but GRAPH_USE_MANAGED_IDENTITY"} {
		if !strings.Contains(got, want) {
			t.Errorf("graph error %q does not say %q", got, want)
		}
	}
	if strings.Contains(got, "Config.") || strings.Contains(got, "s3cret") {
		t.Errorf("graph error %q names a field or leaks the secret", got)
	}
	_, err = servicebus.New(servicebus.Config{Namespace: "https://ns/path"})
	named := serviceBusSettings.name(err)
	if msg := named.Error(); !strings.Contains(msg, "ServiceBusConnection__fullyQualifiedNamespace") || strings.Contains(msg, "Config.") {
		t.Errorf("service bus error %q does not name the setting", msg)
	}
	if dirsync.ErrorCode(named) != dirsync.EINVALID {
		t.Errorf("code %q lost in the translation", dirsync.ErrorCode(named))
	}
}

func TestPhotoContainerSetting(t *testing.T) {
	base := map[string]string{"STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true", "ServiceBusConnection": "Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=v"}
	for _, tc := range []struct{ value, want string }{
		{"", ""}, {"user-photos", ""},
		{"Photos", "PHOTO_CONTAINER: \"Photos\" is not a valid blob container name"},
		{"sync-logs", "is also LOG_CONTAINER"},
	} {
		e := map[string]string{}
		for k, v := range base {
			e[k] = v
		}
		e["PHOTO_CONTAINER"] = tc.value
		c, err := LoadConfig(env(e))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if tc.want == "" && err != nil && strings.Contains(got, "PHOTO_CONTAINER") || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("PHOTO_CONTAINER=%q: %q, want %q", tc.value, got, tc.want)
		}
		if tc.value == "" && err == nil && c.PhotoContainer != "photos" {
			t.Errorf("default PHOTO_CONTAINER = %q, want photos", c.PhotoContainer)
		}
	}
}
