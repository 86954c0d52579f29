// Package blob implements dirsync.LogStore over Azure Blob Storage (and
// Azurite) with the azblob SDK: one append blob per run log, in one container
// (default "sync-logs") that the first CreateLog creates.
//
// Limits: AppendLog splits data into blocks of at most 4 MiB (MaxBlockBytes),
// and an append blob holds at most 50,000 blocks: that is the service's limit,
// not ours, and a log that reaches it fails further appends with EINVALID.
// Each AppendLog call costs at least one block, so callers should append
// batches of lines rather than single lines. A large append is several
// requests and therefore not atomic; and, as with any retried write, an append
// retried after a lost answer may be stored twice.
//
// LogURL signs a read-only SAS link: with the account key when the config is
// a connection string holding one, with a user delegation key when the store
// uses an Azure AD identity (AccountURL). The user delegation path cannot be
// exercised against Azurite and has only been compiled, not run.
package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/appendblob"
	azblobpkg "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/entrasync/entrasync/internal/azure"
	"github.com/entrasync/entrasync/internal/dirsync"
)

var _ dirsync.LogStore = (*LogStore)(nil)

const (
	// DefaultContainer holds the run logs when Config.Container is empty.
	DefaultContainer = "sync-logs"
	// MaxBlockBytes is the largest block AppendLog sends: the limit of the
	// service versions before 2022-11-02, which Azurite and every account
	// accept.
	MaxBlockBytes = 4 << 20
	// MaxBlocks is the service's limit on blocks in one append blob.
	MaxBlocks = 50_000
	// MaxLinkTTL is the longest LogURL validity: the service's limit for
	// user delegation SAS, applied to both kinds so behaviour does not depend
	// on the credential.
	MaxLinkTTL = 7 * 24 * time.Hour
)

// Config says how to reach the storage account. Set exactly one of
// ConnectionString and AccountURL.
type Config struct {
	// ConnectionString is a storage connection string. With an AccountKey,
	// LogURL signs links with it.
	ConnectionString string
	// AccountURL is the blob endpoint, https://<account>.blob.core.windows.net/,
	// for identity-based access (DefaultAzureCredential, or the managed
	// identity when UseManagedIdentity or ClientID is set).
	AccountURL         string
	UseManagedIdentity bool
	ClientID           string
	// Container holds the logs; default "sync-logs".
	Container string
	// MaxRetries: 0 = the SDK's default (3), negative = none.
	MaxRetries int
	// Logger receives container creation events; nil discards them.
	Logger *slog.Logger
}

// LogStore is a dirsync.LogStore over one container.
type LogStore struct {
	svc       *service.Client
	cont      *container.Client
	container string
	sharedKey *service.SharedKeyCredential // signs links when set
	identity  bool                         // Azure AD access: sign with a user delegation key
	https     bool
	logger    *slog.Logger
}

// New validates cfg and returns a LogStore. It does not contact the service.
func New(cfg Config) (*LogStore, error) {
	name := cfg.Container
	if name == "" {
		name = DefaultContainer
	}
	if !validContainer(name) {
		return nil, configError("Container %q is not a valid container name: use 3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit", name)
	}
	opts := &service.ClientOptions{ClientOptions: azure.ClientOptions(cfg.MaxRetries)}
	s := &LogStore{container: name, logger: cfg.Logger}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	var err error
	switch {
	case cfg.ConnectionString != "" && cfg.AccountURL != "":
		return nil, configError("ConnectionString and AccountURL are both set; set only one")
	case cfg.ConnectionString != "":
		if cfg.UseManagedIdentity || cfg.ClientID != "" {
			return nil, configError("UseManagedIdentity and ClientID apply only with AccountURL, not with ConnectionString")
		}
		// Say precisely what is wrong, without quoting the string (it holds
		// the account key): the SDK rejects some of these only vaguely.
		fields, perr := azure.ParseConnectionString(cfg.ConnectionString)
		if perr != nil {
			return nil, configError("ConnectionString is malformed: %v", perr)
		}
		s.svc, err = service.NewClientFromConnectionString(cfg.ConnectionString, opts)
		if err != nil {
			return nil, configError("ConnectionString could not be used: it needs AccountName and AccountKey (or BlobEndpoint with a SharedAccessSignature)")
		}
		// Keys spelled exactly so, as the SDK reads them.
		if account, key := fields.Value("AccountName"), fields.Value("AccountKey"); account != "" && key != "" {
			s.sharedKey, err = service.NewSharedKeyCredential(account, key)
			if err != nil {
				return nil, configError("ConnectionString has an AccountKey that is not valid base64")
			}
		}
	case cfg.AccountURL != "":
		if err := azure.CheckAccountURL(cfg.AccountURL, "blob"); err != nil {
			return nil, configError("%v", err)
		}
		cred, cerr := azure.Credential(cfg.UseManagedIdentity, cfg.ClientID)
		if cerr != nil {
			return nil, configError("%v", cerr)
		}
		if s.svc, err = service.NewClient(cfg.AccountURL, cred, opts); err != nil {
			return nil, configError("AccountURL %q: %v", cfg.AccountURL, err)
		}
		s.identity = true
	default:
		return nil, configError("neither ConnectionString nor AccountURL is set; set one to say which storage account holds the logs")
	}
	s.cont = s.svc.NewContainerClient(name)
	s.https = strings.HasPrefix(strings.ToLower(s.svc.URL()), "https:")
	return s, nil
}

func configError(format string, args ...any) error {
	return dirsync.Errorf(dirsync.EINVALID, "blob storage config: "+format, args...).
		WithHint("fix the blob storage settings of the app and restart it")
}

func validContainer(s string) bool {
	if len(s) < 3 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// checkName accepts log names like "2026/11/23/<run id>.jsonl": 1 to 1024
// characters, '/'-separated segments that are neither empty, "." nor "..",
// no backslash and no control characters.
func checkName(name string) error {
	reason := ""
	switch {
	case name == "":
		reason = "is empty"
	case len(name) > 1024:
		reason = "is longer than 1024 characters"
	case !utf8.ValidString(name):
		reason = "is not valid UTF-8"
	case strings.ContainsAny(name, `\`):
		reason = "contains a backslash"
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		reason = "contains a control character"
	default:
		for _, seg := range strings.Split(name, "/") {
			if seg == "" || seg == "." || seg == ".." {
				reason = "has an empty, '.' or '..' path segment"
				break
			}
		}
	}
	if reason == "" {
		return nil
	}
	return dirsync.Errorf(dirsync.EINVALID, "log name %q %s", name, reason).
		WithHint(`name logs like "2026/11/23/<run id>.jsonl"`)
}

func (s *LogStore) blob(name string) (*appendblob.Client, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	return s.cont.NewAppendBlobClient(name), nil
}

// CreateLog creates an empty append blob, and the container first if needed.
// An existing log is left untouched.
func (s *LogStore) CreateLog(ctx context.Context, name string) error {
	b, err := s.blob(name)
	if err != nil {
		return err
	}
	create := func() error {
		_, err := b.Create(ctx, &appendblob.CreateOptions{
			HTTPHeaders: &azblobpkg.HTTPHeaders{BlobContentType: to.Ptr(contentType(name))},
			// Only if absent: Create would otherwise truncate a log.
			AccessConditions: &azblobpkg.AccessConditions{ModifiedAccessConditions: &azblobpkg.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
		})
		return err
	}
	err = create()
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		if err := s.createContainer(ctx); err != nil {
			return err
		}
		err = create()
	}
	// If-None-Match: * on an existing blob: Azure answers 409
	// BlobAlreadyExists, some versions 412 ConditionNotMet.
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) || isStatus(err, 412) {
		return nil
	}
	return translate("create log "+name, err)
}

func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".jsonl"):
		return "application/x-ndjson"
	case strings.HasSuffix(name, ".csv"):
		return "text/csv"
	}
	return "text/plain; charset=utf-8"
}

func (s *LogStore) createContainer(ctx context.Context) error {
	_, err := s.cont.Create(ctx, nil)
	if err == nil {
		s.logger.Info("created blob container", "container", s.container)
		return nil
	}
	if bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil
	}
	return translate("create container "+s.container, err)
}

// AppendLog appends data to an existing log, in blocks of at most
// MaxBlockBytes. ENOTFOUND when the log does not exist.
func (s *LogStore) AppendLog(ctx context.Context, name string, data []byte) error {
	b, err := s.blob(name)
	if err != nil {
		return err
	}
	for len(data) > 0 {
		n := min(len(data), MaxBlockBytes)
		if _, err := b.AppendBlock(ctx, streaming.NopCloser(bytes.NewReader(data[:n])), nil); err != nil {
			return translate("append to log "+name, err)
		}
		data = data[n:]
	}
	return nil
}

// OpenLog streams a log from the service; the body is not buffered. A
// connection that breaks mid-stream is resumed from where it stopped (at most
// 3 times). The caller closes the reader.
func (s *LogStore) OpenLog(ctx context.Context, name string) (io.ReadCloser, error) {
	b, err := s.blob(name)
	if err != nil {
		return nil, err
	}
	resp, err := b.DownloadStream(ctx, nil)
	if err != nil {
		return nil, translate("open log "+name, err)
	}
	return &logReader{rc: resp.NewRetryReader(ctx, &azblobpkg.RetryReaderOptions{MaxRetries: 3}), name: name}, nil
}

// logReader translates read failures, so a broken download surfaces as a
// classified error without SDK internals.
type logReader struct {
	rc   io.ReadCloser
	name string
}

func (r *logReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = translate("read log "+r.name, err)
	}
	return n, err
}

func (r *logReader) Close() error { return r.rc.Close() }

// LogURL returns a read-only link to the log, valid for ttl (at most
// MaxLinkTTL). ENOTFOUND when the log does not exist; EINVALID when the
// credentials cannot sign (a connection string without an account key).
// Never log the returned URL: its signature grants access.
func (s *LogStore) LogURL(ctx context.Context, name string, ttl time.Duration) (string, error) {
	b, err := s.blob(name)
	if err != nil {
		return "", err
	}
	if ttl <= 0 || ttl > MaxLinkTTL {
		return "", dirsync.Errorf(dirsync.EINVALID, "link lifetime %s is out of range: use more than 0 and at most 7 days", ttl).
			WithHint("ask for a shorter link")
	}
	if _, err := b.GetProperties(ctx, nil); err != nil {
		return "", translate("sign a link to log "+name, err)
	}
	// Start a little in the past: the service checks st against its own
	// clock, which may run behind ours.
	now := time.Now().UTC()
	start, expiry := now.Add(-5*time.Minute), now.Add(ttl)
	values := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPS,
		StartTime:     start,
		ExpiryTime:    expiry,
		Permissions:   (&sas.BlobPermissions{Read: true}).String(),
		ContainerName: s.container,
		BlobName:      name,
	}
	if !s.https {
		values.Protocol = sas.ProtocolHTTPSandHTTP // Azurite speaks http
	}
	var qp sas.QueryParameters
	switch {
	case s.sharedKey != nil:
		qp, err = values.SignWithSharedKey(s.sharedKey)
	case s.identity:
		qp, err = s.signWithUserDelegation(ctx, values)
	default:
		return "", dirsync.Errorf(dirsync.EINVALID, "cannot sign a link to log %s: the storage connection string has no account key", name).
			WithHint("download the log through the API instead, or configure a connection string with an account key or a managed identity")
	}
	if err != nil {
		if dirsync.ErrorCode(err) != dirsync.EINTERNAL {
			return "", err
		}
		return "", &dirsync.Error{Code: dirsync.EINVALID, Err: err,
			Message: "cannot sign a link to log " + name + " with the configured credentials",
			Hint:    "use a connection string with an account key, or give the app's identity the Storage Blob Delegator role"}
	}
	return b.URL() + "?" + qp.Encode(), nil
}

// signWithUserDelegation signs with a user delegation key obtained for the
// store's identity (Azure AD). It needs the Storage Blob Delegator role (or
// any role with generateUserDelegationKey). Untested: Azurite has no AAD.
func (s *LogStore) signWithUserDelegation(ctx context.Context, v sas.BlobSignatureValues) (sas.QueryParameters, error) {
	if s.svc == nil {
		return sas.QueryParameters{}, errors.New("no service client")
	}
	udc, err := s.svc.GetUserDelegationCredential(ctx, service.KeyInfo{
		Start:  to.Ptr(v.StartTime.Format(sas.TimeFormat)),
		Expiry: to.Ptr(v.ExpiryTime.Format(sas.TimeFormat)),
	}, nil)
	if err != nil {
		return sas.QueryParameters{}, translate("get a user delegation key", err)
	}
	return v.SignWithUserDelegation(udc)
}

// Ping reads the container's properties. A container that does not exist
// yet still proves the account answers and accepts the credentials.
func (s *LogStore) Ping(ctx context.Context) error {
	_, err := s.cont.GetProperties(ctx, nil)
	if err == nil || bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return nil
	}
	return translate("ping blob storage", err)
}

// DeleteContainer removes the container and every log in it; it is meant
// for tests and maintenance tools. A missing container is not an error.
func (s *LogStore) DeleteContainer(ctx context.Context) error {
	_, err := s.cont.Delete(ctx, nil)
	if err == nil || bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return nil
	}
	return translate("delete container "+s.container, err)
}

func isStatus(err error, status int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == status
}
