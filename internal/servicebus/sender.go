package servicebus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/entrasync/entrasync/internal/azure"
	"github.com/entrasync/entrasync/internal/dirsync"
)

// Sender sends to a Service Bus queue. It connects on the first Send and
// keeps the connection (the SDK reconnects after failures) until Close.
type Sender struct {
	client   *azservicebus.Client
	sender   *azservicebus.Sender
	queue    string
	maxBytes int
	logger   *slog.Logger
}

// NewSender validates cfg (ConnectionString, or Namespace with an identity)
// and returns a Sender. It does not connect.
func NewSender(cfg Config) (*Sender, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	opts := &azservicebus.ClientOptions{RetryOptions: azservicebus.RetryOptions{MaxRetries: azure.MaxRetries(cfg.MaxRetries)}}
	var client *azservicebus.Client
	var err error
	switch {
	case cfg.ConnectionString != "" && cfg.Namespace != "":
		return nil, configError("both Config.ConnectionString and Config.Namespace are set; set only one")
	case cfg.ConnectionString != "":
		if cfg.UseManagedIdentity || cfg.ClientID != "" {
			return nil, configError("Config.UseManagedIdentity and Config.ClientID apply only with Config.Namespace, not with a connection string")
		}
		if err := checkConnectionString(cfg.ConnectionString); err != nil {
			return nil, err
		}
		client, err = azservicebus.NewClientFromConnectionString(cfg.ConnectionString, opts)
		if err != nil {
			return nil, configError("Config.ConnectionString could not be used (%s)", safeSDKMessage(err))
		}
	case cfg.Namespace != "":
		ns := strings.TrimSuffix(strings.TrimPrefix(cfg.Namespace, "sb://"), "/")
		if ns == "" || strings.ContainsAny(ns, "/:?;= ") {
			return nil, configError("Config.Namespace %q is not a host name like <namespace>.servicebus.windows.net", cfg.Namespace)
		}
		cred, cerr := azure.Credential(cfg.UseManagedIdentity, cfg.ClientID)
		if cerr != nil {
			return nil, configError("identity for Config.Namespace: %v", cerr)
		}
		client, err = azservicebus.NewClient(ns, cred, opts)
		if err != nil {
			return nil, configError("Config.Namespace %q could not be used (%s)", cfg.Namespace, safeSDKMessage(err))
		}
	default:
		return nil, configError("neither Config.ConnectionString nor Config.Namespace is set (and Config.DevhostURL is not set either, so this is not a local run); set one to say where the %q queue is", cfg.Queue)
	}
	sender, err := client.NewSender(cfg.Queue, nil)
	if err != nil {
		client.Close(context.Background())
		return nil, configError("queue %q: %s", cfg.Queue, safeSDKMessage(err))
	}
	return &Sender{client: client, sender: sender, queue: cfg.Queue, maxBytes: cfg.MaxMessageBytes, logger: cfg.Logger}, nil
}

// safeSDKMessage keeps only the first line of an SDK error and drops it
// entirely if it might quote a key.
func safeSDKMessage(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	low := strings.ToLower(msg)
	if strings.Contains(low, "sharedaccess") || strings.Contains(low, "sig=") || strings.Contains(low, "key=") {
		return "details withheld: they may quote the key"
	}
	return msg
}

// toMessage converts a dirsync.Message for the SDK.
func toMessage(m dirsync.Message, maxBytes int) (*azservicebus.Message, error) {
	if err := checkMessage(m, maxBytes); err != nil {
		return nil, err
	}
	return &azservicebus.Message{
		MessageID:            to.Ptr(m.ID),
		Body:                 m.Body,
		ContentType:          to.Ptr("application/json"),
		ScheduledEnqueueTime: scheduled(m),
	}, nil
}

// Send sends m. The SDK retries transient failures (3 times) before the error
// comes back translated.
func (s *Sender) Send(ctx context.Context, m dirsync.Message) error {
	msg, err := toMessage(m, s.maxBytes)
	if err != nil {
		return err
	}
	if err := s.sender.SendMessage(ctx, msg, nil); err != nil {
		return translate(fmt.Sprintf("send message %s to queue %s", m.ID, s.queue), err)
	}
	s.logger.Debug("queued message", "queue", s.queue, "id", m.ID, "notBefore", m.NotBefore)
	return nil
}

// Close closes the connection.
func (s *Sender) Close(ctx context.Context) error {
	err := s.sender.Close(ctx)
	if cerr := s.client.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return translate("close the Service Bus connection", err)
	}
	return nil
}

// serviceBus names the service in translated errors.
var serviceBus = &azure.Service{
	Name:     "Service Bus",
	Package:  "servicebus",
	Account:  "the namespace",
	Server:   "the namespace",
	Endpoint: "the namespace name",
	// Runtime hints reach the status page unchanged, so they name no
	// Config field: they say which setting in words.
	CredentialHint: "check the key in the Service Bus connection string, or, with a managed identity, " +
		"its Azure Service Bus Data Sender role on the queue or the namespace",
}

// translate maps SDK errors to domain errors (see azure.Service.Translate).
// The SDK's text stays in Err.
func translate(op string, err error) error {
	return serviceBus.Translate(op, err, fromSDK)
}

// fromSDK classifies the errors particular to Service Bus: the SDK's own
// error codes and AMQP conditions. nil for any other error.
func fromSDK(what string, err error) *dirsync.Error {
	e := &dirsync.Error{Err: err}
	var sbErr *azservicebus.Error
	var amqpErr *amqp.Error
	switch {
	case errors.Is(err, azservicebus.ErrMessageTooLarge):
		e.Code, e.Message, e.Hint = dirsync.EINVALID, what+": the message is larger than the queue accepts", "send less in one message"
	case errors.As(err, &amqpErr) && isThrottle(amqpErr.Condition):
		e.Code, e.Message, e.Hint = dirsync.ETHROTTLED, what+": the namespace is busy", "slow down and retry later"
	case errors.As(err, &sbErr):
		switch sbErr.Code {
		case azservicebus.CodeUnauthorizedAccess:
			return serviceBus.Refused(what, "", err)
		case azservicebus.CodeConnectionLost, azservicebus.CodeTimeout:
			e.Code, e.Message, e.Hint = dirsync.EUNAVAILABLE, what+": the connection failed", "retry later"
		case azservicebus.CodeNotFound:
			e.Code, e.Message, e.Hint = dirsync.EINTERNAL, what+": the queue does not exist", "create the queue (the infrastructure template does)"
		default:
			e.Code, e.Message = dirsync.EINTERNAL, fmt.Sprintf("%s failed (%s)", what, sbErr.Code)
		}
	default:
		return nil
	}
	return e
}

func isThrottle(c amqp.ErrCond) bool {
	return c == "com.microsoft:server-busy" || c == amqp.ErrCondResourceLimitExceeded
}
