// Package azure holds what the Azure SDK adapters share: credentials, retry
// options, connection strings and the translation of transport and credential
// failures into domain errors.
//
// It is an implementation helper of internal/table, internal/blob and
// internal/servicebus, so its API may use SDK types; theirs may not. What is
// particular to one service (its status and error codes, its limits, the
// words its messages use) stays in that service's adapter.
package azure

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Credential returns the token credential for identity-based access, by the
// Functions host's rules for identity-based connections (<conn>__credential,
// <conn>__clientId): a user-assigned managed identity when clientID is set,
// the system-assigned one when only managedIdentityOnly is set, else the
// DefaultAzureCredential chain, which ends at the managed identity in Azure
// and uses the developer's login locally. Nothing is contacted yet.
//
// The error names no setting (each adapter reads its own) and holds no
// secret: the adapter wraps it as a configuration error.
func Credential(managedIdentityOnly bool, clientID string) (azcore.TokenCredential, error) {
	if managedIdentityOnly || clientID != "" {
		o := &azidentity.ManagedIdentityCredentialOptions{}
		if clientID != "" {
			o.ID = azidentity.ClientID(clientID)
		}
		c, err := azidentity.NewManagedIdentityCredential(o)
		if err != nil {
			return nil, fmt.Errorf("managed identity (ClientID %q) cannot be used here: %w", clientID, err)
		}
		return c, nil
	}
	c, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("no Azure credential available: %w", err)
	}
	return c, nil
}

// MaxRetries turns an adapter's MaxRetries setting (0: the SDK's default of
// 3 retries, negative: none) into the SDKs' MaxRetries field. azcore and
// azservicebus read that field the same way, but a plain int32 conversion
// would wrap a huge count into a negative one (no retries), so counts beyond
// int32 are capped instead.
func MaxRetries(n int) int32 {
	switch {
	case n < 0:
		return -1
	case n > math.MaxInt32:
		return math.MaxInt32
	}
	return int32(n)
}

// ClientOptions returns the options of an HTTP SDK client (aztables, azblob)
// that retries a failed request maxRetries times, read as MaxRetries reads
// it; everything else is the SDK's default.
func ClientOptions(maxRetries int) azcore.ClientOptions {
	return azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: MaxRetries(maxRetries)}}
}

// CheckAccountURL checks an endpoint for identity-based access: an http(s)
// URL with a host, like https://<account>.<service>.core.windows.net/. It
// must carry no query: that would be a SAS token, mixed with the identity's
// token, and its signature would turn up in messages and logs. The error
// quotes the URL without its query, so never a signature.
func CheckAccountURL(accountURL, service string) error {
	base, query, _ := strings.Cut(accountURL, "?")
	if query != "" {
		return errors.New("AccountURL must not carry a query (a SAS token); use managed identity or a connection string")
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("AccountURL %q is not a URL like https://<account>.%s.core.windows.net/", base, service)
	}
	return nil
}
